#!/usr/bin/env python3
"""Many concurrent connections held by one server process, and one broadcast reaching all of them.

Starts ``workspace serve`` (SQLite store, per-user/per-address/rate limits off)
on a free port, opens CONNECTIONS WebSocket connections (50,000 by default)
from several client worker processes and keeps them open, then one more client
sends a ``message:send`` and every worker notes when each of its connections
received the broadcast. Once per event loop of the server (``--loop``, both
asyncio and uvloop by default when uvloop is installed).

    python benchmarks/connections_bench.py                          # 50,000 quiet connections, both loops
    python benchmarks/connections_bench.py --connections 2000 --loop asyncio
    python benchmarks/connections_bench.py --visible --connections 2000   # visible users (roster, presence)

Each connection is a file descriptor in the server: the script raises its
soft open-files limit to the hard one (the server inherits it), and when the
server cannot hold CONNECTIONS within that limit it runs at the most it can
and says so (``capped`` in the output and the JSON). Clients are spread over
worker processes (each within its own open-files limit) and over loopback
source addresses 127.0.0.1, 127.0.0.2, ... (each has its own ~28,000
ephemeral ports; 127.0.0.1's are left to the machine's other programs), so a machine with a high enough hard limit really holds
50,000.

Quiet (``presence=none``) connections are the default: they skip the roster
in ``connected`` and the presence of everyone else, and measure the cost of a
connection. ``--visible`` connections are users in everyone's roster: every
join is announced to everyone already there, so that traffic grows with the
square of the connections.

The clients are deliberately thin (raw asyncio protocols that do the opening
handshake, answer the server's keepalive pings and otherwise only look for the
broadcast's marker in text frames); the server side is the real thing.
Arrival times are read from CLOCK_MONOTONIC, which all processes share.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import math
import multiprocessing
import os
import resource
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_bench import ServerProcess, cpu_seconds, rss_bytes  # noqa: E402

SERVER_FD_MARGIN = 64  # descriptors the server may open besides connections (store, WAL, pipes)
WORKER_FD_MARGIN = 64  # ... and a client worker besides its connections
PORTS_PER_ADDRESS_USED = 0.5  # of the ephemeral port range, per loopback source address
FIRST_SOURCE = 2  # 127.0.0.2 up: other programs' connections take their ports from 127.0.0.1's


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def raise_fd_limit() -> tuple[int, int]:
    """Soft open-files limit up to the hard one (only a privileged process may raise the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def fd_limit_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return 1 << 30 if soft == "unlimited" else int(soft)
    raise RuntimeError("no open-files limit in /proc")


def fds_open(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def ephemeral_ports() -> int:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return high - low + 1
    except (OSError, ValueError):
        return 28_000


# -- the thin client -------------------------------------------------------------------


class Shared:
    """What every held connection of a worker reads or counts."""

    def __init__(self) -> None:
        self.marker = b""  # b"" until the broadcast is on its way
        self.reached = 0
        self.arrivals: list[float] = []
        self.all_reached: asyncio.Event | None = None
        self.expected = 0


class Held(asyncio.Protocol):
    """One held connection: the opening handshake, pongs for pings, and a look for the marker in text frames."""

    __slots__ = ("request", "shared", "opened", "head", "buf", "transport", "got", "received")

    def __init__(self, request: bytes, shared: Shared, opened: asyncio.Future):
        self.request = request
        self.shared = shared
        self.opened = opened
        self.head: bytes | None = b""  # the HTTP response until the upgrade; None after it
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.got = False
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.head is not None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if self.head.split(b" ", 2)[1] != b"101":
                if not self.opened.done():
                    self.opened.set_exception(RuntimeError(self.head[:200].decode(errors="replace")))
                return
            data = self.head[end + 4 :]
            self.head = None
            if not self.opened.done():
                self.opened.set_result(None)
        self.buf += data
        self._frames()

    def _frames(self) -> None:
        buf, pos, size = self.buf, 0, len(self.buf)
        while size - pos >= 2:
            opcode, n, at = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n, at = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, at = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
            if size - at < n:
                break
            if opcode == 0x9:  # ping: the server's keepalive closes connections that never answer
                self.transport.write(masked_frame(0x8A, bytes(buf[at : at + n])))  # type: ignore[union-attr]
            elif opcode == 0x1 and not self.got and self.shared.marker:
                if buf.find(self.shared.marker, at, at + n) >= 0:
                    self._reached()
            pos = at + n
        del buf[:pos]

    def _reached(self) -> None:
        self.got = True
        shared = self.shared
        shared.arrivals.append(now())
        shared.reached += 1
        if shared.all_reached is not None and shared.reached >= shared.expected:
            shared.all_reached.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before the upgrade ({exc})"))


def reset(held: Held) -> None:
    """Close with a TCP reset: a plain close leaves the client's port in TIME_WAIT for a minute, and
    tens of thousands of those use up the source address's ephemeral ports for the next run."""
    transport = held.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (OSError, AttributeError):
        pass
    transport.abort()


def request_bytes(url: str, username: str, quiet: bool) -> bytes:
    parts = urlsplit(url)
    key = base64.b64encode(os.urandom(16)).decode()
    query = f"username={username}&history=0" + ("&presence=none" if quiet else "")
    return (
        f"GET {parts.path}?{query} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def masked_frame(first_byte: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((first_byte, 0x80 | n)) if n < 126 else bytes((first_byte, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def masked_text_frame(payload: bytes) -> bytes:
    return masked_frame(0x81, payload)


async def open_held(url: str, username: str, quiet: bool, shared: Shared, source: str | None) -> Held:
    """One connection through its opening handshake, from loopback address *source*."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    opened = loop.create_future()
    proto = Held(request_bytes(url, username, quiet), shared, opened)
    await loop.create_connection(lambda: proto, parts.hostname, parts.port,
                                 local_addr=(source, 0) if source else None)
    try:
        await asyncio.wait_for(opened, 30)
    except BaseException:
        if proto.transport is not None:
            proto.transport.abort()
        raise
    return proto


# -- a client worker process -----------------------------------------------------------


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def worker_main(pipe: Pipe, url: str, first: int, count: int, quiet: bool, batch: int, sources: list[str],
                client_loop: str) -> None:
    raise_fd_limit()
    with asyncio.Runner(loop_factory=loop_factory(client_loop)) as runner:
        runner.run(worker(pipe, url, first, count, quiet, batch, sources))


async def worker(pipe: Pipe, url: str, first: int, count: int, quiet: bool, batch: int, sources: list[str]) -> None:
    """Open *count* connections when told, report, arm the marker, report arrivals, close when told."""
    loop = asyncio.get_running_loop()

    def recv() -> asyncio.Future:
        return loop.run_in_executor(None, pipe.recv)

    shared = Shared()
    held: list[Held] = []
    errors: dict[str, int] = {}
    assert (await recv())[0] == "open"
    t0 = now()
    for start in range(first, first + count, batch):
        names = range(start, min(first + count, start + batch))
        results = await asyncio.gather(
            *(open_held(url, f"h{i}", quiet, shared, sources[i % len(sources)]) for i in names),
            return_exceptions=True,
        )
        for r in results:
            if isinstance(r, BaseException):
                errors[repr(r)[:160]] = errors.get(repr(r)[:160], 0) + 1
            else:
                held.append(r)
    pipe.send(("opened", len(held), now() - t0, errors))

    command, marker = await recv()
    assert command == "arm"
    alive = [h for h in held if h.transport is not None and not h.transport.is_closing()]
    shared.marker = marker
    shared.expected = len(alive)
    shared.all_reached = asyncio.Event()
    if shared.reached >= shared.expected:
        shared.all_reached.set()
    pipe.send(("armed", len(alive)))

    told = asyncio.ensure_future(recv())  # "collect": stop waiting (the main process timed out)
    reached = asyncio.ensure_future(shared.all_reached.wait())
    await asyncio.wait({told, reached}, return_when=asyncio.FIRST_COMPLETED)
    reached.cancel()
    pipe.send(("arrivals", shared.arrivals, len(alive), sum(h.received for h in held)))
    if not told.done():
        await told
    for h in held:
        reset(h)
    await asyncio.sleep(0.1)
    pipe.send(("closed",))


# -- the main process ------------------------------------------------------------------


def plan(requested: int, server_limit: int, worker_limit: int, workers: int, sources: int) -> dict:
    """How many connections the limits allow, over how many workers and source addresses."""
    n = min(requested, server_limit)
    if workers <= 0:
        workers = max(2, math.ceil(n / worker_limit))
    if math.ceil(n / workers) > worker_limit:
        raise SystemExit(f"{workers} workers cannot hold {n} connections within {worker_limit} descriptors each: "
                         f"use --workers {math.ceil(n / worker_limit)}")
    per_address = int(ephemeral_ports() * PORTS_PER_ADDRESS_USED)
    if sources <= 0:
        sources = max(1, math.ceil(n / per_address))
    addresses = [f"127.0.0.{FIRST_SOURCE + i}" for i in range(sources)]
    return {"connections": n, "workers": workers, "source_addresses": addresses}


def server_metric(url: str, name: str) -> int | None:
    """A gauge from the server's /metrics (what the server itself counts)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(f"GET /metrics HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        body = b""
        while chunk := s.recv(65536):
            body += chunk
    for line in body.decode(errors="replace").splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return None


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def broadcast(url: str, pipes: list[Pipe], timeout: float) -> tuple[float, list[float], int, int]:
    """Arm every worker, send one message from one more client; (send time, arrivals, alive, bytes)."""
    loop = asyncio.get_running_loop()
    token = f"marker-{os.getpid()}-{time.time_ns()}"
    for p in pipes:
        p.send(("arm", json.dumps(token).encode()))
    for p in pipes:
        assert (await loop.run_in_executor(None, p.recv))[0] == "armed"
    sender = await open_held(url, "sender", True, Shared(), None)
    assert sender.transport is not None
    frame = masked_text_frame(json.dumps({"type": "message:send", "text": token}).encode())
    sent_at = now()
    sender.transport.write(frame)
    arrivals: list[float] = []
    alive = received = 0
    deadline = sent_at + timeout
    for p in pipes:
        ready = await loop.run_in_executor(None, p.poll, max(0.0, deadline - now()))
        if not ready:
            p.send(("collect",))
        kind, times, n, got_bytes = await loop.run_in_executor(None, p.recv)
        assert kind == "arrivals"
        arrivals += times
        alive += n
        received += got_bytes
    reset(sender)
    return sent_at, arrivals, alive, received


def measure(args: argparse.Namespace, server_loop: str, tmp: Path) -> dict:
    extra = ["--loop", server_loop, "--max-connections-per-user", "0", "--address-rate-limit", "0",
             "--max-pending-handshakes", "0", "--claims-per-hour", "0", "--idle-timeout", "0"]
    server = ServerProcess(tmp / f"bench-{server_loop}.sqlite3", extra)
    pid = server.proc.pid
    procs: list[multiprocessing.Process] = []
    try:
        time.sleep(0.5)  # the store's files opened, the server idle
        server_fds = fd_limit_of(pid)
        server_limit = server_fds - fds_open(pid) - SERVER_FD_MARGIN
        worker_limit = raise_fd_limit()[0] - WORKER_FD_MARGIN
        layout = plan(args.connections, server_limit, worker_limit, args.workers, args.source_addresses)
        n, workers, sources = layout["connections"], layout["workers"], layout["source_addresses"]
        capped = n < args.connections
        if capped:
            print(f"!! CAPPED: the server can hold {server_limit} connections within its open-files limit "
                  f"({server_fds}, the hard limit here); asked for {args.connections}, running {n}.\n"
                  f"!! Raise the hard limit (ulimit -Hn, as root or with CAP_SYS_RESOURCE) for more.",
                  file=sys.stderr, flush=True)
        ctx = multiprocessing.get_context("spawn")
        pipes = []
        share, extra_one = divmod(n, workers)
        first = 0
        for w in range(workers):
            count = share + (1 if w < extra_one else 0)
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker_main, daemon=True,
                               args=(theirs, server.url, first, count, not args.visible, args.batch, sources,
                                     args.client_loop))
            proc.start()
            procs.append(proc)
            pipes.append(mine)
            first += count

        rss0, cpu0, t0 = rss_bytes(pid), cpu_seconds(pid), now()
        for p in pipes:
            p.send(("open",))
        opened, errors = 0, {}
        for p in pipes:
            kind, count, _seconds, errs = p.recv()
            opened += count
            for k, v in errs.items():
                errors[k] = errors.get(k, 0) + v
        join_s = now() - t0
        join_cpu = cpu_seconds(pid) - cpu0
        time.sleep(2)  # the joins' presence and rosters drained before the RSS is read
        if args.hold:
            time.sleep(args.hold)  # past the server's keepalive (20 s ping, 20 s to answer)
        rss1 = rss_bytes(pid)
        server_held = server_metric(server.url, "workspace_connections")

        cpu1 = cpu_seconds(pid)
        sent_at, arrivals, alive, received = asyncio.run(broadcast(server.url, pipes, args.timeout))
        fanout_cpu = cpu_seconds(pid) - cpu1
        for p in pipes:
            p.send(("close",))
        for p in pipes:
            p.recv()
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        server.stop()
    delays = [(t - sent_at) * 1000 for t in arrivals]
    figures = {
        "server_loop": server_loop,
        "client_loop": args.client_loop,
        "presence": "visible" if args.visible else "none",
        "connections_requested": args.connections,
        "connections": n,
        "capped": capped,
        "server_fd_limit": server_fds,
        "client_workers": workers,
        "source_addresses": len(sources),
        "opened": opened,
        "open_errors": errors,
        "held_by_server": server_held,
        "connects_per_s": round(opened / join_s) if join_s else None,
        "join_seconds": round(join_s, 2),
        "server_cpu_ms_per_accept": round(join_cpu * 1000 / opened, 3) if opened else None,
        "server_rss_mb_before": round(rss0 / 2**20, 1),
        "server_rss_mb": round(rss1 / 2**20, 1),
        "server_bytes_per_connection": round((rss1 - rss0) / opened) if opened else None,
        "bytes_received_per_connection": round(received / opened) if opened else None,
        "broadcast_expected": alive,
        "broadcast_reached": len(arrivals),
        "broadcast_missed": alive - len(arrivals),
        "broadcast_ms_to_all": round(max(delays), 1) if delays else None,
        "broadcast_ms_p50": round(percentile(delays, 0.5), 1) if delays else None,
        "broadcast_ms_p99": round(percentile(delays, 0.99), 1) if delays else None,
        "broadcast_server_cpu_ms": round(fanout_cpu * 1000, 1),
    }
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=50_000)
    ap.add_argument("--visible", action="store_true", help="visible users (roster and presence) instead of quiet")
    ap.add_argument("--quiet", action="store_true", help="presence=none connections (the default; kept for old runs)")
    ap.add_argument("--loop", action="append", choices=("asyncio", "uvloop"),
                    help="the server's event loop; repeat for both (default: both, uvloop if installed)")
    ap.add_argument("--client-loop", choices=("asyncio", "uvloop"), default=None,
                    help="the client workers' event loop (default: uvloop if installed)")
    ap.add_argument("--workers", type=int, default=0, help="client processes (0: enough for the fd limits, >= 2)")
    ap.add_argument("--source-addresses", type=int, default=0,
                    help="loopback source addresses 127.0.0.1.. (0: enough for the ephemeral ports)")
    ap.add_argument("--batch", type=int, default=200, help="connections each worker opens at once")
    ap.add_argument("--hold", type=float, default=0.0, help="seconds to hold them all open before the broadcast")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds the broadcast may take to reach all")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    if a.visible and a.quiet:
        ap.error("--visible or --quiet, not both")
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    loops = a.loop or (["asyncio", "uvloop"] if have_uvloop else ["asyncio"])
    a.client_loop = a.client_loop or ("uvloop" if have_uvloop else "asyncio")
    raise_fd_limit()  # before the server starts: it inherits the limit

    runs = []
    with tempfile.TemporaryDirectory(prefix="workspace-conns-") as tmp:
        for server_loop in loops:
            runs.append(measure(a, server_loop, Path(tmp)))
    for key in runs[0]:
        print(f"{key:32} " + "  ".join(f"{str(r[key]):>14}" for r in runs))
    if any(r["capped"] for r in runs):
        print(f"!! CAPPED at {runs[0]['connections']} of {a.connections}: the open-files hard limit "
              f"({runs[0]['server_fd_limit']}) allows no more in one server process", file=sys.stderr)
    if a.json:
        Path(a.json).write_text(json.dumps({"runs": runs}, indent=1))
    ok = all(r["opened"] == r["connections"] and r["broadcast_missed"] == 0 and r["held_by_server"] == r["opened"]
             for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
