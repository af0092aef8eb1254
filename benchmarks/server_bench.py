#!/usr/bin/env python3
"""The server's own figures, reproducible without Node.

Starts ``workspace serve`` (SQLite store on, rate limit off) in a subprocess on
a free port and measures, with Python WebSocket clients on loopback:

* fan-out: RECEIVERS clients, one sender pushing MESSAGES with a window of
  WINDOW unacknowledged messages; deliveries/s, p50/p99 latency, server CPU per
  delivery, lost messages;
* connections: CONNECTIONS distinct users connecting in batches; accepts/s and
  server memory (RSS growth) per connection;
* one-liner: wall time of ``workspace send`` (a cold process) against the server.

    python benchmarks/server_bench.py
    python benchmarks/server_bench.py --receivers 500 --messages 1000 --json out.json

The load generator shares the machine with the server (2 cores here), so the
absolute figures are conservative; compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m[1]) * 1024 if m else 0


def workspace_cmd() -> list[str]:
    exe = shutil.which("workspace")
    return [exe] if exe else [sys.executable, "-m", "workspace_tui"]


class ServerProcess:
    """``workspace serve`` on a free port, its URL read from the line it prints."""

    def __init__(self, db: Path, extra: list[str] | None = None):
        argv = [*workspace_cmd(), "serve", "--host", "127.0.0.1", "--port", "0", "--db", str(db), "--rate-limit", "0",
                "--no-address-limits"]  # hundreds of connections at once from 127.0.0.1
        self.proc = subprocess.Popen([*argv, *(extra or [])], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        m = re.search(r"(wss?://\S+/ws)", line)
        if not m:
            self.proc.kill()
            raise SystemExit(f"server did not start: {line!r}")
        self.url = m[1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def open_many(url: str, prefix: str, n: int, batch: int = 200) -> list:
    conns = []
    for start in range(0, n, batch):
        part = [connect(f"{url}?username={prefix}{i}&history=0", compression=None, max_size=None, ping_interval=None)
                for i in range(start, min(n, start + batch))]
        opened = await asyncio.gather(*part)
        for ws in opened:
            first = json.loads(await ws.recv())
            assert first["type"] == "connected", first
        conns.extend(opened)
    return conns


async def fanout(urls: list[str], pids: list[int], receivers: int, messages: int, window: int, size: int) -> dict:
    """Receivers split evenly across the nodes at *urls*, one sender on the first node."""
    groups = [await open_many(url, f"r{i}_", receivers // len(urls)) for i, url in enumerate(urls)]
    sender = (await open_many(urls[0], "s", 1))[0]
    pad = "x" * max(0, size - 24)
    expected = sum(len(g) for g in groups) * messages
    latencies: list[list[float]] = [[] for _ in groups]
    got = 0
    done = asyncio.Event()

    async def receive(ws, lat: list[float]) -> None:
        nonlocal got
        async for raw in ws:
            if '"message:new"' not in raw:
                continue
            lat.append(time.perf_counter() - float(json.loads(raw)["data"]["text"].split("|")[1]))
            got += 1
            if got == expected:
                done.set()

    readers = [asyncio.create_task(receive(ws, latencies[i])) for i, g in enumerate(groups) for ws in g]
    cpu0 = [cpu_seconds(p) for p in pids]
    t0 = time.perf_counter()
    acked = sent = 0
    can_send = asyncio.Event()

    async def acks() -> None:
        nonlocal acked
        async for raw in sender:
            if '"message:new"' in raw:
                acked += 1
                can_send.set()

    ack_task = asyncio.create_task(acks())
    while sent < messages:
        while sent < messages and sent - acked < window:
            await sender.send(json.dumps({"type": "message:send", "text": f"{sent}|{time.perf_counter()}|{pad}"}))
            sent += 1
        can_send.clear()
        if sent - acked >= window:
            await can_send.wait()
    try:
        await asyncio.wait_for(done.wait(), timeout=120)
    except TimeoutError:
        pass
    seconds = time.perf_counter() - t0
    cpu = sum(cpu_seconds(p) - c for p, c in zip(pids, cpu0))
    for task in (*readers, ack_task):
        task.cancel()
    await asyncio.gather(*(ws.close() for g in groups for ws in g), sender.close(), return_exceptions=True)

    def pct(lat: list[float], p: float) -> float | None:
        lat = sorted(lat)
        return round(lat[min(len(lat) - 1, int(len(lat) * p))] * 1000, 2) if lat else None

    out = {
        "nodes": len(urls),
        "receivers": sum(len(g) for g in groups),
        "messages": messages,
        "deliveries_per_s": round(got / seconds),
        "p50_ms": pct([x for lat in latencies for x in lat], 0.5),
        "p99_ms": pct([x for lat in latencies for x in lat], 0.99),
        "server_cpu_us_per_delivery": round(cpu * 1e6 / got, 2) if got else None,
        "lost": expected - got,
    }
    if len(groups) > 1:
        out["p99_ms_same_node"] = pct(latencies[0], 0.99)
        out["p99_ms_other_node"] = pct(latencies[1], 0.99)
    return out


async def connections(url: str, pid: int, n: int) -> dict:
    before = rss_bytes(pid)
    t0 = time.perf_counter()
    conns = await open_many(url, "c", n)
    seconds = time.perf_counter() - t0
    await asyncio.sleep(1)  # let the server settle before reading its RSS
    after = rss_bytes(pid)
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return {"connects_per_s": round(n / seconds), "bytes_per_connection": round((after - before) / n)}


def one_liner(url: str, runs: int) -> dict:
    walls = []
    for i in range(runs):
        t = time.perf_counter()
        r = subprocess.run([*workspace_cmd(), "send", "--url", url, "--username", f"oneliner{i}", f"hello-{i}"],
                           capture_output=True)
        if r.returncode == 0:
            walls.append((time.perf_counter() - t) * 1000)
    return {"send_ms_median": round(statistics.median(walls), 1) if walls else None, "failures": runs - len(walls)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--receivers", type=int, default=200)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--sends", type=int, default=5)
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="workspace-bench-"))
    results: dict[str, dict] = {}
    try:
        srv = ServerProcess(tmp / "fanout.sqlite3")
        try:
            results["fanout"] = asyncio.run(fanout([srv.url], [srv.proc.pid], a.receivers, a.messages, a.window, a.size))
        finally:
            srv.stop()
        srv = ServerProcess(tmp / "conns.sqlite3")
        try:
            results["connections"] = asyncio.run(connections(srv.url, srv.proc.pid, a.connections))
            results["one_liner"] = one_liner(srv.url, a.sends)
        finally:
            srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"fan-out: {a.receivers} receivers x {a.messages} messages of {a.size} B, window {a.window}")
    print("| figure | value |\n| --- | --- |")
    for group, figures in results.items():
        for name, value in figures.items():
            print(f"| {group}: {name} | {value:,} |" if isinstance(value, (int, float)) else f"| {group}: {name} | {value} |")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 1 if results["fanout"]["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
