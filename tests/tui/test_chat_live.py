"""The chat app against a real in-process server and real clients, driven with Pilot."""

from __future__ import annotations

import time

from workspace_tui.client.events import ConnectionState, HistoryReceived, Joined, MessageReceived, PresenceChanged
from workspace_tui.protocol import user_id_for

from .conftest import Harness, delivered, events_of, screen_text, screen_with, wait_until

SIZE = (110, 32)


def names(app) -> set[str]:
    return {m.username for m in app.roster.members.values()}


def texts_seen(events: list) -> list[str]:
    """Message texts a client got, live or in a resume page after a reconnect."""
    out: list[str] = []
    for e in events:
        if isinstance(e, MessageReceived):
            out.append(e.message.text)
        elif isinstance(e, HistoryReceived):  # "resume", or "join" when nothing had been seen yet
            out.extend(m.text for m in e.messages)
    return out


async def test_send_and_receive_between_two_clients(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
        await pilot.press(*"hello bob")
        await pilot.press("enter")
        assert app.chat_input.text == ""
        # pending -> acknowledged: the row leaves the pending tail and becomes a stored message
        await wait_until(pilot, lambda: app.message_list.message_count == 1 and not app.message_list.pending_ids)
        await wait_until(
            pilot,
            lambda: any(isinstance(e, MessageReceived) and e.message.text == "hello bob" for e in bob_events),
            what="bob receives alice's message",
        )
        await bob.send("hi alice, welcome")
        await wait_until(pilot, lambda: "hi alice, welcome" in screen_text(app), what="bob's message on screen")
        shown = screen_text(app)
        assert "alice │ hello bob" in shown
        assert "bob │ hi alice, welcome" in shown
        assert "Connected" in shown


async def test_pending_shown_until_acknowledged_and_queue_survives_restart(harness: Harness):
    """The reconnect banner while the server is down; messages queued meanwhile go out after."""
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
        await harness.stop()
        await wait_until(pilot, lambda: "Reconnecting" in screen_text(app), what="reconnect banner")
        for text in ("queued one", "queued two"):
            await pilot.press(*text)
            await pilot.press("enter")
        await wait_until(pilot, lambda: "2 messages queued" in screen_text(app), what="queue count")
        shown = await wait_until(  # the pending marker "…"
            pilot, lambda: screen_with(app, "alice … queued one", "alice … queued two"),
            what="pending rows", detail=lambda: screen_text(app),
        )
        assert "attempt" in shown
        await harness.start()  # same port, same store
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="reconnected")
        await wait_until(pilot, lambda: not app.message_list.pending_ids, what="queue drained")
        await wait_until(
            pilot,
            lambda: "alice │ queued one" in (shown := screen_text(app)) and "alice │ queued two" in shown,
            what="acknowledged rows",
        )
        assert "queued" not in app.status_bar.connection_text()
        await wait_until(
            pilot,
            lambda: texts_seen(bob_events) == ["queued one", "queued two"],
            what="bob gets both, once, in order",
            detail=lambda: texts_seen(bob_events),
        )


async def test_roster_and_typing_line_update_live(harness: Harness):
    dave = await harness.client("dave")
    second_dave = await harness.client("dave")
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        # a user connected twice shows the count (from the roster of the connected frame)
        await wait_until(pilot, lambda: "dave ×2" in screen_text(app), what="connection count")
        await second_dave.close()
        await dave.close()
        await wait_until(pilot, lambda: "dave" not in names(app), what="dave left")
        bob = await harness.client("bob")
        await wait_until(pilot, lambda: "● bob" in screen_text(app), what="bob in roster")
        assert "alice (you)" in screen_text(app)
        await bob.set_typing(True)
        await wait_until(pilot, lambda: "bob is typing…" in screen_text(app))
        carol = await harness.client("carol")
        await wait_until(pilot, lambda: "carol" in names(app), what="carol joined")
        await carol.set_typing(True)
        await wait_until(pilot, lambda: "bob and carol are typing…" in screen_text(app))
        await bob.send("done typing")
        await wait_until(pilot, lambda: "carol is typing…" in screen_text(app), what="sending clears typing")
        await carol.set_typing(False)
        await wait_until(pilot, lambda: "is typing" not in screen_text(app), what="stop clears typing")
        await bob.set_presence("busy")
        await wait_until(pilot, lambda: "⊘ bob" in screen_text(app), what="bob busy")
        await bob.close()
        await wait_until(pilot, lambda: "bob" not in names(app), what="bob left")
        assert "bob" not in screen_text(app).split("│")[-1]


