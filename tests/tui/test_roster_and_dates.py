"""The roster header's counts, and date separators that follow the clock past midnight."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from workspace_tui.protocol import ChatMessage, Limits, RosterEntry, user_id_for
from workspace_tui.tui import messages as m
from workspace_tui.tui.app import ChatApp

SIZE = (100, 28)
ROSTER = (
    RosterEntry(user_id_for("alice"), "alice", "online"),
    RosterEntry(user_id_for("bob"), "bob", "online", 2),
    RosterEntry(user_id_for("carol"), "carol", "busy"),
    RosterEntry(user_id_for("dave"), "dave", "away"),
)


def offline_app() -> ChatApp:
    return ChatApp("ws://chat.example:4000/ws", "alice", connect=False, auto_away_minutes=0)


async def test_roster_header_counts_who_is_here_by_status():
    app = offline_app()
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(m.ChatJoined(user_id_for("alice"), "alice", ROSTER, Limits()))
        await pilot.pause()
        assert app.roster.header().plain == "4 here · 2● 1⊘ 1◐"  # away and busy are here, but told apart
        # dave chooses to appear offline: still listed, no longer counted as here
        app.post_message(m.PresenceUpdated(user_id_for("dave"), "dave", "offline", 1))
        await pilot.pause()
        assert app.roster.header().plain == "3 here · 2● 1⊘ 1○"
        # carol leaves
        app.post_message(m.PresenceUpdated(user_id_for("carol"), "carol", "offline", 0))
        await pilot.pause()
        assert app.roster.header().plain == "2 here · 2● 1○"
        app.roster.set_stale(True)
        assert app.roster.header().plain == "2 here (last known)"


async def test_today_becomes_yesterday_after_midnight():
    now = datetime.now(timezone.utc)
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message = ChatMessage("msg_0000000000001_000000", user_id_for("bob"), "bob", "late night message", stamp)
    app = offline_app()
    async with app.run_test(size=SIZE) as pilot:
        ml = app.message_list
        app.post_message(m.HistoryLoaded((message,), "join", has_more=False))
        await pilot.pause()
        await pilot.pause()
        assert "Today" in ml.rendered_text() and "Yesterday" not in ml.rendered_text()
        ml.now = lambda: datetime.now().astimezone() + timedelta(days=1)  # the clock passes midnight
        ml.refresh_dates()
        await pilot.pause()
        await pilot.pause()
        assert "Yesterday" in ml.rendered_text() and "Today" not in ml.rendered_text()
        assert "late night message" in ml.rendered_text()
