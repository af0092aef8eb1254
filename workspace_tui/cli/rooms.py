"""``workspace rooms`` and the room questions of the other one-liners (``who --room``).

Each asks once over a quiet connection (not in the roster, no history): wait for
``connected``, send one request, read its answer (``room:list``, ``room:members``,
paged), close. A refusal or an unreachable server is one line on stderr and exit
3 or 4, as for ``workspace who``.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from workspace_tui.cli.options import connection_options, resolve_username, timeout_option

EXIT_OK = 0
EXIT_UNREACHABLE = 3
EXIT_REJECTED = 4

MEMBER_PAGE = 100  # members per room:members request
MEMBER_PAGES_MAX = 200  # pages followed at most: 20,000 members, whatever the server says about more

ROOMS_EPILOG = """\b
Exit codes:
  0  printed the rooms
  2  usage error
  3  server unreachable within --timeout
  4  refused by the server (bad username or token)

\b
Examples:
  workspace rooms
  workspace rooms --all
  workspace rooms --json | jq -r 'select(.unread > 0) | .room'
"""


class Refused(Exception):
    """The server said no (or could not be reached): the line to print and the exit code."""

    def __init__(self, line: str, code: int) -> None:
        super().__init__(line)
        self.line = line
        self.code = code


class Asking:
    """One quiet connection for a few questions: ``async with Asking(...) as ask``.

    ``ask.joined`` is the ``connected`` the server sent; :meth:`request` sends a frame
    and returns the answer of the same type (an ``error`` about it raises :class:`Refused`).
    """

    def __init__(self, command: str, url: str, user: str, token: str | None, timeout: float) -> None:
        self.command = command
        self.timeout = timeout
        self.url, self.user, self.token = url, user, token
        self.joined: Any = None

    async def __aenter__(self) -> "Asking":
        from workspace_tui.client import ChatClient, ConnectionState, Joined, StateChanged

        self.client = ChatClient(self.url, self.user, self.token, present=False, join_history=0, resume=False)
        await self.client.start()
        self.events = self.client.events()
        last_reason = "no answer"
        deadline = self._deadline()
        try:
            while self.joined is None:
                event = await self._next(deadline, f"server unreachable within {self.timeout:g} s: {{}}", lambda: last_reason)
                if isinstance(event, Joined):
                    self.joined = event
                elif isinstance(event, StateChanged) and event.reason:
                    last_reason = event.reason
                    if event.state is ConnectionState.STOPPED:
                        raise Refused(event.reason, EXIT_REJECTED if event.status_code else EXIT_UNREACHABLE)
        except BaseException:
            await self.client.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    def _deadline(self) -> float:
        import asyncio

        return asyncio.get_running_loop().time() + self.timeout

    async def _next(self, deadline: float, unreachable: str, reason: Any) -> Any:
        """The next event before *deadline* (``--timeout`` for the whole question, not per event)."""
        import asyncio

        try:
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            return await asyncio.wait_for(anext(self.events), remaining)
        except (asyncio.TimeoutError, StopAsyncIteration):
            raise Refused(unreachable.format(reason()), EXIT_UNREACHABLE) from None

    async def request(self, frame: dict[str, Any], same_room: bool = True) -> dict[str, Any]:
        """Send *frame*; its answer: the next frame of its type (about its room, if it names one)."""
        from workspace_tui.client import ErrorReceived, FrameReceived, StateChanged

        if not await self.client.send_object(frame):
            raise Refused("connection lost before the question went out", EXIT_UNREACHABLE)
        kind = frame["type"]
        deadline = self._deadline()
        while True:
            event = await self._next(deadline, f"no answer to {kind} within {self.timeout:g} s{{}}", lambda: "")
            if isinstance(event, FrameReceived) and event.frame.get("type") == kind:
                if not same_room or "room" not in frame or event.frame.get("room") == frame["room"]:
                    return event.frame
            elif isinstance(event, ErrorReceived) and event.frame_type in (kind, None):
                raise Refused(f"{_clean(event.message)} ({_clean(event.code)})", EXIT_REJECTED)
            elif isinstance(event, StateChanged) and event.reason and event.reason != "closed":
                raise Refused(f"connection lost: {event.reason}", EXIT_UNREACHABLE)


def _clean(text: Any) -> str:
    from workspace_tui.protocol import sanitize_text

    return sanitize_text(str(text))


def not_a_member(room: str, user: str) -> str:
    from workspace_tui.cli.roomnames import room_label

    return f"{room_label(room, user)}: no such room, or you are not in it (workspace rooms --all lists them)"


def check_member(joined: Any, room: str, user: str) -> None:
    """Refuse early, without asking the server, a room the ``connected`` frame says we are not in."""
    from workspace_tui.protocol import GENERAL

    if room == GENERAL:
        return
    if not joined.rooms:
        raise Refused("this server has no rooms besides general", EXIT_REJECTED)
    if room not in {r.room for r in joined.rooms}:
        raise Refused(not_a_member(room, user), EXIT_REJECTED)


async def members(ask: Asking, room: str) -> list[dict[str, Any]]:
    """Every member of *room*, following ``next`` page by page (bounded)."""
    out: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(MEMBER_PAGES_MAX):
        frame: dict[str, Any] = {"type": "room:members", "room": room, "limit": MEMBER_PAGE}
        if after is not None:
            frame["after"] = after
        answer = await ask.request(frame)
        page = answer.get("members")
        out.extend(m for m in (page if isinstance(page, list) else []) if isinstance(m, dict) and isinstance(m.get("username"), str))
        nxt = answer.get("next")
        if not isinstance(nxt, str) or not nxt or nxt == after:
            break
        after = nxt
    return out


def member_order(member: dict[str, Any]) -> tuple[int, str]:
    """Online first, then away, busy, offline; by name within each."""
    from workspace_tui.protocol import STATUSES

    status = member.get("status")
    return (STATUSES.index(status) if status in STATUSES else len(STATUSES), member["username"].lower())


# -- workspace rooms ------------------------------------------------------------


@click.command(epilog=ROOMS_EPILOG)
@connection_options
@click.option("--all", "everything", is_flag=True, help="Also the public rooms you are not in.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per room.")
@timeout_option()
def rooms(url: str, username: str | None, token: str | None, everything: bool, as_json: bool, timeout: float) -> None:
    """List your rooms and direct messages, with unread and mention counts.

    General first, then rooms, then direct messages. Connects quietly, so asking
    does not make you appear online.
    """
    user = resolve_username(username)
    import asyncio

    try:
        code = asyncio.run(_rooms(url, user, token, everything, as_json, timeout))
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


async def _rooms(url: str, user: str, token: str | None, everything: bool, as_json: bool, timeout: float) -> int:
    try:
        async with Asking("rooms", url, user, token, timeout) as ask:
            summaries = {r.room: r for r in ask.joined.rooms}
            listed = await ask.request({"type": "room:list"}) if summaries or everything else {}
    except Refused as exc:
        click.echo(f"workspace rooms: {exc.line}", err=True)
        return exc.code
    import json

    for row in room_rows(user, summaries, listed.get("rooms"), everything):
        line = json.dumps(row, ensure_ascii=False) if as_json else readable_room(row)
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return EXIT_OK


def room_rows(user: str, summaries: dict[str, Any], listed: Any, everything: bool) -> list[dict[str, Any]]:
    """One record per room: ``connected.rooms`` (unread, mentions) joined with ``room:list`` (kind, topic, size)."""
    from workspace_tui.cli.roomnames import DM_PREFIX, room_label
    from workspace_tui.protocol import GENERAL

    details = {r["room"]: r for r in (listed if isinstance(listed, list) else [])
               if isinstance(r, dict) and isinstance(r.get("room"), str)}
    names = list(summaries) + [r for r in details if r not in summaries and (everything or details[r].get("joined"))]
    if GENERAL not in names:
        names.insert(0, GENERAL)
    rows = []
    for name in names:
        summary, detail = summaries.get(name), details.get(name, {})
        kind = detail.get("kind") or ("dm" if name.startswith(DM_PREFIX) else "public")
        row: dict[str, Any] = {
            "room": name,
            "label": _clean(room_label(name, user)),
            "kind": kind,
            "topic": _clean(detail["topic"]) if isinstance(detail.get("topic"), str) else "",
            "members": detail.get("members") if isinstance(detail.get("members"), int) else None,
            "joined": summary is not None or detail.get("joined") is True or name == GENERAL,
            "unread": summary.unread if summary else 0,
            "mentions": summary.mentions if summary else 0,
        }
        if kind == "dm":
            row["with"] = [n for n in name[len(DM_PREFIX):].split(",") if n != user.lower()]
        rows.append(row)
    order = {"dm": 2}
    rows.sort(key=lambda r: (r["room"] != GENERAL, not r["joined"], order.get(r["kind"], 1), r["room"]))
    return rows


def readable_room(row: dict[str, Any]) -> str:
    from workspace_tui.protocol import UNREAD_CAP

    def count(n: int, what: str) -> str:
        shown = f"{UNREAD_CAP}+" if n >= UNREAD_CAP else str(n)
        return f"{shown} {what}{'' if n == 1 else 's'}"

    parts = [row["label"]]
    if not row["joined"]:
        parts.append("(not joined)")
    elif row["unread"] or row["mentions"]:
        parts.append(count(row["unread"], "unread").replace("unreads", "unread"))
        if row["mentions"]:
            parts.append(count(row["mentions"], "mention"))
    if row["kind"] == "private":
        parts.append("private")
    if row["members"] is not None and row["kind"] != "dm":
        parts.append(count(row["members"], "member"))
    if row["topic"]:
        parts.append(f"— {row['topic']}")
    return "  ".join(parts)
