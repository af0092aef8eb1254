"""Rooms in the chat against a real server: sidebar, switcher, room keys, slash commands,
completion, notifications. Other users are real ChatClients; nothing is mocked."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from workspace_tui.client.events import ConnectionState, MessageReceived, RoomJoined
from workspace_tui.protocol import sanitize_text

from .conftest import Harness, events_of, screen_text, screen_with, wait_until

SIZE = (120, 32)


async def connected(pilot, app) -> None:
    await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")


async def joined(pilot, events, room: str) -> None:
    await wait_until(
        pilot, lambda: any(isinstance(e, RoomJoined) and e.room.room == room for e in events), what=f"joined {room}"
    )


def texts(events) -> list[str]:
    return [e.message.text for e in events if isinstance(e, MessageReceived)]


def sidebar_text(app) -> str:
    return "\n".join(line.strip() for line in str(app.sidebar.render()).splitlines())


async def type_line(pilot, text: str) -> None:
    await pilot.press(*text)
    await pilot.press("enter")


async def test_sidebar_badges_switcher_and_room_keys(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    app = harness.app("alice")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await connected(pilot, app)
        await wait_until(pilot, lambda: not app.sidebar.display, what="one room: no sidebar")
        await type_line(pilot, "/create dev backend talk")
        await wait_until(pilot, lambda: app.current_room == "dev", what="switched to the new room")
        assert app.sidebar.display  # two rooms now: the sidebar shows
        await wait_until(pilot, lambda: screen_with(app, "#dev", "backend talk"), what="room title and topic")
        await bob.join_room("dev")
        await joined(pilot, bob_events, "dev")
        # The roster shows the room's members: bob arrives by room:member.
        await wait_until(pilot, lambda: {m.username for m in app.roster.members.values()} == {"alice", "bob"})
        await pilot.press("alt+up")  # previous room: general
        assert app.current_room == "general"
        await bob.send("hello dev", room="dev")
        await bob.send("@alice have a look", room="dev")
        await bob.send("psst", to=["alice"])
        await wait_until(pilot, lambda: "#dev 2 @1" in sidebar_text(app), what="unread and mention badge",
                         detail=lambda: sidebar_text(app))
        await wait_until(pilot, lambda: "@ bob 1" in sidebar_text(app), what="DM with its unread count")
        assert "hello dev" not in screen_text(app)  # general shows general's messages only
        # Next unread: mentions first.
        await pilot.press("alt+shift+down")
        assert app.current_room == "dev"
        await wait_until(pilot, lambda: screen_with(app, "bob │ hello dev", "bob │ @alice have a look"))
        await wait_until(pilot, lambda: "▌#dev" in sidebar_text(app).splitlines(), what="read: the badges go",
                         detail=lambda: sidebar_text(app))
        # Ctrl+K, fuzzy: "bo" finds the DM with bob.
        await pilot.press("ctrl+k")
        await pilot.press("b", "o", "enter")
        await wait_until(pilot, lambda: app.current_room == "dm:alice,bob", what="switched to the DM")
        await wait_until(pilot, lambda: screen_with(app, "bob │ psst"))
        await type_line(pilot, "hi back")
        await wait_until(pilot, lambda: "hi back" in texts(bob_events), what="bob gets the DM reply")
        reply = next(e for e in bob_events if isinstance(e, MessageReceived) and e.message.text == "hi back")
        assert reply.room == "dm:alice,bob"
        # Room keys cycle through the sidebar's order: general, dev, then the DM.
        await pilot.press("alt+down")
        assert app.current_room == "general"
        await pilot.press("ctrl+pagedown")
        assert app.current_room == "dev"
        await pilot.press("ctrl+t")  # the sidebar hides, and comes back
        assert not app.sidebar.display
        await pilot.press("ctrl+t")
        assert app.sidebar.display


async def test_narrow_terminal_hides_the_sidebar_until_toggled(harness: Harness):
    bob = await harness.client("bob")
    app = harness.app("alice")
    async with app.run_test(size=(90, 30)) as pilot:
        await connected(pilot, app)
        await bob.send("psst", to=["alice"])
        await wait_until(pilot, lambda: "dm:alice,bob" in app.rooms.views, what="the DM is known")
        await pilot.pause()
        assert not app.sidebar.display
        await pilot.press("ctrl+t")
        assert app.sidebar.display
        await wait_until(pilot, lambda: screen_with(app, "@ bob"), what="DM in the sidebar")


async def test_unknown_command_is_local_and_double_slash_is_literal(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    app = harness.app("alice")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await connected(pilot, app)
        await type_line(pilot, "/frobnicate now")
        await wait_until(pilot, lambda: screen_with(app, "Unknown command /frobnicate"), what="answered locally", detail=lambda: screen_text(app))
        assert app.chat_input.text == "/frobnicate now"  # given back to fix
        app.chat_input.clear()
        await type_line(pilot, "//shrug")
        await type_line(pilot, "/me waves")
        await wait_until(pilot, lambda: len(texts(bob_events)) >= 2, what="bob gets two messages")
        # Order is kept: had the unknown command been posted, it would come first.
        assert texts(bob_events) == ["/shrug", "/me waves"]
        await wait_until(pilot, lambda: screen_with(app, "alice * waves"), what="an action", detail=lambda: screen_text(app))
        await type_line(pilot, "/who")
        await wait_until(pilot, lambda: screen_with(app, "alice (online)", "bob (online)"), what="/who")
        await type_line(pilot, "/away lunch")
        await wait_until(pilot, lambda: app.status == "away" and screen_with(app, "You are away: lunch"))
        await type_line(pilot, "/msg bob hello there")
        await wait_until(pilot, lambda: "hello there" in texts(bob_events))
        assert app.current_room == "dm:alice,bob"
        # A new DM's members are asked for once the server has made it (room:joined).
        await wait_until(pilot, lambda: {m.username for m in app.roster.members.values()} == {"alice", "bob"},
                         what="the DM's members")
        await type_line(pilot, "/leave")
        await wait_until(pilot, lambda: screen_with(app, "cannot leave general or a direct message"))


async def test_join_leave_and_topic(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    await wait_until_connected(bob)
    await bob.create_room("ops", "incidents")
    app = harness.app("alice")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await connected(pilot, app)
        await joined(pilot, bob_events, "ops")
        await type_line(pilot, "/join #ops")
        await wait_until(pilot, lambda: app.current_room == "ops", what="joined ops")
        await type_line(pilot, "/topic pager rota")
        await wait_until(pilot, lambda: screen_with(app, "#ops", "pager rota"), what="topic shown")
        await type_line(pilot, "/leave")
        await wait_until(pilot, lambda: app.current_room == "general" and "ops" not in app.rooms.views)


async def wait_until_connected(client, timeout: float = 10.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not client.connected:
        assert time.monotonic() < deadline, "client did not connect"
        await asyncio.sleep(0.02)


async def test_tab_completes_names_rooms_and_commands(harness: Harness):
    bob = await harness.client("bob")
    await wait_until_connected(bob)
    await bob.create_room("design")
    app = harness.app("alice")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await connected(pilot, app)
        await wait_until(pilot, lambda: "bob" in {m.username for m in app.roster.members.values()})
        await pilot.press("/", "j", "o", "tab")
        assert app.chat_input.text == "/join "
        await pilot.press(*"#de", "tab")
        assert app.chat_input.text == "/join #de"  # not in design: only rooms we are in
        app.chat_input.clear()
        await pilot.press(*"hi @bo", "tab")
        assert app.chat_input.text == "hi @bob "
        app.chat_input.clear()
        await pilot.press("b", "tab")
        assert app.chat_input.text == "bob: "  # a bare name at the start addresses someone
        app.chat_input.clear()
        await pilot.press(*"#gen", "tab")
        assert app.chat_input.text == "#general "


def fake_notify_send(directory: Path, out: Path) -> None:
    """A real executable named notify-send that appends its arguments to *out*."""
    script = directory / "notify-send"
    # One write per call (O_APPEND): several running at once cannot interleave their lines.
    script.write_text(f'#!/bin/sh\nline=""\nfor a in "$@"; do line="$line$a|"; done\nprintf "%s\\n" "$line" >> {out}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


async def test_notifications_for_dms_mentions_and_highlights_not_muted_or_on_screen(harness: Harness, tmp_path, monkeypatch):
    out = tmp_path / "notified.txt"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake_notify_send(bindir, out)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("WORKSPACE_NOTIFY", "osc777,notify-send")
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    app = harness.app("alice", highlight=["deploy"])
    written: list[str] = []
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await connected(pilot, app)
        driver = app._driver
        real_write = driver.write
        driver.write = lambda data: (written.append(data), real_write(data))  # what goes to the terminal
        await type_line(pilot, "/create dev")
        await wait_until(pilot, lambda: app.current_room == "dev")
        await bob.join_room("dev")
        await joined(pilot, bob_events, "dev")
        await pilot.press("alt+up")
        assert app.current_room == "general"
        await bob.send("@alice in the room you look at")  # on screen, focused: nothing
        await bob.send("the deploy is done", room="dev")  # a highlight word
        await bob.send("psst\u202e evil", to=["alice"])  # a DM (the bidi override never reaches the OSC)
        await bob.send("not for you", room="dev")  # nothing: no mention, no highlight
        await wait_until(pilot, lambda: len(app.notified) >= 2, what="two notifications")
        await pilot.press("alt+down")  # to dev, then mute it
        await type_line(pilot, "/mute")
        await pilot.press("alt+up")
        await bob.send("deploy again", room="dev")  # muted: nothing
        await bob.send("@alice ping", room="dm:alice,bob")  # the DM: notified
        await wait_until(pilot, lambda: len(app.notified) >= 3, what="third notification")
        assert app.notified == [
            ("bob in #dev", "the deploy is done"),
            ("bob", sanitize_text("psst\u202e evil")),  # as the server stored it
            ("bob", "@alice ping"),
        ]
        osc = [w for w in written if w.startswith("\x1b]777;notify;")]
        assert osc[0] == "\x1b]777;notify;workspace: bob in #dev;the deploy is done\x07"
        assert len(osc) == 3 and all("\u202e" not in w and w.count("\x07") == 1 for w in osc)
        await wait_until(pilot, lambda: out.exists() and len(out.read_text().splitlines()) == 3, what="notify-send ran")
        lines = sorted(out.read_text().splitlines())  # the three run side by side: any order in the file
        assert lines == sorted(
            f"--app-name=workspace|--|workspace: {title}|{body}|" for title, body in app.notified
        )
        assert "--app-name=workspace|--|workspace: bob in #dev|the deploy is done|" in lines
        assert "dev" in app.rooms.muted
    # The mute is remembered for the next run.
    again = harness.app("alice")
    async with again.run_test(size=SIZE) as pilot:
        await connected(pilot, again)
        await wait_until(pilot, lambda: "dev" in again.rooms.views)
        assert again.rooms.views["dev"].muted


async def test_unread_from_the_server_on_join(harness: Harness):
    """Counts in the sidebar come from connected.rooms: what arrived while we were away."""
    alice = await harness.client("alice")
    alice_events = events_of(alice)
    await wait_until_connected(alice)
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    await wait_until_connected(bob)
    await bob.create_room("dev")
    await alice.join_room("dev")
    await wait_until_connected(alice)
    import asyncio

    for _ in range(500):
        if any(isinstance(e, RoomJoined) and e.room.room == "dev" for e in alice_events):
            break
        await asyncio.sleep(0.02)
    # The server counts unread from a read position: alice read dev up to "zero" before leaving.
    await bob.send("zero", room="dev")
    for _ in range(500):
        if "zero" in texts(alice_events):
            break
        await asyncio.sleep(0.02)
    zero = next(e.message.id for e in alice_events if isinstance(e, MessageReceived) and e.message.text == "zero")
    await alice.read(zero, room="dev")
    await alice.close()
    harness.clients.remove(alice)
    await bob.send("one", room="dev")
    await bob.send("two @alice", room="dev")
    from .conftest import delivered

    await delivered(bob)
    assert bob_events is not None
    app = harness.app("alice")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await connected(pilot, app)
        await wait_until(pilot, lambda: "#dev 2 @1" in sidebar_text(app), what="the server's counts",
                         detail=lambda: sidebar_text(app))
        assert app.rooms.views["dev"].unread == 2
        await pilot.press("alt+down")
        await wait_until(pilot, lambda: screen_with(app, "bob │ one", "bob │ two @alice"), what="history of dev")


async def test_a_direct_message_to_a_name_nobody_proved_says_so(harness: Harness):
    app = harness.app("alice")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await connected(pilot, app)
        await type_line(pilot, "/msg ghost are you there?")  # nobody owns "ghost" on this server
        await wait_until(pilot, lambda: screen_with(app, "ghost has not proved the name"), what="the warning",
                         detail=lambda: screen_text(app))
