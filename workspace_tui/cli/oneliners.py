"""``workspace send``, ``workspace tail`` and ``workspace who``: the one-shot commands.

Both run on :class:`~workspace_tui.client.ChatClient`, so they share its
outbox, reconnects and resume. They start fast: this module imports only
Click and our option helpers; asyncio, websockets and the client are imported
inside the commands, and Textual/Rich never.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from workspace_tui.cli.options import connection_options, resolve_username, timeout_option

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_REJECTED = 4

SEND_EPILOG = """\b
Exit codes:
  0  delivered (or, with --queue, kept in the outbox for later)
  2  usage error
  3  server unreachable within --timeout. Not delivered, and not kept:
     sending it again is safe. One exception, said on stderr: if the
     connection dropped after the message went out, the server may
     have stored it. That message stays in the outbox and your next
     chat, tail or send completes it (stored once, whatever happened);
     do not send it again yourself.
  4  rejected: the server's reason is on stderr (bad username or
     token, empty or too large, rate limited beyond --timeout);
     the exception under 3 applies here too

\b
Examples:
  workspace send "deploy finished"
  workspace send --room dev "build is green"
  workspace send --to bob "lunch?"
  make test 2>&1 | tail -n 20 | workspace send
  cat notes.txt | workspace send --lines
  workspace send --json "hello" | jq -r .id
"""

TAIL_EPILOG = """\b
Exit codes:
  0  done (--count reached, or Ctrl-C)
  2  usage error
  3  server unreachable within --timeout
  4  refused by the server (bad username or token)

\b
Examples:
  workspace tail
  workspace tail --last 20 --count 1
  workspace tail --room dev
  workspace tail --all --json | jq -r 'select(.room != "general") | .text'
  workspace tail --json --events | jq -c 'select(.type == "presence:update")'
"""


WHO_EPILOG = """\b
Exit codes:
  0  printed the roster
  2  usage error
  3  server unreachable within --timeout
  4  refused by the server (bad username or token)

\b
Examples:
  workspace who
  workspace who --room dev
  workspace who --json | jq -r 'select(.status == "online") | .username'
