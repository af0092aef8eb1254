"""Every history path is bounded in bytes, and so is the server's memory.

A real ``workspace serve`` process (so its RSS can be read from
``/proc/PID/status``) holds 300 messages of ~1 MB each (~300 MB). Clients then
ask for all of it, every way the protocol allows: the join ``history`` frame
with ``history=1000``, ``history:request`` pages back to the oldest, and a
resume (``since=`` the very first message). The rules (docs/protocol.md):

* a ``history`` frame (join, page, resume) carries at most 512 KiB of JSON,
  unless it holds a single message bigger than that, alone;
* join: one frame, the newest messages (at least one), ``hasMore`` when older
  ones exist (those left out for bytes too);
* page: one frame of messages older than ``before`` (at least one if any
  exists), ``hasMore`` likewise;
* resume: exactly the messages after ``since``, oldest first, in frames of
  that size, ``hasMore: true`` on every frame but the last;
* whatever the clients ask, the server's RSS stays within 64 MiB of what it
  was before they asked, and it keeps answering pings within 100 ms (measured
  by ``budget_pinger.py`` in a process of its own).

Once from one client, then from ten at once. The 1 MB frames are never
``json.loads``-ed here: a regex takes each message's id and checks its text
is exactly the one planted, and every frame's byte size is checked. The RSS
watch samples every 50 ms and, the moment the budget is broken, stops the
clients (so a server without the bounds fails fast instead of growing by
gigabytes).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

N_MESSAGES = 300
TEXT_LEN = 1_000_000  # + the JSON around it: under the default 1 MiB max payload
FRAME_BUDGET = 512 * 1024  # bytes of JSON per history frame (unless it holds one message)
RSS_SLACK = 64 * 1024 * 1024
RSS_EVERY = 0.05
PONG_LIMIT_MS = 100.0
READERS = 10
PAGE_LIMIT = 200
WORK_TIMEOUT = 100.0  # all of (a) or (b); pytest-timeout (120 s) would say less about where it stood
T = 20.0  # per await: a 1 MB frame on a busy 2-core machine takes milliseconds; this is only a safety net

LINE_RE = re.compile(r"^workspace server listening on (ws://127\.0\.0\.1:(\d+)/ws) \(store: (.+)\)$")
PINGER = Path(__file__).with_name("budget_pinger.py")
CLIENT = {"max_size": None, "open_timeout": T, "close_timeout": 2}  # server frames are big: no cap

FILL = TEXT_LEN - 10


def text_for(i: int) -> str:
    """Message *i*: its index at both ends, so a text cut short or mixed up shows."""
    return f"{i:04d}:" + "x" * FILL + f":{i:04d}"


ID_RE = re.compile(rb'"id"\s*:\s*"(msg_\d{13}_\d{6})"')
TEXT_RE = re.compile(rb'"text"\s*:\s*"(\d{4}):x{%d}:(\d{4})"' % FILL)
TYPE_RE = re.compile(rb'"type"\s*:\s*"([^"]*)"')
REASON_RE = re.compile(rb'"reason"\s*:\s*"([^"]*)"')
HAS_MORE_RE = re.compile(rb'"hasMore"\s*:\s*(true|false)')
SMALL = 64 * 1024  # frames below this are parsed as JSON; only history frames with messages are bigger


class Frame:
    """A server frame, summarised without parsing 1 MB texts as JSON."""

    def __init__(self, raw: bytes) -> None:
        self.size = len(raw)
        self.json: dict[str, Any] | None = None
        self.ids: list[str] = []
        self.indices: list[int] = []
        if self.size < SMALL:
            frame = self.json = json.loads(raw)
            self.type = frame.get("type")
            self.reason = frame.get("reason")
            self.has_more = frame.get("hasMore")
            if self.type == "history":
                self.ids = [m["id"] for m in frame["messages"]]
                self.indices = [-1 for _ in frame["messages"]]  # no planted text fits in a small frame
            return
        m = TYPE_RE.search(raw)  # texts hold no quotes, so the first "type" is the frame's
        self.type = m[1].decode() if m else None
        m = REASON_RE.search(raw)
        self.reason = m[1].decode() if m else None
        m = HAS_MORE_RE.search(raw)
        self.has_more = (m[1] == b"true") if m else None
        self.ids = [x.decode() for x in ID_RE.findall(raw)]
        texts = TEXT_RE.findall(raw)
        self.indices = [int(a) if a == b else -1 for a, b in texts]
        if len(texts) != len(self.ids):
            self.indices = [-1] * len(self.ids)  # some text is not one we planted (cut short, mixed)

    def describe(self) -> str:
        return f"{self.type}/{self.reason} of {self.size} bytes with {len(self.ids)} message(s), hasMore={self.has_more}"


def check_history(f: Frame, reason: str, ids: list[str], where: str) -> None:
    """*f* is a well-formed ``history`` frame for *reason*, within the byte budget, of planted messages."""
    assert f.type == "history" and f.reason == reason, f"{where}: expected history/{reason}, got {f.describe()}"
    assert isinstance(f.has_more, bool), f"{where}: hasMore missing: {f.describe()}"
    assert f.size <= FRAME_BUDGET or len(f.ids) == 1, (
        f"{where}: {f.describe()}: over the {FRAME_BUDGET}-byte budget with more than one message"
    )
    index = {mid: i for i, mid in enumerate(ids)}
    for mid, i in zip(f.ids, f.indices):
        assert mid in index and index[mid] == i, f"{where}: message {mid} is not planted message #{i} as sent"


async def recv_frame(ws: ClientConnection) -> Frame:
    return Frame(await asyncio.wait_for(ws.recv(decode=False), T))


async def next_history(ws: ClientConnection, where: str) -> Frame | dict[str, Any]:
    """The next ``history`` frame, or an ``error``; presence from other readers is skipped."""
    while True:
        f = await recv_frame(ws)
        if f.type == "history":
            return f
        if f.type == "error":
            return f.json or {}
        assert f.type in ("presence:update", "typing:indicator"), f"{where}: unexpected {f.describe()}"


# -- the server process, its RSS, the pinger ---------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process *pid* so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class RssWatch:
    """Samples a process's RSS every 50 ms on a thread of its own; *on_breach* once it passes *limit*."""

    def __init__(self, pid: int, limit: int, on_breach) -> None:
        self.pid, self.limit, self.on_breach = pid, limit, on_breach
        self.peak = 0
        self.samples = 0
        self.breach: int | None = None
        self.breach_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            try:
                value = rss(self.pid)
            except (OSError, AssertionError):
                return  # the process is gone; the test will notice
            self.samples += 1
            self.peak = max(self.peak, value)
            if value > self.limit and self.breach is None:
                self.breach, self.breach_at = value, time.monotonic()
                self.on_breach()
            if self._stop.wait(RSS_EVERY):
                return

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)


