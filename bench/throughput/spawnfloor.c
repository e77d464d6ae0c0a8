/*
 * The process-spawn floor: the fastest this machine can run N trivial tasks on LANES parallel lanes
 * with no queue at all. Each lane is a forked child that runs `posix_spawn(/bin/true)` + `waitpid`
 * back to back, N/LANES times. Nothing is recorded, nothing is made durable: any queue that runs a
 * real process per task pays at least this.
 *
 * usage: spawnfloor N [LANES [CMD ARGS...]]   (exit 0 only if every run exited 0)
 *
 * With CMD, each lane runs CMD ARGS (found on PATH) instead of /bin/true: bench/pilot's floor for `sleep 0.05`.
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char *true_argv[] = {"/bin/true", NULL};
static char **cmd = true_argv;

static int lane(long count)
{
    for (long i = 0; i < count; i++) {
        pid_t pid;
        int st;
        if (posix_spawnp(&pid, cmd[0], NULL, NULL, cmd, environ) != 0) return 2;
        if (waitpid(pid, &st, 0) != pid) return 3;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 4;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: spawnfloor N [LANES [CMD ARGS...]]\n");
        return 64;
    }
    long n = atol(argv[1]);
    int lanes = argc > 2 ? atoi(argv[2]) : 2;
    if (n < 0 || lanes < 1) return 64;
    if (argc > 3) cmd = argv + 3;
    pid_t kids[64];
    if (lanes > 64) lanes = 64;
    for (int l = 0; l < lanes; l++) {
        long count = n / lanes + (l < n % lanes ? 1 : 0);
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) _exit(lane(count));
        kids[l] = pid;
    }
    int rc = 0;
    for (int l = 0; l < lanes; l++) {
        int st;
        if (waitpid(kids[l], &st, 0) != kids[l] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = 1;
    }
    return rc;
}
