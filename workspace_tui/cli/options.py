"""Options shared by the commands that connect to a server (chat, send, tail, who), and the
token handling ``serve`` shares with them."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from workspace_tui.protocol import DEFAULT_URL, validate_username

F = TypeVar("F", bound=Callable[..., Any])


def default_username() -> str | None:
    """The login name, when it is a valid username."""
    import getpass  # here: only when no name was given (it imports termios and pwd)

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


TOKEN_ON_COMMAND_LINE = (
    "warning: --token on the command line is visible to every local user (ps, /proc); "
    "use --token-file PATH or the WORKSPACE_TOKEN environment variable instead"
)
MAX_TOKEN_FILE_BYTES = 64 * 1024


def read_token_file(path: str) -> str:
    """The secret in *path* (surrounding whitespace and the final newline left out), or a
    usage error saying why it cannot be used; warns when other users may read the file."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = f.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}", param_hint="--token-file") from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise click.BadParameter(f"{path} is larger than a token ({MAX_TOKEN_FILE_BYTES // 1024} KiB)", param_hint="--token-file")
    try:
        token = data.decode().strip()
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text", param_hint="--token-file") from None
    if not token or "\n" in token:
        raise click.BadParameter(f"{path} must hold the token alone, on one line", param_hint="--token-file")
    if mode & 0o077 and sys.platform != "win32":
        click.echo(f"warning: {path} can be read by other users; chmod 600 it", err=True)
    return token


def resolve_token(token: str | None, token_file: str | None) -> str | None:
    """The secret from ``--token`` / ``--token-file`` / ``WORKSPACE_TOKEN``: the file wins over
    the environment variable; a literal ``--token`` is warned about (``ps`` shows it)."""
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    literal = ctx is not None and ctx.get_parameter_source("token") is ParameterSource.COMMANDLINE
    if token_file:
        if literal:
            raise click.UsageError("give --token or --token-file, not both")
        return read_token_file(token_file)
    if literal and token:
        click.echo(TOKEN_ON_COMMAND_LINE, err=True)
    return token or None


def token_file_option(f: F) -> F:
    return click.option(
        "--token-file",
        envvar="WORKSPACE_TOKEN_FILE",
        show_envvar=True,
        type=click.Path(dir_okay=False),
        help="Read the shared secret from this file (keeps it out of `ps`).",
    )(f)


def timeout_option(help: str = "Seconds to wait for the server.") -> Callable[[F], F]:
    """``--timeout`` of the commands that ask the server once and exit (10 s by default)."""
    return click.option(
        "--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True, help=help
    )


def connection_options(f: F) -> F:
    """``--url``, ``--username``, ``--token`` / ``--token-file``, with env vars and config defaults.
    The command gets the secret as ``token`` whichever way it came."""

    command = f

    @functools.wraps(command)
    def with_token(*args: Any, token_file: str | None = None, **kwargs: Any) -> Any:
        kwargs["token"] = resolve_token(kwargs.get("token"), token_file)
        return command(*args, **kwargs)

    f = token_file_option(with_token)  # type: ignore[assignment]
    f = click.option(
        "--token",
        envvar="WORKSPACE_TOKEN",
        show_envvar=True,
        help="Shared secret, when the server was started with one (visible in `ps`: prefer --token-file).",
    )(f)
    return url_and_username_options(f)


def url_and_username_options(f: F, *more_names: str, help: str = "Your name") -> F:
    """``--url`` and ``--username`` (and *more_names* for it), with their env vars and checks."""
    f = click.option(
        "--username",
        *more_names,
        "-u",
        "username",
        envvar="WORKSPACE_USERNAME",
        show_envvar=True,
        callback=_check_username,
        help=f"{help}: 1-32 letters, digits, _ . -  [default: config, then your login name]",
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
