"""SVG snapshots guarding the layout, with fixed content, times and colours.

The app is built without a client (``connect=False``) and fed the same typed
Messages the network worker would post, so every run draws the same picture.
Snapshots live in ``tests/tui/snapshots/``; after an intended change, rerun with
``TUI_SNAPSHOT_UPDATE=1`` and review the new SVGs (open them in a browser).

pytest-textual-snapshot is not used: its pinned syrupy (4.8.0) requires
pytest<9, which clashes with our pytest pin. This is the same idea in 20 lines.
"""

from __future__ import annotations

import difflib
import os
import re
import time
from pathlib import Path

import pytest

from workspace_tui.client.events import ConnectionState, OutboxEntry
from workspace_tui.protocol import ChatMessage, Limits, RosterEntry, user_id_for
from workspace_tui.tui import messages as m
from workspace_tui.tui.app import ChatApp

SNAPSHOTS = Path(__file__).parent / "snapshots"
SIZE = (100, 28)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def assert_snapshot(app: ChatApp, name: str) -> None:
    svg = app.export_screenshot(title="workspace")
    path = SNAPSHOTS / f"{name}.svg"
    if os.environ.get("TUI_SNAPSHOT_UPDATE") or not path.exists():
        if not os.environ.get("TUI_SNAPSHOT_UPDATE"):
            pytest.fail(f"no snapshot {path.name}; run with TUI_SNAPSHOT_UPDATE=1 to create it")
        path.write_text(svg, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    if svg != expected:
        text = lambda s: re.findall(r">([^<]+)</text>", s)  # noqa: E731
        diff = "\n".join(list(difflib.unified_diff(text(expected), text(svg), lineterm=""))[:40])
        pytest.fail(f"snapshot {path.name} differs (TUI_SNAPSHOT_UPDATE=1 to accept):\n{diff}")


def msg(n: int, user: str, text: str, ts: str) -> ChatMessage:
    return ChatMessage(f"msg_{1736935200000 + n:013d}_000000", user_id_for(user), user, text, ts)


CONVERSATION = [
    msg(1, "bob", "morning! is the deploy still on for today?", "2025-01-14T16:58:00.000Z"),
    msg(2, "alice", "yes, after lunch", "2025-01-14T17:02:00.000Z"),
    msg(3, "carol", "I pushed the migration fix, can someone review? It touches the outbox table and "
        "the resume logic, so a second pair of eyes would help.", "2025-01-15T09:12:00.000Z"),
    msg(4, "bob", "on it @alice can you check the [bold]markup[/] case too?", "2025-01-15T09:13:00.000Z"),
    msg(5, "alice", "sure\nline two of a multi-line message", "2025-01-15T09:15:00.000Z"),
]
ROSTER = (
    RosterEntry(user_id_for("alice"), "alice", "online"),
    RosterEntry(user_id_for("bob"), "bob", "online", 2),
    RosterEntry(user_id_for("carol"), "carol", "busy"),
    RosterEntry(user_id_for("dave"), "dave", "away"),
)


async def _feed(app: ChatApp, pilot, *extra: m.Message) -> None:
    app.chat_input.cursor_blink = False
    app.post_message(m.ChatJoined(user_id_for("alice"), "alice", ROSTER, Limits()))
    app.post_message(m.HistoryLoaded(tuple(CONVERSATION), "join", has_more=False))
    for message in extra:
        app.post_message(message)
    await pilot.pause()
    await pilot.pause()


async def test_snapshot_conversation():
    app = ChatApp("ws://chat.example:4000/ws", "alice", connect=False, auto_away_minutes=0)
    async with app.run_test(size=SIZE) as pilot:
        await _feed(
            app,
            pilot,
            m.ConnectionChanged(ConnectionState.CONNECTED, attempt=1),
            m.TypingUpdated(user_id_for("carol"), "carol", True),
            m.TypingUpdated(user_id_for("bob"), "bob", True),
        )
        assert_snapshot(app, "conversation")


async def test_snapshot_reconnecting_with_queue():
    app = ChatApp("ws://chat.example:4000/ws", "alice", connect=False, auto_away_minutes=0)
    async with app.run_test(size=SIZE) as pilot:
        await _feed(
            app,
            pilot,
            m.ConnectionChanged(ConnectionState.RECONNECTING, attempt=3, delay=None, reason="connection lost", queued=2),
            m.OwnMessagePending(OutboxEntry("c1", "are you seeing this?", "2025-01-15T09:20:00.000Z")),
            m.OwnMessagePending(OutboxEntry("c2", "the server seems down", "2025-01-15T09:21:00.000Z")),
            m.OwnMessageFailed(
                OutboxEntry("c0", "x" * 20, "2025-01-15T09:19:00.000Z", True, "message is too large"),
                "too_large",
                "message is too large",
            ),
        )
        app.status_bar.set_queued(2)
        await pilot.pause()
        assert_snapshot(app, "reconnecting")


async def test_snapshot_help_screen():
    app = ChatApp("ws://chat.example:4000/ws", "alice", connect=False, auto_away_minutes=0)
    async with app.run_test(size=SIZE) as pilot:
        await _feed(app, pilot, m.ConnectionChanged(ConnectionState.CONNECTED))
        await pilot.press("f1")
        await pilot.pause()
        assert_snapshot(app, "help")


async def test_snapshot_join_screen():
    app = ChatApp("ws://chat.example:4000/ws", None, default_username="alice", connect=True, auto_away_minutes=0)
    app.client_factory = None  # type: ignore[assignment]  # never reached: we do not submit the form
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert_snapshot(app, "join")


async def test_snapshot_rooms_sidebar():
    """Rooms, a DM and unread badges (the sidebar shows once there is more than general)."""
    from workspace_tui.client.reads import RoomSummary

    app = ChatApp("ws://chat.example:4000/ws", "alice", connect=False, auto_away_minutes=0)
    rooms = (
        RoomSummary("general", None, 0, 0),
        RoomSummary("dev", None, 3, 0, kind="public", topic="backend and deploys"),
        RoomSummary("ops", None, 0, 0, kind="private", topic="incidents"),
        RoomSummary("dm:alice,bob", None, 2, 1, kind="dm", with_=("bob",)),
    )
    async with app.run_test(size=(120, 28)) as pilot:
        app.chat_input.cursor_blink = False
        app.post_message(m.ChatJoined(user_id_for("alice"), "alice", ROSTER, Limits(), rooms=rooms))
        app.post_message(m.HistoryLoaded(tuple(CONVERSATION), "join", has_more=False))
        app.post_message(m.ConnectionChanged(ConnectionState.CONNECTED, attempt=1))
        await pilot.pause()
        await pilot.pause()
        assert_snapshot(app, "rooms")
