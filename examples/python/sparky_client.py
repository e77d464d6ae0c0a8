#!/usr/bin/env python3
"""A small client for Sparky's ZeroMQ + MessagePack channels (pyzmq + msgpack).

Commands go to the daemon's ROUTER socket (``zmq``, default tcp://127.0.0.1:5555) from a DEALER socket,
as two frames: an empty delimiter, then a MessagePack map ``{"v": 1, "type", "corr", "ts", "body"}``.
Each reply carries the request's ``corr`` and has type ``<type>.ok`` (its body is the answer) or ``error``
(its body is ``{"status": <HTTP-like code>, "detail": "..."}``, raised here as :class:`SparkyError`).

Events come from the PUB socket (``zmq_events``, default tcp://127.0.0.1:5556) as two frames: the topic
(``task.queued``, ``task.started``, ``task.finished``, ...) and a MessagePack map ``{"v": 1, "type", "ts", "body"}``.

    from sparky_client import Client, follow
    events = follow("tcp://127.0.0.1:5556", prefix="task.", timeout=30)
    with Client("tcp://127.0.0.1:5555") as c:
        [tid] = c.submit({"payload": {"command": ["echo", "hi"]}})
        for topic, body in events:
            if body["id"] == tid and topic == "task.finished":
                print(body["state"]); break
        print(c.status(tid)["exit_code"], c.status())   # one task; the queue's counters

CLI: ``python3 sparky_client.py submit -- echo hi``, ``... status [ID]``, ``... cancel ID``,
``... list [--state S] [--class C] [--limit N]``, ``... ping``, ``... events [--prefix task.]``.
The addresses come from --zmq / --events, else $SPARKY_ZMQ / $SPARKY_ZMQ_EVENTS, else the defaults.

CURVE: where the daemon binds with CURVE (off loopback, or ``zmq_curve = on``), pass the public key that
``sparky keys`` printed (Z85, 40 characters; also in ``<data>/sparky.pub``): ``Client(addr, server_key=KEY)``,
``follow(addr, server_key=KEY)``, or ``--server-key KEY`` / ``$SPARKY_ZMQ_SERVER_KEY`` (a key or a .pub file).
The client makes a throwaway key pair of its own. With no key or a wrong one, the daemon never answers: the
request times out.

Client keys: where the daemon has an allow-list (``sparky keys --client NAME`` made one; required off loopback),
also pass the key file it wrote (``<data>/keys/client-NAME.key``): ``Client(addr, server_key=KEY,
client_key=FILE)`` or ``--client-key FILE`` / ``$SPARKY_ZMQ_CLIENT_KEY``. The socket then uses that key pair for
CURVE, and every request carries ``auth: {"key": its public key, "proof": HMAC-SHA256("sparky-zmq-auth-v1")
under the X25519 secret it shares with the daemon}``, as the daemon checks (docs/security.md).
Events then need the client key too (``follow(addr, server_key=KEY, client_key=FILE)``, ``events --client-key``):
the event socket has a key of its own, which the daemon tells an authenticated client in its ``ping`` answer.
"""

import hashlib
import hmac

import argparse
import itertools
import json
import os
import sys
import time
import uuid

import msgpack
import zmq
from zmq.utils import z85

DEFAULT_ZMQ = "tcp://127.0.0.1:5555"
DEFAULT_EVENTS = "tcp://127.0.0.1:5556"


class SparkyError(Exception):
    """An ``error`` reply: ``status`` is HTTP-like (400, 404, 409, 413, 429, 503), ``detail`` says why."""

    def __init__(self, status, detail):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


def _now_ms():
    return int(time.time() * 1000)


_P = 2**255 - 19


