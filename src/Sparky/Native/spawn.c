// Linked into the native (Native AOT) sparky only: see Sparky.csproj, where clang compiles it as part of the link.
// Called by Sparky.Execution's ProcessLauncher (P/Invoke "sparky-native", bound at link time); the JIT build has no
// such library, and the launcher then uses posix_spawn and moves the child into its cgroup after it has started.
//
// Starts a task's process inside its attempt's cgroup from its first instruction (clone3 with CLONE_INTO_CGROUP), as
// glibc 2.39's posix_spawnattr_setcgroup_np does, for the hosts whose glibc is older (Debian 12: 2.36; RHEL 9: 2.34),
// where the daemon otherwise moves each child after its start: a migration that cost the engine's thread about a tenth
// of a task's overhead, and a moment in which a fast task could fork outside its cgroup. Otherwise what posix_spawn
// does for the launcher: a new session, every signal to its default and none blocked, stdin, stdout and stderr opened
// from paths, a working directory, then execve. The child shares the daemon's memory until its exec (CLONE_VM with
// CLONE_VFORK, as posix_spawn: no page tables copied) on a stack of its own, with every signal blocked until its
// handlers are reset, so no handler of the daemon's ever runs in it.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

struct sparky_spawn_request
{
    const char *path;         // the executable, resolved
    char *const *argv;
    char *const *envp;
    const char *stdin_path;   // opened read-only as fd 0
    const char *stdout_path;  // opened for appending (created 0644) as fd 1
    const char *stderr_path;  // and as fd 2
    const char *cwd;          // NULL: the daemon's
    int cgroup_fd;            // an O_DIRECTORY descriptor of the attempt's cgroup (v2)
};

// The kernel's struct clone_args (linux/sched.h), up to and including cgroup: CLONE_ARGS_SIZE_VER2.
struct clone3_args
{
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

struct child_args
{
    const struct sparky_spawn_request *request;
    volatile int error; // written by the child before it exits, read by the parent once the vfork has returned
};

enum { STACK_SIZE = 64 * 1024 };
static pthread_mutex_t stack_lock = PTHREAD_MUTEX_INITIALIZER;
static void *child_stack; // one stack, mapped once: a child uses it only until its exec, while its parent waits

static int open_as(int fd, const char *path, int flags, mode_t mode)
{
    int opened = open(path, flags, mode);
    if (opened < 0) return -1;
    if (opened == fd) return 0;
    int r = dup2(opened, fd); // the duplicate is not close-on-exec
    close(opened);
    return r < 0 ? -1 : 0;
}

// The child, on its own stack, sharing the daemon's memory: every step is a system call, nothing that allocates,
// locks or touches the runtime. It never returns: exec, or _exit(127) with errno left for the parent.
static int child_main(void *p)
{
    struct child_args *a = p;
    const struct sparky_spawn_request *r = a->request;
    // Every signal to its default (posix_spawn's SETSIGDEF with a full set): the runtime's handlers must not run in a
    // child that shares its memory, and its ignored SIGPIPE must not be inherited through exec (`yes | head`). The raw
    // call, which glibc's own two signals go through too: all zero is SIG_DFL, no flags, no mask, on every architecture.
    uint64_t dfl[4] = { 0, 0, 0, 0 };
    for (int sig = 1; sig <= 64; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) (void)syscall(SYS_rt_sigaction, sig, dfl, NULL, sizeof(uint64_t));
    if (setsid() < 0) goto failed;
    if (open_as(0, r->stdin_path, O_RDONLY, 0) < 0) goto failed;
    if (open_as(1, r->stdout_path, O_WRONLY | O_CREAT | O_APPEND, 0644) < 0) goto failed;
    if (open_as(2, r->stderr_path, O_WRONLY | O_CREAT | O_APPEND, 0644) < 0) goto failed;
    if (r->cwd != NULL && chdir(r->cwd) < 0) goto failed;
    uint64_t none = 0;
    if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none) < 0) goto failed;
    execve(r->path, r->argv, r->envp);
failed:
    a->error = errno != 0 ? errno : EINVAL;
    _exit(127);
}

// clone3 with the child running fn(arg) on the stack the arguments give: in assembly, because the child must not
// return through any C frame of its parent's (it shares the memory, its stack is another). Returns the child's pid,
// or -errno.
static long clone3_calling(struct clone3_args *ca, int (*fn)(void *), void *arg)
{
#if defined(__x86_64__)
    long ret;
    __asm__ volatile(
        "syscall\n\t"
        "test %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        // The child: a new stack (16-byte aligned, so the call's return address leaves it as the ABI wants).
        "xor %%ebp, %%ebp\n\t"
        "mov %[arg], %%rdi\n\t"
        "call *%[fn]\n\t"
        "mov %%eax, %%edi\n\t"
        "mov $231, %%eax\n\t" // exit_group, should fn ever return
        "syscall\n\t"
        "hlt\n\t"
        "1:\n\t"
        : "=a"(ret)
        : "a"((long)SYS_clone3), "D"(ca), "S"(sizeof *ca), [fn] "r"(fn), [arg] "r"(arg)
        : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x0 __asm__("x0") = (long)ca;
    register long x1 __asm__("x1") = (long)sizeof *ca;
    register long x8 __asm__("x8") = SYS_clone3;
    __asm__ volatile(
        "svc #0\n\t"
        "cbnz x0, 1f\n\t"
        // The child: a new stack (16-byte aligned, as AArch64 requires).
        "mov x29, xzr\n\t"
        "mov x0, %[arg]\n\t"
        "blr %[fn]\n\t"
        "mov x8, #94\n\t" // exit_group, should fn ever return
        "svc #0\n\t"
        "1:\n\t"
        : "+r"(x0)
        : "r"(x1), "r"(x8), [fn] "r"(fn), [arg] "r"(arg)
        : "x30", "memory");
    return x0;
#else
    (void)ca; (void)fn; (void)arg;
    return -ENOSYS;
#endif
}

// Returns 0 and the child's pid; a positive errno when the child could not be started (the path cannot be run, a file
// cannot be opened: what posix_spawn would return; the child is reaped here); or a negative errno when clone3 itself
// refused (no clone3 or no CLONE_INTO_CGROUP before Linux 5.7, an emulator, a cgroup that cannot take processes): the
// caller then starts the process another way.
int sparky_spawn_in_cgroup(const struct sparky_spawn_request *request, int *pid)
{
    pthread_mutex_lock(&stack_lock);
    if (child_stack == NULL)
    {
        void *s = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (s == MAP_FAILED)
        {
            pthread_mutex_unlock(&stack_lock);
            return -ENOMEM;
        }
        child_stack = s;
    }
    struct child_args a = { .request = request, .error = 0 };
    struct clone3_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP;
    ca.exit_signal = SIGCHLD;
    ca.stack = (uint64_t)(uintptr_t)child_stack;
    ca.stack_size = STACK_SIZE;
    ca.cgroup = (uint64_t)request->cgroup_fd;
    // Every signal blocked (the raw call: glibc's own signals too) from before the clone until the child has reset its
    // handlers; the parent's mask back once the child has exec'd.
    uint64_t all = ~(uint64_t)0, old = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof all);
    long child = clone3_calling(&ca, child_main, &a);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, sizeof old);
    pthread_mutex_unlock(&stack_lock);
    if (child < 0) return (int)child;
    if (a.error != 0)
    {
        while (waitpid((pid_t)child, NULL, 0) < 0 && errno == EINTR) { }
        return a.error;
    }
    *pid = (int)child;
    return 0;
}
