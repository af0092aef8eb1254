#!/usr/bin/env python3
"""websockets' asyncio API (A) against its Sans-I/O protocol under our own asyncio.Protocol (B).

Starts each variant as a minimal chat server in its own subprocess (this
script again, ``--serve a|b``) on a free loopback port, both doing the same
work: on accept one ``connected`` frame; on a ``message:send`` text frame one
``message:new`` encoded once and sent to every open connection. Then it
measures both with the Node load generator (``../shared/bench/loadgen.mjs``,
run from a copy beside the ``ws`` package in ``~/.cache/workspace-bench``):

* connections: CONNECTIONS connections (``presence=none``) in batches of 200;
  connections/s, server RSS growth per connection, server CPU per connection
  (accept and teardown);
* fan-out: RECEIVERS receivers, one sender pushing MESSAGES with a window of
  WINDOW unacknowledged messages; deliveries/s, p50/p99 latency, server CPU per
  delivery, lost messages;
* held: HELD connections (10,000 by default) held open at once; server RSS
  growth per connection.

Each variant is measured ROUNDS times, alternating A and B (A B, B A, A B ...),
with a fresh server for every measurement, and the script prints the medians
and the ratio B/A. Before the first round it checks that both servers behave
alike: 404 for another path, ``connected`` on accept, ``message:new`` for a
``message:send``, pong for a ping, clean close handshake, and a connection
that drops without a close frame leaving the roster.

    python benchmarks/network_layer_bench.py
    python benchmarks/network_layer_bench.py --quick
    python benchmarks/network_layer_bench.py --rounds 5 --loop uvloop --json out.json

A: ``websockets.asyncio.server.serve``, a handler coroutine per connection,
``async for`` to read, ``broadcast()`` to fan out. B:
``websockets.server.ServerProtocol`` fed by an ``asyncio.Protocol``
(``receive_data``, ``events_received``, ``data_to_send``, ``accept``/``reject``/
``send_response``, ``close_expected``), fan-out by writing one pre-built frame
to every transport. Neither touches websockets' private attributes. A runs
with ``compression=None`` and ``ping_interval=None``, since B has neither
(the load generator does not negotiate compression either); both listen with
the same backlog.

The load generator shares the machine with the servers (2 cores here) and is
itself the bottleneck for the rates; server CPU per connection or delivery is
the figure least affected by it. Compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import filecmp
import itertools
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

CLK_TCK = os.sysconf("SC_CLK_TCK")
HERE = Path(__file__).resolve()
DEFAULT_LOADGEN = HERE.parents[2] / "shared" / "bench" / "loadgen.mjs"
DEFAULT_NODE_DIR = Path.home() / ".cache" / "workspace-bench"
BACKLOG = 1024
MAX_SIZE = 2**20


# --- figures from /proc -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m[1]) * 1024 if m else 0


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the chat work, the same for both variants --------------------------------------------------

_ids = itertools.count(1)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_user(path: str) -> tuple[str, str]:
    """(userId, username) for a connection to *path* (``/ws?username=...``)."""
    username = parse_qs(urlsplit(path).query).get("username", ["anonymous"])[0][:64]
    return f"u{next(_ids)}", username


def connected_payload(user_id: str, username: str, online: int) -> bytes:
    return json.dumps({"type": "connected", "userId": user_id, "username": username, "timestamp": now_iso(),
                       "connectedUsers": online}, separators=(",", ":")).encode()


def message_payload(raw: str | bytes, user_id: str, username: str) -> bytes | None:
    """The ``message:new`` to broadcast for an incoming frame, or None if it is not a ``message:send``."""
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(msg, dict) or msg.get("type") != "message:send" or not isinstance(msg.get("text"), str):
        return None
    return json.dumps({"type": "message:new", "data": {"id": next(_ids), "userId": user_id, "username": username,
                                                       "text": msg["text"], "createdAt": now_iso()}},
                      separators=(",", ":")).encode()


def is_ws_path(path: str) -> bool:
    return urlsplit(path).path == "/ws"


# --- variant A: the public asyncio API ----------------------------------------------------------


async def serve_a(port: int) -> None:
    from websockets.asyncio.server import broadcast, serve
    from websockets.exceptions import ConnectionClosed

    conns: set = set()

    def process_request(connection, request):
        if not is_ws_path(request.path):
            return connection.respond(404, "Not Found\n")
        return None

    async def handler(ws) -> None:
        user_id, username = parse_user(ws.request.path)
        conns.add(ws)
        try:
            await ws.send(connected_payload(user_id, username, len(conns)), text=True)
            async for raw in ws:
                if isinstance(raw, str) and (out := message_payload(raw, user_id, username)) is not None:
                    broadcast(conns, out, text=True)
        except ConnectionClosed:
            pass
        finally:
            conns.discard(ws)

    async with serve(handler, "127.0.0.1", port, process_request=process_request, compression=None,
                     ping_interval=None, max_size=MAX_SIZE, backlog=BACKLOG) as server:
        await announce(server.sockets[0].getsockname()[1])


# --- variant B: Sans-I/O ServerProtocol under our own asyncio.Protocol --------------------------


async def serve_b(port: int) -> None:
    from websockets.frames import Frame, Opcode
    from websockets.http11 import Request
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    OPEN, TEXT, CONT = State.OPEN, Opcode.TEXT, Opcode.CONT
    conns: set[Conn] = set()

    class Conn(asyncio.Protocol):
        __slots__ = ("transport", "ws", "user_id", "username", "parts")

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.ws = ServerProtocol(max_size=MAX_SIZE)
            self.user_id = self.username = ""
            self.parts: list[bytes] | None = None  # a fragmented text message being reassembled

        def data_received(self, data: bytes) -> None:
            ws = self.ws
            ws.receive_data(data)  # answers pings and close frames itself, into data_to_send()
            for event in ws.events_received():
                if isinstance(event, Frame):
                    if event.opcode is TEXT:
                        if event.fin:
                            self.on_text(event.data)
                        else:
                            self.parts = [event.data]
                    elif event.opcode is CONT and self.parts is not None:
                        self.parts.append(event.data)
                        if event.fin:
                            text, self.parts = b"".join(self.parts), None
                            self.on_text(text)
                elif isinstance(event, Request):
                    self.on_request(event)
            self.flush()

        def on_request(self, request: Request) -> None:
            ws = self.ws
            if not is_ws_path(request.path):
                ws.send_response(ws.reject(404, "Not Found\n"))
                return
            response = ws.accept(request)  # a 4xx/5xx response if the handshake is invalid
            ws.send_response(response)
            if response.status_code != 101:
                return
            self.user_id, self.username = parse_user(request.path)
            conns.add(self)
            ws.send_text(connected_payload(self.user_id, self.username, len(conns)))

        def on_text(self, data: bytes) -> None:
            out = message_payload(data, self.user_id, self.username)
            if out is None:
                return
            self.flush()  # whatever this connection owes goes out before the broadcast
            frame = Frame(TEXT, out).serialize(mask=False, extensions=[])
            for c in conns:
                if c.ws.state is OPEN:
                    c.transport.write(frame)

        def flush(self) -> None:
            t = self.transport
            for data in self.ws.data_to_send():
                if data:
                    t.write(data)
                elif t.can_write_eof() and not t.is_closing():
                    t.write_eof()  # SEND_EOF: half-close
            if self.ws.close_expected():
                t.close()  # after the close handshake or a rejected handshake; buffered data is flushed first

        def eof_received(self) -> None:
            self.ws.receive_eof()
            self.flush()
            conns.discard(self)
            return None  # let asyncio close the transport

        def connection_lost(self, exc: Exception | None) -> None:
            conns.discard(self)
            self.ws.receive_eof()  # idempotent; moves the protocol to CLOSED
            self.ws.data_to_send()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Conn, "127.0.0.1", port, backlog=BACKLOG)
    async with server:
        await announce(server.sockets[0].getsockname()[1])


async def announce(port: int) -> None:
    """Print the port for the parent, then serve until the parent goes away (checked every second)."""
    print(f"LISTENING {port}", flush=True)
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1)


def run_server(variant: str, port: int, loop: str) -> int:
    raise_fd_limit()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # nothing to clean up; 10,000 sockets close faster this way
    main = serve_a if variant == "a" else serve_b
    factory = None
    if loop == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        try:
            runner.run(main(port))
        except KeyboardInterrupt:
            pass
    return 0


# --- the orchestrator ---------------------------------------------------------------------------

LIVE: set[subprocess.Popen] = set()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    LIVE.discard(proc)


class Server:
    """One variant in a subprocess on a free port, its port read from the line it prints."""

    def __init__(self, variant: str, loop: str):
        self.variant = variant
        self.proc = subprocess.Popen([sys.executable, str(HERE), "--serve", variant, "--port", "0", "--loop", loop],
                                     stdout=subprocess.PIPE, text=True)
        LIVE.add(self.proc)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else ""
        m = re.match(r"LISTENING (\d+)", line)
        if not m:
            stop(self.proc)
            raise SystemExit(f"server {variant} did not start: {line!r}")
        self.port = int(m[1])
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.pid = self.proc.pid

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.proc)


def check(server: Server) -> None:
    """Both variants must do the same thing; raises AssertionError (or a websockets error) if not."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    base = f"ws://127.0.0.1:{server.port}"
    try:
        with connect(f"{base}/elsewhere", open_timeout=5):
            pass
        raise AssertionError("a path other than /ws was accepted")
    except InvalidStatus as exc:
        assert exc.response.status_code == 404, exc.response.status_code
    with connect(f"{base}/ws?username=alice", open_timeout=5, compression=None) as ws:
        first = json.loads(ws.recv(timeout=5))
        assert first["type"] == "connected" and first["username"] == "alice" and first["connectedUsers"] == 1, first
        assert ws.ping(b"hi").wait(5), "no pong"
        ws.send(json.dumps({"type": "message:send", "text": "hello"}))
        ws.send("not json")
        ws.send(json.dumps({"type": "message:send", "text": "x" * 300}))  # a 16-bit length header
        for text in ("hello", "x" * 300):
            got = json.loads(ws.recv(timeout=5))
            assert got["type"] == "message:new" and got["data"]["text"] == text, got
            assert got["data"]["username"] == "alice", got
        ws.send(['{"type":"message:send",', '"text":"fragmented"}'])  # one message in two frames
        assert json.loads(ws.recv(timeout=5))["data"]["text"] == "fragmented"
    assert ws.close_code == 1000, ws.close_code
    # a client that sends EOF without a close frame, and one that resets the connection
    for how in ("eof", "reset"):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"GET /ws?username=raw HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b'"connected"' not in head:
            chunk = s.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        if how == "eof":
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            while s.recv(4096):
                pass  # the server must close its side too
        else:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    time.sleep(0.2)
    with connect(f"{base}/ws?username=bob", open_timeout=5, compression=None) as ws:
        first = json.loads(ws.recv(timeout=5))
    assert first["connectedUsers"] == 1, f"dropped connections were left in the roster: {first}"


