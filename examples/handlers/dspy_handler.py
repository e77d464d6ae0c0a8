#!/usr/bin/env python3
"""A class handler for the payloads the replaced system's clients send without a command.

Sparky runs it for a task whose payload names work instead of a command, with the payload as JSON on stdin
and in the file $SPARKY_PAYLOAD_FILE (readable by the daemon's user only, removed when the task ends):

    cpu_short_handler = "python3 /opt/sparky/examples/handlers/dspy_handler.py"

It prints the replaced runner's result line, `__DSPY_RESULT__:{...}`, which becomes the task's `result` (and
the `result` of its done record, for producers that read <queue>/done/<id>.json). A non-zero exit fails the
task, as any command would.

Payloads it knows:
  {"method": "grpo", "module": ..., "model": ..., "dataset": ...}   a training run: runs $DSPY_TRAIN_COMMAND
                                                                   (default: print what would run) with the
                                                                   fields as --flags, no shell involved
  anything else ({"test": "data"}, "demo", ...)                     acknowledged: echoed back as the result
"""
import json
import os
import shlex
import subprocess
import sys


def train(payload: dict) -> dict:
    # The fields become arguments of one argv: a value can never be read as shell code.
    argv = shlex.split(os.environ.get("DSPY_TRAIN_COMMAND", "echo would-train"))
    for field in ("method", "module", "model", "dataset"):
        if field in payload:
            argv += [f"--{field}", str(payload[field])]
    done = subprocess.run(argv, check=False)
    if done.returncode != 0:
        print(f"training exited {done.returncode}", file=sys.stderr)
        sys.exit(done.returncode)
    return {"trained": payload.get("model", "gpt2"), "method": payload["method"]}


def main() -> None:
    text = sys.stdin.read()
    if not text.strip():  # run by hand, without stdin: the file holds the same payload
        with open(os.environ["SPARKY_PAYLOAD_FILE"], encoding="utf-8") as f:
            text = f.read()
    payload = json.loads(text)
    if isinstance(payload, dict) and "method" in payload:
        result = train(payload)
    else:
        result = {"ack": payload}
    result["task_id"] = os.environ.get("SPARKY_TASK_ID")
    print("__DSPY_RESULT__:" + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