"""


def _err(text: str) -> None:
    click.echo(text, err=True)


def _load_client() -> Any:
    """Import asyncio and the client (the bulk of a one-liner's start-up), then let the garbage
    collector run again and the process end quickly (``workspace_tui.cli.one_shot``); returns asyncio."""
    import asyncio
    import importlib

    from workspace_tui.cli import one_shot

    importlib.import_module("workspace_tui.client")
    one_shot()
    return asyncio


# -- send ---------------------------------------------------------------------


def _room_options(f: Any) -> Any:
    return click.option(
        "--room", "room", metavar="ROOM", default=None,
        help="The room: dev or #dev, @bob for a direct message [default: general].",
    )(f)


def _room_id(room: str | None, to: tuple[str, ...], user: str) -> str | None:
    """The room id for --room / --to (None: general), or a usage error saying what is wrong."""
    from workspace_tui.cli.roomnames import RoomNameError, dm_room, parse_room
    from workspace_tui.protocol import GENERAL

    try:
        if to:
            if room is not None:
                raise click.UsageError("--room and --to do not go together: --to is a direct message")
            return dm_room(user, list(to))
        target = parse_room(room, user) if room is not None else None
    except RoomNameError as exc:
        raise click.UsageError(str(exc)) from None
    return None if target == GENERAL else target


@click.command(epilog=SEND_EPILOG)
@connection_options
@click.argument("text", nargs=-1)
@_room_options
@click.option(
    "--to", "to", metavar="NAME", multiple=True,
    help="A direct message to NAME (repeat for a group, up to 7 names).",
)
@click.option("--lines", is_flag=True, help="With stdin: send one message per non-empty line.")
@click.option("--json", "as_json", is_flag=True, help="Print each stored message as a JSON line.")
@timeout_option("Seconds to wait for the server's acknowledgement.")
@click.option(
    "--queue",
    is_flag=True,
    help="If the server cannot be reached, keep the message in the outbox (delivered by your next"
    " chat, tail or send) and exit 0.",
)
def send(
    url: str,
    username: str | None,
    token: str | None,
    text: tuple[str, ...],
    room: str | None,
    to: tuple[str, ...],
    lines: bool,
    as_json: bool,
    timeout: float,
    queue: bool,
) -> None:
    """Send a message and wait until the server has stored it.

    TEXT is joined with spaces. Without TEXT the message is read from stdin:
    the whole input as one message, or one per line with --lines. Anything
    you queued earlier (see --queue) is delivered first.
    """
    user = resolve_username(username)
    target = _room_id(room, to, user)
    if text:
        if lines:
            raise click.UsageError("--lines reads stdin; do not pass TEXT with it")
        messages = [" ".join(text)]
    else:
        if sys.stdin.isatty():
            raise click.UsageError("no TEXT given and stdin is a terminal: pass TEXT or pipe the message in")
        data = sys.stdin.read()
        if lines:
            messages = [line for line in data.splitlines() if line.strip()]
        else:
            messages = [data[:-1] if data.endswith("\n") else data]
        if not messages or not any(m.strip() for m in messages):
            _err("workspace send: rejected: nothing to send (stdin was empty)")
            sys.exit(EXIT_REJECTED)

    asyncio = _load_client()
    try:
        code = asyncio.run(_send(url, user, token, messages, as_json, timeout, queue, target))
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


class _Progress:
    """A line on stderr now and then while a batch paced by the server's rate limit goes out."""

    EVERY = 5.0  # seconds between two progress lines

    def __init__(self, total: int) -> None:
        import time

        self.total = total
        self.rate = 0  # messages per minute the server allows; 0 = no limit
        self.clock = time.monotonic
        self.last = self.clock()

    def _eta(self, left: int, burst: int = 0) -> float:
        # A full bucket lets a burst through at once; the rest come one per 60/rate s.
        return 60.0 * max(0, left - burst) / self.rate if self.rate else 0.0

    def announce(self, left: int) -> None:
        eta = self._eta(left, burst=self.rate)
        if self.rate and eta > 5:
            _err(f"workspace send: {left} message(s) at {self.rate} per minute (the server's limit):"
                 f" about {_duration(eta)}")

    def tick(self, done: int) -> None:
        now = self.clock()
        left = self.total - done
        if self.rate and left and now - self.last >= self.EVERY and self._eta(left) > 5:
            self.last = now
            _err(f"workspace send: {done} of {self.total} delivered; about {_duration(self._eta(left))} to go")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` as ``1-3, 7, 9-10``."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


async def _send(
    url: str, user: str, token: str | None, texts: list[str], as_json: bool, timeout: float, queue: bool,
    room: str | None = None,
) -> int:
    import asyncio

    from workspace_tui.protocol import sanitize_text
    from workspace_tui.client import (
        ChatClient,
        ConnectionState,
        ErrorReceived,
        FrameReceived,
        Joined,
        MessageAcknowledged,
        MessageFailed,
        StateChanged,
    )

    # Quiet (not in the roster), no history, no resume point: a one-shot sender.
    client = ChatClient(url, user, token, present=False, join_history=0, resume=False)
    ours: list[str] = []
    for t in texts:
        ours.append((await client.send(t, room)).client_msg_id)
    others = {e.client_msg_id for e in client.outbox() if not e.failed} - set(ours)
    waiting = set(ours) | others
    acked: dict[str, Any] = {}
    failed: dict[str, str] = {}
    last_reason: str | None = None
    stopped: StateChanged | None = None
    told_retrying = False
    refusal: str | None = None  # the server's last word on one of ours that it will take later
    unverified: dict[str, None] = {}  # recipients of ours the server says have not proved their name
    progress = _Progress(len(ours))
    loop = asyncio.get_running_loop()
    # --timeout bounds the wait for the server and for each next acknowledgement, not the
    # whole batch: a long --lines batch paced by the rate limit keeps going while it progresses.
    deadline = loop.time() + timeout

    await client.start()
    events = client.events()
    try:
        while waiting:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                event = await asyncio.wait_for(anext(events), remaining)
            except (asyncio.TimeoutError, StopAsyncIteration):
                break
            if isinstance(event, Joined):
                progress.rate = event.limits.messages_per_minute
                progress.announce(len(waiting))
            elif isinstance(event, MessageAcknowledged):
                waiting.discard(event.client_msg_id)
                acked[event.client_msg_id] = event.message
                if event.client_msg_id in ours:
                    deadline = loop.time() + timeout
                    progress.tick(len([c for c in ours if c in acked]))
            elif isinstance(event, FrameReceived) and event.frame.get("type") == "message:new":
                data = event.frame.get("data")
                names = data.get("unverifiedRecipients") if isinstance(data, dict) else None
                if isinstance(names, list) and data.get("clientMsgId") in ours:
                    unverified.update((n, None) for n in names[:8] if isinstance(n, str))
            elif isinstance(event, ErrorReceived) and event.client_msg_id in waiting:
                refusal = f"{event.message} ({event.code})"
            elif isinstance(event, MessageFailed):
                cmid = event.entry.client_msg_id
                if cmid in waiting or cmid in ours:
                    waiting.discard(cmid)
                    failed[cmid] = f"{event.reason} ({event.code})" if event.reason else event.code
            elif isinstance(event, StateChanged):
                if event.state is not ConnectionState.CONNECTED and event.reason:
                    last_reason = event.reason
                if event.state is ConnectionState.STOPPED and event.reason != "closed":
                    stopped = event
                    break
                if (
                    event.state is ConnectionState.RECONNECTING
                    and event.status_code  # refused (429...), not unreachable: waiting cannot help
                    and event.delay is not None
                    and loop.time() + event.delay > deadline
                ):
                    break  # the next attempt would come too late: say so now
                if event.state is ConnectionState.RECONNECTING and event.reason and not told_retrying:
                    told_retrying = True  # once: then quiet until it works or --timeout has passed
                    left = max(0.0, deadline - loop.time())
                    _err(f"workspace send: {sanitize_text(event.reason)}; retrying for {left:.0f} s"
                         " more (--timeout)")
    finally:
        pending_ours = [c for c in ours if c not in acked and c not in failed]
        unreachable = client.state is not ConnectionState.CONNECTED
        keep = queue and unreachable and stopped is None
        # Sent, never answered: maybe stored. Discarding it would turn the user's resend into a
        # duplicate; kept, the next client's resend carries the same clientMsgId and the server
        # answers with the stored copy instead of storing it twice.
        in_doubt = [c for c in pending_ours if client.in_doubt(c)]
        for cmid in ours:  # what we report as not delivered must not go out later by surprise
            if cmid in failed or (cmid in pending_ours and not keep and cmid not in in_doubt):
                await client.discard(cmid)
        await client.close(exiting=True)  # then the process ends: see cli.one_shot

    if as_json:
        import json

        for cmid in ours:
            if cmid in acked:
                m = acked[cmid]
                click.echo(json.dumps({**_inert(m.to_wire()), "room": _room_of(m)}, ensure_ascii=False))
    if unverified:
        names = ", ".join(sanitize_text(n) for n in unverified)
        _err(f"workspace send: {names} {'has' if len(unverified) == 1 else 'have'} not proved the name"
             " (unverified): whoever uses it now can read this")
    for cmid, reason in failed.items():
        which = "your message" if cmid in ours else "an earlier queued message"
        _err(f"workspace send: {which} was rejected: {sanitize_text(reason)}")
    if in_doubt and not keep:
        _err(
            f"workspace send: {len(in_doubt)} message(s) went out but the server did not confirm"
            " them; they may have been stored. Kept in the outbox: your next chat, tail or send"
            " completes them, once. Do not send them again yourself."
        )
    if stopped is not None:
        _err(f"workspace send: {sanitize_text(stopped.reason or 'refused')}")
        return EXIT_REJECTED
    if any(c in failed for c in ours):
        return EXIT_REJECTED
    if pending_ours and len(ours) > 1:
        delivered = [i + 1 for i, c in enumerate(ours) if c in acked]
        _err(f"workspace send: delivered {_ranges(delivered) or 'none'} of {len(ours)} lines;"
             f" not delivered: {_ranges([i + 1 for i, c in enumerate(ours) if c not in acked])}")
    if pending_ours:
        why = sanitize_text(last_reason or "no answer")
        if keep:
            _err(
                f"workspace send: server unreachable ({why}); {len(pending_ours)} message(s) kept in the"
                " outbox, delivered by your next chat, tail or send"
            )
            return EXIT_OK
        if unreachable:
            _err(f"workspace send: server unreachable within {timeout:g} s: {why}")
            return EXIT_UNREACHABLE
        dropped = len(pending_ours) - len(in_doubt)
        if refusal is not None:
            _err(f"workspace send: not delivered within {timeout:g} s: the server said {sanitize_text(refusal)}"
                 + ("; the message was not kept" if dropped else ""))
        elif dropped:
            _err(
                f"workspace send: rejected: not acknowledged within {timeout:g} s"
                " (rate limited or the server is too busy); the message was not kept"
            )
        else:
            _err(f"workspace send: rejected: not acknowledged within {timeout:g} s (the server is too busy)")
        return EXIT_REJECTED
    return EXIT_OK


# -- tail ---------------------------------------------------------------------


@click.command(epilog=TAIL_EPILOG)
@connection_options
@_room_options
@click.option("--all", "every_room", is_flag=True, help="Every room you are in; each line names its room.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (the message:new data).")
@click.option("--events", "with_events", is_flag=True, help="Also print presence and typing changes.")
@click.option("--last", type=click.IntRange(0, 1000), default=0, show_default=True, help="Start with the last N messages.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Exit after N new messages.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Give up (exit 3) when the server cannot be reached for this many seconds [default: retry forever].",
)
def tail(
    url: str,
    username: str | None,
    token: str | None,
    room: str | None,
    every_room: bool,
    as_json: bool,
    with_events: bool,
    last: int,
    count: int | None,
    timeout: float | None,
) -> None:
    """Print messages as they arrive, reconnecting and resuming without gaps or repeats.

    General's by default; --room for another room or a direct message, --all for
    every room you are in (each line then starts with #room, or @name for a
    direct message).
    """
    user = resolve_username(username)
    if every_room and room is not None:
        raise click.UsageError("--room and --all do not go together")
    target = _room_id(room, (), user)
    asyncio = _load_client()
    try:
        code = asyncio.run(_tail(url, user, token, as_json, with_events, last, count, timeout, target, every_room))
    except KeyboardInterrupt:
        code = EXIT_OK
    except BrokenPipeError:  # `workspace tail | head`: the reader left
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    sys.exit(code)


async def _tail(
    url: str,
    user: str,
    token: str | None,
    as_json: bool,
    with_events: bool,
    last: int,
    count: int | None,
    timeout: float | None,
    room: str | None = None,
    every_room: bool = False,
) -> int:
    import asyncio

    from workspace_tui.cli.roomnames import room_label
    from workspace_tui.cli.rooms import Refused, check_member
    from workspace_tui.client import (
        ChatClient,
        ConnectionState,
        ErrorReceived,
        HistoryReceived,
        Joined,
        MessageReceived,
        PresenceChanged,
        StateChanged,
        TypingChanged,
    )
    from workspace_tui.client.rooms import TypingInRoom
    from workspace_tui.protocol import GENERAL

    wanted = room or GENERAL

    def shown(m: Any) -> bool:
        return every_room or _room_of(m) == wanted

    # The join history is general's: another room's last messages are asked for once joined.
    client = ChatClient(url, user, token, present=False, join_history=last if wanted == GENERAL else 0)
    out = _Printer(as_json, user if every_room else None)
    seen_new = 0
    asked_history = False
    loop = asyncio.get_running_loop()
    down_since: float | None = loop.time()
    await client.start()
    events = client.events()
    try:
        while True:
            wait = None if timeout is None or down_since is None else down_since + timeout - loop.time()
            if wait is not None and wait <= 0:
                _err(f"workspace tail: server unreachable for {timeout:g} s, giving up")
                return EXIT_UNREACHABLE
            try:
                event = await asyncio.wait_for(anext(events), wait)
            except asyncio.TimeoutError:
                continue
            except StopAsyncIteration:
                return EXIT_OK
            if isinstance(event, StateChanged):
                if event.state is ConnectionState.CONNECTED:
                    if down_since is not None and client.handshakes > 1:
                        _err("workspace tail: connected")
                    down_since = None
                elif event.state is ConnectionState.RECONNECTING:
                    if down_since is None:
                        down_since = loop.time()
                    _err(f"workspace tail: {event.reason}; retrying in {event.delay:.1f} s")
                elif event.state is ConnectionState.STOPPED:
                    if event.reason != "closed":
                        _err(f"workspace tail: {event.reason}")
                        return EXIT_REJECTED if event.status_code else EXIT_UNREACHABLE
                    return EXIT_OK
            elif isinstance(event, Joined):
                try:
                    check_member(event, wanted, user)
                except Refused as exc:
                    _err(f"workspace tail: {exc.line}")
                    return exc.code
                if not asked_history and last:
                    asked_history = True
                    if every_room:
                        rooms = [r.room for r in event.rooms if r.room != GENERAL][:_HISTORY_ROOMS_MAX]
                    else:
                        rooms = [] if wanted == GENERAL else [wanted]
                    for name in rooms:
                        await client.send_object({"type": "history:request", "room": name, "limit": last})
            elif isinstance(event, ErrorReceived) and event.frame_type == "history:request":
                _err(f"workspace tail: {event.message} ({event.code})")
                return EXIT_REJECTED
            elif isinstance(event, HistoryReceived):
                if event.gap:
                    _err("workspace tail: some messages sent while disconnected are no longer on the server")
                for m in event.messages:
                    if not shown(m):
                        continue
                    out.message(m)
                    if event.reason == "resume":
                        seen_new += 1
                        if count is not None and seen_new >= count:
                            return EXIT_OK
            elif isinstance(event, MessageReceived):
                if not shown(event.message):
                    continue
                out.message(event.message)
                seen_new += 1
                if count is not None and seen_new >= count:
                    return EXIT_OK
            elif with_events and isinstance(event, PresenceChanged):
                data = {"userId": event.user_id, "username": event.username, "status": event.status}
                readable = f"{event.username} is {event.status}"
                if event.connections is not None:
                    data["connections"] = event.connections
                    if event.connections > 1:
                        readable += f" ({event.connections} connections)"
                out.event("presence:update", data, readable)
            elif with_events and isinstance(event, (TypingChanged, TypingInRoom)) and shown(event):
                where = _room_of(event)
                out.event(
                    "typing:indicator",
                    {"userId": event.user_id, "username": event.username, "isTyping": event.is_typing,
                     **({"room": where} if every_room else {})},
                    f"{event.username} {'is typing' if event.is_typing else 'stopped typing'}"
                    + (f" in {room_label(where, user)}" if every_room else ""),
                )
    finally:
        await client.close(exiting=True)  # then the process ends: see cli.one_shot


_HISTORY_ROOMS_MAX = 100  # tail --all --last N: rooms whose last messages are asked for


def _room_of(message: Any) -> str:
    """The room a message is in; one from a server without rooms is in general."""
    room = getattr(message, "room", None)
    return room if isinstance(room, str) and room else "general"


def _inert(data: dict[str, Any]) -> dict[str, Any]:
    """A message's wire data with its text fields made safe for a terminal, whatever the server sent."""
    from workspace_tui.protocol import sanitize_text

    return {k: sanitize_text(v) if k in ("text", "username") and isinstance(v, str) else v for k, v in data.items()}


class _Printer:
    """Writes messages and events to stdout, readable or as JSON lines; always inert text."""

    def __init__(self, as_json: bool, rooms_for: str | None = None) -> None:
        """*rooms_for*: name each message's room (``#dev``, ``@bob``) as this user sees it."""
        import json

        from workspace_tui.protocol import parse_timestamp, sanitize_text

        self._json = as_json
        self._dumps = json.dumps
        self._clean = sanitize_text
        self._parse_ts = parse_timestamp
        self._rooms_for = rooms_for

    def _write(self, line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def message(self, m: Any) -> None:
        if self._json:
            self._write(self._dumps({**_inert(m.to_wire()), "room": _room_of(m)}, ensure_ascii=False))
            return
        try:
            stamp = self._parse_ts(m.created_at).astimezone().strftime("%H:%M")
        except ValueError:
            stamp = "??:??"
        name = self._clean(m.username)
        prefix = f"{stamp}  {name}: "
        if self._rooms_for is not None:
            from workspace_tui.cli.roomnames import room_label

            prefix = f"{stamp}  {self._clean(room_label(_room_of(m), self._rooms_for))}  {name}: "
        body = self._clean(m.text).split("\n")
        indent = " " * len(prefix)
        self._write(prefix + body[0] + "".join("\n" + indent + line for line in body[1:]))

    def row(self, data: dict[str, Any], readable: str) -> None:
        """A plain record: a JSON object, or one readable line."""
        if self._json:
            self._write(self._dumps(_inert(data), ensure_ascii=False))
        else:
            self._write(self._clean(readable))

    def event(self, kind: str, data: dict[str, Any], readable: str) -> None:
        if self._json:
            self._write(self._dumps(_inert({"type": kind, **data}), ensure_ascii=False))
        else:
            self._write(f"         * {self._clean(readable)}")


# -- who ----------------------------------------------------------------------


@click.command(epilog=WHO_EPILOG)
@connection_options
@_room_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per user.")
@timeout_option()
def who(url: str, username: str | None, token: str | None, room: str | None, as_json: bool, timeout: float) -> None:
    """List who is here: one user per line with their status.

    Online users first, then away and busy; users who appear offline are not
    listed. A user connected more than once shows the number of connections.
    Connects quietly, so asking does not make you appear online.

    With --room: that room's members, online first, offline ones too.
    """
    user = resolve_username(username)
    target = _room_id(room, (), user)
    asyncio = _load_client()
    try:
        if target is not None:
            code = asyncio.run(_who_in_room(url, user, token, target, as_json, timeout))
        else:
            code = asyncio.run(_who(url, user, token, as_json, timeout))
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


async def _who(url: str, user: str, token: str | None, as_json: bool, timeout: float) -> int:
    import asyncio

    from workspace_tui.client import ChatClient, ConnectionState, Joined, StateChanged
    from workspace_tui.protocol import STATUSES

    client = ChatClient(url, user, token, present=False, join_history=0, resume=False)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_reason = "no answer"
    await client.start()
    events = client.events()
    try:
        while True:
            remaining = deadline - loop.time()
            try:
                event = await asyncio.wait_for(anext(events), max(remaining, 0))
            except (asyncio.TimeoutError, StopAsyncIteration):
                _err(f"workspace who: server unreachable within {timeout:g} s: {last_reason}")
                return EXIT_UNREACHABLE
            if isinstance(event, Joined):
                users = sorted(event.users, key=lambda u: (STATUSES.index(u.status) if u.status in STATUSES else 9, u.username))
                break
            if isinstance(event, StateChanged) and event.reason:
                last_reason = event.reason
                if event.state is ConnectionState.STOPPED:
                    _err(f"workspace who: {event.reason}")
                    return EXIT_REJECTED if event.status_code else EXIT_UNREACHABLE
    finally:
        await client.close(exiting=True)  # then the process ends: see cli.one_shot

    out = _Printer(as_json)
    for u in users:
        data = {"userId": u.user_id, "username": u.username, "status": u.status, "connections": u.connections}
        readable = f"{u.username}  {u.status}" + (f"  ({u.connections} connections)" if u.connections > 1 else "")
        out.row(data, readable)
    return EXIT_OK


async def _who_in_room(url: str, user: str, token: str | None, room: str, as_json: bool, timeout: float) -> int:
    from workspace_tui.cli.rooms import Asking, Refused, check_member, member_order, members

    try:
        async with Asking("who", url, user, token, timeout) as ask:
            check_member(ask.joined, room, user)
            found = await members(ask, room)
    except Refused as exc:
        _err(f"workspace who: {exc.line}")
        return exc.code
    out = _Printer(as_json)
    for m in sorted(found, key=member_order):
        status = m.get("status") if isinstance(m.get("status"), str) else "offline"
        data = {"room": room, "username": m["username"], "userId": m.get("userId"), "status": status}
        if m.get("verified") is True:
            data["verified"] = True
        out.row(data, f"{m['username']}  {status}")
    return EXIT_OK