class Served:
    def __init__(self, proc: subprocess.Popen, url: str, ids: list[str], log: Path) -> None:
        self.proc, self.url, self.ids, self.log = proc, url, ids, log


async def plant(url: str) -> list[str]:
    """Send the messages (a few in flight at a time, reading every echo); their ids, in order."""
    ids: list[str] = []
    window = asyncio.Semaphore(4)  # at most ~4 MB of echoes queued for us: under the 4 MiB slow-reader limit
    async with connect(f"{url}?username=planter&history=0", **CLIENT) as ws:
        assert (await recv_frame(ws)).type == "connected"
        assert (await recv_frame(ws)).type == "history"

        async def echoes() -> None:
            while len(ids) < N_MESSAGES:
                f = await recv_frame(ws)
                if f.type == "message:new":
                    assert f.indices == [len(ids)], f"echo {len(ids)}: {f.describe()}"
                    ids.append(f.ids[0])
                    window.release()
                else:
                    assert f.type in ("presence:update", "typing:indicator"), f.describe()

        reader = asyncio.create_task(echoes())
        for i in range(N_MESSAGES):
            await asyncio.wait_for(window.acquire(), T)
            if reader.done():
                break
            await ws.send(json.dumps({"type": "message:send", "text": text_for(i)}))
        await asyncio.wait_for(reader, T)
    assert ids == sorted(ids) and len(set(ids)) == N_MESSAGES
    return ids


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A ``workspace serve`` process holding the planted messages (shared by the tests below)."""
    tmp = tmp_path_factory.mktemp("budget")
    log = tmp / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKSPACE_")}
    env["WORKSPACE_DATA_DIR"] = str(tmp / "data")
    env["WORKSPACE_CONFIG_DIR"] = str(tmp / "config")
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workspace_tui", "serve", "--host", "127.0.0.1", "--port", "0",
             "--db", str(tmp / "budget.sqlite3"), "--rate-limit", "0", "--address-rate-limit", "0"],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env,
        )
    try:
        line = proc.stdout.readline().strip()
        m = LINE_RE.match(line)
        assert m, (line, log.read_text()[-2000:])
        url = m[1]
        started = time.monotonic()
        with ThreadPoolExecutor(1) as pool:  # a loop of its own, away from the tests' loops
            ids = pool.submit(asyncio.run, plant(url)).result(300)
        print(f"planted {N_MESSAGES} x {TEXT_LEN} bytes in {time.monotonic() - started:.1f} s")
        yield Served(proc, url, ids, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


async def start_pinger(url: str) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, str(PINGER), url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = await asyncio.wait_for(asyncio.to_thread(p.stdout.readline), T)
    if line.strip() != "ready":
        p.kill()
        raise AssertionError(f"pinger did not start: {line!r} {p.stderr.read()[-2000:]}")
    return p


async def stop_pinger(p: subprocess.Popen) -> dict[str, Any]:
    try:
        out, err = await asyncio.wait_for(asyncio.to_thread(p.communicate, "stop\n"), T)
    except TimeoutError:
        p.kill()
        raise
    lines = out.strip().splitlines()
    assert p.returncode == 0 and lines, f"pinger failed ({p.returncode}): {err[-2000:]}"
    return json.loads(lines[-1])


async def under_budget(served: Served, work: Awaitable[str]) -> None:
    """Run *work* while the server's RSS is watched and pings are timed; every limit broken is reported."""
    assert served.proc.poll() is None, f"the server is gone: {served.log.read_text()[-2000:]}"
    pinger = await start_pinger(served.url)
    PROGRESS.clear()
    baseline = rss(served.proc.pid)
    server_cpu, own_cpu = cpu_seconds(served.proc.pid), cpu_seconds(os.getpid())
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    problems: list[str] = []
    started = time.monotonic()
    summary = ""
    try:
        with RssWatch(served.proc.pid, baseline + RSS_SLACK, lambda: loop.call_soon_threadsafe(task.cancel)) as watch:
            try:
                summary = await asyncio.wait_for(task, WORK_TIMEOUT)
            except asyncio.CancelledError:
                if watch.breach is None:
                    raise
            except AssertionError as exc:
                problems.append(f"frames: {exc}")
            except TimeoutError:
                problems.append(
                    f"time: not done within {WORK_TIMEOUT:g} s; "
                    + "; ".join(f"{name}: {doing}" for name, doing in sorted(PROGRESS.items())[:4])
                )
    finally:
        pings = await stop_pinger(pinger)
    elapsed = time.monotonic() - started
    server_cpu, own_cpu = cpu_seconds(served.proc.pid) - server_cpu, cpu_seconds(os.getpid()) - own_cpu
    mib = 1024 * 1024
    if watch.breach is not None:
        problems.append(
            f"RSS: {watch.breach / mib:.0f} MiB after {watch.breach_at - started:.1f} s, over baseline {baseline / mib:.0f} MiB"
            f" + {RSS_SLACK // mib} MiB; the clients were stopped there, " + "; ".join(
                f"{name}: {doing}" for name, doing in sorted(PROGRESS.items())[:4]
            )
        )
    assert watch.samples >= 1
    if pings["lost_ms"] or pings["max_ms"] is None or pings["max_ms"] > PONG_LIMIT_MS or pings["problems"]:
        problems.append(
            f"pong: max {pings['max_ms']} ms (limit {PONG_LIMIT_MS:g}), p99 {pings['p99_ms']} ms, slowest {pings['slowest']},"
            f" {pings['pongs']}/{pings['pings']} answered, unanswered for {pings['lost_ms'][:10]} ms, {pings['problems']}"
        )
    assert served.proc.poll() is None, f"the server died: {served.log.read_text()[-2000:]}"
    assert not problems, "\n".join(problems + [f"(after {elapsed:.1f} s; CPU: server {server_cpu:.1f} s, test process {own_cpu:.1f} s)"])
    print(
        f"{summary} in {elapsed:.1f} s; server RSS peak {(watch.peak - baseline) / mib:+.1f} MiB over"
        f" {baseline / mib:.0f} MiB; pong max {pings['max_ms']} ms, p99 {pings['p99_ms']} ms over {pings['pongs']};"
        f" CPU: server {server_cpu:.1f} s, test process {own_cpu:.1f} s"
    )