async def test_each_presence_key_reaches_others(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    alice_id = user_id_for("alice")
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        for key, status in (("f3", "away"), ("f4", "busy"), ("f5", "offline"), ("f2", "online")):
            await pilot.press(key)
            await wait_until(
                pilot,
                lambda: any(
                    isinstance(e, PresenceChanged) and e.user_id == alice_id and e.status == status for e in bob_events
                ),
                what=f"bob sees alice {status}",
            )
            assert f"you: {'●◐⊘○'[('online', 'away', 'busy', 'offline').index(status)]} {status}" in screen_text(app)
            assert app.roster.status_of(alice_id) == status
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Status: online", "Status: away", "Status: busy", "Status: offline"} <= set(titles)
        footer = screen_text(app).splitlines()[-1]
        for label in ("Online", "Away", "Busy", "Offline"):
            assert label in footer


async def test_status_restored_after_reconnect(harness: Harness):
    bob = await harness.client("bob")
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await pilot.press("f4")
        await harness.stop()
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.RECONNECTING)
        await harness.start()
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        assert "you: ⊘ busy" in screen_text(app)
        assert app.roster.status_of(user_id_for("alice")) == "busy"
        # the client re-applied it: bob, who reconnected too, sees alice busy
        bob_events = events_of(bob)
        await wait_until(
            pilot,
            lambda: any(
                isinstance(e, PresenceChanged) and e.user_id == user_id_for("alice") and e.status == "busy"
                for e in bob_events
            )
            or any(
                isinstance(e, Joined) and any(u.username == "alice" and u.status == "busy" for u in e.users)
                for e in bob_events
            ),
            what="bob sees alice busy after the restart",
        )


async def test_scrolling_to_top_pages_older_history(harness: Harness):
    seeder = await harness.client("bob")
    for i in range(180):
        await seeder.send(f"old message {i:03d}")
    await delivered(seeder)  # all 180 stored before alice joins: she gets the newest 50 as history
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.message_list.message_count == 50, timeout=15, what="join history")
        assert "old message 179" in app.message_list.rendered_tail()
        assert app.message_list.has_more
        count = app.message_list.message_count
        app.message_list.scroll_home(animate=False, immediate=True)
        await wait_until(pilot, lambda: app.message_list.message_count > count, what="an older page")
        await pilot.pause()
        # the view stayed on what we were reading: neither the top nor the bottom
        assert 0 < app.message_list.scroll_offset.y < app.message_list.max_scroll_y
        for _ in range(10):
            if not app.message_list.has_more:
                break
            app.message_list.scroll_home(animate=False, immediate=True)
            await pilot.press("pageup")
            await pilot.pause(0.1)
        await wait_until(pilot, lambda: app.message_list.message_count == 180, what="all history")
        assert "beginning of the conversation" in app.message_list.rendered_text()
        text = app.message_list.rendered_text()
        assert text.index("old message 000") < text.index("old message 100") < text.index("old message 179")


async def test_markup_in_messages_and_names_is_shown_literally(harness: Harness):
    bob = await harness.client("bob")
    hostile = [
        "[bold]x[/]",
        "[@click=app.quit]quit[/]",
        "[link=http://e]link[/]",
        "clear\x1b[2Jscreen",
        "clip\x1b]52;c;aGVsbG8=\x07board",
        "osc8 \x1b]8;;http://evil\x1b\\text\x1b]8;;\x1b\\ end",
    ]
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        for text in hostile:
            await bob.send(text)
        await wait_until(pilot, lambda: app.message_list.message_count == len(hostile))
        # rendering follows the model on a later refresh: wait for the screen, not the list
        shown = await wait_until(
            pilot, lambda: screen_with(app, "[bold]x[/]", "osc8 text end"),
            what="all six on screen", detail=lambda: screen_text(app),
        )
        assert "[bold]x[/]" in shown
        assert "[@click=app.quit]quit[/]" in shown
        assert "[link=http://e]link[/]" in shown
        assert "clearscreen" in shown
        assert "clipboard" in shown
        assert "osc8 text end" in shown
        assert "\x1b" not in shown
        assert app.is_running  # the @click markup did not quit the app


