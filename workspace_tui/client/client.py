"""The reconnecting chat client: one connection task, a durable outbox, typed events.

:class:`ChatClient` serves the TUI and the one-liners alike. It reconnects
forever (exponential backoff with full jitter), resumes with ``since=`` so no
message is missed or delivered twice, and keeps every message the user sends
in a SQLite outbox until the server's ``message:new`` carrying its
``clientMsgId`` arrives. Everything it learns reaches the consumer as an event
from :meth:`ChatClient.events`, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from workspace_tui import protocol as p
from workspace_tui.client.backoff import Backoff
from workspace_tui.client.events import (
    ClientEvent,
    ConnectionState,
    ErrorReceived,
    FrameReceived,
    HistoryReceived,
    Joined,
    MessageAcknowledged,
    MessageFailed,
    MessagePending,
    MessageReceived,
    OutboxEntry,
    ReadPositionChanged,
    SendPaced,
    StateChanged,
    is_verified,
)
from workspace_tui.client.ledger import Ledger
from workspace_tui.client.outbox import LAST_MESSAGE_ID, Outbox
from workspace_tui.client.pacing import SeenIds, SendGate
from workspace_tui.client.reads import GENERAL, ReadReporter, RoomSummary, parse_read_position, parse_rooms
from workspace_tui.client.roster import PAGE as ROSTER_PAGE, RosterRefresh
from workspace_tui.client.rooms import (
    RoomJoined,
    RoomLeft,
    RoomMembersListed,
    RoomUpdated,
    TypingInRoom,
    dm_room_id,
    history_rooms,
    parse_room_frame,
    room_of,
    valid_room_id,
)
from workspace_tui.client import refusals

# Error codes the client adds for rejections it detects itself.
ERR_TOO_LARGE = "too_large"

# HTTP statuses that will not change by retrying: stop and say why.
_FATAL_STATUS = {
    400: "bad username",
    401: "bad or missing token",
    403: "forbidden",
    404: "wrong URL path",
    409: "name in use",
}


_CLOSE_REASONS = {
    1000: "closed by the server",
    1001: "server shutting down",
    1006: "connection lost",
    1008: "closed for flooding",
    1009: "a frame was too big for the server",
    1011: "server error",
    1012: "server restarting",
    p.CLOSE_IDLE: "closed as idle",
    p.CLOSE_SLOW_CONSUMER: "closed: we read too slowly",
}

SEEN_IDS_MAX = 10_000  # message ids remembered for dedupe
LAST_ID_FLUSH_SECONDS = 1.0  # the resume point is written at most this often (and on disconnect/close)
_END = object()


class ChatClient:
    """A chat connection that survives the network.

    Call :meth:`start`, then consume :meth:`events` (one consumer). :meth:`send`
    works whether connected or not: the message is on disk before it returns
    and goes out, in order, as soon as a connection is up.
    """

    def __init__(
        self,
        url: str,
        username: str,
        token: str | None = None,
        *,
        state_path: Path | str | None = None,
        present: bool = True,
        join_history: int | None = None,
        reconnect: bool = True,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        backoff_reset_after: float = 10.0,
        backoff_refused_cap: float = 3.0,
        rng: Callable[[], float] | None = None,
        open_timeout: float = 10.0,
        resume_on_start: bool = False,
        resume: bool = True,
        key: str | None = None,
        invite: str | None = None,
    ) -> None:
        """``key``: the key to offer for *username*; by default the one this device keeps for
        the name on this server (client/keys.py), made and saved on first use. ``invite``: a
        one-time invite to redeem with that key on the first connection (``workspace login``).
        """
        self.url = url
        # The URL as reasons show it: no query string (a token there must not end up on screen).
        self._shown_url = urlunsplit(urlsplit(url)._replace(query="", fragment=""))
        self.username = username
        self.token = token
        self.present = present
        self.join_history = join_history
        self.reconnect = reconnect
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.open_timeout = open_timeout
        self.backoff = Backoff(backoff_base, backoff_cap, reset_after=backoff_reset_after,
                               refused_ceiling=backoff_refused_cap, rng=rng)
        if state_path is None:
            from workspace_tui.paths import client_state_path

            state_path = client_state_path(url, username)
        self.state_path = Path(state_path)
        self._key = key
        self._invite = invite
        self.verified = False  # the server says this connection proved its name (from ``connected``)
        self.auth: str | None = None  # the server's --auth mode, once connected

        self.state = ConnectionState.CONNECTING  # until start() runs, nothing else is true either
        self.stop_reason: str | None = None
        self.stop_status: int | None = None
        self.stop_refusal: str | None = None  # the Workspace-Refusal code that stopped us, if any
        self.limits = p.Limits()
        self.user_id: str | None = None
        self.handshakes = 0  # connection attempts made (tests and diagnostics)

        self._resume_on_start = resume_on_start
        self._resume = resume and reconnect
        self._store: Outbox | None = None
        self._ledger = Ledger()  # the outbox in memory: entries, failures, what is in flight
        self._loaded: list[str] = []  # entries found on disk when the store was opened
        self._attempt = 0
        self._stopping = asyncio.Event()
        self._retry_now = asyncio.Event()  # reconnect_now(): cut the wait before the next attempt
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = asyncio.Event()
        self._status: str | None = None
        self._status_unsent = False  # set_presence() while disconnected: re-apply it on the next join
        self._seen = SeenIds(SEEN_IDS_MAX)
        self._last_id: str | None = None
        self._last_id_dirty = False
        self._last_id_flushed = 0.0
        self._have_resume_point = False  # True once this process has a valid since= for the server
        self._resuming = False
        self._gate = SendGate()
        self._last_send = 0.0
        self._paced_until = 0.0  # when the last announced SendPaced wait ends
        # The rooms we are in: from ``connected``, then room:joined / left / updated (empty: a server without rooms).
        self.rooms: dict[str, RoomSummary] = {}
        self._reads: dict[str, ReadReporter] = {GENERAL: ReadReporter()}  # per room
        self._read_timer: asyncio.TimerHandle | None = None
        self._read_task: asyncio.Task[None] | None = None
        # Presence too big to batch ("complete": false): general's roster is re-read, now and then.
        self._roster = RosterRefresh()
        # Whether to re-read it: for a consumer that shows the roster (the chat sets it); others
        # (one-liners, scripts) would only add load to a storm.
        self.follow_roster = False
        self._roster_timer: asyncio.TimerHandle | None = None
        self._roster_task: asyncio.Task[bool] | None = None

    # -- public API -----------------------------------------------------------

    @property
    def queued(self) -> int:
        """Messages in the outbox waiting for the server (failed ones not counted)."""
        return self._ledger.queued

    @property
    def last_message_id(self) -> str | None:
        """The resume point: the newest message id seen (persisted per server and username)."""
        return self._last_id

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.CONNECTED

    @property
    def status(self) -> str | None:
        """Our status: set here, or in another window of ours (the server tells every connection
        of a user), or found in the roster on join; ``None`` until one of those happened."""
        return self._status

    @property
    def last_read(self) -> str | None:
        """Where we stopped reading ``general``, as far as we know: the server's, or newer if read here since."""
        return self.last_read_in(GENERAL)

    def last_read_in(self, room: str) -> str | None:
        """Where we stopped reading *room*: the server's position, or newer if read here since."""
        reads = self._reads.get(room)
        return (reads.wanted or reads.known) if reads is not None else None

    def _reporter(self, room: str) -> ReadReporter:
        reads = self._reads.get(room)
        if reads is None:
            reads = self._reads[room] = ReadReporter()
        return reads

    def reconnect_now(self) -> bool:
        """Make the next connection attempt now instead of at the end of the backoff wait.

        Returns ``False`` (nothing done) unless the client is waiting to reconnect.
        """
        if self._closing or self.state is not ConnectionState.RECONNECTING:
            return False
        self._retry_now.set()
        return True

    def outbox(self) -> list[OutboxEntry]:
        """Every outbox entry in send order, failed ones included."""
        return list(self._ledger.entries.values())

    def in_doubt(self, client_msg_id: str) -> bool:
        """Whether the message went out and no answer came back: the server may have stored it.

        Such a message is safe to leave in the outbox: a later resend carries the
        same ``clientMsgId``, which the server answers with the stored message
        instead of storing it twice.
        """
        return client_msg_id in self._ledger.in_doubt

    async def start(self) -> None:
        """Start connecting in the background; replays the stored outbox as events first."""
        if self._task is not None:
            return
        store = self._open_store()
        self._last_id = store.get(LAST_MESSAGE_ID)
        self._have_resume_point = bool(self._resume_on_start and self._last_id)
        for cmid in self._loaded:
            entry = self._ledger.get(cmid)
            if entry is None:
                continue
            self._emit(MessagePending(entry))
            if entry.failed:
                self._emit(MessageFailed(entry, self._ledger.codes.get(cmid) or "failed", entry.error or ""))
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ChatClient {self.username}")

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Every event, in order, until the client has stopped (one consumer only)."""
        while True:
            event = await self._events.get()
            if event is _END:
                self._events.put_nowait(_END)  # later calls end at once too
                return
            yield event

    async def send(
        self, text: str, room: str | None = None, to: list[str] | tuple[str, ...] | None = None
    ) -> OutboxEntry:
        """Queue *text* for *room* (``dev``, ``dm:alice,bob``; None: general), or a DM *to* these
        names: written to disk before this returns, sent as soon as possible.

        Emits :class:`MessagePending`; text that can never be accepted (empty
        after cleaning, or larger than the server takes) is stored as failed
        and :class:`MessageFailed` follows at once.
        """
        if to:
            room = dm_room_id(self.username, list(to))
        store = self._open_store()
        cmid = new_client_msg_id()
        entry = OutboxEntry(cmid, text, p.iso_timestamp(), room=room if room and room != GENERAL else None)
        problem = self._check(entry)
        if problem:
            entry = entry._replace(failed=True, error=problem[1])
        store.add(entry, problem[0] if problem else None)
        self._ledger.add(entry, problem[0] if problem else None)
        self._emit(MessagePending(entry))
        if problem:
            self._emit(MessageFailed(entry, problem[0], problem[1]))
        self._wake.set()
        return entry

    async def retry(self, client_msg_id: str) -> bool:
        """Send a failed message again (it keeps its place in the order)."""
        entry = self._ledger.get(client_msg_id)
        if entry is None or not entry.failed:
            return False
        entry = entry._replace(failed=False, error=None)
        problem = self._check(entry)
        if problem:
            self._fail(entry, *problem)
            return False
        self._open_store().mark_pending(client_msg_id)
        self._ledger.pending_again(entry)
        self._emit(MessagePending(entry))
        self._wake.set()
        return True

    async def discard(self, client_msg_id: str) -> bool:
        """Drop a message from the outbox (normally a failed one) without sending it."""
        entry = self._ledger.remove(client_msg_id)
        removed = self._open_store().remove(client_msg_id)
        return entry is not None or removed

    async def set_presence(self, status: str) -> None:
        """Set our status; remembered and applied again after every reconnect."""
        if status not in p.STATUSES:
            raise ValueError(f"status must be one of {', '.join(p.STATUSES)}")
        self._status = status
        # Chosen while disconnected: newer than what the server has, so it wins on the next join.
        self._status_unsent = not await self._send_frame(p.UpdatePresence(status))

    async def set_typing(self, is_typing: bool, room: str = GENERAL) -> None:
        """Tell the others in *room* we are (not) typing; dropped while disconnected."""
        await self._send_frame(p.SetTyping(bool(is_typing)), room)

    async def request_history(self, before: str | None = None, limit: int = 50, room: str = GENERAL) -> bool:
        """Ask for up to *limit* messages of *room* before the id *before*; answered by a ``page`` HistoryReceived.

        Returns ``False`` (nothing sent) while disconnected.
        """
        limit = max(1, min(int(limit), p.MAX_HISTORY_PAGE))
        return await self._send_frame(p.RequestHistory(before, limit), room)

    # -- rooms (answered by Room* events, or ErrorReceived) ---------------------

    async def create_room(self, room: str, topic: str = "", private: bool = False) -> bool:
        """``room:create``; ``False`` while disconnected or for an id the server would refuse anyway."""
        if not valid_room_id(room) or room == GENERAL:
            raise ValueError(f"not a room name: {room!r} (a-z, 0-9, - and _, at most 32)")
        return await self._send_raw({"type": "room:create", "room": room, "topic": topic[:200], "private": private})

    async def join_room(self, room: str) -> bool:
        return await self._send_raw({"type": "room:join", "room": room})

    async def leave_room(self, room: str) -> bool:
        return await self._send_raw({"type": "room:leave", "room": room})

    async def invite(self, room: str, username: str) -> bool:
        return await self._send_raw({"type": "room:invite", "room": room, "username": username})

    async def set_topic(self, room: str, topic: str) -> bool:
        return await self._send_raw({"type": "room:topic", "room": room, "topic": topic[:200]})

    async def list_rooms(self) -> bool:
        return await self._send_raw({"type": "room:list"})

    async def request_members(self, room: str, after: str | None = None, limit: int = 100) -> bool:
        frame: dict[str, Any] = {"type": "room:members", "room": room, "limit": max(1, min(int(limit), 100))}
        if after is not None:
            frame["after"] = after
        return await self._send_raw(frame)

    async def read(self, message_id: str, room: str = GENERAL) -> bool:
        """We have read *room* up to and including *message_id*: tell the server (``read:update``).

        Only forward (an older position than the server's is not sent), and coalesced: at most one
        ``read:update`` a second, the newest position winning. Sent after the next join while
        disconnected. Returns ``False`` when *message_id* is no news.
        """
        if p.message_id_key(message_id) is None:
            raise ValueError(f"not a message id: {message_id!r}")
        if not self._reporter(room).read(message_id):
            return False
        await self._send_read()
        return True

    async def _send_read(self) -> None:
        now = time.monotonic()
        for room, reads in list(self._reads.items()):
            if reads.wanted is None:
                continue
            wait = reads.wait(now)
            if wait > 0:
                if self._read_timer is None and not self._closing:
                    self._read_timer = asyncio.get_running_loop().call_later(wait, self._read_due)
                continue
            mid = reads.take(now)
            if mid is None:
                continue
            # Built here, not by protocol.MarkRead: its parser still knows only general.
            ok = await self._send_raw({"type": "read:update", "room": room, "messageId": mid})
            reads.sent(mid, ok)

    def _read_due(self) -> None:
        self._read_timer = None
        if self._read_task is None or self._read_task.done():
            self._read_task = asyncio.get_running_loop().create_task(self._send_read())

    async def close(self, *, exiting: bool = False) -> None:
        """Close the connection cleanly; the outbox stays on disk for next time.

        ``exiting``: the process ends right after (a one-liner), so the outbox's log is left as
        it is for the next start instead of being folded into its file (see ``Outbox.close``).
        """
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        self._stopping.set()
        self._wake.set()
        ws = self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), 2.0)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._flush_last_id(force=True)
        if self.state is not ConnectionState.STOPPED or self.stop_reason is None:
            self._set_state(ConnectionState.STOPPED, reason="closed")
        if self._store is not None:
            self._store.close(checkpoint=not exiting)
            self._store = None
        self._events.put_nowait(_END)
        self._closed.set()

    async def wait_stopped(self) -> None:
        """Return once the client has stopped (closed, or a fatal refusal)."""
        await self._closed.wait()

    # -- state and events -----------------------------------------------------

    def _open_store(self) -> Outbox:
        if self._store is None:
            if self._closing:
                raise RuntimeError("client is closed")
            self._store = Outbox(self.state_path)
            self._loaded.extend(e.client_msg_id for e in self._ledger.load(self._store.entries()))
        return self._store

    def _emit(self, event: ClientEvent) -> None:
        self._events.put_nowait(event)

    def _set_state(
        self,
        state: ConnectionState,
        *,
        attempt: int = 0,
        delay: float | None = None,
        reason: str | None = None,
        status_code: int | None = None,
        detail: str | None = None,
        refusal: str | None = None,
    ) -> None:
        self.state = state
        if state is ConnectionState.STOPPED:
            self.stop_reason = reason
            self.stop_status = status_code
            self.stop_refusal = refusal
        self._emit(StateChanged(state, attempt, delay, reason, self.queued, status_code, detail, refusal))

    def _check(self, entry: OutboxEntry) -> tuple[str, str] | None:
        """Why *entry* can never be accepted, or ``None``."""
        if not p.sanitize_text(entry.text).strip():
            return (p.ERR_EMPTY_TEXT, "message text is empty")
        size = len(self._message_frame(entry).encode())
        limit = self.limits.max_payload_bytes
        if limit and size > limit:
            return (ERR_TOO_LARGE, f"message is too large ({size} bytes; the server takes at most {limit})")
        return None

    def _fail(self, entry: OutboxEntry, code: str, reason: str) -> None:
        known = entry.client_msg_id in self._ledger
        failed = self._ledger.failed(entry, code, reason)
        if known and self._store is not None:
            self._store.mark_failed(entry.client_msg_id, code, reason)
        self._emit(MessageFailed(failed, code, reason))
        self._wake.set()

    # -- the connection loop --------------------------------------------------

    def _connect_url(self) -> str:
        parts = urlsplit(self.url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in {"username", "since", "history", "presence"}]
        query.append(("username", self.username))
        if not self.present:
            query.append(("presence", "none"))
        self._resuming = self._resume and self._have_resume_point and self._last_id is not None
        if self._resuming:
            query.append(("since", self._last_id))
        else:
            want = self.join_history
            if want is not None:
                # Ask for one message even when the caller wants none: its id is
                # the resume point that lets a reconnect fetch what it missed.
                query.append(("history", str(max(want, 1) if self._resume else want)))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _subprotocols(self) -> list[str]:
        """What we offer in ``Sec-WebSocket-Protocol``: our protocol, the name's key, an invite to redeem."""
        offer = [p.SUBPROTOCOL]
        if self._key is not None:
            offer.append(p.KEY_PREFIX + self._key)
        if self._invite is not None:
            offer.append(p.INVITE_PREFIX + self._invite)
        return offer

    async def _run(self) -> None:
        # No key file for a name the server will refuse anyway (it says why: 400).
        if self._key is None and p.validate_username(self.username) is None:
            from workspace_tui.client.keys import KeyStoreError, key_for

            try:
                self._key = key_for(self.url, self.username)  # saved before it is ever offered
            except (KeyStoreError, ValueError) as exc:
                self._stop(f"cannot keep this device's key for {self.username}: {exc}", None)
                return
        attempt = 0
        while not self._closing:
            attempt += 1
            self._attempt = attempt
            if attempt == 1:
                self._set_state(ConnectionState.CONNECTING, attempt=1)
            status: int | None = None
            delay: float | None = None
            detail: str | None = None
            refused = False
            try:
                self.handshakes += 1
                headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
                ws = await connect(
                    self._connect_url(),
                    additional_headers=headers,
                    subprotocols=self._subprotocols(),  # type: ignore[arg-type]
                    open_timeout=self.open_timeout,
                    ping_interval=self.ping_interval,
                    ping_timeout=self.ping_timeout,
                    close_timeout=1.0,
                    compression=None,
                    max_size=None,
                    # Honour proxy settings, except for this machine (a proxy rarely knows it).
                    proxy=None if _is_loopback(self.url) else True,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                body = _body_text(exc.response.body)
                refusal = self._refusal(exc)
                if refusal is not None:
                    # Retrying cannot change the answer: stop and say what to run instead.
                    self._stop(
                        f"refused by the server (HTTP {status}): {refusal.reason}", status, refusal.detail, refusal.code
                    )
                    return
                if status in _FATAL_STATUS:
                    reason = f"refused by the server (HTTP {status}, {_FATAL_STATUS[status]})"
                    self._stop(reason + (f": {body}" if body else ""), status)
                    return
                if status == 429:
                    delay = self.backoff.cap
                    reason = (
                        f"too many connections for {self.username} (HTTP 429"
                        + (f": {body}" if body else "")
                        + f"); close another session, or wait: retrying in {delay:.0f} s"
                    )
                    detail = f"refused (HTTP 429): {body or 'too many connections'}"
                elif status == 503 and (told := refusals.retry_after_seconds(exc.response.headers.get("Retry-After"))):
                    # Busy (too many handshakes at once, as after a restart): come back when it says.
                    delay = self.backoff.told_delay(told)
                    reason = "the server is busy (HTTP 503" + (f": {body})" if body else ")")
                    detail = "server busy (HTTP 503)"
                else:
                    reason = f"server refused the connection (HTTP {status})"
                    detail = reason + (f": {body}" if body else "")
            except InvalidURI as exc:
                self._stop(f"invalid URL: {exc}", None)
                return
            except (OSError, asyncio.TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                detail = _describe(exc)
                reason = f"cannot reach {self._shown_url}: {detail}"
                refused = _refused(exc)
            except Exception as exc:  # noqa: BLE001 - anything else: say it and keep trying
                detail = _describe(exc)
                reason = f"cannot connect to {self._shown_url}: {detail}"
            else:
                try:
                    reason, up = await self._session(ws)
                except Exception as exc:  # noqa: BLE001 - a bug or a disk error must not kill the loop silently
                    reason, up = f"client error: {exc!r}", None
                    try:
                        await ws.close()
                    except Exception:  # noqa: BLE001
                        pass
                if self._closing:
                    break
                if up is not None and self.backoff.stable(up):
                    self.backoff.reset()
                    attempt = 1
            if not self.reconnect:
                self._stop(reason, status, detail)
                return
            if delay is None:
                delay = self.backoff.refused_delay() if refused else self.backoff.next_delay()
            self._retry_now.clear()
            self._set_state(
                ConnectionState.RECONNECTING,
                attempt=attempt + 1,
                delay=delay,
                reason=reason,
                status_code=status,
                detail=detail,
            )
            await self._wait_before_retry(delay)

    async def _wait_before_retry(self, delay: float) -> None:
        """Sleep *delay* seconds, less if the client is closed or :meth:`reconnect_now` is called."""
        waits = [asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self._retry_now.wait())]
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def _refusal(self, exc: InvalidStatus) -> refusals.Refusal | None:
        """The user's sentence for a refusal the server explained in ``Workspace-Refusal``."""
        headers = exc.response.headers
        code = (headers.get(p.REFUSAL_HEADER) or "").strip().lower()
        if not code:
            return None
        wait = refusals.retry_after_seconds(headers.get("Retry-After"))
        body = exc.response.body or b""
        said = body[:300].decode(errors="replace") if isinstance(body, bytes) else ""
        return refusals.describe(code, self.username, self._shown_url, wait, p.sanitize_text(said))

    def _stop(self, reason: str, status: int | None, detail: str | None = None, refusal: str | None = None) -> None:
        self._set_state(ConnectionState.STOPPED, reason=reason, status_code=status, detail=detail, refusal=refusal)
        self._flush_last_id(force=True)
        self._events.put_nowait(_END)
        self._closed.set()

    async def _session(self, ws: ClientConnection) -> tuple[str, float | None]:
        """Run one open connection; returns why it ended and how long it was joined."""
        self._ws = ws
        self._ledger.connection_closed()  # nothing from an earlier connection is in flight on this one
        joined_at: float | None = None
        helpers: list[asyncio.Task[None]] = []
        reason = "connection lost"
        try:
            async for raw in ws:
                try:
                    frame = p.parse_server_frame(raw)
                except p.BadServerFrame as exc:
                    self._emit(ErrorReceived("bad_frame", str(exc)))
                    continue
                if isinstance(frame, p.Connected):
                    if joined_at is not None:
                        continue  # only the first one counts
                    joined_at = time.monotonic()
                    reapply = self._on_connected(frame, parse_rooms(_raw_object(raw)))
                    helpers = [
                        asyncio.create_task(self._pump(ws)),
                        asyncio.create_task(self._heartbeat(ws)),
                    ]
                    if reapply and self._status is not None:
                        await ws.send(self._encode(p.UpdatePresence(self._status)))
                    continue
                if frame is None or not isinstance(frame, _HANDLED):
                    # Frames protocol.py does not type (yet): read positions, rooms.
                    obj = _raw_object(raw)
                    position = parse_read_position(obj)
                    if position is not None:
                        self._on_read_position(position)
                        continue
                    room_event = parse_room_frame(obj)
                    if type(room_event) is RoomMembersListed and room_event.room == GENERAL and self._roster.waiting:
                        self._roster_page(room_event)  # our own re-read of the roster
                        continue
                    if room_event is not None:
                        self._on_room_event(room_event)  # typed, for the chat; and as it is, below
                    if isinstance(obj, dict) and isinstance(obj.get("type"), str):
                        self._emit(FrameReceived(obj))  # rooms: the one-liners read them as they are
                        continue
                if isinstance(frame, p.TypingChanged):
                    obj = _raw_object(raw)
                    room = room_of(obj.get("data") if isinstance(obj, dict) else None)
                    if room != GENERAL:
                        self._emit(TypingInRoom(frame.user_id, frame.username, frame.is_typing, room))
                        continue
                if isinstance(frame, p.MessageNew) and isinstance(raw, str) and "unverifiedRecipients" in raw:
                    obj = _raw_object(raw)  # the sender's echo of a direct message: fields ChatMessage drops
                    if isinstance(obj, dict):
                        self._emit(FrameReceived(obj))
                if isinstance(frame, p.History):
                    self._on_frame(frame, _raw_object(raw))  # a history frame's room is at its top level
                    continue
                self._on_frame(frame)
        except ConnectionClosed:
            pass
        except OSError as exc:
            reason = _describe(exc)
        finally:
            self._ws = None
            self._roster.stop()
            if self._roster_timer is not None:
                self._roster_timer.cancel()
                self._roster_timer = None
            for task in helpers:
                task.cancel()
            for task in helpers:
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001
                    pass
            self._flush_last_id(force=True)
        code = ws.close_code
        if code is not None:
            reason = _CLOSE_REASONS.get(code, f"closed by the server ({code})")
            if ws.close_reason:
                reason += f": {p.sanitize_text(ws.close_reason)}"
            if code == p.CLOSE_TOO_BIG:
                self._fail_biggest_in_flight()
            elif code == p.CLOSE_POLICY:  # closed for flooding: start over gently
                self._gate.flooded(time.monotonic())
        self._ledger.connection_closed()
        return reason, (time.monotonic() - joined_at) if joined_at is not None else None

    def _on_connected(self, frame: p.Connected, rooms: tuple[RoomSummary, ...] = ()) -> bool:
        """Take in a ``connected`` frame; ``True`` when our status must be sent (re-applied)."""
        self.rooms = {r.room: r for r in rooms}
        for summary in rooms:
            self._reporter(summary.room).learned(summary.last_read)
        self.user_id = frame.user_id
        self.verified = is_verified(frame)
        self.auth = getattr(frame, "auth", None)
        self._invite = None  # redeemed (or not needed): an invite works once
        if self.verified and frame.username != self.username and frame.username.lower() == self.username.lower():
            self.username = frame.username  # the stored spelling: our own messages carry it
        reapply = self._settle_status(frame)
        self.limits = frame.limits
        now = time.monotonic()
        self._gate.connected(self.limits.messages_per_minute, now)
        self._last_send = now
        self._set_state(ConnectionState.CONNECTED, attempt=self._attempt)
        if self._resume and not self._resuming:
            # A plain join: whatever is stored after the newest message at this moment reaches us
            # live or by a later resume, so that id is our resume point before we have seen a
            # single message (else a drop before the first one loses what is sent meanwhile).
            # No id: the store is empty, resume from its very beginning.
            self._last_id = frame.last_message_id or p.make_message_id(0, 0)
            self._last_id_dirty = True
            self._have_resume_point = True
        self._emit(
            Joined(
                frame.user_id,
                frame.username,
                frame.connected_users,
                frame.users,
                frame.limits,
                self._resuming,
                self._status if self.present else None,
                self.verified,
                self.auth,
                rooms,
            )
        )
        if any(r.wanted is not None for r in self._reads.values()):  # read while disconnected: the server hears it now
            self._read_due()
        # Messages stored by another process of this user since we started.
        if self._store is not None:
            for entry in self._ledger.load(self._store.entries()):
                self._emit(MessagePending(entry))
                if entry.failed:
                    self._emit(MessageFailed(entry, self._ledger.codes[entry.client_msg_id], entry.error or ""))
        self._wake.set()
        return reapply

    def _settle_status(self, frame: p.Connected) -> bool:
        """Our status after a join, from the roster the server sent; ``True`` when ours must be re-applied.

        The roster has our entry with the server's idea of our status (none when we appear
        offline). A status chosen here while disconnected wins. A fresh client takes the server's: a window opened while busy starts busy. A client that
        already had a status takes the server's too, unless the server can only have forgotten
        it (it says ``online`` and this is our only connection: a restart, or a long absence):
        then ours goes back to the server.
        """
        if not self.present:
            return False
        mine = next((u for u in frame.users if u.user_id == frame.user_id), None)
        theirs = mine.status if mine is not None else "offline"
        if self._status_unsent:
            self._status_unsent = False
            return self._status is not None and self._status != theirs
        if self._status is None or self._status == theirs:
            self._status = theirs
            return False
        if theirs == "online" and mine is not None and mine.connections <= 1:
            return True
        self._status = theirs
        return False

    def _on_frame(self, frame: p.ServerFrame | None, raw: Any = None) -> None:
        if isinstance(frame, p.MessageNew):
            own = self._acknowledge(frame.message)
            if self._first_sight(frame.message):
                self._emit(MessageReceived(frame.message, own, frame.message.room))
        elif isinstance(frame, p.History):
            self._on_history(frame, raw)
        elif isinstance(frame, p.PresenceBatch):
            self._on_presence_batch(frame)
        elif isinstance(frame, (p.PresenceChanged, p.TypingChanged)):
            if isinstance(frame, p.PresenceChanged):
                self._roster.presence(frame)
            if (
                isinstance(frame, p.PresenceChanged)
                and self.present
                and frame.user_id == self.user_id
                and frame.connections is not None
                and frame.status in p.STATUSES
            ):
                self._status = frame.status  # set in another window of ours: re-applied after a reconnect
            self._emit(frame)  # already the consumer's event type
        elif isinstance(frame, p.ServerError):
            self._on_error(frame)
        # Pong and unknown frame types: nothing to do.

    def _on_presence_batch(self, batch: p.PresenceBatch) -> None:
        """A tick's presence (workspace.v1): the same events as one ``presence:update`` each."""
        for change in batch.users:
            if change.user_id == self.user_id:
                continue  # ours reaches our connections as presence:update, as without batches
            self._roster.presence(change)
            self._emit(change)
        if not batch.complete and self.follow_roster and self.present:
            self._roster.incomplete(time.monotonic())
            self._arm_roster()

    def _arm_roster(self) -> None:
        due = self._roster.due()
        if due is None:
            return
        if self._roster_timer is not None:
            self._roster_timer.cancel()
        self._roster_timer = asyncio.get_running_loop().call_later(max(0.0, due - time.monotonic()),
                                                                   self._start_roster)

    def _start_roster(self) -> None:
        self._roster_timer = None
        if self.state is ConnectionState.CONNECTED and not self._roster.running:
            self._ask_roster(self._roster.start())

    def _ask_roster(self, after: str) -> None:
        frame: dict[str, Any] = {"type": "room:members", "room": GENERAL, "limit": ROSTER_PAGE}
        if after:
            frame["after"] = after
        task = self._roster_task = asyncio.get_running_loop().create_task(self._send_raw(frame))
        task.add_done_callback(self._roster_sent)

    def _roster_sent(self, task: asyncio.Task[bool]) -> None:
        if task.cancelled() or task.exception() is not None or not task.result():
            self._roster.stop()  # not sent (disconnected): the next connected has a roster

    def _roster_page(self, page: RoomMembersListed) -> None:
        entries = [p.RosterEntry(m.user_id or p.user_id_for(m.username), m.username, m.status, 1, m.verified)
                   for m in page.members]
        result = self._roster.page(entries, page.next)
        if isinstance(result, str):
            self._ask_roster(result)
        elif result is not None:
            self._emit(result)
            self._arm_roster()  # another incomplete batch came meanwhile: read it again later

    def _on_read_position(self, position: ReadPositionChanged) -> None:
        self._reporter(position.room).learned(position.message_id)
        self._emit(position)

    def _on_room_event(self, event: Any) -> None:
        """Keep :attr:`rooms` in step with what the server says, then hand the event on."""
        if isinstance(event, RoomJoined):
            self.rooms[event.room.room] = event.room
            self._reporter(event.room.room).learned(event.room.last_read)
        elif isinstance(event, RoomLeft):
            self.rooms.pop(event.room, None)
        elif isinstance(event, RoomUpdated) and event.room in self.rooms:
            self.rooms[event.room] = self.rooms[event.room]._replace(topic=event.topic)
        self._emit(event)

    def _on_history(self, frame: p.History, raw: Any = None) -> None:
        top, rooms = history_rooms(raw) if raw is not None else (GENERAL, ())
        if len(rooms) != len(frame.messages):
            rooms = ()
        if frame.reason == "page":
            for m in frame.messages:
                self._acknowledge(m)
            self._emit(HistoryReceived(frame.messages, frame.reason, frame.has_more, frame.gap, top, rooms))
            return
        fresh = []
        fresh_rooms = []
        for i, m in enumerate(frame.messages):
            self._acknowledge(m)
            if self._first_sight(m):
                fresh.append(m)
                fresh_rooms.append(rooms[i] if rooms else (top or GENERAL))
        if frame.reason == "join":
            self._have_resume_point = True
            if not frame.messages and self._last_id is None and self.join_history is not None and self._resume:
                # An empty store: resume from its very beginning next time.
                self._last_id = p.make_message_id(0, 0)
            if self.join_history is not None:
                keep = len(fresh) - self.join_history if self.join_history > 0 else len(fresh)
                fresh, fresh_rooms = fresh[keep:], fresh_rooms[keep:]
        self._emit(HistoryReceived(tuple(fresh), frame.reason, frame.has_more, frame.gap, top, tuple(fresh_rooms)))

    def _on_error(self, frame: p.ServerError) -> None:
        if frame.frame_type == "room:members" and self._roster.waiting:
            self._roster.stop()  # refused (too many frames?): the next incomplete batch tries again
        cmid = frame.client_msg_id
        entry = self._ledger.get(cmid) if cmid else None
        if entry is None or entry.failed:
            self._emit(ErrorReceived(frame.code, frame.message, frame.frame_type, frame.retry_after_ms))
            return
        if frame.code in (p.ERR_RATE_LIMITED, p.ERR_UNAVAILABLE):
            self._gate.rate_limited(frame.retry_after_ms, time.monotonic())
            self._ledger.resend_from(cmid)  # from the rejected message on, in order
            self._emit(ErrorReceived(frame.code, frame.message, frame.frame_type, frame.retry_after_ms, cmid))
            self._wake.set()
            return
        self._fail(entry, frame.code, frame.message)

    def _acknowledge(self, message: p.ChatMessage) -> bool:
        """Settle our outbox entry for *message*; ``True`` when the message is ours."""
        own = message.username == self.username
        cmid = message.client_msg_id
        if own and cmid and cmid in self._ledger:
            entry = self._ledger.acknowledged(cmid)
            if self._store is not None:
                self._store.remove_acknowledged(cmid)
            if entry is not None:
                self._emit(MessageAcknowledged(cmid, message))
                self._gate.acknowledged()
                self._wake.set()  # room in the in-flight window
        return own

    def _first_sight(self, message: p.ChatMessage) -> bool:
        """Record *message*; ``False`` when it was already delivered."""
        mid = message.id
        if not self._seen.add(mid):
            return False
        if self._last_id is None or mid > self._last_id:
            self._last_id = mid
            self._last_id_dirty = True
            self._flush_last_id()
        return True

    def _flush_last_id(self, force: bool = False) -> None:
        if not self._resume or not self._last_id_dirty or self._store is None or self._last_id is None:
            return
        now = time.monotonic()
        if not force and now - self._last_id_flushed < LAST_ID_FLUSH_SECONDS:
            return
        self._store.advance_last_message_id(self._last_id)
        self._last_id_dirty = False
        self._last_id_flushed = now

    def _fail_biggest_in_flight(self) -> None:
        cmid = self._ledger.biggest_in_flight()
        entry = self._ledger.get(cmid) if cmid else None
        if entry is not None:
            self._fail(entry, ERR_TOO_LARGE, "message is too large for the server (closed with 1009)")

    # -- sending ----------------------------------------------------------------

    @staticmethod
    def _encode(request: p.ClientFrame) -> str:
        return json.dumps(p.client_frame(request), ensure_ascii=False, separators=(",", ":"))

    @staticmethod
    def _encode_in(request: p.ClientFrame, room: str) -> str:
        """*request* for *room*: general is the default and costs no bytes (older servers know no rooms)."""
        frame = p.client_frame(request)
        if room != GENERAL:
            frame["room"] = room
        return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def _message_frame(cls, entry: OutboxEntry) -> str:
        """The ``message:send`` for an outbox entry; ``room`` only when it is not general."""
        return cls._encode(p.SendMessage(entry.text, entry.client_msg_id, entry.room or GENERAL))

    async def send_object(self, frame: dict[str, Any]) -> bool:
        """Send a frame protocol.py does not build (``room:list``, ``room:members``...) as it is.

        Returns ``False`` (nothing sent) while disconnected; answers arrive as events
        (:class:`FrameReceived` and the typed Room* events, or :class:`ErrorReceived` for an ``error``).
        """
        return await self._send_text(json.dumps(frame, ensure_ascii=False, separators=(",", ":")))

    async def _send_raw(self, frame: dict[str, Any]) -> bool:
        return await self.send_object(frame)

    async def _send_frame(self, request: p.ClientFrame, room: str = GENERAL) -> bool:
        return await self._send_text(self._encode_in(request, room))

    async def _send_text(self, text: str) -> bool:
        ws = self._ws
        if ws is None or self.state is not ConnectionState.CONNECTED:
            return False
        try:
            await ws.send(text)
        except ConnectionClosed:
            return False
        self._last_send = time.monotonic()
        return True

    async def _pump(self, ws: ClientConnection) -> None:
        """Send outbox entries in order, paced to the server's rate limit."""
        while True:
            self._wake.clear()
            entry = self._ledger.next_unsent()
            if entry is None or len(self._ledger.in_flight) >= self._gate.window:
                await self._wake.wait()
                continue
            now = time.monotonic()
            wait = self._gate.delay(now)
            if wait > 0:
                if abs(now + wait - self._paced_until) > 0.25:  # a new wait, not the end of the last one
                    self._paced_until = now + wait
                    self._emit(
                        SendPaced(wait, self._gate.per_minute, self._ledger.queued, self._gate.pause_until > now)
                    )
                await asyncio.sleep(wait)
                continue
            problem = self._check(entry)
            if problem:
                self._fail(entry, *problem)
                continue
            frame = self._message_frame(entry)
            self._ledger.sent(entry.client_msg_id, len(frame))
            self._gate.take(time.monotonic())
            await ws.send(frame)
            self._last_send = time.monotonic()

    async def _heartbeat(self, ws: ClientConnection) -> None:
        """Send an app-level ``ping`` when otherwise silent, well within the idle timeout."""
        interval = self.ping_interval or 20.0
        idle = self.limits.idle_timeout_seconds
        if idle:
            interval = min(interval, idle / 3)
        interval = max(interval, 0.05)
        while True:
            due = self._last_send + interval - time.monotonic()
            if due > 0:
                await asyncio.sleep(due)
                continue
            await ws.send(self._encode(p.Ping()))
            self._last_send = time.monotonic()


# Frame types _on_frame handles; anything else may be one protocol.py does not type yet.
_HANDLED = (p.MessageNew, p.History, p.PresenceChanged, p.PresenceBatch, p.TypingChanged, p.ServerError, p.Connected,
            p.Pong)


def _raw_object(raw: str | bytes) -> Any:
    """The JSON object of a frame already parsed once (a few frames carry fields the typed one drops)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def new_client_msg_id() -> str:
    """A random UUID4 as 32 hex digits (``uuid.uuid4().hex`` without importing uuid: startup time)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return b.hex()


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in {"localhost", "::1"} or host.startswith("127.")


def _body_text(body: bytes | None) -> str:
    if not body:
        return ""
    return p.sanitize_text(body.decode("utf-8", "replace")).strip()[:200]


def _refused(exc: BaseException) -> bool:
    """Whether a connect failed because nothing listens (every address of the host refused)."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    return isinstance(exc, OSError) and str(exc).startswith("Multiple exceptions") and "Connect call failed" in str(exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if _refused(exc):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    text = str(exc) or type(exc).__name__
    return p.sanitize_text(text)
