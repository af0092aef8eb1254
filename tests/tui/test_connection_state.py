"""The chat says what the connection is doing and why: your status across windows, a refused
connection and the key to reconnect now, sends paced by the rate limit, quitting with a queue.

Real server on 127.0.0.1 (port 0, SQLite in tmp_path), real clients, the app driven with Pilot.
"""

from __future__ import annotations

import socket
from pathlib import Path

from workspace_tui.client import ChatClient
from workspace_tui.client.events import ConnectionState, Joined, PresenceChanged
from workspace_tui.protocol import user_id_for

from .conftest import Harness, delivered, events_of, screen_text, screen_with, wait_until

SIZE = (110, 32)
SMALL = (80, 24)


def other_window(harness: Harness, tmp_path: Path, username: str = "alice", **kwargs) -> ChatClient:
    """Another window of the same user (its own outbox file, so it never sends the app's messages)."""
    return ChatClient(harness.url, username, state_path=tmp_path / f"{username}-other.sqlite3", **kwargs)


def slow_factory(url: str, username: str, token: str | None) -> ChatClient:
    """A client that waits long between attempts: 30 s, then 60 s; 60 s after a 429."""
    return ChatClient(url, username, token, backoff_base=30.0, backoff_cap=60.0, rng=lambda: 1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- 2. a status set in one window reaches the others ------------------------------------------


async def test_status_set_in_another_window_shows_here(harness: Harness, tmp_path: Path):
    alice_id = user_id_for("alice")
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
        second = other_window(harness, tmp_path)
        await second.start()
        try:
            await wait_until(pilot, lambda: second.connected, what="second window connected")
            for status, glyph in (("busy", "⊘"), ("away", "◐"), ("offline", "○"), ("online", "●")):
                await second.set_presence(status)
                await wait_until(
                    pilot, lambda: screen_with(app, f"you: {glyph} {status}"),
                    what=f"this window shows {status}", detail=lambda: screen_text(app),
                )
                assert app.status == status and app.roster.status_of(alice_id) == status
            # and the other way round: F4 here reaches the other window's client
            seen = events_of(second)
            await pilot.press("f4")
            await wait_until(
                pilot,
                lambda: any(isinstance(e, PresenceChanged) and e.user_id == alice_id and e.status == "busy" for e in seen),
                what="the other window hears busy",
            )
            await wait_until(pilot, lambda: second.status == "busy", what="the other window's client adopts busy")
        finally:
            await second.close()


async def test_window_opened_while_busy_starts_busy(harness: Harness, tmp_path: Path):
    first = other_window(harness, tmp_path)
    await first.start()
    bob = await harness.client("bob")
    bob_seen = events_of(bob)
    try:
        await first.set_presence("busy")
        # wait until the server has it: bob hears it
        import asyncio
        import time

        deadline = time.monotonic() + 10
        while not any(isinstance(e, PresenceChanged) and e.username == "alice" and e.status == "busy" for e in bob_seen) and not any(
            isinstance(e, Joined) and any(u.username == "alice" and u.status == "busy" for u in e.users) for e in bob_seen
        ):
            assert time.monotonic() < deadline, "bob never saw alice busy"
            await asyncio.sleep(0.02)
        app = harness.app("alice")
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
            await wait_until(pilot, lambda: screen_with(app, "you: ⊘ busy"), detail=lambda: screen_text(app))
            assert app.status == "busy" and app.roster.status_of(user_id_for("alice")) == "busy"
            assert app.client.status == "busy"
            # the new window did not reset the status to online for everyone else
            assert not any(
                isinstance(e, PresenceChanged) and e.username == "alice" and e.status == "online" for e in bob_seen
            )
    finally:
        await first.close()


async def test_window_opened_while_appearing_offline_starts_offline(harness: Harness, tmp_path: Path):
    first = other_window(harness, tmp_path)
    await first.start()
    try:
        import asyncio

        while not first.connected:
            await asyncio.sleep(0.02)
        await first.set_presence("offline")
        app = harness.app("alice")
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
            await wait_until(pilot, lambda: screen_with(app, "you: ○ offline"), detail=lambda: screen_text(app))
            assert app.status == "offline"
    finally:
        await first.close()


async def test_reconnect_restores_the_latest_status_not_a_stale_one(harness: Harness, tmp_path: Path):
    """Busy here, then away in the other window: after a server restart, away it is (not busy again)."""
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
        await pilot.press("f4")
        second = other_window(harness, tmp_path, backoff_base=0.1, backoff_cap=0.5)
        await second.start()
        try:
            await wait_until(pilot, lambda: second.connected and second.status == "busy", what="second adopts busy")
            await second.set_presence("away")
            await wait_until(pilot, lambda: app.status == "away", what="this window follows")
            await harness.stop()
            await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.RECONNECTING)
            await harness.start()
            await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED and second.connected)
            bob = await harness.client("bob")
            bob_seen = events_of(bob)
            await wait_until(
                pilot, lambda: alice_as_seen_by(bob_seen) == "away", what="everyone sees away",
                detail=lambda: alice_as_seen_by(bob_seen),
            )
            await wait_until(pilot, lambda: screen_with(app, "you: ◐ away"), detail=lambda: screen_text(app))
            assert app.client.status == "away" and second.status == "away"
        finally:
            await second.close()


