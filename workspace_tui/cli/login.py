"""``workspace login`` and ``workspace key show``: this device's key for a name.

``login`` redeems an invite from the server's admin (``workspace users add NAME``)
with a new key, or, with ``--import``, takes the key another device of yours shows
(``workspace key show``); either way the key is saved only once the server has
accepted it. Secrets are read from a hidden prompt or from stdin, never from
the command line, where every local user sees them in ``ps``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from workspace_tui.cli.options import resolve_username, timeout_option, url_and_username_options

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_NO_KEY = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_REJECTED = 4
SECRET_MAX = 200  # characters read from stdin for a secret: an invite or key is 32-128

LOGIN_EPILOG = """\b
Exit codes:
  0  the server accepted the key; it is saved on this device
  2  usage error, or what was typed is not an invite or key
  3  server unreachable within --timeout
  4  refused by the server (the reason is on stderr); nothing saved

\b
Examples:
  workspace login --url wss://chat.example.org/ws --username alice
  workspace key show | ssh laptop workspace login --import
"""


def _name_options(f: F) -> F:
    """``--url`` and ``--username``/``--name``, with the same env vars and config keys as the others."""
    return url_and_username_options(f, "--name", help="The name")


def _err(text: str) -> None:
    click.echo(text, err=True)


def _shown(url: str) -> str:
    """The URL as it may be shown: no query string (a token there must not end up on screen)."""
    return url.split("#", 1)[0].split("?", 1)[0]


def _flags(url: str, user: str) -> str:
    from workspace_tui.client.refusals import flags

    return flags(_shown(url), user)


def read_secret(prompt: str) -> str:
    """One secret: a hidden prompt on a terminal, else the first line of stdin (bounded)."""
    if sys.stdin.isatty():
        return click.prompt(prompt, hide_input=True, err=True, default="", show_default=False).strip()
    return sys.stdin.readline(SECRET_MAX).strip()


@click.command(epilog=LOGIN_EPILOG)
@_name_options
@click.option("--token", envvar="WORKSPACE_TOKEN", show_envvar=True, help="Shared secret, when the server was started with --token.")
@click.option("--import", "import_key", is_flag=True, help="Use the key another device of yours shows (`workspace key show`) instead of an invite.")
@timeout_option()
def login(url: str, username: str | None, token: str | None, import_key: bool, timeout: float) -> None:
    """Make NAME yours on this device: redeem an invite, or import your key.

    Asks for the invite your admin gave you (hidden as you type; or one line on
    stdin), connects with it and a new key, and saves the key once the server
    accepted it. send, tail, who and chat use it from then on by themselves.

    With --import, asks for the key that `workspace key show` prints on a
    device where the name already works, checks it with the server and saves it.
    """
    from workspace_tui.client import keys

    user = resolve_username(username)
    what = "key" if import_key else "invite"
    secret = read_secret(f"{'Key' if import_key else 'Invite'} for {user}")
    if not secret:
        raise click.UsageError(f"no {what} given: type it at the prompt, or pipe it in on stdin")
    if not keys.is_secret(secret):
        raise click.UsageError(f"that is not a{'' if import_key else 'n'} {what}: 32-128 letters, digits, - and _")
    key = secret if import_key else keys.new_key()
    invite = None if import_key else secret

    import asyncio

    try:
        code = asyncio.run(_login(url, user, token, key, invite, timeout))
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


async def _login(url: str, user: str, token: str | None, key: str, invite: str | None, timeout: float) -> int:
    import asyncio

    from workspace_tui.client import ChatClient, ConnectionState, Joined, StateChanged
    from workspace_tui.client.keys import KeyStoreError, save_key
    from workspace_tui.protocol import sanitize_text

    # Quiet, no history, nothing from the outbox: this connection only proves the name.
    client = ChatClient(
        url, user, token, key=key, invite=invite, present=False, join_history=0, resume=False,
        reconnect=False, state_path=":memory:", open_timeout=timeout,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    joined: Joined | None = None
    reason = "no answer"
    await client.start()
    events = client.events()
    try:
        while joined is None:
            try:
                event = await asyncio.wait_for(anext(events), max(deadline - loop.time(), 0))
            except (asyncio.TimeoutError, StopAsyncIteration):
                _err(f"workspace login: server unreachable within {timeout:g} s: {sanitize_text(reason)}")
                return EXIT_UNREACHABLE
            if isinstance(event, Joined):
                joined = event
            elif isinstance(event, StateChanged) and event.state is ConnectionState.STOPPED:
                said = event.reason or "refused"
                if invite is None and event.refusal in ("wrong_key", "key_required"):
                    said = f"refused by the server (HTTP {event.status_code}): that key is not {user}'s on this server"
                _err(f"workspace login: {sanitize_text(said)}; nothing saved")
                return EXIT_REJECTED if event.status_code else EXIT_UNREACHABLE
            elif isinstance(event, StateChanged) and event.reason:
                reason = event.reason
    finally:
        await client.close()

    if not joined.verified:
        mode = f" (it runs with --auth {joined.auth})" if joined.auth else ""
        _err(
            f"workspace login: the server let {user} in but did not confirm the key{mode}:"
            " it has no names that belong to anyone; nothing saved"
        )
        return EXIT_REJECTED
    name = joined.username
    try:
        path = save_key(url, name, key)
    except KeyStoreError as exc:
        _err(f"workspace login: {exc}")
        return EXIT_REJECTED
    how = "invite redeemed" if invite else "key checked with the server"
    click.echo(f"{name} is yours on {_shown(url)} ({how}); the key is saved in {path}")
    _err(
        f"Keep that file private: it proves you are {name}. send, tail, who and chat use it by themselves;"
        f" for another device run `workspace key show{_flags(url, name)}` here and"
        f" `workspace login --import{_flags(url, name)}` there."
    )
    return EXIT_OK


@click.group(invoke_without_command=False)
@click.pass_context
def key(ctx: click.Context) -> None:
    """This device's keys: the secrets that prove your names."""
    # The config file's defaults (url, username) reach `key show` as they reach every command.
    ctx.default_map = {"show": dict(ctx.default_map or {})}


@key.command("show")
@_name_options
def key_show(url: str, username: str | None) -> None:
    """Print this device's key for NAME on the server (to use the name on a second device).

    The key goes to stdout alone, so it can be piped:
    `workspace key show | ssh laptop workspace login --import`.
    """
    from workspace_tui.client.keys import KeyStoreError, key_path, load_key

    user = resolve_username(username)
    try:
        found = load_key(url, user)
    except KeyStoreError as exc:
        _err(f"workspace key show: {exc}")
        sys.exit(EXIT_NO_KEY)
    if found is None:
        _err(
            f"workspace key show: this device has no key for {user} on {_shown(url)}"
            f" (it would be in {key_path(url, user)}): one is made the first time you connect as {user}"
            f" (`workspace who{_flags(url, user)}`), or by `workspace login`"
        )
        sys.exit(EXIT_NO_KEY)
    click.echo(found)
    _err(
        f"This is {user}'s key: whoever has it can be {user} on that server, so pass it only to a device of"
        f" yours. There run `workspace login --import{_flags(url, user)}` and paste it."
    )
