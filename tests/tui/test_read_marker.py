"""The "new messages" line from the server's read position, driven with Pilot and typed Messages.

No client here (``connect=False``): the app is fed what the network worker would post, so
the placement rules are checked on their own. tests/tui/test_reads_live.py does the same
against a real server.
"""

from __future__ import annotations

from pathlib import Path

from textual import events

from workspace_tui.client.events import ConnectionState, RoomSummary
from workspace_tui.protocol import ChatMessage, Limits, RosterEntry, user_id_for
from workspace_tui.tui import messages as m
from workspace_tui.tui import app as app_module
from workspace_tui.tui.app import ChatApp

from .conftest import screen_text, wait_until

SIZE = (100, 24)


def msg(n: int, user: str, text: str = "") -> ChatMessage:
    return ChatMessage(f"msg_{1736935200000 + n:013d}_000000", user_id_for(user), user, text or f"line {n}",
                       "2025-01-15T09:00:00.000Z")


HISTORY = tuple(msg(i, "alice" if i % 7 == 0 else "bob") for i in range(1, 61))
ROSTER = (RosterEntry(user_id_for("alice"), "alice", "online"), RosterEntry(user_id_for("bob"), "bob", "online"))


class RecordingApp(ChatApp):
    """The chat app, recording each MarkRead the message list posts (no client to pass it to)."""

    CSS_PATH = Path(app_module.__file__).parent / "chat.tcss"  # relative paths resolve from this file

    def __init__(self) -> None:
        super().__init__("ws://chat.example:4000/ws", "alice", connect=False, auto_away_minutes=0)
        self.reported: list[str] = []

    async def on_mark_read(self, message: m.MarkRead) -> None:
        self.reported.append(message.message_id)


def app_for_test() -> tuple[ChatApp, list[str]]:
    app = RecordingApp()
    return app, app.reported


async def join(app: ChatApp, pilot, rooms: tuple[RoomSummary, ...], history=HISTORY, resumed: bool = False) -> None:
    app.chat_input.cursor_blink = False
    app.post_message(m.ConnectionChanged(ConnectionState.CONNECTED, attempt=1))
    app.post_message(m.ChatJoined(user_id_for("alice"), "alice", ROSTER, Limits(), resumed, rooms=rooms))
    app.post_message(m.HistoryLoaded(history, "join", has_more=False))
    await pilot.pause()
    await pilot.pause()


async def test_the_line_sits_where_reading_stopped_and_the_view_opens_there():
    app, reported = app_for_test()
    async with app.run_test(size=SIZE) as pilot:
        stopped = HISTORY[29].id  # 30 unread below: more than fits
        await join(app, pilot, (RoomSummary("general", stopped, 26, 2, HISTORY[-1].id),))
        ml = app.message_list
        await wait_until(pilot, lambda: ml.marker_after == stopped, what="marker after lastRead")
        text = screen_text(app)
        assert "new messages" in text and "line 31" in text  # the view opens at the line
        assert "line 60" not in text
        assert "↓ 26 new messages, 2 mentions" in text  # the server's counts, until the bottom
        assert reported == []  # the newest is not in view: not read
        app.action_jump_to_bottom()
        await wait_until(pilot, lambda: reported == [HISTORY[-1].id], what="read reported at the bottom")
        await wait_until(pilot, lambda: "↓" not in screen_text(app), what="the count gone")
        assert ml.marker_after == stopped  # reading here leaves the line where it was


async def test_a_short_unread_part_keeps_the_view_at_the_bottom():
    app, reported = app_for_test()
    async with app.run_test(size=SIZE) as pilot:
        await join(app, pilot, (RoomSummary("general", HISTORY[-4].id, 3, 0, HISTORY[-1].id),))
        await wait_until(pilot, lambda: reported == [HISTORY[-1].id], what="read reported")
        text = screen_text(app)
        assert "new messages" in text and "line 60" in text


async def test_nothing_unread_no_line():
    app, _ = app_for_test()
    async with app.run_test(size=SIZE) as pilot:
        await join(app, pilot, (RoomSummary("general", HISTORY[-1].id, 0, 0, HISTORY[-1].id),))
        await pilot.pause()
        assert app.message_list.marker_after is None and "new messages" not in screen_text(app)
    app, _ = app_for_test()
    async with app.run_test(size=SIZE) as pilot:
        await join(app, pilot, (RoomSummary("general", None, 0, 0, HISTORY[-1].id),))  # never read anything
        await pilot.pause()
        assert app.message_list.marker_after is None


async def test_reading_elsewhere_moves_the_line_and_the_count():
    app, _ = app_for_test()
    async with app.run_test(size=SIZE) as pilot:
        await join(app, pilot, (RoomSummary("general", HISTORY[29].id, 26, 0, HISTORY[-1].id),))
        ml = app.message_list
        await wait_until(pilot, lambda: ml.marker_after == HISTORY[29].id)
        app.post_message(m.ReadElsewhere("general", HISTORY[49].id))
        await wait_until(pilot, lambda: ml.marker_after == HISTORY[49].id, what="line moved")
        assert 0 < ml.unseen <= 10
        app.post_message(m.ReadElsewhere("dev", HISTORY[-1].id))  # another room: not this list
        await pilot.pause()
        assert ml.marker_after == HISTORY[49].id
        app.post_message(m.ReadElsewhere("general", HISTORY[-1].id))
        await wait_until(pilot, lambda: ml.marker_after is None and ml.unseen == 0, what="line gone")
        await wait_until(pilot, lambda: "new messages" not in screen_text(app))


async def test_an_older_position_elsewhere_does_not_move_the_line_back():
    app, _ = app_for_test()
    async with app.run_test(size=SIZE) as pilot:
        await join(app, pilot, (RoomSummary("general", HISTORY[49].id, 9, 0, HISTORY[-1].id),))
        ml = app.message_list
        await wait_until(pilot, lambda: ml.marker_after == HISTORY[49].id)
        app.post_message(m.ReadElsewhere("general", HISTORY[10].id))
        await pilot.pause()
        assert ml.marker_after == HISTORY[49].id


async def test_an_unfocused_window_does_not_report_reading():
    app = ChatApp("ws://chat.example:4000/ws", "alice", connect=False, auto_away_minutes=0)
    async with app.run_test(size=SIZE) as pilot:
        read: list[str] = []

        class Client:  # only what _report_read touches: the app's side of the contract
            queued = 0

            async def read(self, message_id: str) -> bool:
                read.append(message_id)
                return True

        app.client = Client()
        app.app_focus = False
        await join(app, pilot, (RoomSummary("general", HISTORY[-4].id, 3, 0, HISTORY[-1].id),))
        await wait_until(pilot, lambda: app.message_list.at_newest())
        await pilot.pause()
        assert read == []
        app.post_message(events.AppFocus())
        await wait_until(pilot, lambda: read == [HISTORY[-1].id], what="read once focused")