def alice_as_seen_by(events: list) -> str | None:
    """Alice's status as the latest event of another user's client says."""
    status = None
    for e in events:
        if isinstance(e, Joined):
            status = next((u.status for u in e.users if u.username == "alice"), None)
        elif isinstance(e, PresenceChanged) and e.username == "alice":
            status = e.status
    return status


# -- 6. a refused connection says why; a key reconnects now ------------------------------------


async def test_too_many_connections_shows_the_reason_and_reconnect_now(tmp_path: Path):
    harness = Harness(tmp_path, max_connections_per_user=1, rate_limit=0, address_rate_limit=0)
    await harness.start()
    holder = other_window(harness, tmp_path)
    await holder.start()
    from workspace_tui.tui.app import ChatApp

    app = ChatApp(harness.url, "alice", client_factory=slow_factory, auto_away_minutes=0, bell=False)
    try:
        async with app.run_test(size=SMALL) as pilot:
            shown = await wait_until(
                pilot, lambda: screen_with(app, "too many connections", "429"),
                what="the 429 reason", detail=lambda: screen_text(app),
            )
            assert "Reconnecting in" in shown
            assert "^r reconnect now" in shown  # the key, on the status bar
            flat = " ".join(shown.split())
            assert "(the limit is 1 per user)" in flat  # the whole reason: it wraps, it is not cut
            await holder.close()
            await pilot.press("ctrl+r")
            await wait_until(
                pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, timeout=5,
                what="connected at once (the next attempt was 60 s away)",
            )
            await wait_until(pilot, lambda: "too many connections" not in screen_text(app), what="reason gone")
    finally:
        await holder.close()
        await harness.stop()


async def test_wrong_port_says_connection_refused_and_reconnect_now(tmp_path: Path):
    port = free_port()
    harness = Harness(tmp_path, rate_limit=0, address_rate_limit=0)
    harness.port = port
    from workspace_tui.tui.app import ChatApp

    app = ChatApp(f"ws://127.0.0.1:{port}/ws", "alice", client_factory=slow_factory, auto_away_minutes=0, bell=False)
    try:
        async with app.run_test(size=SMALL, notifications=True) as pilot:
            shown = await wait_until(
                pilot, lambda: screen_with(app, "connection refused", "Reconnecting in"),
                what="the reason", detail=lambda: screen_text(app),
            )
            assert "you: ● online" in shown  # still visible at 80 columns
            await harness.start()  # now something listens there
            await pilot.press("ctrl+r")
            await wait_until(
                pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, timeout=5,
                what="connected at once (the next attempt was 30 s away)",
            )
            # Connected: the key says so instead of doing anything
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: screen_with(app, "Already connected"), what="a toast")
    finally:
        await harness.stop()


