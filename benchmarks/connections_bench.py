#!/usr/bin/env python3
"""Many concurrent connections held open, and one broadcast reaching all of them.

Starts ``workspace serve`` (SQLite store on, rate limit off) on a free port,
opens CONNECTIONS WebSocket connections (10,000 by default) from this process
and keeps them open, then one more client sends a message and the script
times how long it takes until every held connection has received it.

    python benchmarks/connections_bench.py                  # 10,000 visible users
    python benchmarks/connections_bench.py --quiet          # presence=none connections
    python benchmarks/connections_bench.py --connections 2000 --json out.json

Every visible user is in the roster the next one receives in ``connected``
(about 95 bytes per online user) and their joining is announced to everyone
already there, so 10,000 visible users move several GB over loopback while
they join; ``--quiet`` connections skip both (the roster and presence) and
measure the connection cost alone.

The clients are deliberately thin (raw asyncio protocols that do the opening
handshake and then only look for the broadcast's marker in the byte stream),
so that 10,000 of them fit in one Python process beside the server on a small
machine; the server side is the real thing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_bench import ServerProcess, cpu_seconds, rss_bytes  # noqa: E402


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Held(asyncio.Protocol):
    """One held connection: the opening handshake, then a scan of the byte stream for *marker*."""

    def __init__(self, request: bytes, marker: list[bytes], done: asyncio.Future, reached: list[int]):
        self.request = request
        self.marker = marker  # [b""] until the broadcast is sent; shared by all
        self.open_waiter = done
        self.reached = reached
        self.head = b""
        self.upgraded = False
        self.tail = b""
        self.got = False
        self.received = 0
        self.transport: asyncio.Transport | None = None
        self.on_reach: asyncio.Event | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if not self.upgraded:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.head.split(b" ", 2)[1]
            if status != b"101":
                if not self.open_waiter.done():
                    self.open_waiter.set_exception(RuntimeError(self.head[:200].decode(errors="replace")))
                return
            self.upgraded = True
            data = self.head[end + 4 :]
            self.head = b""
            if not self.open_waiter.done():
                self.open_waiter.set_result(None)
        marker = self.marker[0]
        if self.got or not marker:
            return
        window = self.tail + data
        if marker in window:
            self.got = True
            self.reached[0] += 1
            if self.on_reach is not None and self.reached[0] >= self.reached[1]:
                self.on_reach.set()
        else:
            self.tail = window[-len(marker) :]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open_waiter.done():
            self.open_waiter.set_exception(ConnectionError("closed before the upgrade"))


def request_bytes(url: str, username: str, quiet: bool) -> bytes:
    parts = urlsplit(url)
    key = base64.b64encode(os.urandom(16)).decode()
    query = f"username={username}&history=0" + ("&presence=none" if quiet else "")
    return (
        f"GET {parts.path}?{query} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def run(url: str, pid: int, n: int, quiet: bool, batch: int) -> dict:
    loop = asyncio.get_running_loop()
    host, port = urlsplit(url).hostname, urlsplit(url).port
    marker: list[bytes] = [b""]
    reached = [0, n]
    held: list[Held] = []
    rss0, cpu0, t0 = rss_bytes(pid), cpu_seconds(pid), time.perf_counter()
    for start in range(0, n, batch):
        waiters = []
        for i in range(start, min(n, start + batch)):
            fut = loop.create_future()
            proto = Held(request_bytes(url, f"h{i}", quiet), marker, fut, reached)
            await loop.create_connection(lambda p=proto: p, host, port)
            held.append(proto)
            waiters.append(fut)
        await asyncio.gather(*waiters)
    join_s = time.perf_counter() - t0
    join_cpu = cpu_seconds(pid) - cpu0
    await asyncio.sleep(2)  # let the joins' presence and rosters drain before measuring
    rss1 = rss_bytes(pid)
    alive = sum(1 for h in held if h.transport is not None and not h.transport.is_closing())

    # The broadcast: one more (quiet) client sends a message with a unique marker.
    token = f"marker-{os.getpid()}-{time.time_ns()}"
    marker[0] = json.dumps(token).encode()
    everyone = asyncio.Event()
    for h in held:
        h.on_reach = everyone
    fut = loop.create_future()
    sender = Held(request_bytes(url, "sender", True), [b""], fut, [0, 0])
    await loop.create_connection(lambda: sender, host, port)
    await fut
    cpu1, t1 = cpu_seconds(pid), time.perf_counter()
    assert sender.transport is not None
    sender.transport.write(masked_text_frame(json.dumps({"type": "message:send", "text": token}).encode()))
    try:
        await asyncio.wait_for(everyone.wait(), 120)
    except TimeoutError:
        pass
    fanout_ms = (time.perf_counter() - t1) * 1000
    fanout_cpu = cpu_seconds(pid) - cpu1
    for h in (*held, sender):
        if h.transport is not None:
            h.transport.abort()
    return {
        "connections": n,
        "quiet": quiet,
        "held_open": alive,
        "connects_per_s": round(n / join_s),
        "join_seconds": round(join_s, 2),
        "server_cpu_ms_per_join": round(join_cpu * 1000 / n, 3),
        "bytes_received_per_connection": round(sum(h.received for h in held) / n),
        "server_rss_mb": round(rss1 / 2**20, 1),
        "server_bytes_per_connection": round((rss1 - rss0) / n),
        "broadcast_reached": reached[0],
        "broadcast_ms_to_all": round(fanout_ms, 1),
        "broadcast_server_cpu_ms": round(fanout_cpu * 1000, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--quiet", action="store_true", help="presence=none connections (no roster, no presence)")
    ap.add_argument("--batch", type=int, default=200, help="connections opened concurrently")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    limit = raise_fd_limit()
    if limit < a.connections + 100:
        print(f"the open-files limit is {limit}: raise it (ulimit -n) for {a.connections} connections", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="workspace-conns-") as tmp:
        server = ServerProcess(Path(tmp) / "bench.sqlite3", ["--max-connections-per-user", "0"])
        try:
            figures = asyncio.run(run(server.url, server.proc.pid, a.connections, a.quiet, a.batch))
        finally:
            server.stop()
    for k, v in figures.items():
        print(f"{k:32} {v}")
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1))
    ok = figures["held_open"] == a.connections and figures["broadcast_reached"] == a.connections
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
