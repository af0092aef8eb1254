#!/usr/bin/env python3
"""Soak: many clients, mixed traffic, for minutes; nothing lost, server memory flat.

Starts ``python -m workspace_tui serve`` (default limits: 100 messages per
minute per user, 3 connections per user) on a free loopback port with a
SQLite file in a temporary directory, connects CLIENTS distinct users, waits
until all have joined, then for DURATION seconds every client acts about once
per INTERVAL seconds (random, seeded): a message (clientMsgId set), a typing
burst, or a presence change. Then it lets every frame drain and checks:

* sent / acknowledged (own ``message:new`` echoed) / stored (read from the
  SQLite file) / unexpected (stored but never sent);
* per client: ``message:new`` received versus stored (lost), and ids that did
  not strictly increase (duplicated or out of order);
* the server's RSS, sampled every few seconds (flat after warm-up?).

    python benchmarks/soak.py                       # 1,000 clients, 2 minutes
    python benchmarks/soak.py --clients 100 --duration 10 --json out.json

Bounded: at most 5,000 clients, 30 minutes; loopback only; it stops by itself
(every phase has a deadline) and kills its server on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

URL_RE = re.compile(r"ws://127\.0\.0\.1:(\d+)/ws")
MAX_CLIENTS = 5000
MAX_DURATION = 1800.0
STATUSES = ("online", "away", "busy", "online")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class Peer:
    name: str
    ws: ClientConnection | None = None
    received: int = 0  # message:new frames
    last_id: str = ""
    disorder: int = 0  # ids that did not strictly increase: duplicated or out of order
    other_frames: int = 0  # presence, typing, pong, history ...
    errors: list[str] = field(default_factory=list)  # error codes the server sent us
    sent: dict[str, str] = field(default_factory=dict)  # clientMsgId -> text
    acked: set[str] = field(default_factory=set)
    closed: str | None = None


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.peers = [Peer(f"soak{i:04d}") for i in range(args.clients)]
        self.proc: subprocess.Popen[str] | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="workspace-soak-"))
        self.db = self.tmp / "soak.sqlite3"
        self.url = ""
        self.rss: list[tuple[float, int]] = []
        self.actions = {"message": 0, "typing": 0, "presence": 0}
        self.t0 = 0.0
        self.finishing = False  # set when we close the clients ourselves
        self.early: list[str] = []  # how connections that ended before that ended

    # -- server ------------------------------------------------------------------

    def start_server(self) -> None:
        cmd = [sys.executable, "-m", "workspace_tui", "serve", "--host", "127.0.0.1", "--port", "0",
               "--db", str(self.db), "--log-level", "warning", "--no-address-limits"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = URL_RE.search(line)
        if not m:
            self.stop_server()
            raise SystemExit(f"server did not start: {line!r}")
        self.url = f"ws://127.0.0.1:{m.group(1)}/ws"

    def stop_server(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def sample_rss(self) -> None:
        assert self.proc is not None
        while True:
            self.rss.append((time.monotonic() - self.t0, rss_kb(self.proc.pid)))
            await asyncio.sleep(self.args.sample)

    # -- clients -----------------------------------------------------------------

    async def join(self, peer: Peer) -> None:
        for attempt in range(5):
            try:
                # Protocol pings every 20 s, as ChatClient does: they are the heartbeat that keeps a quiet
                # user inside the idle timeout (300 s).
                peer.ws = await connect(f"{self.url}?username={peer.name}", open_timeout=30, max_size=None,
                                        ping_interval=20, ping_timeout=60, close_timeout=2)
                break
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.2 * (attempt + 1))
        else:
            raise RuntimeError(f"{peer.name} could not connect")
        for _ in range(2):  # connected, history
            json.loads(await asyncio.wait_for(peer.ws.recv(), 30))

    async def read(self, peer: Peer) -> None:
        assert peer.ws is not None
        try:
            async for raw in peer.ws:
                if raw.startswith('{"type":"message:new"'):
                    data = json.loads(raw)["data"]
                    mid = data["id"]
                    if mid <= peer.last_id:
                        peer.disorder += 1
                    else:
                        peer.last_id = mid
                    peer.received += 1
                    cmid = data.get("clientMsgId")
                    if data["username"] == peer.name and cmid in peer.sent:
                        peer.acked.add(cmid)
                elif raw.startswith('{"type":"error"'):
                    peer.errors.append(json.loads(raw).get("code", "?"))
                else:
                    peer.other_frames += 1
        except Exception as exc:  # noqa: BLE001 - recorded and reported
            peer.closed = f"{type(exc).__name__}: {exc}"
        else:
            peer.closed = f"closed {peer.ws.close_code} {peer.ws.close_reason}"
        if not self.finishing:
            self.early.append(peer.closed)

    async def act(self, peer: Peer, until: float) -> None:
        assert peer.ws is not None
        rng = random.Random(self.rng.random())
        n = 0
        await asyncio.sleep(min(rng.uniform(0, self.args.interval), max(0.0, until - time.monotonic())))
        while time.monotonic() < until and peer.closed is None:
            roll = rng.random()
            if roll < 0.4:
                n += 1
                cmid = f"{peer.name}-{n}"
                text = f"{peer.name} #{n} " + "x" * rng.randint(0, 200)
                peer.sent[cmid] = text
                await peer.ws.send(json.dumps({"type": "message:send", "text": text, "clientMsgId": cmid}))
                self.actions["message"] += 1
            elif roll < 0.8:
                await peer.ws.send('{"type":"typing:indicator","isTyping":true}')
                if rng.random() < 0.5:
                    await asyncio.sleep(rng.uniform(0.5, 3))
                    await peer.ws.send('{"type":"typing:indicator","isTyping":false}')
                self.actions["typing"] += 1
            else:
                await peer.ws.send(json.dumps({"type": "presence:update", "status": rng.choice(STATUSES)}))
                self.actions["presence"] += 1
            await asyncio.sleep(min(rng.expovariate(1 / self.args.interval), max(0.0, until - time.monotonic())))

    # -- the run -----------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        a = self.args
        self.start_server()
        assert self.proc is not None
        self.t0 = time.monotonic()
        sampler = asyncio.create_task(self.sample_rss())
        readers: list[asyncio.Task[None]] = []
        try:
            async with asyncio.timeout(a.clients / 5 + 60):
                for i in range(0, len(self.peers), 50):
                    await asyncio.gather(*(self.join(p) for p in self.peers[i : i + 50]))
            joined_at = time.monotonic() - self.t0
            rss_joined = rss_kb(self.proc.pid)
            readers = [asyncio.create_task(self.read(p)) for p in self.peers]
            until = time.monotonic() + a.duration
            async with asyncio.timeout(a.duration + 60):
                await asyncio.gather(*(self.act(p, until) for p in self.peers))
            traffic_end = time.monotonic() - self.t0
            # drain: wait until every acknowledgement and delivery has arrived (or the deadline)
            sent = sum(len(p.sent) for p in self.peers)
            deadline = time.monotonic() + a.drain
            while time.monotonic() < deadline:
                acked = sum(len(p.acked) for p in self.peers)
                if acked >= sent and all(p.received >= acked for p in self.peers if p.closed is None):
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(0.5)
            rss_end = rss_kb(self.proc.pid)
        finally:
            sampler.cancel()
            self.finishing = True
            for p in self.peers:
                if p.ws is not None:
                    await p.ws.close()
            for t in readers:
                t.cancel()
            self.stop_server()
        try:
            return self.report(joined_at, traffic_end, rss_joined, rss_end)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def report(self, joined_at: float, traffic_end: float, rss_joined: int, rss_end: int) -> dict[str, Any]:
        con = sqlite3.connect(self.db)
        rows = con.execute("SELECT username, client_msg_id, text FROM messages").fetchall()
        con.close()
        sent = {(p.name, c): t for p in self.peers for c, t in p.sent.items()}
        stored = {(u, c): t for u, c, t in rows}
        acked = sum(len(p.acked) for p in self.peers)
        lost_store = [k for k in sent if k not in stored]
        unexpected = [k for k in stored if k not in sent]
        dup_store = len(rows) - len(stored)
        per_client_lost = [len(rows) - p.received for p in self.peers]
        errors: dict[str, int] = {}
        for p in self.peers:
            for code in p.errors:
                errors[code] = errors.get(code, 0) + 1
        steady = [kb for t, kb in self.rss if t >= joined_at + (traffic_end - joined_at) / 4]
        return {
            "clients": self.args.clients,
            "duration_s": self.args.duration,
            "interval_s": self.args.interval,
            "seed": self.args.seed,
            "join_s": round(joined_at, 1),
            "actions": self.actions,
            "messages_sent": len(sent),
            "messages_acknowledged": acked,
            "messages_stored": len(rows),
            "deliveries": sum(p.received for p in self.peers),
            "deliveries_expected": len(rows) * len(self.peers),
            "lost_in_store": len(lost_store),
            "duplicated_in_store": dup_store,
            "unexpected_in_store": len(unexpected),
            "clients_missing_messages": sum(1 for n in per_client_lost if n > 0),
            "messages_missing_at_clients": sum(n for n in per_client_lost if n > 0),
            "duplicated_or_reordered_at_clients": sum(p.disorder for p in self.peers),
            "other_frames": sum(p.other_frames for p in self.peers),
            "error_frames": errors,
            "clients_closed_early": len(self.early),
            "early_close_reasons": sorted(set(self.early))[:10],
            "rss_kb_start": self.rss[0][1] if self.rss else None,
            "rss_kb_after_join": rss_joined,
            "rss_kb_steady_min": min(steady) if steady else None,
            "rss_kb_steady_max": max(steady) if steady else None,
            "rss_kb_end": rss_end,
            "rss_samples": [(round(t, 1), kb) for t, kb in self.rss],
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of traffic")
    ap.add_argument("--interval", type=float, default=45.0, help="mean seconds between one client's actions")
    ap.add_argument("--drain", type=float, default=60.0, help="seconds to wait for deliveries after traffic")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the report here")
    a = ap.parse_args(argv)
    if not 1 <= a.clients <= MAX_CLIENTS or not 0 < a.duration <= MAX_DURATION:
        ap.error(f"--clients must be 1..{MAX_CLIENTS} and --duration 0..{MAX_DURATION:.0f}")
    if a.interval < 0.6:
        ap.error("--interval below 0.6 s would exceed the default rate limit of 100 messages/minute")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * a.clients + 256)), hard))
    report = asyncio.run(Soak(a).run())
    samples = report.pop("rss_samples")
    for k, v in report.items():
        print(f"{k:36} {v}")
    print("rss_kb over time (s, KiB):", " ".join(f"{t}:{kb}" for t, kb in samples))
    if a.json:
        a.json.write_text(json.dumps(report | {"rss_samples": samples}, indent=2))
    bad = report["lost_in_store"] + report["duplicated_in_store"] + report["unexpected_in_store"]
    bad += report["messages_missing_at_clients"] + report["duplicated_or_reordered_at_clients"]
    return 1 if bad or report["clients_closed_early"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
