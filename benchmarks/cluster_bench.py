#!/usr/bin/env python3
"""Fan-out across two nodes sharing one workspace through Redis (``serve --broker``).

Starts a ``redis-server`` on a free port (in a temporary directory) and two
``workspace serve --broker redis://...`` processes (rate limit off), puts half
of RECEIVERS on each node and one sender on the first, and measures, with
Python WebSocket clients on loopback: deliveries/s, p50/p99 latency from send
to receipt (for receivers on the sender's node and on the other node), both
nodes' CPU per delivery and lost messages. ``--single`` runs the same load
against one node with its SQLite store, for comparison on the same machine.

    python benchmarks/cluster_bench.py
    python benchmarks/cluster_bench.py --receivers 400 --messages 1000 --json out.json

Needs ``redis-server`` on PATH and the redis extra (``pip install -e '.[redis]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_bench import ServerProcess, fanout  # noqa: E402


def start_redis(dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(dir), "--save", "",
         "--appendonly", "yes", "--appendfsync", "everysec"],  # what `serve --broker` requires at start
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--receivers", type=int, default=200)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--single", action="store_true", help="one node, SQLite store, no Redis")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    redis_proc = None
    servers: list[ServerProcess] = []
    try:
        if args.single:
            servers = [ServerProcess(tmp / "single.sqlite3")]
        else:
            redis_proc, url = start_redis(tmp)
            servers = [ServerProcess(tmp / f"unused{i}.sqlite3", ["--broker", url]) for i in range(2)]
        result = asyncio.run(fanout([s.url for s in servers], [s.proc.pid for s in servers],
                                 args.receivers, args.messages, args.window, args.size))
    finally:
        for s in servers:
            s.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
