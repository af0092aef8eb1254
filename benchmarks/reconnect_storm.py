#!/usr/bin/env python3
"""A reconnect storm: USERS real clients, the server restarted under them, every one back and right.

    python benchmarks/reconnect_storm.py                      # 5,000 users
    python benchmarks/reconnect_storm.py --users 200          # a quick one
    python benchmarks/reconnect_storm.py --kill --json out.json

Plants a SQLite store: public rooms (each user in two of them), a direct message per pair
of users, messages in every room and in general, and a read position per user and room
(some DMs never read), so that every user has a known, different unread count in each of
its rooms. Starts ``workspace serve`` on a free port (rate limits and per-address limits
off) and connects USERS users through the real client (``workspace_tui.client.ChatClient``,
with the chat's defaults: presence on, resume, backoff with full jitter, a durable outbox),
spread over a few worker processes, each with its own event loop. Once every client has
joined with the planted unread counts (and held its connection long enough for the
client's backoff to reset), the server is stopped (SIGTERM like an operator's restart,
or SIGKILL with ``--kill``); while it is down every SENDERS-EVERY-th user sends a message
(to a room of its own, a DM, or general), which waits in its outbox on disk; then the
server is started again on the same port and store.

The storm is timed from the moment the new server listens until every client is back:
its ``connected`` from the new server received, its rooms exactly the planted ones, every
room's unread count (``connected``'s, plus what arrived live since) equal to the one this
script computed from what it planted and sent, its own messages acknowledged and every
message sent during the downtime received (nothing lost, nothing twice; afterwards the
store is checked to hold each of them exactly once). Reported: time to all back and to
all right (p50/p99 per client), the bytes the new server wrote (``/proc/PID/io``
``wchar``: sockets, and its few SQLite writes) beside the wire bytes the clients read,
frames per client, and the server's peak CPU (over 250 ms windows, /proc sampled every
50 ms) and peak RSS (``VmHWM``).

The client is the project's own, unchanged; the workers only count the bytes and frames
its connections read (a ``ClientConnection`` subclass handed to websockets' ``connect``).
The clients' keys and outboxes live in /dev/shm (``--clients-on-disk``: beside the store):
5,000 outboxes committing with ``synchronous=FULL`` on the one disk the server also uses
would stall the load generator, which on a real network is 5,000 machines. For the same
reason the workers' garbage collector is off during the storm (``--client-gc-as-is``
leaves it on): each worker holds 1,250 clients, and every pass of the collector walks all
of them, where a real client walks one (``clients_gc_s_whole_storm`` says how long it
took with it on). Where the time goes: ``backoff_wait_after_restart`` (no attempt before
it: the client's jitter and the failures that doubled it) against
``last_attempt_to_connected`` (the attempt that worked), the server's handshake refusals
and the connections it turned away (503, ``clients_told_busy`` of them read) over its
pending-handshake cap, the kernel's listen-queue overflows, and the CPU of the server and
of the clients; ``--profile DIR`` records both with py-spy.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server_bench import cpu_seconds, rss_bytes, workspace_cmd  # noqa: E402

GENERAL = "general"


# -- the plan: who is in which room, what was said, what each user must see -----------------------


@dataclass
class UserPlan:
    rooms: list[str]  # general first
    initial: dict[str, int]  # room -> unread before the storm
    final: dict[str, int]  # room -> unread once the downtime's messages are in
    sends: list[tuple[str, str]] = field(default_factory=list)  # (room, text) sent while the server is down
    expect: list[str] = field(default_factory=list)  # texts sent during the downtime this user must receive


@dataclass
class Plan:
    users: dict[str, UserPlan]
    messages: list[tuple[str, str, str]]  # (room, author, text) planted, in order
    reads: list[tuple[str, str, int]]  # (user, room, index in the room's messages) read up to


def user_name(i: int) -> str:
    return f"u{i:05d}"


def dm_room(a: str, b: str) -> str:
    return "dm:" + ",".join(sorted((a, b)))


def make_plan(n: int, n_rooms: int, per_room: int, senders_every: int) -> Plan:
    """Deterministic: user i is in public rooms i % R and (i + R // 2) % R, and in a DM with its pair."""
    names = [user_name(i) for i in range(n)]
    n_rooms = max(2, n_rooms)
    members: dict[str, list[str]] = {GENERAL: names}
    rooms_of: dict[str, list[str]] = {u: [GENERAL] for u in names}
    for i, u in enumerate(names):
        for r in sorted({i % n_rooms, (i + n_rooms // 2) % n_rooms}):
            room = f"r{r:03d}"
            members.setdefault(room, []).append(u)
            rooms_of[u].append(room)
        if i % 2 == 0 and i + 1 < n:
            dm = dm_room(u, names[i + 1])
            members[dm] = [u, names[i + 1]]
            rooms_of[u].append(dm)
            rooms_of[names[i + 1]].append(dm)
    messages: list[tuple[str, str, str]] = []
    by_room: dict[str, list[str]] = {}
    for room, who in members.items():
        count = 4 if room.startswith("dm:") else per_room
        authors = [who[(k * 7 + 3) % len(who)] for k in range(count)]
        by_room[room] = authors
        messages += [(room, a, f"planted {k} in {room}") for k, a in enumerate(authors)]
    reads: list[tuple[str, str, int]] = []
    users: dict[str, UserPlan] = {}
    for i, u in enumerate(names):
        initial = {}
        for j, room in enumerate(rooms_of[u]):
            authors = by_room[room]
            if room.startswith("dm:") and i % 4 < 2:
                start = 0  # never read: all of it is unread
            else:
                pos = (i * 3 + j * 5) % len(authors)
                reads.append((u, room, pos))
                start = pos + 1
            initial[room] = sum(1 for a in authors[start:] if a != u)
        users[u] = UserPlan(rooms_of[u], initial, dict(initial))
    for i, u in enumerate(names):
        if i % senders_every:
            continue
        mine = users[u].rooms
        room = (GENERAL if (i // senders_every) % 50 == 0 else mine[-1] if (i // senders_every) % 3 == 1 else mine[1])
        text = f"storm from {u} to {room}"
        users[u].sends.append((room, text))
        for m in members[room]:
            users[m].expect.append(text)
            if m != u:
                users[m].final[room] += 1
    return Plan(users, messages, reads)


def plant(db: Path, plan: Plan) -> None:
    from workspace_tui.backends.sqlite import SQLiteBackend
    from workspace_tui.protocol import ChatMessage, iso_timestamp, make_message_id, name_key, user_id_for

    store = SQLiteBackend(db)
    con = store.db
    start = time.time_ns() // 1_000_000 - 86_400_000
    public = sorted({room for u in plan.users.values() for room in u.rooms if room.startswith("r")})
    with con:
        con.executemany("INSERT INTO rooms (id, kind, topic, created_by, created_ms) VALUES (?, 'public', ?, ?, ?)",
                        [(room, f"topic of {room}", user_name(0), start) for room in public])
        con.executemany("INSERT INTO members (room, name_key, username, joined_ms) VALUES (?, ?, ?, ?)",
                        [(room, name_key(u), u, start) for u, p in plan.users.items() for room in p.rooms
                         if room.startswith("r")])
    ids: dict[str, list[str]] = {}
    batch = []
    for k, (room, author, text) in enumerate(plan.messages):
        mid = make_message_id(start + k, 0)
        ids.setdefault(room, []).append(mid)
        batch.append(ChatMessage(mid, user_id_for(author), author, text, iso_timestamp(start + k), None, False, room))
    store.insert(batch)  # DM rooms and their members come with their first message
    with con:
        con.executemany("INSERT INTO reads (name_key, room, message_id) VALUES (?, ?, ?)",
                        [(name_key(u), room, ids[room][pos]) for u, room, pos in plan.reads])
    store.shut()


def stored_counts(db: Path, texts: list[str]) -> Counter:
    con = sqlite3.connect(db)
    try:
        got = Counter()
        for text in texts:
            got[text] = con.execute("SELECT count(*) FROM messages WHERE text = ?", (text,)).fetchone()[0]
        return got
    finally:
        con.close()


# -- the server --------------------------------------------------------------------------------


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def profile(folder: str, pids: dict[str, int]) -> list[subprocess.Popen]:
    """``py-spy record`` (raw, collapsed stacks, sampled without stopping the process) on each of *pids*."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return [subprocess.Popen([str(spy), "record", "--nonblocking", "-r", "100", "-f", "raw", "-p", str(pid),
                              "-o", str(Path(folder) / f"{name}.txt")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for name, pid in pids.items()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``workspace serve`` on a fixed port, so that it can be started again where the clients look."""

    def __init__(self, db: Path, port: int, loop: str = "auto", extra: list[str] | None = None):
        argv = [*workspace_cmd(), "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db),
                "--rate-limit", "0", "--no-address-limits", "--log-level", "warning", "--loop", loop, *(extra or [])]
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        m = re.search(r"(wss?://\S+/ws)", line)
        if not m:
            self.proc.kill()
            raise SystemExit(f"server did not start: {line!r}")
        self.listening = time.monotonic()
        self.url = m[1]
        self.pid = self.proc.pid

    def stop(self, kill: bool = False) -> None:
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def scrape(url: str) -> dict[str, float]:
    """The new server's ``/metrics`` counters (a label-less name, or name{labels}); ``{}`` if it will not say.

    A server still full of pending handshakes drops new connections (its overall cap), this one too: retried.
    """
    from urllib.request import urlopen

    http = url.replace("ws://", "http://").rsplit("/ws", 1)[0] + "/metrics"
    for attempt in range(20):
        try:
            with urlopen(http, timeout=10) as r:
                text = r.read().decode()
            break
        except OSError:
            time.sleep(0.1 * (attempt + 1))
    else:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def listen_overflows() -> int:
    """SYNs the kernel dropped because a listen queue was full (this network namespace, every process)."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines() if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1])).get("ListenOverflows", 0)) if len(lines) >= 2 else 0


def proc_io_wchar(pid: int) -> int:
    m = re.search(r"wchar:\s+(\d+)", Path(f"/proc/{pid}/io").read_text())
    return int(m[1]) if m else 0


def peak_rss(pid: int) -> int:
    m = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m[1]) * 1024 if m else 0


class Sampler(threading.Thread):
    """/proc/PID every *every* seconds: (monotonic time, CPU seconds, RSS bytes, wchar)."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float, int, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.samples.append((time.monotonic(), cpu_seconds(self.pid), rss_bytes(self.pid),
                                     proc_io_wchar(self.pid)))
            except (OSError, ValueError):
                return
            self.halt.wait(self.every)

    def peak_cpu_percent(self, until: float, window: float = 0.25) -> float:
        s = [x for x in self.samples if x[0] <= until + window]
        best, j = 0.0, 0
        for i in range(len(s)):
            while s[i][0] - s[j][0] > window:
                j += 1
            if s[i][0] - s[j][0] >= window * 0.8:
                best = max(best, (s[i][1] - s[j][1]) / (s[i][0] - s[j][0]) * 100)
        return best

    def at(self, t: float) -> tuple[float, float, int, int]:
        before = [x for x in self.samples if x[0] <= t]
        return before[-1] if before else self.samples[0]


# -- the clients, in worker processes ----------------------------------------------------------


def worker_main(conn, url: str, plans: dict[str, UserPlan], data_dir: str, quiet: bool, batch: int,
                gc_off_in_storm: bool) -> None:
    os.environ["WORKSPACE_DATA_DIR"] = data_dir  # keys and outboxes of these users, not the operator's
    try:
        asyncio.run(Worker(conn, url, plans, quiet, batch, gc_off_in_storm).run())
    finally:
        conn.close()


class Tracked:
    """One user's real client and what it has seen since its latest ``connected``."""

    def __init__(self, client, plan: UserPlan, worker: "Worker"):
        self.client, self.plan, self.worker = client, plan, worker
        self.joins: list[float] = []
        self.base: dict = {}  # room -> RoomSummary of the latest connected
        self.live: Counter = Counter()  # room -> others' messages newer than what that connected counted
        self.delivered: Counter = Counter()  # message id -> times the client handed it over
        self.texts: set[str] = set()
        self.acked = 0
        self.events = 0
        self.told_busy = 0  # 503 answers (over the server's cap on handshakes in progress)
        self.mark = 0  # joins before the storm
        self.handshakes_mark = 0
        self.right_at: float | None = None
        self.sent: list[str] = []
        self.next_attempt: float | None = None  # when the client said its next connection attempt starts
        self.attempt_of_join: list[float | None] = []  # ... as it stood at each join

    def why_wrong(self, target: dict[str, int]) -> str | None:
        if not self.joins:
            return "never joined"
        if set(self.base) != set(self.plan.rooms):
            return f"rooms {sorted(self.base)} != {sorted(self.plan.rooms)}"
        for room, want in target.items():
            got = self.base[room].unread + self.live[room]
            if got != want:
                return f"{room}: unread {got} != {want}"
        return None

    def check(self) -> None:
        w = self.worker
        if self.right_at is not None:
            return
        if w.phase == "initial":
            if self.why_wrong(self.plan.initial) is None:
                self.right_at = time.monotonic()
                w.right_now += 1
        elif w.phase == "storm" and len(self.joins) > self.mark:
            if (self.acked >= len(self.plan.sends) and self.texts.issuperset(self.plan.expect)
                    and self.why_wrong(self.plan.final) is None):
                self.right_at = time.monotonic()
                w.right_now += 1
        if w.right_now == len(w.plans):
            w.all_right.set()

    def _count(self, message, room: str, own: bool) -> None:
        self.delivered[message.id] += 1
        self.texts.add(message.text)
        summary = self.base.get(room)
        if not own and summary is not None and (summary.last_message_id is None or message.id > summary.last_message_id):
            self.live[room] += 1

    async def consume(self) -> None:
        from workspace_tui.client import (ConnectionState, HistoryReceived, Joined, MessageAcknowledged,
                                          MessageReceived, StateChanged)

        async for ev in self.client.events():
            self.events += 1
            if isinstance(ev, StateChanged):
                if ev.state is ConnectionState.RECONNECTING and ev.delay is not None:
                    self.next_attempt = time.monotonic() + ev.delay  # at most: reconnect_now() is never called
                    self.told_busy += ev.status_code == 503
                continue
            if isinstance(ev, Joined):
                self.joins.append(time.monotonic())
                self.attempt_of_join.append(self.next_attempt)
                self.base = {r.room: r for r in ev.rooms}
                self.live = Counter()
            elif isinstance(ev, MessageReceived):
                self._count(ev.message, ev.room, ev.own)
            elif isinstance(ev, HistoryReceived) and ev.reason != "page":
                for k, m in enumerate(ev.messages):
                    self._count(m, ev.room_of(k), m.username == self.client.username)
            elif isinstance(ev, MessageAcknowledged):
                self.acked += 1
            else:
                continue
            self.check()


def counting_connection():
    """A ``ClientConnection`` that counts the bytes and messages it reads, for the whole worker."""
    from websockets.asyncio.client import ClientConnection

    class Counting(ClientConnection):
        bytes_in = 0
        frames_in = 0

        def data_received(self, data: bytes) -> None:
            Counting.bytes_in += len(data)
            super().data_received(data)

        async def recv(self, decode=None):
            msg = await super().recv(decode)
            Counting.frames_in += 1
            return msg

    return Counting


class GcClock:
    """The seconds this process spends in the garbage collector from now until :meth:`stop`, by generation."""

    def __init__(self) -> None:
        self.by_generation: dict[int, list[float]] = {}  # generation -> [passes, seconds]
        self._began = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            row = self.by_generation.setdefault(info["generation"], [0, 0.0])
            row[0] += 1
            row[1] += time.perf_counter() - self._began

    def stop(self) -> dict[int, list[float]]:
        gc.callbacks.remove(self._tick)
        return self.by_generation


class Worker:
    def __init__(self, conn, url: str, plans: dict[str, UserPlan], quiet: bool, batch: int, gc_off_in_storm: bool):
        self.conn, self.url, self.plans, self.quiet, self.batch = conn, url, plans, quiet, batch
        self.gc_off_in_storm = gc_off_in_storm
        self.clients: list[Tracked] = []
        self.phase = "initial"
        self.right_now = 0
        self.all_right = asyncio.Event()

    async def command(self) -> tuple:
        return await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)

    async def run(self) -> None:
        import workspace_tui.client.client as client_module
        from websockets.asyncio.client import connect as real_connect

        from workspace_tui.client import ChatClient

        counting = counting_connection()
        client_module.connect = lambda *a, **kw: real_connect(*a, create_connection=counting, **kw)
        _, timeout = await self.command()  # "start"
        t0 = time.monotonic()
        names = list(self.plans)
        for start in range(0, len(names), self.batch):  # a crowd arriving, not the storm: in batches
            part = []
            for u in names[start:start + self.batch]:
                t = Tracked(ChatClient(self.url, u, present=not self.quiet), self.plans[u], self)
                self.clients.append(t)
                part.append(t)
                await t.client.start()
                asyncio.ensure_future(t.consume())
            while not all(t.joins for t in part):
                await asyncio.sleep(0.02)
        try:
            await asyncio.wait_for(self.all_right.wait(), timeout)
        except TimeoutError:
            pass
        wrong = [f"{t.client.username}: {t.why_wrong(t.plan.initial)}" for t in self.clients if t.right_at is None]
        self.conn.send(("up", ([t.right_at - t0 for t in self.clients if t.right_at is not None], wrong[:10])))

        await self.command()  # "down": the server process has exited
        if self.gc_off_in_storm:
            # A real client is one user in its own process; here 1,250 share one, and each of the
            # collector's passes walks all their state (with it on, --client-gc-as-is, the
            # workers ran 17.7 CPU-s against 12.9 in one storm). Off for the storm's seconds, it
            # costs memory only for the few cycles the storm leaves.
            gc.disable()
        gc_clock = GcClock()
        self.phase = "storm"
        self.right_now = 0
        self.all_right.clear()
        for t in self.clients:
            t.mark, t.right_at, t.events, t.handshakes_mark = len(t.joins), None, 0, t.client.handshakes
            t.told_busy = 0
            t.delivered = Counter()
        counting.bytes_in = counting.frames_in = 0
        for t in self.clients:
            for room, text in t.plan.sends:
                entry = await t.client.send(text, room=room)
                t.sent.append(entry.client_msg_id)
        self.conn.send(("queued", sum(len(t.sent) for t in self.clients)))

        _, timeout = await self.command()  # "restarted"
        try:
            await asyncio.wait_for(self.all_right.wait(), timeout)
        except TimeoutError:
            pass
        wrong = [f"{t.client.username}: {t.why_wrong(t.plan.final) or 'messages missing or not acknowledged'}"
                 for t in self.clients if t.right_at is None]
        self.conn.send(("storm", {
            "back": [t.joins[t.mark] if len(t.joins) > t.mark else None for t in self.clients],
            "right": [t.right_at for t in self.clients],
            "attempt": [t.attempt_of_join[t.mark] if len(t.joins) > t.mark else None for t in self.clients],
            "events": [t.events for t in self.clients],
            "wire_bytes": counting.bytes_in,
            "wire_frames": counting.frames_in,
            "handshakes": sum(t.client.handshakes - t.handshakes_mark for t in self.clients),
            "told_busy": sum(t.told_busy for t in self.clients),
            "duplicates": sum(1 for t in self.clients for n in t.delivered.values() if n > 1),
            "missing": sum(len(set(t.plan.expect) - t.texts) for t in self.clients),
            "unacked": sum(t.client.queued for t in self.clients),
            "wrong": wrong[:10],
            "wrong_count": len(wrong),
            "gc_s": gc_clock.stop(),
        }))
        gc.enable()
        await self.command()  # "close"
        await asyncio.gather(*(t.client.close() for t in self.clients), return_exceptions=True)
        self.conn.send(("closed", None))


class Workers:
    """The worker processes and their pipes; every call waits for all of them."""

    def __init__(self, url: str, plan: Plan, n: int, data_dir: Path, quiet: bool, batch: int, gc_off_in_storm: bool):
        ctx = mp.get_context("spawn")
        names = list(plan.users)
        self.pipes, self.procs = [], []
        for k in range(n):
            mine = {u: plan.users[u] for u in names[k::n]}
            parent, child = ctx.Pipe()
            args = (child, url, mine, str(data_dir), quiet, batch, gc_off_in_storm)
            proc = ctx.Process(target=worker_main, args=args, daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    def ask(self, *command, timeout: float = 3600) -> list:
        for pipe in self.pipes:
            pipe.send(command)
        out = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise SystemExit(f"a worker did not answer {command[0]!r} within {timeout:.0f} s")
            out.append(pipe.recv()[1])
        return out

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(proc.pid) for proc in self.procs)

    def end(self) -> None:
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


# -- the run -------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def run(a: argparse.Namespace, tmp: Path, clients: Path) -> dict:
    plan = make_plan(a.users, a.rooms, a.messages, a.senders_every)
    db = tmp / "bench.sqlite3"
    plant(db, plan)
    servers: list[Server] = []
    try:
        return storm(a, plan, db, servers, clients)
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.stop()


def storm(a: argparse.Namespace, plan: Plan, db: Path, servers: list[Server], clients: Path) -> dict:
    port = free_port()
    server = Server(db, port, a.loop, a.serve_option)
    servers.append(server)
    workers = Workers(server.url, plan, a.workers, clients, a.quiet, a.batch, not a.client_gc_as_is)
    say(f"planted {len(plan.messages):,} messages; {a.users:,} clients joining through {a.workers} workers")
    t_join = time.monotonic()
    answers = workers.ask("start", a.join_timeout, timeout=a.join_timeout + 60)
    join_s = time.monotonic() - t_join
    say(f"all joined in {join_s:.1f} s; holding {a.hold:g} s, then {'SIGKILL' if a.kill else 'SIGTERM'}")
    initial = [x for times, _ in answers for x in times]
    wrong = [w for _, ws in answers for w in ws]
    if wrong:
        raise SystemExit(f"before the storm, {a.users - len(initial)} clients not as planted, e.g. {wrong[:3]}")
    time.sleep(a.hold)  # long enough a session for the client's backoff to reset, as after a day's use

    t_stop = time.monotonic()
    server.stop(kill=a.kill)
    t_down = time.monotonic()
    queued = sum(workers.ask("down"))
    clients_cpu0 = workers.cpu_seconds()
    time.sleep(a.downtime)
    overflows0 = listen_overflows()
    server = Server(db, port, a.loop, a.serve_option)
    servers.append(server)
    sampler = Sampler(server.pid)
    sampler.start()
    spies = profile(a.profile, {"server": server.pid, "clients0": workers.procs[0].pid}) if a.profile else []
    say(f"started again ({server.listening - t_down:.2f} s after the exit); waiting for every client")
    storm = workers.ask("restarted", a.timeout, timeout=a.timeout + 60)
    t_end = time.monotonic()
    clients_cpu = workers.cpu_seconds() - clients_cpu0
    overflows = listen_overflows() - overflows0
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its profile when interrupted
        spy.wait(60)
    sampler.halt.set()
    sampler.join()
    hwm = peak_rss(server.pid)
    metrics = scrape(server.url)
    wchar_end = proc_io_wchar(server.pid)
    server.stop()  # before the clients close: 5,000 goodbyes would each be announced to everyone left
    workers.ask("close")
    workers.end()
    counts = stored_counts(db, [text for u in plan.users.values() for _, text in u.sends])

    t0 = server.listening
    back = [x - t0 for part in storm for x in part["back"] if x is not None]
    right = [x - t0 for part in storm for x in part["right"] if x is not None]
    all_right = max(right) if len(right) == a.users else None
    t_all = t0 + (all_right if all_right is not None else t_end - t0)
    _, cpu_all, _, wchar_all = sampler.at(t_all)
    cpu_first = sampler.samples[0][1]
    events = [x for part in storm for x in part["events"]]
    missing = sum(p["missing"] for p in storm)
    never_stored = sum(1 for n in counts.values() if n == 0)
    pairs = [(b, at) for part in storm for b, at in zip(part["back"], part["attempt"]) if b is not None and at]
    waited = [max(0.0, at - t0) for _, at in pairs]  # the backoff's part: no attempt before this
    joining = [b - max(at, t0) for b, at in pairs]  # the attempt that worked, to its connected
    return {
        "users": a.users,
        "quiet": a.quiet,
        "clients_gc_off_in_storm": not a.client_gc_as_is,
        "signal": "SIGKILL" if a.kill else "SIGTERM",
        "workers": a.workers,
        "rooms_per_user_mean": round(statistics.mean(len(u.rooms) for u in plan.users.values()), 2),
        "planted_messages": len(plan.messages),
        "initial_join_s": round(join_s, 2),
        "initial_right_p99_s": round(percentile(initial, 0.99), 2),
        "stop_to_exit_s": round(t_down - t_stop, 3),
        "exit_to_listening_s": round(server.listening - t_down, 3),
        "sent_while_down": queued,
        "back": len(back),
        "all_back_s": round(max(back), 3) if len(back) == a.users else None,
        "back_p50_s": round(percentile(back, 0.5), 3),
        "back_p99_s": round(percentile(back, 0.99), 3),
        "backoff_wait_after_restart_p50_s": round(percentile(waited, 0.5), 3),
        "backoff_wait_after_restart_max_s": round(max(waited), 3) if waited else None,
        "last_attempt_to_connected_p50_s": round(percentile(joining, 0.5), 3),
        "last_attempt_to_connected_p99_s": round(percentile(joining, 0.99), 3),
        "right": len(right),
        "all_right_s": round(all_right, 3) if all_right is not None else None,
        "right_p50_s": round(percentile(right, 0.5), 3),
        "right_p99_s": round(percentile(right, 0.99), 3),
        "within_10_s": all_right is not None and all_right <= 10,
        "server_wchar_bytes_to_all_right": wchar_all,  # the new process's whole life up to then
        "server_wchar_bytes_total": wchar_end,
        "clients_wire_bytes": sum(p["wire_bytes"] for p in storm),
        "wire_frames_per_client": round(sum(p["wire_frames"] for p in storm) / a.users, 1),
        "events_per_client_p50": percentile(events, 0.5),
        "events_per_client_max": max(events) if events else 0,
        "handshakes_after_stop": sum(p["handshakes"] for p in storm),
        "server_cpu_s_to_all_right": round(cpu_all - cpu_first, 2),
        "clients_cpu_s_whole_storm": round(clients_cpu, 2),
        "clients_gc_s_whole_storm": round(sum(t for p in storm for _, t in p["gc_s"].values()), 2),
        "clients_gc_passes_by_generation": {g: [sum(p["gc_s"].get(g, [0, 0])[0] for p in storm),
                                                round(sum(p["gc_s"].get(g, [0, 0])[1] for p in storm), 2)]
                                            for g in range(3)},
        "server_peak_cpu_percent": round(sampler.peak_cpu_percent(t_all), 1),
        "server_peak_rss_mb": round(hwm / 2**20, 1),
        "server_deliveries": metrics.get("workspace_deliveries_total", 0),
        "server_handshake_refusals": sum(v for k, v in metrics.items() if k.startswith("workspace_handshake_rej")),
        "clients_told_busy": sum(p["told_busy"] for p in storm),  # each read the server's 503
        "server_turned_away_over_pending_cap": sum(v for k, v in metrics.items()
                                                   if k.startswith("workspace_pending_hand") and "refused" in k),
        "server_closes_by_code": {k.split('"')[1]: int(v) for k, v in metrics.items()
                                  if k.startswith("workspace_server_closes_total{")},
        "kernel_listen_overflows": overflows,
        "server_resends_answered_from_store": metrics.get("workspace_duplicate_sends_total", 0),
        # Lost: only once every client is back can a missing delivery no longer be on its way.
        "lost": missing + never_stored if len(back) == a.users else None,
        "deliveries_missing_at_the_end": missing,
        "never_stored": never_stored,
        "stored_twice": sum(1 for n in counts.values() if n > 1),
        "delivered_twice": sum(p["duplicates"] for p in storm),
        "still_in_outboxes": sum(p["unacked"] for p in storm),
        "not_right": sum(p["wrong_count"] for p in storm),
        "not_right_examples": [w for p in storm for w in p["wrong"]][:5],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--rooms", type=int, default=0, help="public rooms (default: one per 100 users, at least 4)")
    ap.add_argument("--messages", type=int, default=12, help="planted messages per public room and in general")
    ap.add_argument("--senders-every", type=int, default=10, help="every N-th user sends a message while down")
    ap.add_argument("--workers", type=int, default=0, help="client processes (default: one per 1,250 users, 1-4)")
    ap.add_argument("--batch", type=int, default=100, help="clients a worker starts at once for the first join")
    ap.add_argument("--hold", type=float, default=11.0,
                    help="seconds connected before the stop (the client resets its backoff after 10)")
    ap.add_argument("--downtime", type=float, default=0.0, help="seconds to wait before starting the server again")
    ap.add_argument("--kill", action="store_true", help="stop the server with SIGKILL instead of SIGTERM")
    ap.add_argument("--quiet", action="store_true", help="clients connect with presence=none")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every client to be right")
    ap.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"], help="the server's event loop")
    ap.add_argument("--join-timeout", type=float, default=1800.0, help="seconds for every client's first join")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the new server and the first worker during the storm")
    ap.add_argument("--client-gc-as-is", action="store_true",
                    help="leave the workers' garbage collector on during the storm (see Worker.run)")
    ap.add_argument("--clients-on-disk", action="store_true",
                    help="keep the clients' keys and outboxes beside the store, not in /dev/shm")
    ap.add_argument("--serve-option", action="append", default=[], metavar="ARG",
                    help="one more argument for `workspace serve` (repeat; e.g. --serve-option=--max-pending-handshakes=0)")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    a.rooms = a.rooms or max(4, a.users // 100)
    a.workers = a.workers or min(4, max(1, -(-a.users // 1250)))
    shm = Path("/dev/shm")
    clients_base = None if a.clients_on_disk or not (shm.is_dir() and os.access(shm, os.W_OK)) else str(shm)
    with tempfile.TemporaryDirectory(prefix="workspace-storm-") as tmp, \
            tempfile.TemporaryDirectory(prefix="workspace-storm-clients-", dir=clients_base) as clients:
        figures = run(a, Path(tmp), Path(clients))
    figures["clients_state_dir"] = "disk" if clients_base is None else "/dev/shm"
    for k, v in figures.items():
        print(f"{k:34} {v}")
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1))
    ok = figures["all_right_s"] is not None and not (figures["lost"] or figures["stored_twice"]
                                                     or figures["delivered_twice"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
