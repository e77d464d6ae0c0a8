/* A stand-in libnvidia-ml.so.1 for tests: two GPUs, an H100 and a GB10 whose memory query answers
 * NVML_ERROR_NOT_SUPPORTED. Struct layouts as in NVIDIA's nvml.h, written out here on purpose:
 * a C# layout that disagrees reads these fields wrong. */
#include <string.h>

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

_Static_assert(sizeof(nvmlMemory_t) == 24, "nvmlMemory_t");
_Static_assert(sizeof(nvmlUtilization_t) == 8, "nvmlUtilization_t");
_Static_assert(sizeof(nvmlPciInfo_t) == 68, "nvmlPciInfo_t");

static int open_count;
static unsigned int util = 42;

int fake_open_count(void) { return open_count; }
void fake_set_utilization(unsigned int u) { util = u; }

int nvmlInit_v2(void) { open_count++; return 0; }
int nvmlShutdown(void) { open_count--; return 0; }
const char *nvmlErrorString(int rc) { return rc == 3 ? "Not Supported" : "Unknown Error"; }
int nvmlDeviceGetCount_v2(unsigned int *n) { *n = 2; return 0; }

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **dev) {
    if (i > 1) return 2;
    *dev = (void *)(long)(i + 1);
    return 0;
}
static int which(void *dev) { return (int)(long)dev - 1; }

static int copy(const char *s, char *buf, unsigned int len) {
    if (len < strlen(s) + 1) return 7; /* NVML_ERROR_INSUFFICIENT_SIZE */
    strcpy(buf, s);
    return 0;
}
int nvmlDeviceGetUUID(void *dev, char *buf, unsigned int len) {
    return copy(which(dev) == 0 ? "GPU-11111111-2222-3333-4444-555555555555" : "GPU-66666666-7777-8888-9999-000000000000", buf, len);
}
int nvmlDeviceGetName(void *dev, char *buf, unsigned int len) {
    return copy(which(dev) == 0 ? "NVIDIA H100 80GB HBM3" : "NVIDIA GB10", buf, len);
}
int nvmlDeviceGetMemoryInfo(void *dev, nvmlMemory_t *m) {
    if (which(dev) == 1) return 3; /* unified memory: NOT_SUPPORTED */
    m->total = 85520809984ULL;
    m->used = 1048576ULL * 1000;
    m->free = m->total - m->used;
    return 0;
}
int nvmlDeviceGetUtilizationRates(void *dev, nvmlUtilization_t *u) {
    u->gpu = which(dev) == 0 ? util : 0;
    u->memory = 7;
    return 0;
}
int nvmlDeviceGetTemperature(void *dev, int sensor, unsigned int *t) {
    if (sensor != 0) return 2;
    *t = which(dev) == 0 ? 41 : 35;
    return 0;
}
int nvmlDeviceGetPciInfo_v3(void *dev, nvmlPciInfo_t *p) {
    memset(p, 0x5a, sizeof *p);
    strcpy(p->busIdLegacy, "0000:18:00.0");
    p->domain = which(dev) == 0 ? 0 : 0xf;
    p->bus = which(dev) == 0 ? 0x18 : 1;
    p->device = 0;
    p->pciDeviceId = 0x233010de;
    p->pciSubSystemId = 0x16c110de;
    strcpy(p->busId, which(dev) == 0 ? "00000000:18:00.0" : "0000000F:01:00.0");
    return 0;
}
