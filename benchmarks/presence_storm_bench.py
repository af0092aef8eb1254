#!/usr/bin/env python3
"""What a join storm costs in presence frames: per change (``presence:update``) or per tick
(``presence:batch``, for clients that offer workspace.v1).

Drives the chat core itself with a hand-moved clock (no sockets: exact and repeatable), the
way the server does: USERS users connect over SPREAD seconds, and every effect is counted as
the fan-out would deliver it (a broadcast reaches every attached connection of its audience
but the excluded ones). ``connected`` frames are counted apart: they are the same either way.
The "document" run is what every client got before batching (and what clients written from
the protocol document alone still get); the "v1" run is what our clients get now.

    python benchmarks/presence_storm_bench.py
    python benchmarks/presence_storm_bench.py --users 5000 --spread 2
    python benchmarks/presence_storm_bench.py --real 500   # and against a real server, 500 clients

``--real N`` checks the count on the wire: a ``workspace serve`` subprocess, N raw WebSocket
clients connecting at once (each kind in turn), every presence frame each one receives counted
until none has come for a second.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from workspace_tui.core import ChatCore, Conn, Rules, Session
from workspace_tui.core.effects import Broadcast, Deliver, Post, Read
from workspace_tui.core.history import HistoryResult


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return int(self.now * 1000)


class Tally:
    """Frames and bytes the fan-out would write, by frame type."""

    def __init__(self) -> None:
        self.frames: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.attached: dict[bool, int] = {True: 0, False: 0}  # document_only -> attached connections
        self.own: dict[tuple[str, bool], int] = Counter()  # (user id, document_only) -> attached

    def add(self, kind: str, frames: int, size: int) -> None:
        self.frames[kind] += frames
        self.bytes[kind] += frames * size

    def take(self, effects: list) -> None:
        for e in effects:
            t = type(e)
            if t is Broadcast:
                audiences = (True, False) if e.document_only is None else (e.document_only,)
                reach = sum(self.attached[a] for a in audiences)
                if e.exclude_user is not None:
                    reach -= sum(self.own[(e.exclude_user, a)] for a in audiences)
                if e.exclude_conn is not None and e.exclude_conn.session.document_only in audiences:
                    reach -= 1
                self.add(_kind(e.payload), reach, len(e.payload))
            elif t is Deliver or t is Post:
                payload = e.payload if isinstance(e.payload, bytes) else b"".join(e.payload)
                self.add(_kind(payload), 1, len(payload))


def _kind(payload: bytes) -> str:
    return payload[9:payload.index(b'"', 9)].decode()  # {"type":"...


def storm(users: int, spread: float, v1: bool) -> tuple[Tally, float]:
    clock = Clock()
    core = ChatCore(Rules(rate_limit=0, max_connections_per_address=0, idle_timeout=0, ping_interval=None), clock)
    tally = Tally()
    protocols = ("workspace.v1",) if v1 else ()
    step = spread / users
    started = time.perf_counter()
    for i in range(users):
        clock.now += step
        if core.next_wake() <= clock.now:
            core.tick()
            tally.take(core.take())
        session = core.admit({"username": [f"user{i:05}"]}, None, f"10.0.{i // 250}.{i % 250}", protocols)
        assert isinstance(session, Session), session
        conn = Conn(session, link=i)
        core.open(conn)
        effects = core.take()
        tally.take(effects)
        tally.attached[session.document_only] += 1  # attached during open, before what follows
        tally.own[(conn.user.user_id, session.document_only)] += 1
        for e in effects:
            if type(e) is Read:
                core.history_read(e.conn, e.query, HistoryResult([], False))
        tally.take(core.take())
    clock.now += 1.0
    core.tick()
    tally.take(core.take())
    return tally, time.perf_counter() - started


async def real(users: int, v1: bool) -> tuple[int, int, float]:
    """Presence frames and bytes N clients of one kind receive when they all connect at once."""
    from websockets.asyncio.client import connect

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "workspace_tui", "serve", "--host", "127.0.0.1", "--port", "0",
               "--db", str(Path(tmp) / "bench.sqlite3"), "--no-address-limits", "--max-pending-handshakes", "0",
               "--rate-limit", "0", "--idle-timeout", "0"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            url = re.search(r"ws://[\w.\-]+:\d+/ws", proc.stdout.readline()).group(0)  # type: ignore[union-attr]
            counts = [0, 0]
            last = [time.monotonic()]

            async def client(i: int):
                ws = await connect(f"{url}?username=user{i:05}", open_timeout=60, max_size=None,
                                   subprotocols=["workspace.v1"] if v1 else None)
                async for raw in ws:
                    if '"type":"presence:' in raw[:30]:
                        counts[0] += 1
                        counts[1] += len(raw)
                        last[0] = time.monotonic()
                return ws

            started = time.monotonic()
            tasks = [asyncio.create_task(client(i)) for i in range(users)]
            while time.monotonic() - last[0] < 1.0 or counts[0] == 0:
                await asyncio.sleep(0.2)
            took = last[0] - started
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return counts[0], counts[1], took
        finally:
            proc.terminate()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--spread", type=float, default=1.0, help="seconds over which they all connect")
    ap.add_argument("--real", type=int, default=0, metavar="N", help="also N clients against a real server")
    args = ap.parse_args()
    print(f"{args.users} users connecting over {args.spread:g} s (presence tick {Rules().presence_tick * 1000:g} ms)")
    print(f"{'clients':<10} {'presence frames':>16} {'presence bytes':>15} {'per client':>11} "
          f"{'connected bytes':>16} {'core s':>7}")
    for v1 in (False, True):
        tally, took = storm(args.users, args.spread, v1)
        kinds = ("presence:update", "presence:batch")
        frames = sum(tally.frames[k] for k in kinds)
        size = sum(tally.bytes[k] for k in kinds)
        print(f"{'v1' if v1 else 'document':<10} {frames:>16,} {size:>15,} {size // args.users:>11,} "
              f"{tally.bytes['connected']:>16,} {took:>7.2f}")
    if args.real:
        print(f"\nreal server, {args.real} clients connecting at once (presence frames received by all of them)")
        for v1 in (False, True):
            frames, size, took = asyncio.run(real(args.real, v1))
            print(f"{'v1' if v1 else 'document':<10} {frames:>12,} frames {size:>14,} bytes  (settled in {took:.1f} s)")


if __name__ == "__main__":
    main()
