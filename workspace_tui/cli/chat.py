"""``workspace chat``: the terminal app (Textual is imported only here, when it runs)."""

from __future__ import annotations

import functools
from typing import Any

import click

from workspace_tui.cli.options import connection_options, default_username


CHAT_EPILOG = """\b
Exit codes:
  0  you quit (Ctrl+Q)
  1  the embedded server (--serve) could not start: the store or the port
  2  usage error (a bad flag or config value), or no terminal to draw on
"""


@click.command(epilog=CHAT_EPILOG)
@connection_options
@click.option("--serve", is_flag=True, help="Also host an embedded server in this process, and join it.")
@click.option(
    "--port",
    envvar="WORKSPACE_PORT",
    show_envvar=True,
    type=click.IntRange(0, 65535),
    default=4000,
    show_default=True,
    help="With --serve: TCP port of the embedded server.",
)
@click.option(
    "--db",
    envvar="WORKSPACE_DB",
    show_envvar=True,
    type=click.Path(dir_okay=False),
    default=None,
    help="With --serve: SQLite file of the embedded server (:memory: for an ephemeral one).  [default: the user data directory]",
)
@click.option("--bell/--no-bell", default=True, show_default=True, help="Ring the terminal bell when you are mentioned.")
@click.option(
    "--auto-away",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="MINUTES",
    help="Set your status to away after this long without a key press; 0 turns it off.",
)
@click.option(
    "--highlight",
    multiple=True,
    metavar="WORD",
    help="Notify for messages with this word, as for a mention (repeatable; config: [chat] highlight = [\"deploy\"]).",
)
def chat(
    url: str,
    username: str | None,
    token: str | None,
    serve: bool,
    port: int,
    db: str | None,
    bell: bool,
    auto_away: float,
    highlight: tuple[str, ...],
) -> None:
    """Join the chat in the terminal app.

    Without --username (or WORKSPACE_USERNAME, or `username` in the config
    file) a join screen asks for one, prefilled with your login name.

    \b
    Keys: Enter sends, Ctrl+J or Alt+Enter adds a line, Up/Down recall,
    F2 online, F3 away, F4 busy, F5 offline, Ctrl+F failed messages, F8 retry /
    F9 discard a failed message, F1 or ? help, Ctrl+P command palette,
    Ctrl+Q quit. Auto-away applies only while your status is online.
    Rooms: Ctrl+K switch, Alt+Up/Down (Ctrl+PgUp/PgDn) previous/next,
    Alt+Shift+Down (Ctrl+N) next unread, Ctrl+T sidebar; /help lists the commands.

    \b
    Remap keys in the config file, by binding id (F1 lists them all):
      [chat.keys]
      "status.away" = "ctrl+a"
      "message.failed" = "f6"
    """
    keymap = _keymap_from_config()  # a mistake in the config file is said first, terminal or not
    _need_a_terminal()
    from workspace_tui.tui.app import ChatApp

    serve_config = None
    if serve:
        from workspace_tui.paths import default_db_path
        from workspace_tui.server import ServerConfig, start_server

        db_path = db or default_db_path()
        if db is None:
            default_db_path().parent.mkdir(parents=True, exist_ok=True)
        serve_config = functools.partial(
            _start_embedded, start_server, ServerConfig(host="127.0.0.1", port=port, db_path=db_path, token=token)
        )
        url = f"ws://127.0.0.1:{port}/ws"

    app = ChatApp(
        url,
        username,
        token,
        default_username=default_username(),
        bell=bell,
        auto_away_minutes=auto_away,
        serve=serve_config,
        keymap=keymap,
        highlight=highlight,
    )
    app.run()
    if app.return_code:
        raise SystemExit(app.return_code)


def _need_a_terminal() -> None:
    """The app draws on the terminal: refuse (exit 2) rather than write escape codes into a pipe."""
    import os
    import sys

    if os.environ.get("TERM") == "dumb":
        raise click.UsageError("chat needs a terminal that can draw (TERM=dumb); use `workspace tail` and `workspace send` instead")
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        raise click.UsageError("chat needs a terminal (its input or output is not one); use `workspace tail` and `workspace send` in scripts")


async def _start_embedded(start_server: Any, config: Any) -> Any:
    """Start the embedded server; an error that stops it reads exactly as ``serve``'s does."""
    from workspace_tui.backends.base import StoreError
    from workspace_tui.cli.serve import startup_error

    try:
        return await start_server(config)
    except (OSError, StoreError) as exc:
        raise OSError(startup_error(exc, config.host, config.port)) from None


def _keymap_from_config() -> dict[str, str]:
    """The ``[chat.keys]`` table of the config file, checked (a usage error says what is wrong)."""
    from workspace_tui.tui.keys import KeymapError, check_keymap

    ctx = click.get_current_context()
    table = (ctx.default_map or {}).get("keys")
    if table is None:
        return {}
    try:
        return check_keymap(table)
    except KeymapError as exc:
        raise click.UsageError(str(exc)) from None