async def test_mentions_ring_the_bell_and_input_keys(harness: Harness):
    bob = await harness.client("bob")
    app = harness.app("alice", bell=True)
    rang: list[bool] = []
    app.bell = lambda: rang.append(True)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        # Looking at the room (the window has the focus): a mention there needs no bell.
        await bob.send("@alice while you look")
        await wait_until(pilot, lambda: app.message_list.message_count == 1)
        assert rang == [] and app.mention_count == 1
        app.app_focus = False  # in another window now
        await bob.send("hey @alice, look")
        await bob.send("malice is not a mention")
        await wait_until(pilot, lambda: app.message_list.message_count == 3)
        assert rang == [True] and app.mention_count == 2
        app.app_focus = True
        # ctrl+j inserts a newline, Enter sends the two lines as one message
        await pilot.press(*"line one", "ctrl+j", *"line two", "enter")
        await wait_until(pilot, lambda: app.message_list.message_count == 4 and not app.message_list.pending_ids)
        await wait_until(pilot, lambda: screen_with(app, "line one", "line two"), what="both lines")
        # Up recalls it, Down returns to the (empty) draft
        await pilot.press("up")
        assert app.chat_input.text == "line one\nline two"
        await pilot.press("down")
        assert app.chat_input.text == ""
        # pasting keeps newlines and does not send
        await pilot.app.chat_input._on_paste(__import__("textual").events.Paste("para 1\npara 2\n" + "x" * 3000))
        assert app.chat_input.text.startswith("para 1\npara 2\n") and app.message_list.message_count == 4


async def test_auto_away_and_back_on_key(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    alice_id = user_id_for("alice")
    app = harness.app("alice", auto_away_minutes=0.01)  # 0.6 s
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await wait_until(pilot, lambda: app.status == "away", what="auto-away")
        assert "you: ◐ away (auto)" in screen_text(app)
        await wait_until(
            pilot, lambda: any(isinstance(e, PresenceChanged) and e.user_id == alice_id and e.status == "away" for e in bob_events)
        )
        await pilot.press("x")
        await wait_until(pilot, lambda: app.status == "online", what="back online on a key")
        assert app.auto_away_from is None


async def test_typing_indicator_sent_and_stopped(harness: Harness):
    bob = await harness.client("bob")
    app = harness.app("alice")
    typing_seen: list[bool] = []
    from workspace_tui.client.events import TypingChanged

    bob_events = events_of(bob)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await pilot.press(*"typing")
        await wait_until(pilot, lambda: any(isinstance(e, TypingChanged) and e.is_typing for e in bob_events))
        # clearing the input stops it at once
        await pilot.press(*["backspace"] * 6)
        await wait_until(pilot, lambda: any(isinstance(e, TypingChanged) and not e.is_typing for e in bob_events))
        typing_seen = [e.is_typing for e in bob_events if isinstance(e, TypingChanged)]
        assert typing_seen == [True, False]


async def test_failed_message_shows_reason_and_can_be_retried_or_discarded(tmp_path):
    harness = Harness(tmp_path, max_payload=4096)
    await harness.start()
    app = harness.app("alice")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
            footer = lambda: screen_text(app).splitlines()[-1]  # noqa: E731
            assert "Retry" not in footer()
            from textual import events

            await app.chat_input._on_paste(events.Paste("y" * 5000))
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.message_list.failed_ids(), what="failed")
            hint = "not sent (F8 retry · F9 discard): message is too large"  # the keys before the reason
            await wait_until(pilot, lambda: hint in screen_text(app) and "Retry" in footer(), detail=footer)
            failed = app.message_list.failed_ids()
            await pilot.press("f8")  # still too large: fails again, stays listed
            await wait_until(pilot, lambda: app.message_list.failed_ids() == failed)
            await pilot.press("f9")
            await wait_until(pilot, lambda: not app.message_list.pending_ids, what="discarded")
            await wait_until(pilot, lambda: "not sent (" not in screen_text(app) and "Retry" not in footer())
            assert app.client.queued == 0
            await pilot.press(*"small one", "enter")
            await wait_until(pilot, lambda: app.message_list.message_count == 1 and not app.message_list.pending_ids)
    finally:
        await harness.stop()


