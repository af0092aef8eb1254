"""Read positions kept by the server, in the chat app against a real server, driven with Pilot.

The user's other window is a real ChatClient of the same name: what it reads clears the
app's line, what the app reads reaches it, and a restarted app opens where reading stopped.
"""

from __future__ import annotations

from workspace_tui.client import ChatClient, HistoryReceived, Joined, MessageAcknowledged, ReadPositionChanged
from workspace_tui.client.events import ConnectionState

from .conftest import Harness, delivered, events_of, screen_text, wait_until

SIZE = (100, 24)


async def seed(bob: ChatClient, seen: list, texts: list[str]) -> list[str]:
    """Bob's messages, stored: their ids in order (``seen``: bob's events, from events_of)."""
    for text in texts:
        await bob.send(text)
    await delivered(bob)
    acks = {e.message.text: e.message.id for e in seen if isinstance(e, MessageAcknowledged)}
    return [acks[t] for t in texts]


async def joined(client: ChatClient) -> None:
    import asyncio

    for _ in range(500):
        if client.connected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{client.username} did not connect")


def read_positions(events: list) -> list[str]:
    return [e.message_id for e in events if isinstance(e, ReadPositionChanged) and e.room == "general"]


async def test_other_window_read_clears_the_line_and_ours_reaches_it(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    ids = await seed(bob, bob_events, [f"bob line {i}" for i in range(1, 41)])
    window = await harness.client("alice")  # alice's other window (or device)
    window_events = events_of(window)
    await joined(window)
    assert await window.read(ids[9])  # she had read up to line 10 there
    await stored(window, window_events)
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        ml = app.message_list
        await wait_until(pilot, lambda: ml.marker_after == ids[9], what="line after line 10", detail=lambda: ml.marker_after)
        text = await wait_until(pilot, lambda: "↓ 30 new messages" in (t := screen_text(app)) and t, what="count")
        assert "new messages ─" in text and "bob line 11" in text and "bob line 40" not in text

        assert await window.read(ids[-1])  # read to the end in the other window
        await wait_until(pilot, lambda: ml.marker_after is None, what="line cleared by the other window")
        await wait_until(pilot, lambda: "↓" not in screen_text(app) and "new messages ─" not in screen_text(app))

        more = await seed(bob, bob_events, ["bob after"])
        await wait_until(pilot, lambda: ml.newest_id == more[0])
        app.action_jump_to_bottom()  # focused and at the bottom: read
        await wait_until(pilot, lambda: more[0] in read_positions(window_events), what="the window hears our read")
        assert window.last_read == more[0]


async def test_a_restart_opens_at_the_line_where_reading_stopped(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    first = await seed(bob, bob_events, [f"early {i}" for i in range(1, 6)])
    watcher = await harness.client("alice")  # sees the app's read land on the server
    watched = events_of(watcher)
    await joined(watcher)
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await wait_until(pilot, lambda: app.message_list.newest_id == first[-1])
        await wait_until(pilot, lambda: first[-1] in read_positions(watched), what="read at the bottom on join")

    later = await seed(bob, bob_events, [f"later {i}" for i in range(1, 31)] + ["ping @alice"])
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        ml = app.message_list
        await wait_until(pilot, lambda: ml.marker_after == first[-1], what="line where she stopped",
                         detail=lambda: ml.marker_after)
        text = await wait_until(pilot, lambda: "new messages ─" in (t := screen_text(app)) and t)
        assert "later 1" in text and "ping @alice" not in text  # opened at the line, not at the bottom
        assert "↓ 31 new messages, 1 mention" in text
        app.action_jump_to_bottom()
        await wait_until(pilot, lambda: "↓" not in screen_text(app))
        await wait_until(pilot, lambda: later[-1] in read_positions(watched), what="read stored")
    # ... and that reading is stored: a third start has no line.
    again = await harness.client("alice")
    seen = events_of(again)
    await wait_until_event(seen, Joined)
    summary = next(r for r in next(e for e in seen if isinstance(e, Joined)).rooms if r.room == "general")
    assert summary.last_read == later[-1] and summary.unread == 0


async def wait_until_event(events: list, kind: type, timeout: float = 10.0) -> None:
    import asyncio

    for _ in range(int(timeout / 0.02)):
        if any(isinstance(e, kind) for e in events):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {kind.__name__}")


async def stored(client: ChatClient, events: list) -> None:
    """Everything *client* sent before now has been handled by the server (frames are handled in order)."""
    pages = sum(isinstance(e, HistoryReceived) and e.reason == "page" for e in events)
    assert await client.request_history(limit=1)
    import asyncio

    for _ in range(500):
        if sum(isinstance(e, HistoryReceived) and e.reason == "page" for e in events) > pages:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no answer to a history request")
