"""Make the pictures in screenshots/ from the real app, a real server and real clients.

    python screenshots/make_screenshots.py

Starts an embedded server on a free port (SQLite in a temporary directory),
connects bob, carol and dave with the real client, drives alice's ``ChatApp``
with Textual's Pilot, and saves SVGs with ``App.save_screenshot``. PNGs are made
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
SIZE = (112, 30)


async def wait_until(pilot, condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the app")
        await pilot.pause(0.05)


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
    for name in ("bob", "carol", "dave", "dave2"):
        client = factory(server.url, name.rstrip("2"), None)
        await client.start()
        clients[name] = client
    bob, carol, dave = clients["bob"], clients["carol"], clients["dave"]
    await bob.send("morning all! is the deploy still on for today?")
    await carol.send("yes, after lunch. I pushed the migration fix — it touches the outbox table and the resume logic, so a second pair of eyes would help")
    await asyncio.sleep(0.3)

    app = ChatApp(server.url, "alice", client_factory=factory, bell=False, auto_away_minutes=0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED and app.message_list.message_count >= 2)
        await pilot.press(*"on it, reviewing now", "enter")
        await bob.send("@alice can you check the [bold]markup[/] case too? it should show literally")
        await dave.set_presence("away")
        await carol.set_presence("busy")
        await pilot.press(*"sure: see the test", "ctrl+j", *"test_markup_in_messages_and_names_is_shown_literally", "enter")
        await wait_until(pilot, lambda: app.message_list.message_count >= 5 and not app.message_list.pending_ids)
        await bob.set_typing(True)
        await carol.set_typing(True)
        await pilot.press(*"looks good to me")
        await wait_until(pilot, lambda: len(app.typing_line.names) == 2)
        await pilot.pause(0.3)
        app.chat_input.cursor_blink = False
        app.save_screenshot("conversation.svg", str(OUT))

        # The server goes away: the banner counts down, messages queue.
        await pilot.press(*["backspace"] * len("looks good to me"))
        await server.close()
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.RECONNECTING)
        await pilot.press(*"is the server down for you too?", "enter")
        await pilot.press(*"I'll wait, these will go out when it is back", "enter")
        await wait_until(pilot, lambda: "2 messages queued" in app.status_bar.connection_text())
        await wait_until(pilot, lambda: "Reconnecting in" in app.status_bar.connection_text())
        await pilot.pause(0.2)
        app.save_screenshot("reconnecting.svg", str(OUT))

        server = await start_server(ServerConfig(port=port, db_path=db, rate_limit=0))
        await wait_until(pilot, lambda: not app.message_list.pending_ids, timeout=30)
        await wait_until(pilot, lambda: len(app.roster.members) == 4, timeout=30)  # everyone is back
        await pilot.press("f1")
        await pilot.pause(0.3)
        app.save_screenshot("help.svg", str(OUT))
        await pilot.press("escape")

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
    for name in ("conversation", "reconnecting", "help"):
        svg = OUT / f"{name}.svg"
        png = to_png(svg)
        print(svg.relative_to(OUT.parent), "and", png.relative_to(OUT.parent) if png else "(no PNG converter)")
    sys.exit(0)
