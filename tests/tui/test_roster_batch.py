"""The roster after a burst of joins and leaves, which the server sends as presence:batch (and,
past the roster cap, as "read the roster again"): driven with Pilot against a real server."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect

from workspace_tui.client.events import ConnectionState
from workspace_tui.core.presence import Presence

from .conftest import Harness, screen_text, wait_until

SIZE = (110, 40)


def names(app) -> set[str]:
    return {m.username for m in app.roster.members.values() if m.status != "offline"}


async def burst(harness: Harness, names_: list[str]) -> list:
    """Raw workspace.v1 connections, opened all at once (as after a server restart)."""
    async def one(name: str):
        ws = await connect(f"ws://127.0.0.1:{harness.port}/ws?username={name}", subprotocols=["workspace.v1"],
                           open_timeout=10)
        await ws.recv()  # connected
        return ws

    return list(await asyncio.gather(*(one(n) for n in names_)))


async def test_the_roster_follows_a_burst_of_joins_and_leaves(tmp_path):
    harness = Harness(tmp_path, rate_limit=0, address_limits=False)
    await harness.start()
    app = harness.app("alice")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
            crowd = [f"u{i:02}" for i in range(40)]
            conns = await burst(harness, crowd)
            await wait_until(pilot, lambda: names(app) == {"alice", *crowd}, what="everyone in the roster",
                             detail=lambda: sorted(names(app)))
            await wait_until(pilot, lambda: "41 here" in screen_text(app), what="the header's count",
                             detail=lambda: screen_text(app))
            await asyncio.gather(*(ws.close() for ws in conns))
            await wait_until(pilot, lambda: names(app) == {"alice"}, what="everyone gone",
                             detail=lambda: sorted(names(app)))
    finally:
        await harness.stop()


async def test_past_the_cap_the_roster_is_read_again(tmp_path, monkeypatch):
    monkeypatch.setattr(Presence, "ROSTER_CAP", 5)  # a batch lists at most 5 users, `connected` too
    harness = Harness(tmp_path, rate_limit=0, address_limits=False, frame_rate=0)
    await harness.start()
    app = harness.app("alice")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
            crowd = [f"u{i:02}" for i in range(20)]
            conns = await burst(harness, crowd)
            await wait_until(pilot, lambda: names(app) == {"alice", *crowd}, what="everyone, read again",
                             detail=lambda: sorted(names(app)))
            assert "alice (you)" in screen_text(app)
            await asyncio.gather(*(ws.close() for ws in conns))
            await wait_until(pilot, lambda: names(app) == {"alice"}, what="everyone gone, read again",
                             detail=lambda: sorted(names(app)))
    finally:
        await harness.stop()