async def test_serve_hosts_a_server_in_process_and_joins_it(tmp_path):
    import functools

    from workspace_tui.client import ChatClient
    from workspace_tui.server import ServerConfig, start_server
    from workspace_tui.tui.app import ChatApp

    serve = functools.partial(start_server, ServerConfig(port=0, db_path=tmp_path / "s.sqlite3"))
    app = ChatApp("ws://unused/ws", "alice", serve=serve, auto_away_minutes=0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        assert app.url == app.server.url and f":{app.server.port}/" in screen_text(app)
        bob = ChatClient(app.url, "bob")
        await bob.start()
        try:
            await bob.send("hi host")
            await wait_until(pilot, lambda: "hi host" in screen_text(app))
        finally:
            await bob.close()


async def test_new_messages_marker_while_scrolled_up(harness: Harness):
    seeder = await harness.client("bob")
    for i in range(60):
        await seeder.send(f"filler {i}")
    await delivered(seeder)
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.message_list.message_count >= 50 and app.message_list.max_scroll_y > 10)
        await wait_until(pilot, lambda: "filler 59" in app.message_list.rendered_tail())
        app.message_list.has_more = False  # stay put: this test is about the marker, not paging
        app.message_list.scroll_to(y=5, animate=False, immediate=True)
        await pilot.pause()
        for i in range(3):
            await seeder.send(f"while away {i}")
        await wait_until(pilot, lambda: "↓ 3 new messages" in screen_text(app), detail=lambda: screen_text(app))
        assert app.message_list.scroll_offset.y == 5  # did not jump to the bottom
        assert "new messages" in app.message_list.rendered_tail()  # the marker row above them
        await pilot.press("ctrl+end")
        await wait_until(pilot, lambda: "↓" not in screen_text(app) and "while away 2" in screen_text(app))
        # at the bottom, new messages keep the view at the bottom
        await seeder.send("live at bottom")
        await wait_until(pilot, lambda: "live at bottom" in screen_text(app))


async def test_typing_refresh_and_idle_stop(harness: Harness, monkeypatch):
    """Refreshed while typing (at most every TYPING_REFRESH), false after TYPING_IDLE without edits."""
    from workspace_tui.client.events import TypingChanged
    from workspace_tui.tui import app as app_module

    monkeypatch.setattr(app_module, "TYPING_REFRESH", 0.3)
    monkeypatch.setattr(app_module, "TYPING_IDLE", 0.6)
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    sent: list[bool] = []
    stamps: list[tuple[float, bool]] = []
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        real = app._send_typing

        async def spy(is_typing: bool) -> None:
            sent.append(is_typing)
            stamps.append((time.monotonic(), is_typing))
            await real(is_typing)

        app._send_typing = spy  # type: ignore[method-assign]
        for ch in "abcdefgh":  # >= 0.56 s of typing: refreshed, but not one frame per key
            await pilot.press(ch)
            await pilot.pause(0.07)
        await wait_until(pilot, lambda: sent and sent[-1] is False, what="idle stop")
        assert sent[-1] is False and sent.count(True) >= 2, sent
        # However slow the machine, a refresh never comes sooner than TYPING_REFRESH after the last
        # "typing" (unless a "stopped" came in between: then the next edit starts afresh).
        for (t0, v0), (t1, v1) in zip(stamps, stamps[1:]):
            if v0 and v1:
                assert t1 - t0 >= 0.3 - 0.02, stamps
        await wait_until(
            pilot, lambda: any(isinstance(e, TypingChanged) and not e.is_typing for e in bob_events), what="bob sees stop"
        )


async def test_loaded_messages_are_bounded_and_paged_back(harness: Harness):
    seeder = await harness.client("bob")
    for i in range(120):
        await seeder.send(f"msg {i:03d}")
    await delivered(seeder)
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        app.message_list.max_loaded = 60
        await wait_until(pilot, lambda: "msg 119" in app.message_list.rendered_tail(), timeout=15)
        for i in range(30):
            await seeder.send(f"more {i}")
        await wait_until(pilot, lambda: "more 29" in app.message_list.rendered_tail())
        await pilot.pause()
        assert app.message_list.message_count <= 60 and app.message_list.has_more
        app.message_list.max_loaded = 10_000
        app.message_list.scroll_home(animate=False, immediate=True)
        await wait_until(pilot, lambda: app.message_list.message_count > 60, what="trimmed messages paged back in")