# -- one reader: join, pages back, resume -----------------------------------------------------------------


PROGRESS: dict[str, str] = {}  # reader -> what it is waiting for (reported when a limit is broken)


async def read_everything(url: str, ids: list[str], name: str) -> None:
    """Join with ``history=1000``, page back to the oldest, then resume from the first message."""
    n = len(ids)
    PROGRESS[name] = "connecting to join"
    async with connect(f"{url}?username={name}&history=1000", **CLIENT) as ws:
        assert (await recv_frame(ws)).type == "connected"
        PROGRESS[name] = "waiting for the join history frame"
        f = await recv_frame(ws)  # ONE history frame, right after connected
        check_history(f, "join", ids, f"{name} join")
        assert f.ids, f"{name} join: no message at all, but {n} are stored (at least the newest must come)"
        assert f.ids == ids[n - len(f.ids):], f"{name} join: not the newest {len(f.ids)} messages, in order"
        assert f.has_more == (len(f.ids) < n), f"{name} join: {f.describe()} but {n} are stored"
        got = f.ids
        requests = refusals = 0
        while got[0] != ids[0] or f.has_more:
            assert requests < 2 * n, f"{name}: {requests} pages and still not at the oldest"
            before = got[0]
            await ws.send(json.dumps({"type": "history:request", "before": before, "limit": PAGE_LIMIT}))
            requests += 1
            PROGRESS[name] = f"waiting for page {requests} (before #{ids.index(before)})"
            page = await next_history(ws, f"{name} page")
            if isinstance(page, dict):  # other frames are 20 a second per user (burst 200): wait as told
                assert page.get("code") == "rate_limited" and page.get("frameType") == "history:request", (
                    f"{name} page: {page}"
                )
                refusals += 1
                assert refusals <= n, f"{name}: refused {refusals} times"
                await asyncio.sleep(page["retryAfterMs"] / 1000)
                continue
            f = page
            where = f"{name} page before {before}"
            check_history(f, "page", ids, where)
            end = ids.index(before)
            assert f.ids, f"{where}: empty, but {end} older messages exist"
            assert len(f.ids) <= PAGE_LIMIT, f"{where}: {len(f.ids)} messages, limit {PAGE_LIMIT}"
            assert f.ids == ids[end - len(f.ids):end], f"{where}: not the {len(f.ids)} messages right before it"
            assert f.has_more == (f.ids[0] != ids[0]), f"{where}: {f.describe()}"
            got = f.ids + got
        assert got == ids, f"{name}: join + pages did not give every message exactly once, in order"
    PROGRESS[name] = "connecting to resume"
    async with connect(f"{url}?username={name}&since={ids[0]}", **CLIENT) as ws:
        assert (await recv_frame(ws)).type == "connected"
        resumed: list[str] = []
        frames = 0
        while True:
            PROGRESS[name] = f"waiting for resume frame {frames} ({len(resumed)} messages so far)"
            f = await next_history(ws, f"{name} resume")  # presence about other readers may come in between
            assert isinstance(f, Frame), f"{name} resume: {f}"
            check_history(f, "resume", ids, f"{name} resume frame {frames}")
            frames += 1
            resumed += f.ids
            if not f.has_more:
                break
            assert frames <= 2 * n, f"{name} resume: {frames} frames and still hasMore"
        assert resumed == ids[1:], (
            f"{name} resume: {len(resumed)} messages in {frames} frames, not exactly the {n - 1} after the first, in order"
        )
    PROGRESS[name] = "done"


async def test_one_reader_gets_everything_in_bounded_frames(served):
    async def work() -> str:
        await read_everything(served.url, served.ids, "solo")
        return f"one reader: {2 * N_MESSAGES - 1} messages"

    await under_budget(served, work())


async def test_ten_readers_at_once_within_the_same_bounds(served):
    async def work() -> str:
        await asyncio.gather(*(read_everything(served.url, served.ids, f"reader{k}") for k in range(READERS)))
        return f"{READERS} readers: {READERS * (2 * N_MESSAGES - 1)} messages"

    await under_budget(served, work())
