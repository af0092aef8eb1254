"""Options shared by the commands that connect to a server (chat, send, tail)."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any, TypeVar

import click

from workspace_tui.protocol import DEFAULT_URL, validate_username

F = TypeVar("F", bound=Callable[..., Any])


def default_username() -> str | None:
    """The login name, when it is a valid username."""
    try:
        name = getpass.getuser()
    except Exception:  # no login name on this system (containers)
        return None
    return name if validate_username(name) is None else None


def _check_username(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    reason = validate_username(value)
    if reason:
        raise click.BadParameter(reason)
    return value


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A WebSocket URL with a host and a path, or a usage error that shows the right form."""
    from urllib.parse import urlsplit

    if "://" not in value:
        raise click.BadParameter(f"{value!r} has no scheme; did you mean ws://{value.strip('/')}/ws?")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a URL ({exc}); it looks like ws://HOST:PORT/ws") from None
    host = parts.hostname
    where = f"{host}:{port}" if host and port else (host or "HOST:PORT")
    secure = parts.scheme in ("wss", "https")
    right = f"{'wss' if secure else 'ws'}://{where}{parts.path if parts.path not in ('', '/') else '/ws'}"
    if parts.scheme not in ("ws", "wss"):
        hint = f"; did you mean {right}?" if parts.scheme in ("http", "https") else f"; it looks like {right}"
        raise click.BadParameter(f"{value!r} is not a WebSocket URL (ws:// or wss://){hint}")
    if not host:
        raise click.BadParameter(f"{value!r} has no host; it looks like ws://HOST:PORT/ws")
    if parts.path in ("", "/"):
        raise click.BadParameter(f"{value!r} has no path: the chat is at {right}")
    return value


def connection_options(f: F) -> F:
    """``--url``, ``--username``, ``--token``, with env vars and config defaults."""
    f = click.option(
        "--token",
        envvar="WORKSPACE_TOKEN",
        show_envvar=True,
        help="Shared secret, when the server was started with --token.",
    )(f)
    f = click.option(
        "--username",
        "-u",
        envvar="WORKSPACE_USERNAME",
        show_envvar=True,
        callback=_check_username,
        help="Your name: 1-32 letters, digits, _ . -  [default: config, then your login name]",
    )(f)
    f = click.option(
        "--url",
        envvar="WORKSPACE_URL",
        show_envvar=True,
        default=DEFAULT_URL,
        show_default=True,
        callback=_check_url,
        help="The server's WebSocket URL.",
    )(f)
    return f


def resolve_username(value: str | None) -> str:
    """The username to use, or a usage error saying how to give one."""
    name = value or default_username()
    if not name:
        raise click.UsageError("no username: pass --username NAME or set WORKSPACE_USERNAME")
    return name
