#!/usr/bin/env python3
"""Where a short-lived sparky's CPU goes: reads `perf script` of a `perf record -g` over many calls and puts each
sample of the sparky processes in the first phase its call stack shows (see bench/README.md, the CLI's start-up).

    perf record -F 20000 -g -o cli.data -- bash -c 'for i in $(seq 40); do sparky submit -- true >/dev/null; done'
    perf script -i cli.data --comm sparky | bench/cli/profile.py
"""
from __future__ import annotations

import sys

# (phase, substrings of a frame's symbol), looked for from the outermost frame inwards; the first phase found wins.
PHASES = [
    ("runtime start: type data expanded (dehydrated data)", ["StartupCodeHelpers__RehydrateData"]),
    ("runtime start: statics and module tables", ["StartupCodeHelpers__InitializeModules", "InitializeGlobalTablesForModule"]),
    ("runtime start: GC, threads, the rest", ["RhInitialize", "InitializeGC", "PalInit"]),
    ("quick submit: arguments", ["QuickSubmitArgs__TryParse"]),
    ("quick submit: request body (Utf8JsonWriter)", ["SubmitRequest__Body"]),
    ("quick submit: socket and HTTP/1.1", ["QuickHttp__"]),
    ("quick submit: answer and stdout", ["QuickSubmit__TryRun"]),
    ("command tree: building it", ["Verbs__Build"]),
    ("command tree: parsing", ["RootCommand__Parse", "Command__Parse", "CommandLineParser__Parse"]),
    ("help text", ["HelpAction__Invoke", "HelpBuilder__Write"]),
    ("Spectre console set-up", ["Spectre_Console"]),
    ("HTTP stack (HttpClient, SocketsHttpHandler)", ["System_Net_Http_"]),
    ("submit verb: body, answer, output", ["Verbs___c__DisplayClass", "DaemonClient__"]),
    ("invocation (System.CommandLine)", ["InvocationPipeline__Invoke"]),
    ("Main, other", ["Program__Main"]),
    ("thread pool, timers, socket engine threads", ["ThreadPool", "WorkerThread", "SocketAsyncEngine", "TimerQueue", "ThreadEntryPoint"]),
    ("exec, page faults, exit (kernel)", ["do_execve", "exc_page_fault", "asm_exc_page_fault", "do_exit", "do_group_exit", "mmput", "exit_mmap"]),
    ("dynamic loader", ["_dl_start", "dl_main", "_dl_relocate", "_dl_map_object"]),
]


def main() -> int:
    counts: dict[str, int] = {}
    total = 0
    stack: list[str] = []

    def flush() -> None:
        nonlocal total
        if not stack:
            return
        total += 1
        frames = list(reversed(stack))  # outermost first
        phase = "other"
        for name, keys in PHASES:
            if any(k in f for f in frames for k in keys):
                phase = name
                break
        counts[phase] = counts.get(phase, 0) + 1

    for line in sys.stdin:
        if not line.strip():
            flush()
            stack = []
        elif line[0] in " \t":
            parts = line.split(None, 1)
            if len(parts) == 2:
                stack.append(parts[1].rsplit(" (", 1)[0].split("+0x")[0])
        else:
            flush()
            stack = []
    flush()
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    order = [name for name, _ in PHASES] + ["other"]
    for name in order:
        if name in counts:
            print(f"{100.0 * counts[name] / total:5.1f}%  {name}")
    print(f"({total} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
