"""Make the pictures in screenshots/ from the real app, a real server and real clients.

    python screenshots/make_screenshots.py

Starts an embedded server on a free port (SQLite in a temporary directory),
connects ci-bot, bob, carol and dave with the real client, stages a morning of
a small team (a staging deploy, a code review with a mention of alice, bob away
at lunch, a production deploy), drives alice's ``ChatApp`` with Textual's Pilot
at 140x40 and then 80x24, then once more in three rooms with a direct message
(the sidebar's unread and mention badges), and saves SVGs with ``App.save_screenshot``. PNGs are made
with ``rsvg-convert`` (``apt-get install librsvg2-bin``) or, failing that,
``cairosvg`` if installed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent
WIDE = (140, 40)
SMALL = (80, 24)
NAMES = ("conversation", "reconnecting", "help", "rooms")


async def wait_until(pilot, condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the app")
        await pilot.pause(0.05)


async def settled(client) -> None:
    """Until the server has stored everything *client* sent, so the order on screen is the order here."""
    deadline = time.monotonic() + 15
    while client.outbox():
        if time.monotonic() > deadline:
            raise SystemExit(f"{client.username}: messages not acknowledged")
        await asyncio.sleep(0.02)


async def say(client, text: str) -> None:
    await client.send(text)
    await settled(client)


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="workspace-shots-"))
    os.environ["WORKSPACE_DATA_DIR"] = str(tmp / "data")
    os.environ["WORKSPACE_CONFIG_DIR"] = str(tmp / "config")

    from workspace_tui.client import ChatClient
    from workspace_tui.client.events import ConnectionState
    from workspace_tui.server import ServerConfig, start_server
    from workspace_tui.tui.app import ChatApp

    db = tmp / "server.sqlite3"
    server = await start_server(ServerConfig(port=0, db_path=db, rate_limit=0))
    port = server.port

    def factory(url: str, username: str, token: str | None) -> ChatClient:
        return ChatClient(url, username, token, backoff_base=0.5, backoff_cap=4.0)

    clients: dict[str, ChatClient] = {}
    for name in ("ci-bot", "bob", "carol", "dave", "dave-phone"):
        client = factory(server.url, name.removesuffix("-phone"), None)  # dave is on his laptop and his phone
        await client.start()
        clients[name] = client
    ci, bob, carol, dave = clients["ci-bot"], clients["bob"], clients["carol"], clients["dave"]

    # The morning, before alice opens the chat: history she gets on joining.
    await say(dave, "morning! standup moved to 10:30 today, the room is taken until then")
    await say(carol, "the flaky test in test_resume is fixed on main, rebase if you still see it")
    await say(ci, "deploy #1432 to staging finished: api 2.14.0, web 3.8.1 (all 412 checks green)")
    await say(bob, "staging looks good from here, the login page is fast again")
    await say(carol, "PR #218 is up: the outbox flush gets its own task, so a slow disk cannot stall sends anymore."
              " @alice could you review? About 200 lines, most of them tests")
    await say(dave, "I can take the migration half if that helps")
    await say(bob, "heading out for lunch, back around 2. ping me if prod acts up")
    await bob.set_presence("away")
    await carol.set_presence("busy")

    app = ChatApp(server.url, "alice", client_factory=factory, bell=False, auto_away_minutes=0)
    async with app.run_test(size=WIDE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED and app.message_list.message_count >= 7)
        await wait_until(pilot, lambda: app.roster.status_of(bob.user_id or "") == "away")
        await pilot.press(*"on it, reading the flush loop now", "enter")
        await wait_until(pilot, lambda: not app.message_list.pending_ids)
        await pilot.press(*"@carol one question on flush(): if the disk fills up mid-batch, do we retry the whole"
                          " batch or only the rows that were not written?", "enter")
        await wait_until(pilot, lambda: not app.message_list.pending_ids)
        await say(carol, "only the rest: each row is marked as it is written, so a retry starts where it stopped."
                  " test_flush_resumes_after_disk_full covers it")
        await say(dave, "the migration is a no-op on an empty table, checked it against last night's snapshot")
        await pilot.press(*"great, approved. ship it after the staging run", "enter")
        await wait_until(pilot, lambda: app.message_list.message_count >= 12 and not app.message_list.pending_ids)
        await say(ci, "deploy #1433 to production started by carol (PR #218)")
        await dave.set_typing(True)
        await wait_until(pilot, lambda: app.message_list.message_count >= 13 and app.typing_line.names == ["dave"])
        await pilot.press(*"thanks both")
        await pilot.pause(0.3)
        app.chat_input.cursor_blink = False
        app.save_screenshot("conversation.svg", str(OUT))

        # A small terminal, and the server goes away: the roster folds away (F7 shows it),
        # the status bar counts down to the next attempt, and what alice sends waits in the queue.
        await pilot.press(*["backspace"] * len("thanks both"))
        await dave.set_typing(False)
        await pilot.resize_terminal(*SMALL)
        await server.close()
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.RECONNECTING)
        await pilot.press(*"is the chat down for you too?", "enter")
        await pilot.press(*"these go out when it is back", "enter")
        await wait_until(pilot, lambda: "2 messages queued" in app.status_bar.connection_text())
        await wait_until(pilot, lambda: "Reconnecting in" in app.status_bar.connection_text())
        await pilot.pause(0.2)
        app.save_screenshot("reconnecting.svg", str(OUT))

        server = await start_server(ServerConfig(port=port, db_path=db, rate_limit=0))
        await wait_until(pilot, lambda: not app.message_list.pending_ids, timeout=30)
        await wait_until(pilot, lambda: len(app.roster.members) == 5, timeout=30)  # everyone is back

    # The help screen lists the keys as you have bound them, with the id to remap each:
    # here alice's config.toml has [chat.keys] "status.away" = "ctrl+a".
    helped = ChatApp(
        server.url, "alice", client_factory=factory, bell=False, auto_away_minutes=0, keymap={"status.away": "ctrl+a"}
    )
    async with helped.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: helped.status_bar.state is ConnectionState.CONNECTED)
        await pilot.press("f1")
        await pilot.pause(0.3)
        helped.save_screenshot("help.svg", str(OUT))

    # Rooms: carol's #dev and bob's #ops, a direct message from bob. alice is in #ops; the
    # sidebar counts what came meanwhile in #dev (a mention: the @ badge) and in the DM.
    await carol.create_room("dev", "backend and deploys")
    await bob.create_room("ops", "incidents and on-call")
    await dave.join_room("dev")
    roomy = ChatApp(server.url, "alice", client_factory=factory, bell=False, auto_away_minutes=0)
    async with roomy.run_test(size=WIDE) as pilot:
        await wait_until(pilot, lambda: roomy.status_bar.state is ConnectionState.CONNECTED)
        await pilot.press(*"/join dev", "enter")
        await wait_until(pilot, lambda: roomy.current_room == "dev")
        await pilot.press(*"/join ops", "enter")
        await wait_until(pilot, lambda: roomy.current_room == "ops")
        await bob.send("pager handover: quiet night, one disk alert on db-2 (cleared by itself)", room="ops")
        await settled(bob)
        await pilot.press(*"thanks, I have the pager from 2. I will keep an eye on db-2", "enter")
        await wait_until(pilot, lambda: not roomy.message_list.pending_ids and roomy.message_list.message_count >= 2)
        await carol.send("PR #219 is up: rooms in the sidebar, the switcher is on Ctrl+K", room="dev")
        await dave.send("@alice can we pair on the read positions after standup?", room="dev")
        await carol.send("staging deploy of #219 in 10 minutes", room="dev")
        await bob.send("are you around at 3? quick chat about the on-call rota", to=["alice"])
        for client in (carol, dave, bob):
            await settled(client)
        await wait_until(pilot, lambda: roomy.rooms.views["dev"].unread >= 3 and "dm:alice,bob" in roomy.rooms.views)
        await pilot.pause(0.3)
        roomy.chat_input.cursor_blink = False
        roomy.save_screenshot("rooms.svg", str(OUT))

    for client in clients.values():
        await client.close()
    await server.close()
    shutil.rmtree(tmp, ignore_errors=True)


def to_png(svg: Path) -> Path | None:
    """A PNG next to ``svg``; None when no converter is installed."""
    png = svg.with_suffix(".png")
    # Rich writes spaces as &#160; inside <text textLength=...>; rsvg squeezes those,
    # so render a copy with plain spaces kept by xml:space.
    fixed = re.sub(r"<svg ", '<svg xml:space="preserve" ', svg.read_text(encoding="utf-8"), count=1).replace("&#160;", " ")
    with tempfile.NamedTemporaryFile("w", suffix=".svg", delete=False, encoding="utf-8") as fh:
        fh.write(fixed)
    try:
        if shutil.which("rsvg-convert"):
            subprocess.run(["rsvg-convert", "-o", str(png), fh.name], check=True)
            return png
        try:
            import cairosvg  # type: ignore[import-not-found]
        except ImportError:
            return None
        cairosvg.svg2png(url=fh.name, write_to=str(png))
        return png
    finally:
        os.unlink(fh.name)


if __name__ == "__main__":
    asyncio.run(main())
    for name in NAMES:
        svg = OUT / f"{name}.svg"
        png = to_png(svg)
        print(svg.relative_to(OUT.parent), "and", png.relative_to(OUT.parent) if png else "(no PNG converter)")
    sys.exit(0)