async def test_connection_counts_update_live_from_presence_frames(harness: Harness):
    """Another connection of someone already online shows as ×N at once, and goes when it closes."""
    bob = await harness.client("bob")
    app = harness.app("alice")
    bob_id, alice_id = user_id_for("bob"), user_id_for("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await wait_until(pilot, lambda: screen_with(app, "● bob"), what="bob listed once")
        assert "bob ×" not in screen_text(app)
        bob2 = await harness.client("bob")
        await wait_until(pilot, lambda: screen_with(app, "bob ×2"), what="bob ×2 live", detail=lambda: screen_text(app))
        bob3 = await harness.client("bob")
        await wait_until(pilot, lambda: app.roster.members[bob_id].connections == 3 and screen_with(app, "bob ×3"))
        await bob3.close()
        await bob2.close()
        await wait_until(pilot, lambda: app.roster.members[bob_id].connections == 1, what="back to one")
        assert "bob ×" not in screen_text(app) and "● bob" in screen_text(app)
        # our own second connection (a second terminal) counts too, and keeps our chosen status
        await pilot.press("f4")
        alice2 = await harness.client("alice")
        await wait_until(pilot, lambda: screen_with(app, "alice ×2 (you)"), detail=lambda: screen_text(app))
        assert app.roster.status_of(alice_id) == "busy"
        await alice2.close()
        await wait_until(pilot, lambda: app.roster.members[alice_id].connections == 1)
        assert "alice (you)" in screen_text(app) and app.roster.status_of(alice_id) == "busy"
        await bob.close()
        await wait_until(pilot, lambda: bob_id not in app.roster.members, what="bob gone")


async def test_failed_messages_picker_retries_or_discards_the_one_you_pick(tmp_path):
    from textual import events
    from textual.widgets import OptionList

    from workspace_tui.tui.screens.failed import FailedScreen

    harness = Harness(tmp_path, max_payload=4096)
    await harness.start()
    app = harness.app("alice")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
            for fill in ("a", "b"):
                await app.chat_input._on_paste(events.Paste(fill * 5000))
                await pilot.press("enter")
            await wait_until(pilot, lambda: len(app.message_list.failed_ids()) == 2, what="two failed")
            await pilot.press("f8")  # several failed: F8 lets you pick
            await wait_until(pilot, lambda: isinstance(app.screen, FailedScreen), what="picker")
            options = app.screen.query_one(OptionList)
            assert options.option_count == 2 and options.highlighted == 1  # the newest first under the cursor
            shown = await wait_until(pilot, lambda: screen_with(app, "Messages not sent", "too large"))
            assert "aaaa" in shown and "bbbb" in shown
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, FailedScreen), what="picker closed")
            await pilot.press("ctrl+f")  # its own key, from the input
            await wait_until(pilot, lambda: isinstance(app.screen, FailedScreen), what="picker again")
            options = app.screen.query_one(OptionList)
            await pilot.press("up", "d")  # discard the older one
            await wait_until(pilot, lambda: options.option_count == 1, what="one left")
            assert [e.text[0] for e, _ in app.message_list.failed_entries()] == ["b"]
            assert [e.text[0] for e in app.client.outbox()] == ["b"]
            # The server comes back taking bigger messages: retrying the other one now works.
            await harness.stop()
            harness.overrides["max_payload"] = 1_000_000
            await harness.start()
            await wait_until(pilot, lambda: app.client.limits.max_payload_bytes == 1_000_000, what="reconnected")
            await pilot.press("enter")  # retry the highlighted one; the last one closes the picker
            await wait_until(pilot, lambda: not isinstance(app.screen, FailedScreen), what="picker closed")
            await wait_until(pilot, lambda: app.message_list.message_count == 1 and not app.message_list.pending_ids)
            assert app.client.outbox() == []
            assert "not sent (" not in screen_text(app)
    finally:
        await harness.stop()