async def test_reconnect_key_is_remappable_and_in_help(tmp_path: Path):
    from workspace_tui.tui.app import ChatApp
    from workspace_tui.tui.keys import KEY_IDS, check_keymap
    from workspace_tui.tui.screens.help import HelpScreen

    assert "connection.reconnect" in KEY_IDS
    keymap = check_keymap({"connection.reconnect": "f6"})
    app = ChatApp("ws://127.0.0.1:9/ws", "alice", connect=False, auto_away_minutes=0, keymap=keymap)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = await wait_until(pilot, lambda: screen_with(app, "connection.reconnect"), detail=lambda: screen_text(app))
        line = next(line for line in shown.splitlines() if "connection.reconnect" in line)
        assert "f6" in line.lower() and "econnect" in line


# -- 7. paced sends say why and when the next goes; toasts speak plainly -----------------------


async def test_paced_sends_say_why_and_when(tmp_path: Path):
    harness = Harness(tmp_path, rate_limit=2, history=50)
    await harness.start()
    app = harness.app("alice")
    try:
        async with app.run_test(size=SMALL) as pilot:
            await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
            for i in range(4):
                await pilot.press(*f"note {i}", "enter")
            await wait_until(pilot, lambda: app.message_list.message_count == 2, what="the burst of 2 went out")
            shown = await wait_until(
                pilot, lambda: screen_with(app, "2 messages queued", "2 messages a minute", "next in"),
                detail=lambda: screen_text(app),
            )
            line = next(line for line in shown.splitlines() if "next in" in line)
            seconds = int(line.split("next in", 1)[1].split("s")[0])
            assert 20 <= seconds <= 30, line  # one token every 30 s
    finally:
        await harness.stop()


async def test_rate_limited_toast_is_human_text(tmp_path: Path):
    harness = Harness(tmp_path, rate_limit=3, history=50)
    await harness.start()
    other = other_window(harness, tmp_path)
    await other.start()
    app = harness.app("alice")
    try:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
            # the other window spends the user's bucket on the server; this one does not know
            for i in range(3):
                await other.send(f"other {i}")
            await delivered(other)
            await pilot.press(*"mine", "enter")
            shown = await wait_until(
                pilot, lambda: screen_with(app, "Messages paced", "themselves"), what="a plain toast",
                detail=lambda: screen_text(app),
            )
            assert "rate_limited" not in shown
    finally:
        await other.close()
        await harness.stop()


# -- 10. quitting with messages queued asks first ---------------------------------------------


async def test_ctrl_q_with_queued_messages_asks_and_twice_quits(harness: Harness):
    from workspace_tui.tui.screens.quit import QuitScreen

    app = harness.app("alice")
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
        await harness.stop()
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.RECONNECTING)
        for text in ("queued one", "queued two"):
            await pilot.press(*text, "enter")
        await wait_until(pilot, lambda: app.client.queued == 2)
        await pilot.press("ctrl+q")
        await wait_until(
            pilot, lambda: screen_with(app, "2 messages are still queued", "next time you connect", "Quit anyway?"),
            detail=lambda: screen_text(app),
        )
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")  # stay
        await wait_until(pilot, lambda: not isinstance(app.screen, QuitScreen), what="modal closed")
        assert app.is_running and app.client.queued == 2
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), what="asked again")
        await pilot.press("ctrl+q")  # twice quits
        await wait_until(pilot, lambda: not app.is_running, what="quit")
    # kept on disk: a new window finds both in its outbox
    await harness.start()
    again = harness.client_factory(harness.url, "alice", None)
    await again.start()
    try:
        # start() read the outbox from disk; nothing has been sent yet (the connection task has not run)
        assert [e.text for e in again.outbox()] == ["queued one", "queued two"]
        await delivered(again)  # and they went out the next time this user connected
    finally:
        await again.close()


async def test_ctrl_q_with_nothing_queued_quits_at_once(harness: Harness):
    app = harness.app("alice")
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
        await pilot.press(*"sent", "enter")
        await wait_until(pilot, lambda: app.message_list.message_count == 1 and not app.message_list.pending_ids)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running, what="quit at once")
