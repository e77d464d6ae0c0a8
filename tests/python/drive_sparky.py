#!/usr/bin/env python3
"""Drives a Sparky daemon through examples/python/sparky_client.py, as a user's script would, and prints one
JSON object with what it saw. Run by tests/Sparky.IntegrationTests/Zmq/PythonClientTests.cs:

    drive_sparky.py ZMQ_ADDR EVENTS_ADDR WORKDIR
"""
import json
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "examples", "python"))
from sparky_client import Client, SparkyError, follow  # noqa: E402

zmq_addr, events_addr, work = sys.argv[1:4]
events = follow(events_addr, prefix="task.", timeout=30)
time.sleep(0.5)  # a subscription takes a moment to reach the publisher

out = {"events": [], "status": {}}
with Client(zmq_addr, timeout=15) as c:
    out["pong"] = c.ping()
    [ok] = c.submit({"name": "hello", "payload": {"command": ["echo", "hi"], "cwd": work}})
    fail, long_ = c.submit([
        {"payload": {"command": "exit 7", "cwd": work}},
        {"id": "py-long", "payload": {"command": ["sleep", "60"], "cwd": work}},
    ])
    out["ids"] = {"ok": ok, "fail": fail, "long": long_}
    finished = set()
    for topic, body in events:
        out["events"].append([topic, body.get("id"), body.get("state")])
        if topic == "task.started" and body.get("id") == long_:
            out["cancel"] = c.cancel(long_)
        if topic == "task.finished":
            finished.add(body.get("id"))
        if finished >= {ok, fail, long_}:
            break
    for name, tid in out["ids"].items():
        t = c.status(tid)  # task.finished is published once the end is stored: no waiting needed
        out["status"][name] = {"state": t["state"], "exit_code": t["exit_code"], "id": t["id"]}
    out["counters"] = c.status()
    out["listed"] = [t["id"] for t in c.list(limit=10)["tasks"]]
    out["failed_listed"] = [t["id"] for t in c.list(state="failed")["tasks"]]
    try:
        c.cancel(ok)
    except SparkyError as e:
        out["late_cancel"] = {"status": e.status, "detail": e.detail}
    out["requests"] = {"sent": c.sent, "matched": c.matched, "stray": c.stray}
print(json.dumps(out))
