"""Hostile text that a careless server passes through raw is still inert on screen.

The real server strips escape sequences itself, so to show the TUI's own
defence these tests hand the app the Messages its network worker would post
for such a server (the app's only input seam), then read the screen.
"""

from __future__ import annotations

from workspace_tui.client.events import ConnectionState
from workspace_tui.protocol import ChatMessage, Limits, RosterEntry, user_id_for
from workspace_tui.tui import messages as m
from workspace_tui.tui.app import ChatApp

from .conftest import Harness, screen_text, wait_until

EVIL_NAME = "[bold red]mallory[/]\x1b[2J"
RAW = [
    "[bold]x[/]",
    "[@click=app.quit]quit[/]",
    "[link=http://e]link[/]",
    "wipe\x1b[2J\x1b[Hscreen",
    "clip\x1b]52;c;aGVsbG8=\x07board",
    "osc8 \x1b]8;;http://evil\x1b\\text\x1b]8;;\x1b\\ end",
    "c1\x9b31mred\x9b0m and bidi \u202eevil",
    "zero\u200bwidth\u2060 and " + "".join(chr(0xE0000 + ord(c)) for c in "hidden") + "tags\u3164",
]


async def test_raw_escape_sequences_and_markup_are_inert():
    app = ChatApp("ws://127.0.0.1:1/ws", "alice", connect=False, auto_away_minutes=0)
    async with app.run_test(size=(110, 30)) as pilot:
        app.post_message(m.ConnectionChanged(ConnectionState.CONNECTED))
        app.post_message(
            m.ChatJoined(
                user_id_for("alice"),
                "alice",
                (RosterEntry(user_id_for("alice"), "alice", "online"), RosterEntry("user_evil", EVIL_NAME, "online")),
                Limits(),
            )
        )
        for i, text in enumerate(RAW):
            msg = ChatMessage(f"msg_{1736935200000 + i:013d}_000000", "user_evil", EVIL_NAME, text, "2025-01-15T09:00:00.000Z")
            app.post_message(m.ChatMessageReceived(msg))
        app.post_message(m.TypingUpdated("user_evil", EVIL_NAME, True))
        app.post_message(m.ServerErrorReceived("x[bold]", "[@click=app.quit]boom[/]\x1b[2J"))
        await wait_until(pilot, lambda: app.message_list.message_count == len(RAW))
        await pilot.pause()
        shown = screen_text(app)
        for literal in ("[bold]x[/]", "[@click=app.quit]quit[/]", "[link=http://e]link[/]", "wipescreen", "clipboard",
                        "osc8 text end", "c1red and bidi evil", "zerowidth and tags"):
            assert literal in shown, literal
        assert "[bold red]mallory[/]" in shown  # the name, literally, in the list, roster and typing line
        assert "[bold red]mallory[/] is typing…" in shown
        assert not any(ch in shown for ch in "\x1b\x9b\x9d\x07\u202e\u200b\u2060\u3164\U000e0068")
        assert app.is_running


async def test_network_events_while_help_is_open(harness: Harness):
    bob = await harness.client("bob")
    app = harness.app("alice")
    async with app.run_test(size=(110, 30)) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await pilot.press("f1")
        await pilot.pause()
        await bob.send("while you read the help")
        await bob.set_presence("away")
        await wait_until(pilot, lambda: app.message_list.message_count == 1)
        await pilot.press("escape")
        await wait_until(pilot, lambda: "while you read the help" in screen_text(app))
        # ? in the empty input is a question mark (F1 is help: tests/tui/test_wrap_and_input.py)
        await pilot.press("question_mark")
        assert app.chat_input.text == "?"
