"""Measure ``pong`` round trips to a workspace server, from a process of its own.

Used by ``test_byte_budget.py``: the test's own clients are busy reading
hundreds of megabytes, so the latency probe runs here, where they cannot skew
its timing.

    python budget_pinger.py WS_URL [--connections 4] [--interval 0.02]

Opens ``--connections`` quiet connections (``presence=none``, ``history=0``),
each as its own user (``pinger0``, ``pinger1``, ...), so the per-user limit on
other frames (20 per second) is never reached, and sends
``{"type": "ping", "id": N}`` every ``--interval`` seconds, round-robin over
them. Prints ``ready`` once every connection has answered a first ping. Stops
when a line arrives on stdin (or stdin closes), waits up to 2 s for the pongs
still outstanding, then prints one JSON line::

    {"pings": 812, "pongs": 812, "max_ms": 23.1, "p50_ms": 1.2, "p99_ms": 9.8,
     "slowest": [[id, ms], ...], "lost_ms": [age of each unanswered ping], "problems": [...]}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--interval", type=float, default=0.02)
    args = ap.parse_args()

    sent: dict[int, float] = {}  # ping id -> perf_counter() when it was sent
    rtts: list[tuple[int, float]] = []
    problems: list[str] = []
    first_pongs: dict[int, asyncio.Future[None]] = {}
    loop = asyncio.get_running_loop()

    conns = []
    for i in range(args.connections):
        ws = await connect(
            f"{args.url}?username=pinger{i}&presence=none&history=0", max_size=None, open_timeout=10, close_timeout=2
        )
        conns.append(ws)

    async def reader(ws, name: str) -> None:
        try:
            async for raw in ws:
                if len(raw) > 65536:  # a history frame, say: not a pong
                    continue
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "pong":
                    pid = frame.get("id")
                    if isinstance(pid, int) and pid < 0:
                        fut = first_pongs.get(pid)
                        if fut is not None and not fut.done():
                            fut.set_result(None)
                    elif pid in sent:
                        rtts.append((pid, (time.perf_counter() - sent.pop(pid)) * 1000))
                    else:
                        problems.append(f"{name}: unexpected pong {frame}")
                elif kind == "error":
                    problems.append(f"{name}: {frame}")
        except ConnectionClosed as exc:
            problems.append(f"{name}: connection closed ({exc})")

    readers = [asyncio.create_task(reader(ws, f"pinger{i}")) for i, ws in enumerate(conns)]
    for i, ws in enumerate(conns):  # every connection answers before we say ready
        first_pongs[-1 - i] = loop.create_future()
        await ws.send(json.dumps({"type": "ping", "id": -1 - i}))
    await asyncio.wait_for(asyncio.gather(*first_pongs.values()), 10)
    print("ready", flush=True)

    stop = asyncio.Event()

    async def wait_for_stop() -> None:
        await asyncio.to_thread(sys.stdin.readline)
        stop.set()

    stopper = asyncio.create_task(wait_for_stop())
    n = 0
    next_at = time.perf_counter()
    while not stop.is_set():
        ws = conns[n % len(conns)]
        sent[n] = time.perf_counter()
        try:
            await ws.send(json.dumps({"type": "ping", "id": n}))
        except ConnectionClosed:
            problems.append(f"pinger{n % len(conns)}: closed while sending ping {n}")
            sent.pop(n, None)
            break
        n += 1
        next_at += args.interval
        delay = next_at - time.perf_counter()
        if delay < 0:  # we were late: carry on from now rather than send a burst to catch up
            next_at, delay = time.perf_counter(), 0
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
    deadline = time.perf_counter() + 2.0
    while sent and time.perf_counter() < deadline:  # the last pongs on their way
        await asyncio.sleep(0.01)
    now = time.perf_counter()
    lost = sorted(round((now - t) * 1000, 1) for t in sent.values())
    ms = sorted(r for _, r in rtts)
    result = {
        "pings": n,
        "pongs": len(rtts),
        "max_ms": round(ms[-1], 1) if ms else None,
        "p50_ms": round(ms[len(ms) // 2], 1) if ms else None,
        "p99_ms": round(ms[min(len(ms) - 1, len(ms) * 99 // 100)], 1) if ms else None,
        "slowest": [[i, round(r, 1)] for i, r in sorted(rtts, key=lambda x: -x[1])[:5]],
        "lost_ms": lost,
        "problems": problems[:20],
    }
    stopper.cancel()
    for t in readers:
        t.cancel()
    for ws in conns:
        try:
            await asyncio.wait_for(ws.close(), 3)
        except Exception:
            pass
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
