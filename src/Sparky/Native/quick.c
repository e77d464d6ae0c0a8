// Linked into the native (Native AOT) sparky only: see Sparky.csproj, where clang compiles it as part of the link.
//
// Before main, so before the .NET runtime starts: a `sparky submit` line goes to sparky-quick, the small executable
// installed beside this one (src/Sparky.Quick), which starts in a fraction of this one's time (its runtime expands the
// type data of a 2 MB executable, not of this 25 MB one that holds the daemon: bench/README.md, the CLI's cost per
// call). Shell loops of submits are what this is for. sparky-quick runs the lines it takes exactly as this executable
// would, and hands any other back (exec of this executable, with SPARKY_QUICK_DECLINED set: Program.Main then goes
// straight to the command tree, not through the quick path that sparky-quick just declined, and removes it). Where
// sparky-quick is missing or cannot be run, this one runs the line itself.
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char declined[] = "SPARKY_QUICK_DECLINED";

// Priority 101: before the default constructors (Native/hugepages.c, whose work is wasted on a line handed over).
__attribute__((constructor(101))) static void sparky_quick_for_shell_loops(int argc, char **argv, char **envp)
{
    (void)envp;
    if (getenv(declined) != NULL) return;
    if (argc < 2 || strcmp(argv[1], "submit") != 0) return;
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - sizeof "sparky-quick");
    if (n <= 0) return;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (slash == NULL) return;
    strcpy(slash + 1, "sparky-quick");
    execv(path, argv); // returns only on failure: then this executable runs the line
}
