"""How fast the chat app is with a big history and a burst, and what it costs in memory.

    python benchmarks/tui_bench.py [--history 10000] [--burst 1000]

Everything is real: an embedded server on a free port with a SQLite store in a
temporary directory, the real client, the real ``ChatApp`` driven headless by
Textual's Pilot (110x32). Figures:

* history: the store holds N messages and the server sends all of them in the
  join frame (``history=N``); time from starting the app to the list holding
  N messages with the last one on screen, and to a key press showing up in
  the input (usable);
* the usual join: the store holds N messages, the server sends the usual 100
  on join; time from starting the app until a key press shows up (usable),
  then for one older page;
* burst: another user (same process, real client) sends M messages as fast as
  its outbox and the server take them; time from the first send until all M
  are on screen, from the first to the last arriving on screen, the worst
  event-loop stall seen meanwhile (sender, server and app share the loop), and
  a key press echo time in the middle of it;
* memory: traced Python allocations of the app with N messages, and the
  number of widgets (constant: the list renders only visible lines), from a
  second run of the history case: tracing allocations slows Python down
  several times, so no time is taken while it is on.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path


async def wait_until(pilot, condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            import inspect

            raise SystemExit("timed out waiting for: " + inspect.getsource(condition).strip())
        await pilot.pause(0.005)


class LoopLag:
    """The worst delay of a 10 ms ticker: how long the event loop was busy at once."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.samples: list[float] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lag = time.perf_counter() - t - 0.01
            self.samples.append(lag)
            self.worst = max(self.worst, lag)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def seed(db: Path, n: int) -> None:
    from workspace_tui.backends.sqlite import SQLiteBackend

    store = SQLiteBackend(db)
    names = ["bob", "carol", "dave", "erin"]
    batch = []
    for i in range(n):
        name = names[i % len(names)]
        batch.append(store.new_message(name, f"history message {i} " + "lorem ipsum " * (i % 8)))
        if len(batch) == 1000:
            store.insert(batch)
            batch = []
    if batch:
        store.insert(batch)
    store.shut()


async def key_echo(app, pilot) -> float:
    """Seconds from a key event reaching the app to the character being in the input.

    Posted straight to the app (as the driver does) and polled with plain
    sleeps: ``pilot.press`` waits for the whole app to go idle, which during a
    burst measures the burst, not the input.
    """
    from textual import events

    before = app.chat_input.text
    t = time.perf_counter()
    app.post_message(events.Key("z", "z"))
    while app.chat_input.text == before:
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - t
    app.chat_input.clear()
    return elapsed


async def history_join(app_class, url: str, history: int, *, traced: bool = False) -> dict[str, float]:
    """Start the app against a server that sends *history* messages on join."""
    out: dict[str, float] = {}
    if traced:
        tracemalloc.start()
        base_mem = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    app = app_class(url, "alice", bell=False, auto_away_minutes=0)
    async with app.run_test(size=(110, 32)) as pilot:
        started = time.perf_counter() - t0
        await wait_until(pilot, lambda: app.user_id is not None)
        joined = time.perf_counter() - t0
        # The join frame holds the newest messages that fit in ~512 KiB, not necessarily all.
        await wait_until(pilot, lambda: app.message_list.message_count >= min(history, 1000))
        in_list = time.perf_counter() - t0
        out["history_in_join_frame"] = app.message_list.message_count
        await wait_until(pilot, lambda: f"history message {history - 1} " in app.message_list.rendered_tail())
        shown = time.perf_counter() - t0
        echo = await key_echo(app, pilot)
        usable = time.perf_counter() - t0
        if traced:
            gc.collect()
            out["history_traced_mb"] = (tracemalloc.get_traced_memory()[0] - base_mem) / 1e6
            out["widgets"] = len(list(app.screen.walk_children()))
            tracemalloc.stop()
            return out
        out.update(app_started_s=started, joined_s=joined, history_in_list_s=in_list, history_shown_s=shown,
                   history_key_echo_s=echo, history_usable_s=usable)
        # scroll from bottom to top and back: render cost of visible lines only
        t = time.perf_counter()
        app.message_list.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        app.message_list.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        out["scroll_top_and_back_s"] = time.perf_counter() - t
    return out


async def bench(history: int, burst: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="workspace-bench-"))
    os.environ["WORKSPACE_DATA_DIR"] = str(tmp / "data")
    os.environ["WORKSPACE_CONFIG_DIR"] = str(tmp / "config")
    from workspace_tui.client import ChatClient
    from workspace_tui.server import ServerConfig, start_server
    from workspace_tui.tui.app import ChatApp

    out: dict[str, float] = {}
    db = tmp / "server.sqlite3"
    seed(db, history)

    # 1. the whole history in the join frame: timed, then again with tracemalloc on for the
    # memory figure (tracing allocations makes Python code several times slower)
    server = await start_server(ServerConfig(port=0, db_path=db, rate_limit=0, history=history))
    out.update(await history_join(ChatApp, server.url, history))
    out.update(await history_join(ChatApp, server.url, history, traced=True))
    await server.close()

    # 2. an older page, and 3. a burst, with the usual join size
    server = await start_server(ServerConfig(port=0, db_path=db, rate_limit=0, history=100, frame_rate=0))
    bob = ChatClient(server.url, "bob")
    await bob.start()
    t0 = time.perf_counter()
    app = ChatApp(server.url, "alice", bell=False, auto_away_minutes=0)
    async with app.run_test(size=(110, 32)) as pilot:
        await wait_until(pilot, lambda: app.message_list.message_count >= 100)
        await key_echo(app, pilot)
        out["store_usable_s"] = time.perf_counter() - t0
        count = app.message_list.message_count
        t = time.perf_counter()
        app.message_list.scroll_home(animate=False, immediate=True)
        await wait_until(pilot, lambda: app.message_list.message_count > count)
        out["older_page_s"] = time.perf_counter() - t
        app.message_list.jump_to_bottom()
        await pilot.pause()
        start_count = app.message_list.message_count
        with LoopLag() as lag:
            t = time.perf_counter()
            for i in range(burst):
                await bob.send(f"burst {i}")
            out["burst_enqueue_s"] = time.perf_counter() - t
            echo = await key_echo(app, pilot)
            await wait_until(pilot, lambda: app.message_list.message_count > start_count)
            first_seen = time.perf_counter()
            await wait_until(pilot, lambda: app.message_list.message_count >= start_count + burst)
            await wait_until(pilot, lambda: f"burst {burst - 1}" in app.message_list.rendered_tail())
            out["burst_shown_s"] = time.perf_counter() - t
            out["burst_first_to_last_shown_s"] = time.perf_counter() - first_seen
        out["burst_key_echo_s"] = echo
        out["burst_worst_loop_stall_ms"] = lag.worst * 1000
        out["burst_median_loop_lag_ms"] = statistics.median(lag.samples) * 1000 if lag.samples else 0.0
    await bob.close()
    await server.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=1_000)
    args = parser.parse_args()
    figures = asyncio.run(bench(args.history, args.burst))
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:10.3f}")


if __name__ == "__main__":
    main()