def _x25519(scalar, point):
    """X25519 (RFC 7748, section 5): the Montgomery ladder on Curve25519, written from the RFC's pseudo-code."""
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    k = int.from_bytes(k, "little")
    x1 = int.from_bytes(point, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        bit = (k >> t) & 1
        if swap ^ bit:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = x2 + z2, x2 - z2
        aa, bb = a * a % _P, b * b % _P
        e = aa - bb
        c, d = x3 + z3, x3 - z3
        da, cb = d * a % _P, c * b % _P
        x3, z3 = (da + cb) ** 2 % _P, x1 * (da - cb) ** 2 % _P
        x2, z2 = aa * bb % _P, e * (aa + 121665 * e) % _P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(32, "little")


def _read_secret(client_key):
    """A client key: the file ``sparky keys --client`` wrote (its first line that is not a comment), or the Z85 secret."""
    text = client_key
    if os.path.isfile(client_key):
        with open(client_key) as f:
            text = next((l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")), "")
    if len(text) != 40:
        raise ValueError("client_key must be a key file from `sparky keys --client NAME` or a Z85 secret key (40 characters)")
    return text.encode()


def _curve_client(sock, server_key, client_key=None):
    """Makes ``sock`` a CURVE client of the server whose public key (Z85) is ``server_key``; None: plain.
    Returns the ``auth`` each request must carry where a client key is given, else None."""
    if server_key is None:
        if client_key is not None:
            raise ValueError("a client key needs the server's public key (server_key) too")
        return None
    if not zmq.has("curve"):
        raise RuntimeError("this libzmq was built without CURVE (libsodium); it cannot talk to a CURVE endpoint")
    key = server_key.encode() if isinstance(server_key, str) else bytes(server_key)
    if len(key) != 40:
        raise ValueError("server_key must be the daemon's public key in Z85: 40 characters (sparky keys prints it)")
    sock.curve_serverkey = key
    if client_key is None:
        # Any pair: enough where the daemon keeps no allow-list (it then checks only its own key).
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
        return None
    secret = _read_secret(client_key)
    public = zmq.curve_public(secret)
    sock.curve_secretkey, sock.curve_publickey = secret, public
    shared = _x25519(z85.decode(secret), z85.decode(key))
    proof = hmac.new(shared, b"sparky-zmq-auth-v1", hashlib.sha256).hexdigest()
    return {"key": public.decode(), "proof": proof}


class Client:
    """Commands over one DEALER socket. Not thread-safe: use one Client per thread (as with any ZeroMQ socket)."""

    def __init__(self, addr=None, timeout=10.0, context=None, server_key=None, client_key=None):
        self.addr = addr or os.environ.get("SPARKY_ZMQ") or DEFAULT_ZMQ
        self.timeout = timeout
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        # Before connect: the handshake takes the keys set then.
        self._auth = _curve_client(self._sock, server_key, client_key or os.environ.get("SPARKY_ZMQ_CLIENT_KEY") or None)
        self._sock.connect(self.addr)
        # corr values unique to this client, so a late reply to a timed-out request is recognised and dropped.
        self._prefix = uuid.uuid4().hex[:8]
        self._seq = itertools.count(1)
        self.sent = 0       # requests sent
        self.matched = 0    # replies whose corr was the one awaited
        self.stray = 0      # replies dropped: corr of an earlier, timed-out request

    def request(self, type_, body=None):
        """Sends one request and waits for the reply with its corr; returns the reply's body."""
        corr = f"{self._prefix}-{next(self._seq)}"
        msg = {"v": 1, "type": type_, "corr": corr, "ts": _now_ms()}
        if body is not None:
            msg["body"] = body
        if self._auth is not None:
            msg["auth"] = self._auth
        self._sock.send_multipart([b"", msgpack.packb(msg, use_bin_type=True)])
        self.sent += 1
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000)):
                raise TimeoutError(f"no reply to {type_} from {self.addr} within {self.timeout}s")
            frames = self._sock.recv_multipart()
            if len(frames) != 2 or frames[0] != b"":
                self.stray += 1
                continue
            reply = msgpack.unpackb(frames[1], raw=False)
            if reply.get("corr") != corr:
                self.stray += 1
                continue
            self.matched += 1
            if reply.get("type") == "error":
                err = reply.get("body") or {}
                raise SparkyError(err.get("status"), err.get("detail"))
            return reply.get("body")

    def submit(self, envelope_or_list):
        """One envelope (``{"id"?, "class"?, "payload": {"command", ...}}``, as the HTTP API takes) or a list; returns the ids."""
        return self.request("submit", envelope_or_list)["ids"]

    def status(self, id=None):
        """One task (as GET /api/v1/tasks/ID), or with no id the queue's counters (as GET /queue/status)."""
        return self.request("status", {"id": id} if id is not None else None)

    def cancel(self, id):
        """Cancels a queued or running task; raises SparkyError 409 if it has already finished."""
        return self.request("cancel", {"id": id})

    def list(self, **filters):
        """A page of tasks: state= and class_= (or **{"class": ...}), each one or several comma-separated; q= (text in the
        name or command, 3 characters or more, any case); limit=, cursor=, order="desc". Returns {"tasks", "next_cursor"};
        page on with cursor=next_cursor until it is None."""
        if "class_" in filters:
            filters["class"] = filters.pop("class_")
        return self.request("list", {k: v for k, v in filters.items() if v is not None})

    def ping(self):
        """{"pong": True, "time_ms": <the daemon's clock>}."""
        return self.request("ping")

    def close(self):
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def follow(events_addr=None, prefix="task.", timeout=None, context=None, server_key=None, client_key=None, zmq_addr=None):
    """Subscribes now and returns an iterator of (topic, body). It ends after ``timeout`` seconds without an event
    (None: never). ZeroMQ subscriptions take a moment to reach the publisher: events sent in the first few
    milliseconds after this call can be missed, so subscribe before submitting.

    Where the daemon authenticates clients (a client key), its event socket has a key of its own that only an
    authenticated client is told: this asks for it first with a ``ping`` on the command socket (``zmq_addr``)."""
    addr = events_addr or os.environ.get("SPARKY_ZMQ_EVENTS") or DEFAULT_EVENTS
    ctx = context or zmq.Context.instance()
    client_key = client_key or os.environ.get("SPARKY_ZMQ_CLIENT_KEY") or None
    if client_key is not None:
        with Client(zmq_addr, context=ctx, server_key=server_key, client_key=client_key) as c:
            server_key = c.ping().get("events_key") or server_key
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    _curve_client(sock, server_key)
    sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sock.connect(addr)

    def events():
        try:
            while True:
                if not sock.poll(None if timeout is None else int(timeout * 1000)):
                    return
                frames = sock.recv_multipart()
                if len(frames) != 2:
                    continue
                msg = msgpack.unpackb(frames[1], raw=False)
                yield frames[0].decode(), msg.get("body")
        finally:
            sock.close()

    return events()


def _main(argv):
    p = argparse.ArgumentParser(prog="sparky_client.py", description="Talk to Sparky over ZeroMQ + MessagePack.")
    p.add_argument("--zmq", help=f"command endpoint (default $SPARKY_ZMQ or {DEFAULT_ZMQ})")
    p.add_argument("--events", help=f"event endpoint (default $SPARKY_ZMQ_EVENTS or {DEFAULT_EVENTS})")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--server-key", help="the daemon's CURVE public key, or its .pub file (default $SPARKY_ZMQ_SERVER_KEY; none: plain)")
    p.add_argument("--client-key", help="this client's key file from `sparky keys --client NAME` (default $SPARKY_ZMQ_CLIENT_KEY)")
    sub = p.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("submit", help="queue one task: submit [--class C] -- CMD ARGS...")
    s.add_argument("--class", dest="cls")
    s.add_argument("--name")
    s.add_argument("command", nargs=argparse.REMAINDER)
    st = sub.add_parser("status", help="one task, or the queue's counters")
    st.add_argument("id", nargs="?")
    c = sub.add_parser("cancel", help="cancel a task")
    c.add_argument("id")
    ls = sub.add_parser("list", help="a page of tasks")
    ls.add_argument("--state")
    ls.add_argument("--class", dest="cls")
    ls.add_argument("--search", dest="q")
    ls.add_argument("--limit", type=int)
    sub.add_parser("ping", help="the daemon's clock")
    ev = sub.add_parser("events", help="print events as JSON lines until interrupted")
    ev.add_argument("--prefix", default="task.")
    a = p.parse_args(argv)
    key = a.server_key or os.environ.get("SPARKY_ZMQ_SERVER_KEY") or None
    if key is not None and os.path.isfile(key):
        with open(key) as f:
            key = f.read().strip()

    if a.verb == "events":
        try:
            for topic, body in follow(a.events, a.prefix, server_key=key, client_key=a.client_key, zmq_addr=a.zmq):
                print(json.dumps({"topic": topic, "body": body}), flush=True)
        except KeyboardInterrupt:
            pass
        return 0
    with Client(a.zmq, timeout=a.timeout, server_key=key, client_key=a.client_key) as client:
        try:
            if a.verb == "submit":
                cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
                if not cmd:
                    p.error("submit needs a command: submit -- CMD ARGS...")
                env = {"payload": {"command": cmd, "cwd": os.getcwd()}}
                if a.cls:
                    env["class"] = a.cls
                if a.name:
                    env["name"] = a.name
                print("\n".join(client.submit(env)))
            elif a.verb == "status":
                print(json.dumps(client.status(a.id), indent=2))
            elif a.verb == "cancel":
                print(json.dumps(client.cancel(a.id)))
            elif a.verb == "list":
                print(json.dumps(client.list(state=a.state, class_=a.cls, q=a.q, limit=a.limit), indent=2))
            elif a.verb == "ping":
                print(json.dumps(client.ping()))
        except SparkyError as e:
            print(f"sparky_client: {e}", file=sys.stderr)
            return 1
        except TimeoutError as e:
            print(f"sparky_client: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
