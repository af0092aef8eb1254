"""``workspace users``: who owns which name on a server's store, for its admin.

Works on the store itself (the SQLite file, or Redis with ``--broker``), with the server running
or not: a running server reads the account at every handshake, so a change counts from the next
connection. Invites are printed once and kept only as hashes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import click

EPILOG = """\b
Exit codes:
  0    done
  1    the store cannot be opened, or no such name / it already exists
  2    usage error
"""


def _store_options(f: Any) -> Any:
    f = click.option("--broker", envvar="WORKSPACE_BROKER", default=None, show_envvar=True,
                     help="redis://HOST:PORT/DB: the accounts of a workspace served through Redis.")(f)
    f = click.option("--db", envvar="WORKSPACE_DB", default=None, show_envvar=True,
                     help="The server's SQLite store.  [default: workspace.sqlite3 in the user data dir]")(f)
    return f


def _admin(db: str | None, broker: str | None) -> Any:
    from workspace_tui import paths
    from workspace_tui.backends.admin import AccountAdmin
    from workspace_tui.backends.base import StoreError

    if broker:
        try:
            return AccountAdmin(broker=broker)
        except ImportError:
            raise click.ClickException("--broker needs the redis package: pip install 'workspace-tui[redis]'") from None
        except Exception as exc:
            raise click.ClickException(f"cannot reach the broker: {exc}") from None
    path = db or str(paths.default_db_path())
    if path != ":memory:" and not db and not paths.default_db_path().exists():
        raise click.ClickException(f"no store at {path}: start `workspace serve` once, or give --db")
    try:
        return AccountAdmin(path)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _invite_note(name: str, invite: str) -> None:
    click.echo(invite)
    click.echo(
        f"One-time invite for {name} (shown once). They run `workspace login --username {name}` "
        "and paste it, or paste it in the chat's join screen.", err=True,
    )


@click.group(epilog=EPILOG)
def users() -> None:
    """Who owns which name: list, add (an invite), remove, reset (a lost key)."""


@users.command("list", epilog=EPILOG)
@_store_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_(db: str | None, broker: str | None, as_json: bool) -> None:
    """List the names: claimed (a key owns it) or invited (waiting for its invite)."""
    admin = _admin(db, broker)
    try:
        accounts = admin.list()
    finally:
        admin.close()
    if as_json:
        for a in accounts:
            click.echo(json.dumps({"username": a.username, "state": a.state, "createdMs": a.created_ms,
                                   "claimedMs": a.claimed_ms}))
        return
    if not accounts:
        click.echo("no names are claimed yet", err=True)
        return
    width = max(4, *(len(a.username) for a in accounts))
    click.echo(f"{'NAME':<{width}}  STATE    CREATED           CLAIMED")
    for a in accounts:
        click.echo(f"{a.username:<{width}}  {a.state:<7}  {_when(a.created_ms):<16}  {_when(a.claimed_ms)}")


def _do(db: str | None, broker: str | None, action: Any) -> Any:
    """Run *action* on the store's accounts; its refusal (no such name, already there) is one line."""
    admin = _admin(db, broker)
    try:
        return action(admin)
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None
    finally:
        admin.close()


@users.command(epilog=EPILOG)
@_store_options
@click.argument("name")
def add(db: str | None, broker: str | None, name: str) -> None:
    """Create NAME and print its one-time invite (on stdout; the rest on stderr)."""
    _invite_note(name, _do(db, broker, lambda admin: admin.add(name)))


@users.command(epilog=EPILOG)
@_store_options
@click.argument("name")
def reset(db: str | None, broker: str | None, name: str) -> None:
    """Forget NAME's key (lost, or a device to lock out) and print a new one-time invite."""
    _invite_note(name, _do(db, broker, lambda admin: admin.reset(name)))


@users.command(epilog=EPILOG)
@_store_options
@click.argument("name")
def remove(db: str | None, broker: str | None, name: str) -> None:
    """Delete NAME's account. With --auth claim the name is free to claim again."""
    gone = _do(db, broker, lambda admin: admin.remove(name))
    click.echo(f"removed {gone.username}", err=True)