def warm_up(server: Server) -> None:
    """One connection and one message, so that lazy imports and first-use allocations are not counted."""
    from websockets.sync.client import connect

    with connect(f"{server.url}?username=warmup", open_timeout=5, compression=None) as ws:
        ws.recv(timeout=5)
        ws.send(json.dumps({"type": "message:send", "text": "0|0|warm"}))
        ws.recv(timeout=5)
    time.sleep(0.2)


def loadgen(node_dir: Path, *args: object, timeout: float = 300) -> dict:
    proc = subprocess.Popen(["node", "loadgen.mjs", *map(str, args)], cwd=node_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    LIVE.add(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise SystemExit(f"loadgen {args[0]} timed out after {timeout} s")
    LIVE.discard(proc)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"loadgen {args[0]} failed ({proc.returncode}): {err.strip()[-500:]}")
    return json.loads(lines[-1])


def measure_conns(server: Server, node_dir: Path, n: int) -> dict:
    warm_up(server)
    cpu0 = cpu_seconds(server.pid)
    r = loadgen(node_dir, "conns", server.url, n, server.pid, 1)
    time.sleep(0.5)  # let the server finish tearing the connections down
    cpu = cpu_seconds(server.pid) - cpu0
    return {"connections": r["connections"], "connects_per_s": r["connectsPerSec"],
            "rss_idle_bytes": r["rssBefore"], "bytes_per_connection": r["bytesPerConn"],
            "server_cpu_us_per_connection": round(cpu * 1e6 / n, 1)}


def measure_fanout(server: Server, node_dir: Path, receivers: int, messages: int, window: int, size: int) -> dict:
    warm_up(server)
    r = loadgen(node_dir, "fanout", server.url, receivers, messages, window, size, server.pid)
    return {"deliveries_per_s": r["deliveriesPerSec"], "p50_ms": r["p50ms"], "p99_ms": r["p99ms"],
            "server_cpu_us_per_delivery": r["serverCpuUsPerDelivery"], "lost": r["lost"],
            "rss_bytes": r["serverRss"]}


def measure_held(server: Server, node_dir: Path, n: int) -> dict:
    warm_up(server)
    r = loadgen(node_dir, "conns", server.url, n, server.pid, 1, timeout=600)
    return {"connections": r["connections"], "connects_per_s": r["connectsPerSec"],
            "bytes_per_connection": r["bytesPerConn"]}


ROWS = [  # (group, key, label)
    ("conns", "connects_per_s", "connections/s ({conns:,})"),
    ("conns", "bytes_per_connection", "server RSS bytes per connection ({conns:,})"),
    ("conns", "server_cpu_us_per_connection", "server CPU µs per connection, accept + teardown ({conns:,})"),
    ("conns", "rss_idle_bytes", "server RSS idle, bytes"),
    ("fanout", "deliveries_per_s", "fan-out deliveries/s ({receivers} x {messages:,})"),
    ("fanout", "p50_ms", "fan-out p50 latency, ms"),
    ("fanout", "p99_ms", "fan-out p99 latency, ms"),
    ("fanout", "server_cpu_us_per_delivery", "fan-out server CPU µs per delivery"),
    ("fanout", "lost", "fan-out lost deliveries"),
    ("held", "connects_per_s", "connections/s ({held:,} held)"),
    ("held", "bytes_per_connection", "server RSS bytes per connection ({held:,} held)"),
]


def medians(runs: list[dict], variant: str) -> dict:
    out: dict[str, dict] = {}
    for group, key, _ in ROWS:
        values = [r[group][key] for r in runs if r["variant"] == variant and group in r and r[group].get(key) is not None]
        if values:
            out.setdefault(group, {})[key] = statistics.median(values)
    return out


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{int(v):,}"


def ensure_loadgen(src: Path, node_dir: Path) -> None:
    if not (node_dir / "node_modules" / "ws").is_dir():
        raise SystemExit(f"no ws package under {node_dir}/node_modules (see --node-dir)")
    dst = node_dir / "loadgen.mjs"
    if src.is_file() and not (dst.is_file() and filecmp.cmp(src, dst, shallow=False)):
        shutil.copyfile(src, dst)
    if not dst.is_file():
        raise SystemExit(f"no load generator at {src} or {dst} (see --loadgen)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="measurements per variant, alternating (default 3)")
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--receivers", type=int, default=200)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--held", type=int, default=10000, help="connections held at once; 0 to skip")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the servers' event loop")
    ap.add_argument("--quick", action="store_true",
                    help="one round, 500 connections, 50 receivers x 200 messages, no held test")
    ap.add_argument("--loadgen", type=Path, default=DEFAULT_LOADGEN, help=f"default {DEFAULT_LOADGEN}")
    ap.add_argument("--node-dir", type=Path, default=DEFAULT_NODE_DIR,
                    help=f"a folder with node_modules/ws, where loadgen.mjs is copied and run (default {DEFAULT_NODE_DIR})")
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--serve", choices=("a", "b"), help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.serve:
        return run_server(a.serve, a.port, a.loop)
    if a.quick:
        a.rounds, a.connections, a.receivers, a.messages, a.held = 1, 500, 50, 200, 0
    ensure_loadgen(a.loadgen, a.node_dir)
    fd_limit = raise_fd_limit()  # inherited by the servers and the load generator
    if a.held and a.held + 100 > fd_limit:
        raise SystemExit(f"--held {a.held} needs more file descriptors than the limit ({fd_limit})")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    runs: list[dict] = []
    try:
        for v in ("a", "b"):
            with Server(v, a.loop) as srv:
                check(srv)
        print("check: A and B behave alike (404, connected, message:new, ping, close, EOF, reset)", file=sys.stderr)
        for rnd in range(a.rounds):
            for v in ("a", "b") if rnd % 2 == 0 else ("b", "a"):
                run: dict = {"variant": v, "round": rnd + 1}
                with Server(v, a.loop) as srv:
                    run["conns"] = measure_conns(srv, a.node_dir, a.connections)
                with Server(v, a.loop) as srv:
                    run["fanout"] = measure_fanout(srv, a.node_dir, a.receivers, a.messages, a.window, a.size)
                if a.held:
                    with Server(v, a.loop) as srv:
                        run["held"] = measure_held(srv, a.node_dir, a.held)
                runs.append(run)
                print(f"round {rnd + 1} {v.upper()}: {json.dumps({k: run[k] for k in run if k not in ('variant', 'round')})}",
                      file=sys.stderr)
    finally:
        for proc in list(LIVE):
            stop(proc)

    med = {v: medians(runs, v) for v in ("a", "b")}
    names = {"conns": a.connections, "receivers": a.receivers, "messages": a.messages, "held": a.held}
    print(f"\nmedians of {a.rounds} run(s) per variant, {a.loop} loop, websockets {websockets_version()}; "
          f"fan-out window {a.window}, {a.size} B payloads")
    print("A = websockets.asyncio.server.serve, B = Sans-I/O ServerProtocol under asyncio.Protocol\n")
    print("| figure | A | B | B/A |\n| --- | ---: | ---: | ---: |")
    for group, key, label in ROWS:
        va, vb = med["a"].get(group, {}).get(key), med["b"].get(group, {}).get(key)
        if va is None and vb is None:
            continue
        ratio = f"{vb / va:.2f}" if va and vb is not None else "-"
        print(f"| {label.format(**names)} | {fmt(va)} | {fmt(vb)} | {ratio} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"config": {k: v for k, v in vars(a).items() if k not in ("serve", "port")}
                                            | {"loadgen": str(a.loadgen), "node_dir": str(a.node_dir)},
                                            "runs": runs, "medians": med}, indent=1))
    lost = sum(r["fanout"]["lost"] for r in runs)
    return 1 if lost else 0


def websockets_version() -> str:
    from websockets.version import version
    return version


if __name__ == "__main__":
    sys.exit(main())
