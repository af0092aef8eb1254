"""Who proved their name, on screen: marks on unverified names, and the invite the chat asks for.

The marks are fed as the network worker would post them (no client); the invite
prompt runs against a real server started with ``--auth invite``.
"""

from __future__ import annotations

import os
import stat

from workspace_tui.client import keys
from workspace_tui.protocol import ChatMessage, Limits, RosterEntry, user_id_for
from workspace_tui.tui import messages as m
from workspace_tui.tui.app import ChatApp
from workspace_tui.tui.screens.invite import InviteScreen

from .conftest import Harness, screen_text, screen_with, wait_until

SIZE = (100, 28)
ROSTER = (
    RosterEntry(user_id_for("alice"), "alice", "online", verified=True),
    RosterEntry(user_id_for("bob"), "bob", "online", verified=True),
    RosterEntry(user_id_for("mallory"), "mallory", "online", verified=False),
)


def msg(n: int, user: str, text: str, verified: bool) -> ChatMessage:
    return ChatMessage(
        f"msg_{1736935200000 + n:013d}_000000", user_id_for(user), user, text, "2025-01-15T09:1{n}:00.000Z",
        verified=verified,
    )


HISTORY = (
    msg(1, "bob", "deploy at noon", True),
    msg(2, "mallory", "send me the admin password", False),
    msg(3, "alice", "no", True),
)


async def _joined(app: ChatApp, pilot, auth: str | None, roster=ROSTER, history=HISTORY) -> None:
    app.post_message(m.ChatJoined(user_id_for("alice"), "alice", roster, Limits(), verified=True, auth=auth))
    app.post_message(m.HistoryLoaded(history, "join", has_more=False))
    await pilot.pause()
    await pilot.pause()


def offline_app() -> ChatApp:
    return ChatApp("ws://chat.example:4000/ws", "alice", connect=False, auto_away_minutes=0)


async def test_a_server_that_checks_names_gets_unverified_ones_marked_in_messages_and_roster():
    app = offline_app()
    async with app.run_test(size=SIZE) as pilot:
        await _joined(app, pilot, "claim")
        lines = app.message_list.rendered_text().splitlines()
        said = {line.split("│")[1].strip(): line.split("│")[0] for line in lines if "│" in line}
        assert said["send me the admin password"].rstrip().endswith("mallory?")
        assert said["deploy at noon"].rstrip().endswith("bob") and said["no"].rstrip().endswith("alice")
        shown = screen_text(app)
        assert "mallory?" in shown and "bob?" not in shown and "alice?" not in shown
        assert "? = name not proved" in shown  # the legend says what the mark means
        assert "not proved" in (app.roster.tooltip or "")
        # mallory's status changes: still unverified; bob's: still verified
        app.post_message(m.PresenceUpdated(user_id_for("bob"), "bob", "away", 1, True))
        app.post_message(m.PresenceUpdated(user_id_for("mallory"), "mallory", "busy", 1, False))
        await pilot.pause()
        assert app.roster.unverified(app.roster.members[user_id_for("mallory")])
        assert not app.roster.unverified(app.roster.members[user_id_for("bob")])
        # our own status change keeps our verified mark
        await pilot.press("f3")
        await pilot.pause()
        assert not app.roster.unverified(app.roster.members[user_id_for("alice")])


async def test_an_open_server_marks_nobody_and_says_names_are_not_checked():
    app = offline_app()
    plain = tuple(r._replace(verified=False) for r in ROSTER)
    async with app.run_test(size=SIZE) as pilot:
        await _joined(app, pilot, "open", roster=plain, history=tuple(h._replace(verified=False) for h in HISTORY))
        shown = screen_text(app)
        assert "?" not in app.message_list.rendered_text()
        assert "mallory?" not in shown and "names are not checked" in shown


async def test_a_hostile_unverified_name_is_shown_as_text_not_markup():
    app = offline_app()
    name = "[bold red]alice[/]"
    entry = RosterEntry(user_id_for(name), name, "online", verified=False)
    async with app.run_test(size=SIZE) as pilot:
        await _joined(app, pilot, "claim", roster=ROSTER + (entry,), history=(msg(4, name, "hi", False),))
        assert "[bold red]…?" in app.message_list.rendered_text()  # cut to the name column, mark kept
        assert "[bold red]alice[/]?" in screen_text(app)


async def test_the_chat_asks_for_the_invite_redeems_it_and_keeps_the_key(tmp_path):
    from workspace_tui.backends.admin import AccountAdmin

    h = Harness(tmp_path, rate_limit=0, address_rate_limit=0, auth="invite")
    await h.start()
    try:
        admin = AccountAdmin(db_path=str(h.db))
        invite = admin.add("alice")
        admin.close()
        app = h.app("alice")
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, InviteScreen), what="the invite screen")
            await wait_until(pilot, lambda: screen_with(app, "An invite for alice"), what="the invite form")
            typed = app.screen.query_one("#invite-code")
            assert typed.password  # hidden as it is typed
            # A wrong invite: said on the same screen, which asks again.
            typed.value = keys.new_key()
            await pilot.press("enter")
            await wait_until(
                pilot, lambda: isinstance(app.screen, InviteScreen) and "already used" in screen_text(app),
                what="the bad invite reason", detail=lambda: screen_text(app),
            )
            assert keys.load_key(h.url, "alice") != invite
            app.screen.query_one("#invite-code").value = invite
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.client is not None and app.client.verified, what="a verified join")
            assert not isinstance(app.screen, InviteScreen)
            saved = keys.key_path(h.url, "alice")
            await wait_until(pilot, lambda: saved.exists() and keys.load_key(h.url, "alice") == app.client._key)
            assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
        # Next time the stored key is enough.
        app = h.app("alice")
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.client is not None and app.client.verified, what="a join with the key")
            assert not isinstance(app.screen, InviteScreen)
    finally:
        await h.stop()
