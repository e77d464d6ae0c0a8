// Linked into the native (Native AOT) sparky only: see Sparky.csproj, where clang compiles it as part of the link.
//
// Before main, so before the .NET runtime starts: asks the kernel for transparent huge pages for the executable's
// zero-filled data (.bss and, after it, Native AOT's .hydrated section). The runtime's first act is to expand its
// compressed type data into .hydrated, 7 MB for this executable (the daemon, Kestrel and SQLite are in it); in 4 KB
// pages that is some 1,700 page faults, a third of a short command's CPU (`sparky submit` in a shell loop; see
// bench/README.md, the CLI's cost per call). In 2 MB pages, populated in one call, it is none. The executable stays
// position-independent (address randomisation is kept). Where huge pages are off, madvise fails and nothing changes.
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

// Defined by the linker (GNU ld and lld): the start of .bss and the end of the executable's data.
extern char __bss_start[];
extern char _end[];

__attribute__((constructor)) static void sparky_hugepages_for_startup_data(void)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    // Whole pages only: the page holding __bss_start may also hold the end of .data, which is left alone.
    uintptr_t start = ((uintptr_t)__bss_start + page - 1) & ~(page - 1);
    uintptr_t end = (uintptr_t)_end & ~(page - 1);
    if (end <= start) return;
    (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
    // And fault it all in now, in one call: the expansion writes nearly all of it, and a fault per page costs a trap
    // each (dear under a hypervisor). Linux 5.14 and later; before, madvise fails and the pages come as they are used.
    (void)madvise((void *)start, end - start, MADV_POPULATE_WRITE);
}
