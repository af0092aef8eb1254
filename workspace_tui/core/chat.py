"""The chat core: every decision the server makes, with no I/O.

:class:`ChatCore` is told what happened (a handshake, a frame, a closed
connection, a stored message, a read that completed, the time passing) and
answers by appending :mod:`effects <.effects>` to :attr:`ChatCore.out`, which
the server carries out in order. It reads the time from the clock it is
given, never from the system, so every timer (typing expiry, idle close,
keepalive, status memory, rate-limit refill) can be tested instantly with a
fake clock.

Two rules shape most of this module:

* **Order.** Everything others learn about a user leaves in the order the user
  did it. A user's ``message:send`` waits for its store; their presence and
  typing broadcasts made meanwhile wait behind it in the user's backlog
  (:meth:`_about`), and go out once it is broadcast or refused. Presence for
  workspace.v1 connections is collected for a tick (one ``presence:batch``,
  :meth:`_presence_effects`); a batch holding a change of a user goes out
  early, before that user's next message or typing.
* **Budgets.** History goes out in frames of at most ~512 KiB, one at a time:
  the next is read only once the connection has drained the previous one
  (:class:`~.effects.WhenDrained`), so no request makes the server hold more
  than a frame or two for anyone.
"""

from __future__ import annotations

import heapq
import hmac
from collections import Counter
from typing import Any, Protocol

from workspace_tui.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_IDLE,
    CLOSE_POLICY,
    CLOSE_SLOW_CONSUMER,
    ERR_NOT_ALLOWED,
    ERR_RATE_LIMITED,
    ERR_UNAVAILABLE,
    MAX_JOIN_HISTORY,
    ChatMessage,
    FrameError,
    Ping as PingFrame,
    RequestHistory,
    SendMessage,
    SetTyping,
    UpdatePresence,
    error_frame,
    iso_timestamp,
    message_id_key,
    message_new_frame,
    parse_client_frame,
    pong_frame,
    presence_frame,
    typing_frame,
    ERR_INVALID_FIELD,
    GENERAL,
    SUBPROTOCOL,
    MarkRead,
    RoomRequest,
    dm_participants,
    dm_room,
    read_position_frame,
    REFUSED_KEY_REQUIRED,
    REFUSED_NAME_TAKEN,
    REFUSED_THROTTLED,
    name_key,
    offered_secrets,
    validate_username,
)

from .effects import (
    Abort,
    Attach,
    Broadcast,
    CheckNames,
    Close,
    Deliver,
    Effect,
    Ping,
    Post,
    Read,
    Relay,
    Release,
    RoomOp,
    SaveRead,
    Store,
    WhenDrained,
)
from .encoding import encode
from .history import (
    RESUME_CHUNK,
    HistoryQuery,
    HistoryResult,
    encoded_messages,
    fit_newest,
    fit_oldest,
    history_payload,
)
from .identity import Account, Claim, Throttle, decide, is_wrong_secret
from .limits import Limiter, TokenBucket
from .rooms import RoomInfo, dm_info, general_info, is_dm
from .outcomes import Duplicate, Outcome, RateLimited
from .presence import Change, Presence, RemoteUser, TickBatch
from .rules import Rules
from .state import Conn, Draft, Refusal, Resume, Session, User

MAX_QUEUED_READS = 8  # history:request frames one connection may have waiting for an answer
PRUNE_EVERY = 30.0  # seconds between forgetting idle limiters and expired statuses


def _in_dm(username: str, room: str) -> bool:
    """Whether *username* is one of a ``dm:`` room's participants (look-alike spellings are one name)."""
    me = name_key(username)
    return any(name_key(n) == me for n in dm_participants(room) or ())


class Clock(Protocol):
    """Where the core reads the time: ``monotonic`` seconds for timers, wall-clock milliseconds
    for the timestamps clients see."""

    def monotonic(self) -> float: ...

    def wall_ms(self) -> int: ...


class Counters:
    """What ``/metrics`` reports about the core's decisions."""

    def __init__(self) -> None:
        self.connections_total = 0
        self.messages_total = 0
        self.duplicates_total = 0
        self.rejections: Counter[str] = Counter()  # error code -> count
        self.closes: Counter[int] = Counter()  # close code the server chose -> count


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


class ChatCore:
    """The decisions of one server node. See the module docstring."""

    def __init__(self, rules: Rules, clock: Clock, last_message_id: str | None = None) -> None:
        self.rules = rules
        self.clock = clock
        self.out: list[Effect] = []
        self.presence = Presence(rules.status_memory)
        self.conns: set[Conn] = set()  # open connections
        self.document_conns = 0  # ... of them, those that offered no workspace.v1 (the document's frames only)
        self.batch = TickBatch()  # this tick's presence changes, for the others (presence:batch)
        self.reservations: dict[str, int] = {}  # name key -> slots of the per-user cap in use
        self.address_conns: dict[str, int] = {}  # client address -> slots of the per-address cap in use
        self.address_limiters: dict[str, Limiter] = {}  # client address -> its message:send limit
        self.claim_buckets: dict[str, TokenBucket] = {}  # client address -> names it may still claim
        self.throttle = Throttle()  # wrong keys and invites
        # Wrong shared tokens, per address: more free tries, as one address may be a whole team's NAT.
        self.token_throttle = Throttle(free_tries=10)
        self.spellings: dict[str, str] = {}  # name key -> the spelling of the user here with it
        self.room_users: dict[str, set[User]] = {}  # room (not general) -> its members connected here
        self.last_room_message: dict[str, str] = {}  # room -> its newest message broadcast here
        self.send_limiters: dict[str, Limiter] = {}
        self.frame_limiters: dict[str, Limiter] = {}
        self.inflight: dict[tuple[str, str], Draft] = {}  # (username, clientMsgId) -> draft
        self.last_message_id = last_message_id  # the newest message broadcast here
        self.counters = Counters()
        self.closing = False
        self.store_up = True
        self.pending = 0  # drafts on their way to the store, all users
        self._limits: tuple[Rules, bytes] | None = None  # the encoded limits, for these rules
        # The last join history frame, by (how many messages, newest id): everyone who joins
        # between two messages gets the same bytes, read and encoded once. One frame at most.
        self._join_frame: tuple[tuple[int, str | None], bytes] | None = None
        self._typing: list[tuple[float, str]] = []  # (deadline, username), a heap
        now = clock.monotonic()
        self._next_sweep = now + self._sweep_interval()
        self._next_keepalive = now + self._keepalive_interval() if rules.ping_interval else None
        self._next_prune = now + PRUNE_EVERY

    def take(self) -> list[Effect]:
        """The effects decided so far, in order; the caller carries them out."""
        out, self.out = self.out, []
        return out

    # -- admission -------------------------------------------------------------

    def authorized(self, query: dict[str, list[str]], authorization: str | None) -> bool:
        """The shared token, from ``?token=`` or ``Authorization: Bearer``, when the server has one."""
        token = self.rules.token
        if not token:
            return True
        presented = _first(query, "token")
        if presented is None and authorization and authorization[:7].lower() == "bearer ":
            presented = authorization[7:].strip()
        return presented is not None and hmac.compare_digest(presented.encode(), token.encode())

    def admit(self, query: dict[str, list[str]], authorization: str | None, address: str = "",
              protocols: tuple[str, ...] | list[str] = ()) -> Session | Refusal:
        """Decide a WebSocket handshake on ``/ws``, up to its identity (:meth:`identify` decides that,
        once the server has read the name's account). An admitted session holds a slot of the
        per-user and per-address caps (taken now, synchronously, so concurrent handshakes cannot
        overshoot them) until :meth:`release`."""
        wrong = self.check_token(query, authorization, address)
        if wrong is not None:
            return wrong
        username = _first(query, "username")
        reason = validate_username(username)
        if reason:
            return Refusal(400, f"bad request: {reason}")
        assert username is not None
        since = _first(query, "since")
        if since is not None and message_id_key(since) is None:
            return Refusal(400, "bad request: since must be a message id (msg_<13 digits>_<6 digits>)")
        history = self.rules.history
        raw_history = _first(query, "history")
        if raw_history is not None:
            if not (raw_history.isascii() and raw_history.isdigit()) or int(raw_history) > MAX_JOIN_HISTORY:
                return Refusal(400, f"bad request: history must be an integer from 0 to {MAX_JOIN_HISTORY}")
            history = int(raw_history)
        presence = _first(query, "presence")
        if presence is not None and presence != "none":
            return Refusal(400, "bad request: presence may only be 'none' (a quiet connection)")
        key, invite, problem = offered_secrets(list(protocols))
        if problem:
            return Refusal(400, f"bad request: {problem}")
        if self.closing:
            return Refusal(503, "server is shutting down")
        folded = name_key(username)
        if self.rules.auth != "open" and (key or invite):
            # Per address before anything is checked; per name only for wrong secrets (identify), so
            # someone trying keys for alice's name cannot keep alice herself out.
            wait = self.throttle.wait((address,), self.clock.monotonic())
            if wait:
                return self.throttle.refusal(wait)
        cap = self.rules.max_connections_per_user
        if cap and self.reservations.get(folded, 0) >= cap:
            return self._over_cap(username)
        per_address = self.rules.max_connections_per_address
        if per_address and self.address_conns.get(address, 0) >= per_address:
            return Refusal(429, f"too many connections from {address}: the limit is {per_address} per address "
                                "(workspace serve --max-connections-per-address)")
        self.reservations[folded] = self.reservations.get(folded, 0) + 1
        self.address_conns[address] = self.address_conns.get(address, 0) + 1
        session = Session(username, presence == "none", since, history, address, key, invite, folded)
        session.document_only = SUBPROTOCOL not in protocols
        return session

    def check_token(self, query: dict[str, list[str]], authorization: str | None, address: str) -> Refusal | None:
        """``None`` when the request carries the shared token (or none is needed). A missing or
        wrong one is throttled per address, on every path, so guessing it is slow."""
        if self.authorized(query, authorization):
            return None
        now = self.clock.monotonic()
        subject = (address,)
        wait = self.token_throttle.wait(subject, now)
        if wait:
            return self.token_throttle.refusal(wait, "tokens")
        self.token_throttle.failed(subject, now)
        return Refusal(401, "unauthorized: missing or wrong token (token=... or Authorization: Bearer ...)")

    @property
    def needs_accounts(self) -> bool:
        """Whether handshakes wait for their name's account (not with ``--auth open``)."""
        return self.rules.auth != "open"

    def identify(self, session: Session, account: Account | None | Exception) -> Session | Claim | Refusal:
        """The name's account is known (``None``: nobody has it): decide what the session proves.
        A :class:`Claim` is for the backend to write, then :meth:`claimed`; a refusal has let go
        of the session's slots."""
        if isinstance(account, Exception):
            self.release(session)
            return Refusal(503, "the store is unavailable; try again shortly")
        if self.rules.auth == "open":
            return self._admitted(session, False)
        now = self.clock.monotonic()
        decision = decide(self.rules.auth, session.username, session.key, session.invite, account,
                          self.clock.wall_ms(), session.username)
        if isinstance(decision, Refusal):
            if is_wrong_secret(decision):
                self.counters.rejections[decision.code or "refused"] += 1
                wait = self.throttle.wait((session.name_key,), now)
                self.throttle.failed((session.address,) if wait else (session.name_key, session.address), now)
                if wait:
                    decision = self.throttle.refusal(wait)
            self.release(session)
            return decision
        if isinstance(decision, Claim):
            if decision.expected is None:  # a new name: limited per address
                limit = self.rules.claims_per_hour
                if limit:
                    bucket = self.claim_buckets.get(session.address)
                    if bucket is None:
                        bucket = self.claim_buckets[session.address] = TokenBucket(limit, limit / 3600.0)
                    wait = bucket.take(now)
                    if wait:
                        self.release(session)
                        return Refusal(429, f"too many names claimed from {session.address}: at most {limit} per "
                                            f"hour; try again in {int(wait) + 1} s", REFUSED_THROTTLED,
                                       retry_after=int(wait) + 1)
            return decision
        if account is not None:
            session.username = account.username
        return self._admitted(session, decision)

    def claimed(self, session: Session, claim: Claim, ok: bool | Exception) -> Session | Refusal:
        """The backend wrote *claim* (``True``), found the account changed meanwhile (``False``: another
        handshake claimed it first), or failed."""
        if ok is True:
            session.username = claim.account.username
            # Connections that used this name unverified, before anyone owned it, are not its owner's.
            u = self.presence.users.get(session.username)
            if u is not None and not u.verified:
                for conn in [*u.conns, *(c for c in self.conns if c.user is u and c.quiet)]:
                    self._close(conn, CLOSE_POLICY, f"{u.username} was just claimed by its owner's key")
            return self._admitted(session, True)
        self.release(session)
        if isinstance(ok, Exception):
            return Refusal(503, "the store is unavailable; try again shortly")
        return Refusal(409, f"{session.username} was claimed by someone else just now", REFUSED_NAME_TAKEN)

    def _admitted(self, session: Session, verified: bool) -> Session | Refusal:
        """The last check: a name is one name whatever its case (``ALICE`` is ``alice``'s)."""
        session.verified = verified
        session.key = session.invite = None  # not kept past the handshake
        other = self.spellings.get(session.name_key)
        if other is not None and other != session.username:
            self.release(session)
            return Refusal(409, f"the name {session.username} is taken: {other} is online, and names are the same "
                                "regardless of case and look-alike letters (I l 1, O 0)", REFUSED_NAME_TAKEN)
        u = self.presence.users.get(session.username)
        if u is not None and u.verified and not verified:
            self.release(session)
            return Refusal(401, f"{session.username} is claimed on this server and this device has no key for it",
                           REFUSED_KEY_REQUIRED)
        return session

    def _over_cap(self, username: str) -> Refusal:
        cap = self.rules.max_connections_per_user
        return Refusal(429, f"too many connections: {username} already has {cap} open (the limit is {cap} per user)")

    def refuse_over_cap(self, session: Session) -> Refusal:
        """The backend's workspace-wide cap said no: give the slot back and say why."""
        self.release(session)
        return self._over_cap(session.username)

    def release(self, session: Session) -> None:
        """The connection of *session* is gone (or never opened): its cap slots are free."""
        if session.released:
            return
        session.released = True
        for counts, key in ((self.reservations, session.name_key), (self.address_conns, session.address)):
            n = counts.get(key, 0) - 1
            if n > 0:
                counts[key] = n
            else:
                counts.pop(key, None)

    # -- connections -----------------------------------------------------------

    def open(self, conn: Conn) -> None:
        """*conn* finished its handshake: ``connected``, then its history, then live frames."""
        now = self.clock.monotonic()
        session = conn.session
        u = self.presence.user(session.username, now)
        if session.verified:
            u.verified = True
        for info in session.rooms or ():
            self._add_room(u, info)
        session.rooms = None  # the user's record holds them now
        general_read = u.last_read.get(GENERAL)
        if session.document_only and session.since is None and general_read and not conn.quiet:
            # It cannot read a history frame: what it missed since it stopped comes as message:new.
            session.since = general_read
            session.replay = True
        self.spellings[session.name_key] = u.username
        conn.user = u
        conn.last_heard = now
        before = self.presence.aggregate(u.username)[1]
        u.attach(conn)
        status, count = self.presence.refresh(u.username, u.user_id)
        self.conns.add(conn)
        if session.document_only:
            self.document_conns += 1
        self.counters.connections_total += 1
        out = self.out
        out.append(Attach(conn))
        out.append(Deliver(conn, self._connected_parts(u, session.verified, session.document_only)))
        self._start_history(conn)
        if conn.quiet:
            return
        self._relay_state(u, exclude_user=not before)
        if count and not before:
            self._announce(u, status, count, exclude_user=True)
        elif before and count:  # another connection of a visible user: same status, new count
            self._announce(u, status, count, exclude_conn=conn)

    def _connected_parts(self, u: User, verified: bool, document_only: bool) -> list[bytes]:
        general = u.rooms.get(GENERAL) or general_info()
        infos = [general] if document_only else [general, *(i for r, i in u.rooms.items() if r != GENERAL)]
        rooms = [info.to_wire(u.username) for info in infos]
        head = encode(
            {
                "type": "connected",
                "userId": u.user_id,
                "username": u.username,
                "timestamp": iso_timestamp(self.clock.wall_ms()),
                "connectedUsers": self.presence.connected_users,
                "verified": verified,
                "auth": self.rules.auth,
                "rooms": rooms,
            }
        )
        last = self.last_message_id
        tail = b',"lastMessageId":' + (b'"' + last.encode() + b'"' if last else b"null") + b"}"
        if self._limits is None or self._limits[0] is not self.rules:
            self._limits = (self.rules, b'],"limits":' + encode(self.rules.limits.to_wire()))
        presence = self.presence
        if presence.roster_complete():
            return [head[:-1] + b',"users":[', *presence.roster_parts(), self._limits[1] + tail]
        return [head[:-1] + b',"usersComplete":false,"users":[', *presence.roster_head(), self._limits[1] + tail]

    def gone(self, conn: Conn) -> None:
        """*conn*'s TCP connection is gone, however it ended."""
        if conn.user is None or conn not in self.conns:
            self.release(conn.session)
            return
        now = self.clock.monotonic()
        self.conns.discard(conn)
        if conn.session.document_only:
            self.document_conns -= 1
        conn.closing = True
        conn.reads = ()
        u = conn.user
        if conn.session.document_only and conn.live:  # it was sent everything of general
            # (the newest message of any room: a position past general's newest reads as "all of it")
            self._remember_read(u, conn.session.name_key, GENERAL, self.last_message_id)
        if conn.quiet:
            u.detach(conn)
        else:
            before = self.presence.aggregate(u.username)[1]
            u.detach(conn)
            if not u.conns and u.typing:
                self._clear_typing(u)
            status, count = self.presence.refresh(u.username, u.user_id)
            self._relay_state(u, exclude_user=not count)
            if before and not self.closing:
                if not count:
                    self._announce(u, "offline", 0, exclude_user=True)
                else:  # one of several closed: the new count
                    self._announce(u, status, count)
        self.presence.forget_if_unused(u, now)
        if u.username not in self.presence.users:
            self.spellings.pop(conn.session.name_key, None)
            for room in u.rooms:
                members = self.room_users.get(room)
                if members is not None:
                    members.discard(u)
                    if not members:
                        del self.room_users[room]
        self.release(conn.session)

    def heard(self, conn: Conn) -> None:
        """The client sent something the core does not see (a WebSocket ping): it is active."""
        conn.last_heard = self.clock.monotonic()

    def pong(self, conn: Conn) -> None:
        """The client answered our keepalive ping."""
        conn.last_pong = self.clock.monotonic()

    def slow(self, conn: Conn) -> None:
        """More than ``send_buffer_limit`` bytes are waiting for *conn*: it cannot keep up."""
        self._close(conn, CLOSE_SLOW_CONSUMER,
                    f"slow consumer: more than {self.rules.send_buffer_limit} bytes waiting to be read")

    def _close(self, conn: Conn, code: int, reason: str) -> None:
        if conn.closing:
            return
        conn.closing = True
        self.counters.closes[code] += 1
        self.out.append(Close(conn, code, reason))

    def shutdown(self) -> None:
        """The server is stopping: refuse new connections and sends; what is queued still goes."""
        self.closing = True

    def close_all(self) -> None:
        """Close every connection with 1001 (after what is queued for it)."""
        for conn in list(self.conns):
            if not conn.closing:
                conn.closing = True
                self.out.append(Close(conn, CLOSE_GOING_AWAY, "server shutting down"))

    # -- frames from clients -----------------------------------------------------

    def receive(self, conn: Conn, data: str | bytes) -> None:
        """A complete text (``str``) or binary (``bytes``) message from *conn*."""
        conn.last_heard = self.clock.monotonic()
        if conn.closing:
            return
        try:
            req = parse_client_frame(data)
        except FrameError as exc:
            if self._frame_allowed(conn, exc.frame_type, exc.client_msg_id):
                self._reject(conn, exc.frame())
            return
        kind = type(req)
        if kind is SendMessage:
            self._on_send(conn, req)  # type: ignore[arg-type]
        elif kind is SetTyping:
            if self._frame_allowed(conn, "typing:indicator") and self._in_room(conn, req.room, "typing:indicator"):
                self._on_typing(conn, req.is_typing, req.room)  # type: ignore[union-attr]
        elif kind is UpdatePresence:
            if self._frame_allowed(conn, "presence:update"):
                self._on_presence(conn, req.status)  # type: ignore[union-attr]
        elif kind is PingFrame:
            if self._frame_allowed(conn, "ping"):
                pong = pong_frame(req.id, iso_timestamp(self.clock.wall_ms()))  # type: ignore[union-attr]
                self.out.append(Deliver(conn, encode(pong)))
        elif kind is RequestHistory:
            if self._frame_allowed(conn, "history:request"):
                self._on_history_request(conn, req)  # type: ignore[arg-type]
        elif kind is MarkRead:
            if self._frame_allowed(conn, "read:update"):
                self._on_read(conn, req)  # type: ignore[arg-type]
        elif kind is RoomRequest:
            if self._frame_allowed(conn, f"room:{req.op}"):  # type: ignore[union-attr]
                self._on_room(conn, req)  # type: ignore[arg-type]

    def _reject(self, conn: Conn, frame: dict[str, Any]) -> None:
        self.counters.rejections[frame["code"]] += 1
        self.out.append(Deliver(conn, encode(frame)))

    def _frame_allowed(self, conn: Conn, frame_type: str | None, client_msg_id: str | None = None) -> bool:
        rules = self.rules
        if not rules.frame_rate:
            return True
        name = conn.user.username
        lim = self.frame_limiters.get(name)
        if lim is None:
            lim = self.frame_limiters[name] = Limiter(rules.frame_burst, rules.frame_rate, rules.frame_flood)
        now = self.clock.monotonic()
        wait = lim.check(now)
        if not wait:
            return True
        self._reject(conn, error_frame(
            ERR_RATE_LIMITED,
            f"too many frames: at most {rules.frame_rate:g} per second (burst {rules.frame_burst})",
            client_msg_id=client_msg_id, frame_type=frame_type, retry_after_ms=wait,
        ))
        if lim.flooding(now):
            self._close(conn, CLOSE_POLICY, "flooding: too many frames")
        return False

    def _not_allowed(self, conn: Conn, frame_type: str) -> None:
        self._reject(conn, error_frame(
            ERR_NOT_ALLOWED, "a quiet connection (presence=none) cannot set presence or typing", frame_type=frame_type,
        ))

    # -- sends -------------------------------------------------------------------

    def _on_send(self, conn: Conn, req: SendMessage) -> None:
        rules = self.rules
        u = conn.user
        cmid = req.client_msg_id
        room = req.room
        if req.to:
            # a look-alike spelling of someone online is their name: one pair, one room
            room = dm_room([u.username, *(self.spellings.get(name_key(n), n) for n in req.to)])
            if room == dm_room([u.username]) or dm_participants(room) is None:
                self._reject(conn, error_frame(ERR_INVALID_FIELD, "a direct message needs someone else (to: [names])",
                                               client_msg_id=cmid, frame_type="message:send"))
                return
        if not self._in_room(conn, room, "message:send", cmid):
            return
        if cmid is not None:
            draft = self.inflight.get((u.username, cmid))
            if draft is not None:  # a resend while the first is on its way: answered with it
                if self._frame_allowed(conn, "message:send", cmid):
                    self.counters.duplicates_total += 1
                    draft.waiters.append(conn)
                return
        if rules.rate_limit:
            lim = self.send_limiters.get(u.username)
            if lim is None:
                lim = self.send_limiters[u.username] = Limiter(
                    rules.rate_limit, rules.rate_limit / 60.0, rules.flood_threshold
                )
            now = self.clock.monotonic()
            wait = lim.check(now)
            if wait:
                self._refuse_rate(conn, cmid, wait)
                return
        if rules.address_rate_limit:
            address = conn.session.address
            lim = self.address_limiters.get(address)
            if lim is None:
                lim = self.address_limiters[address] = Limiter(
                    rules.address_rate_limit, rules.address_rate_limit / 60.0, rules.flood_threshold
                )
            wait = lim.check(self.clock.monotonic())
            if wait:
                self._reject(conn, error_frame(
                    ERR_RATE_LIMITED, f"rate limit: at most {rules.address_rate_limit} messages per minute from "
                                      "one address, across all names",
                    client_msg_id=cmid, frame_type="message:send", retry_after_ms=wait,
                ))
                return
        if self.closing or not self.store_up:
            why = "server is shutting down" if self.closing else "the store is unavailable; send it again later"
            self._reject(conn, error_frame(ERR_UNAVAILABLE, why, client_msg_id=cmid, frame_type="message:send"))
            return
        if u.typing:
            self._clear_typing(u)
        draft = Draft(u, conn, req.text, cmid, room)
        if is_dm(room) and self.rules.auth != "open":
            others = tuple(n for n in dm_participants(room) or () if n != u.username.lower())
            self.out.append(CheckNames(draft, others))
        u.pending += 1
        self.pending += 1
        if cmid is not None:
            self.inflight[(u.username, cmid)] = draft
        backlog = u.backlog
        if backlog is None:
            u.backlog = [draft]
            self.out.append(Store(draft))
        elif all(type(item) is Draft for item in backlog):
            backlog.append(draft)  # only earlier messages ahead of it: the backend keeps their order
            self.out.append(Store(draft))
        else:
            # Something the user did since their last message waits for it (a presence change,
            # typing): this message is stored only after that has gone out, so that every node
            # sees the two in the order the user made them.
            backlog.append(Store(draft))
            backlog.append(draft)

    def _refuse_rate(self, conn: Conn, cmid: str | None, wait_ms: int, *others: Conn) -> None:
        for c in (conn, *others):
            self._reject(c, error_frame(
                ERR_RATE_LIMITED, f"rate limit: at most {self.rules.rate_limit} messages per minute",
                client_msg_id=cmid, frame_type="message:send", retry_after_ms=wait_ms,
            ))
        lim = self.send_limiters.get(conn.user.username)
        if lim is not None and lim.flooding(self.clock.monotonic()):
            self._close(conn, CLOSE_POLICY, "flooding: too many messages past the rate limit")

    def stored(self, draft: Draft, outcome: Outcome) -> None:
        """The backend did not store *draft* as a new message: it was a resend, over a global
        limit, or the store failed."""
        if draft.client_msg_id is not None:
            self.inflight.pop((draft.user.username, draft.client_msg_id), None)
        kind = type(outcome)
        if kind is Duplicate:
            self.counters.duplicates_total += 1
            payload = encode(message_new_frame(outcome.original))  # type: ignore[union-attr]
            for c in (draft.conn, *draft.waiters):
                self.out.append(Deliver(c, payload))
        elif kind is RateLimited:
            lim = self.send_limiters.get(draft.user.username)
            if lim is None:  # only its refusal window counts here: the bucket lives in the backend
                lim = self.send_limiters[draft.user.username] = Limiter(1, 1, self.rules.flood_threshold)
            lim.refused(self.clock.monotonic())
            self._refuse_rate(draft.conn, draft.client_msg_id, outcome.retry_after_ms,  # type: ignore[union-attr]
                              *draft.waiters)
        else:
            for c in (draft.conn, *draft.waiters):
                self._reject(c, error_frame(
                    ERR_UNAVAILABLE, "the message could not be stored; send it again",
                    client_msg_id=draft.client_msg_id, frame_type="message:send",
                ))
        self._resolve(draft, None)

    def committed(self, messages: list[ChatMessage], drafts: list[Draft | None]) -> None:
        """Messages the backend stored, in the workspace's order; ``drafts[i]`` is the local draft
        ``messages[i]`` came from (``None`` for other nodes' messages). Everyone gets them."""
        out = self.out
        for m, draft in zip(messages, drafts):
            payload = encode(message_new_frame(m))
            self.last_room_message[m.room] = m.id
            if draft is None:
                if m.user_id in self.batch:
                    self._flush_batch()  # what the author did before it (came online, a status) goes first
                out.extend(self._to_room(m.room, payload, message=True))
                continue
            self.counters.messages_total += 1
            if draft.client_msg_id is not None:
                self.inflight.pop((draft.user.username, draft.client_msg_id), None)
            if draft.unverified:  # the sender's own echo says whose name is not proved
                draft.echo = encode({"type": "message:new",
                                     "data": m.to_wire() | {"unverifiedRecipients": draft.unverified}})
            self._resolve(draft, payload)
        if messages:
            self.last_message_id = messages[-1].id

    def _resolve(self, draft: Draft, payload: bytes | None) -> None:
        """*draft* is broadcast (``payload``) or refused (``None``): release what waited for it."""
        if draft.done:
            return
        draft.done = True
        draft.payload = payload
        u = draft.user
        u.pending -= 1
        self.pending -= 1
        backlog = u.backlog
        if backlog is not None:
            out = self.out
            i = 0
            for item in backlog:
                if type(item) is Draft:
                    if not item.done:
                        break
                    if item.payload is not None:
                        if u.user_id in self.batch:
                            self._flush_batch()  # the presence change the user made before it goes first
                        echo = item.echo
                        out.extend(self._to_room(item.room, item.payload, exclude_conn=item.conn if echo else None,
                                                 message=True))
                        if echo is not None:
                            out.append(Post(item.conn, echo))
                        for c in item.waiters:
                            out.append(Deliver(c, item.payload))
                elif type(item) is Change:
                    self._collect(item)
                else:
                    if u.user_id in self.batch and type(item) is not Relay:
                        self._flush_batch()  # an earlier presence change of theirs goes first
                    out.append(item)
                i += 1
            del backlog[:i]
            if not backlog:
                u.backlog = None
        if not u.conns and not u.quiet:
            self.presence.forget_if_unused(u, self.clock.monotonic())

    def _about(self, u: User, effect: Effect | Change, presence: bool = False) -> None:
        """Send *effect*, a frame about *u*, after everything *u* did before it (*presence*: one of
        the frames of a presence change, which may share this tick's batch with an earlier one)."""
        if u.backlog is not None:
            u.backlog.append(effect)
        elif type(effect) is Change:
            self._collect(effect)
        else:
            if not presence and u.user_id in self.batch and type(effect) is not Relay:
                self._flush_batch()  # (typing) the presence change *u* made before it goes first
            self.out.append(effect)

    def store_available(self, up: bool) -> None:
        """The backend can (or cannot) take messages now; sends are refused while it cannot."""
        self.store_up = up

    # -- typing and presence -------------------------------------------------------

    def _on_typing(self, conn: Conn, is_typing: bool, room: str = GENERAL) -> None:
        if conn.quiet:
            self._not_allowed(conn, "typing:indicator")
            return
        u = conn.user
        if not u.visible_here:
            return  # appearing offline: typing is not shown
        if u.typing and room != u.typing_room:
            self._clear_typing(u)  # typing in one room at a time
        u.typing_room = room
        if is_typing:
            until = self.clock.monotonic() + self.rules.typing_timeout
            u.typing_until = until
            heapq.heappush(self._typing, (until, u.username))
            u.typing = True
            self._typing_changed(u, True)
        elif u.typing:
            self._clear_typing(u)

    def _clear_typing(self, u: User) -> None:
        if u.typing:
            u.typing = False
            self._typing_changed(u, False)

    def _typing_changed(self, u: User, is_typing: bool) -> None:
        room = u.typing_room
        payload = encode(typing_frame(u.user_id, u.username, is_typing, room))
        if room == GENERAL:
            self._about(u, Broadcast(payload, exclude_user=u.user_id, lazy=True))
        else:
            for effect in self._to_room(room, payload, exclude_user=u.user_id):
                self._about(u, effect)
        self._about(u, Relay({"t": "typing", "user": u.username, "user_id": u.user_id, "typing": is_typing,
                              "room": room}))

    def _on_presence(self, conn: Conn, status: str) -> None:
        if conn.quiet:
            self._not_allowed(conn, "presence:update")
            return
        u = conn.user
        before = self.presence.aggregate(u.username)[1]
        if status == "offline" and u.typing:
            self._clear_typing(u)
        u.status = status
        status_now, count = self.presence.refresh(u.username, u.user_id)
        self._relay_state(u, exclude_user=False)
        # A workspace.v1 connection gets its own change back, in the server's order among the others:
        # an announcement made before this change was read (another window of the user opening) can
        # reach it after it sent the change, and would otherwise be the last word on its status.
        sender = conn if conn.session.document_only else None  # the document's: "all other users"
        if before or count:
            self._announce(u, status_now, count, exclude_conn=sender)
        else:  # hidden before and after: only the user's own connections learn it
            payload = encode(presence_frame(u.user_id, u.username, status, len(u.conns), u.verified))
            for other in u.conns:
                if other is not sender:
                    self._about(u, Deliver(other, payload))

    def _announce(self, u: User, status: str, count: int, *,
                  exclude_user: bool = False, exclude_conn: Conn | None = None) -> None:
        """Tell everyone about a presence change of local user *u*, after what *u* did before it."""
        for e in self._presence_effects(u.user_id, u.username, status, count, u.verified, u,
                                        exclude_user, exclude_conn, u.backlog is not None):
            self._about(u, e, presence=True)

    def _presence_effects(self, user_id: str, username: str, status: str, count: int, verified: bool,
                          own: User | None, exclude_user: bool, exclude_conn: Conn | None,
                          later: bool) -> list[Effect | Change]:
        """A user's presence change, for each kind of connection: ``presence:update`` (one per change, as
        the protocol document has it) to the document-only ones; the same to the user's own workspace.v1
        connections here (*own*), whose status follows it; and a :class:`Change` for this tick's
        ``presence:batch`` to the other workspace.v1 connections. ``exclude_user``: none of the user's own
        connections; ``exclude_conn``: not that one. ``later``: the effects wait in a backlog (so who is
        connected now does not decide who gets them)."""
        data = encode(presence_frame(user_id, username, status, count, verified)["data"])
        payload = b'{"type":"presence:update","data":' + data + b"}"
        effects: list[Effect | Change] = []
        v1 = later or len(self.conns) > self.document_conns
        if not v1 or self.document_conns or later:  # (with no workspace.v1 connection: to all, as before)
            effects.append(Broadcast(payload, exclude_user=user_id if exclude_user else None, exclude_conn=exclude_conn,
                                     lazy=True, document_only=True if v1 else None))
        if own is not None and not exclude_user:
            effects.extend(Post(c, payload) for c in self._room_conns(own) if c is not exclude_conn)
        if v1:
            effects.append(Change(user_id, data))
        return effects

    def _collect(self, change: Change) -> None:
        """*change* goes into this tick's ``presence:batch``."""
        self.batch.add(change, self.clock.monotonic(), self.rules.presence_tick)

    def _flush_batch(self) -> None:
        """The tick is over: its ``presence:batch``, encoded once, to every workspace.v1 connection."""
        payload = self.batch.take(self.presence.ROSTER_CAP, self.presence.connected_users)
        if payload is not None and len(self.conns) > self.document_conns:
            self.out.append(Broadcast(payload, lazy=True, document_only=False if self.document_conns else None))

    # -- rooms -------------------------------------------------------------------

    def _add_room(self, u: User, info: RoomInfo) -> bool:
        """*u* is in *info*'s room (from the store, a join, or a first direct message); whether it is new.
        The newest summary wins: a second window's ``connected`` counts what it missed."""
        new = info.room not in u.rooms
        u.put_room(info)
        if info.last_read and (u.last_read.get(info.room) or "") < info.last_read:
            u.set_read(info.room, info.last_read)
        if info.room != GENERAL:
            self.room_users.setdefault(info.room, set()).add(u)
        return new

    def _drop_room(self, u: User, room: str) -> None:
        u.drop_room(room)
        members = self.room_users.get(room)
        if members is not None:
            members.discard(u)
            if not members:
                del self.room_users[room]

    def _in_room(self, conn: Conn, room: str, frame_type: str, cmid: str | None = None) -> bool:
        """Whether *conn* may use *room*; if not, it is told, in the same words as for a room that does
        not exist (a direct message is never given away)."""
        if room == GENERAL:
            return True
        u = conn.user
        ok = not conn.session.document_only and (room in u.rooms or (is_dm(room) and _in_dm(u.username, room)))
        if not ok:
            self._reject(conn, error_frame(ERR_NOT_ALLOWED, f"no such room {room}, or you are not in it",
                                           client_msg_id=cmid, frame_type=frame_type))
        return ok

    def _room_conns(self, u: User) -> list[Conn]:
        """*u*'s connections that know rooms (not the protocol document's clients)."""
        return [c for c in (*u.conns, *u.quiet_conns) if not c.session.document_only]

    def _post_to(self, u: User, payload: bytes) -> None:
        """*payload* for every connection of *u* that knows rooms, in order with its broadcasts."""
        self.out.extend(Post(c, payload) for c in self._room_conns(u))

    def _to_room(self, room: str, payload: bytes, exclude_user: str | None = None,
                 exclude_conn: Conn | None = None, message: bool = False) -> list[Effect]:
        """The effects that give *payload* to *room*'s members here (everyone for general). A direct
        message's first *message* brings its participants in."""
        if room == GENERAL:
            return [Broadcast(payload, exclude_user=exclude_user, exclude_conn=exclude_conn)]
        if message and is_dm(room):
            self._dm_members_here(room)
        return [Post(c, payload) for u in self.room_users.get(room, ()) if u.user_id != exclude_user
                for c in self._room_conns(u) if c is not exclude_conn]

    def names_checked(self, draft: Draft, unverified: list[str]) -> None:
        """Which of a direct message's recipients have not proved their name (see CheckNames)."""
        draft.unverified = unverified or None

    def _dm_members_here(self, room: str) -> None:
        """A direct message's participants connected here are in it (``room:joined`` the first time)."""
        for name in dm_participants(room) or ():
            username = self.spellings.get(name_key(name))
            u = self.presence.users.get(username) if username else None
            if u is not None and room not in u.rooms and _in_dm(u.username, room) and self._add_room(u, dm_info(room)):
                payload = encode({"type": "room:joined", "room": u.rooms[room].to_wire(u.username)})
                self._post_to(u, payload)

    def _on_room(self, conn: Conn, req: RoomRequest) -> None:
        frame_type = f"room:{req.op}"
        if conn.session.document_only:
            self._reject(conn, error_frame(ERR_NOT_ALLOWED, "rooms need a client that offers the workspace.v1 "
                                           "subprotocol (docs/protocol.md); this connection stays in general",
                                           frame_type=frame_type))
            return
        if req.op in ("leave", "topic", "invite", "members") and not self._in_room(conn, req.room, frame_type):
            return
        if req.op == "members" and req.room == GENERAL:  # everyone: the roster, paged from presence
            page, after = self.presence.visible_page(req.username, req.limit)
            members = [{"username": n, "userId": uid, "status": st, **({"verified": True} if v else {})}
                       for n, uid, st, v in page]
            self.out.append(Deliver(conn, encode({"type": "room:members", "room": GENERAL, "members": members,
                                                  "next": after})))
            return
        if req.op == "leave" and (req.room == GENERAL or is_dm(req.room)):
            self._reject(conn, error_frame(ERR_NOT_ALLOWED, f"{req.room} cannot be left", frame_type=frame_type))
            return
        self.out.append(RoomOp(conn, req, conn.user.username, conn.session.name_key))

    def room_done(self, conn: Conn, req: RoomRequest, result: dict[str, Any] | Exception) -> None:
        """The store answered a :class:`~.effects.RoomOp`."""
        frame_type = f"room:{req.op}"
        if conn.closing:
            return
        if isinstance(result, Exception):
            self._reject(conn, error_frame(ERR_UNAVAILABLE, "rooms are unavailable right now", frame_type=frame_type))
            return
        if "error" in result:
            code, why = result["error"]
            self._reject(conn, error_frame(code, why, frame_type=frame_type))
            return
        u = conn.user
        if req.op in ("create", "join"):
            self.member_changed(u.username, req.room, True, result["info"])
            self.out.append(Relay({"t": "member", "user": u.username, "room": req.room, "joined": True,
                                   "info": result["info"]._asdict()}))
        elif req.op == "leave":
            self.member_changed(u.username, req.room, False, None)
            self.out.append(Relay({"t": "member", "user": u.username, "room": req.room, "joined": False}))
        elif req.op == "topic":
            self.topic_changed(req.room, req.topic)
            self.out.append(Relay({"t": "topic", "room": req.room, "topic": req.topic, "user": u.username}))
        elif req.op == "invite":
            self.invited(result["username"], req.room, u.username)
            self.out.append(Relay({"t": "invite", "user": result["username"], "room": req.room, "by": u.username}))
        elif req.op == "list":
            self.out.append(Deliver(conn, encode({"type": "room:list", "rooms": result["rooms"]})))
        elif req.op == "members":
            members = []
            for m in result["members"]:
                status, _count = self.presence.aggregate(m["username"])
                members.append({**m, "status": status})
            self.out.append(Deliver(conn, encode({"type": "room:members", "room": req.room, "members": members,
                                                  "next": result.get("next")})))

    def member_changed(self, username: str, room: str, joined: bool, info: RoomInfo | None) -> None:
        """*username* joined or left *room* (here or on another node): their windows and the room's
        members here learn it."""
        u = self.presence.users.get(username)
        note = encode({"type": "room:member", "room": room, "username": username, "joined": joined})
        members_before = [m for m in self.room_users.get(room, ()) if m is not u]
        if u is not None:
            if joined and info is not None:
                self._add_room(u, info)
                payload = encode({"type": "room:joined", "room": info.to_wire(u.username)})
            else:
                self._drop_room(u, room)
                payload = encode({"type": "room:left", "room": room})
            self._post_to(u, payload)
        for m in members_before:
            self._post_to(m, note)

    def topic_changed(self, room: str, topic: str) -> None:
        payload = encode({"type": "room:updated", "room": room, "topic": topic})
        for m in self.room_users.get(room, ()):
            info = m.rooms.get(room)
            if info is not None:
                m.put_room(info._replace(topic=topic))
            self._post_to(m, payload)

    def remote_room(self, event: dict[str, Any]) -> None:
        """A room change relayed by another node (see :meth:`room_done`)."""
        kind = event.get("t")
        if kind == "member":
            info = event.get("info")
            self.member_changed(event["user"], event["room"], bool(event["joined"]),
                                RoomInfo(**info) if isinstance(info, dict) else None)
        elif kind == "topic":
            self.topic_changed(event["room"], event["topic"])
        elif kind == "invite":
            self.invited(event["user"], event["room"], event["by"])

    def invited(self, username: str, room: str, by: str) -> None:
        username = self.spellings.get(name_key(username), username)
        u = self.presence.users.get(username)
        if u is not None:
            payload = encode({"type": "room:invited", "room": room, "by": by})
            self._post_to(u, payload)

    def _on_read(self, conn: Conn, req: MarkRead) -> None:
        if not self._in_room(conn, req.room, "read:update"):
            return
        last = self.last_message_id
        if last is None or req.message_id > last:
            self._reject(conn, error_frame(ERR_INVALID_FIELD, "messageId is not a message of this room yet",
                                           frame_type="read:update"))
            return
        u = conn.user
        if self._remember_read(u, conn.session.name_key, req.room, req.message_id):
            payload = encode(read_position_frame(req.room, req.message_id))
            for other in u.conns:
                if other is not conn and not other.session.document_only:
                    self.out.append(Deliver(other, payload))
            self.out.append(Relay({"t": "read", "user": u.username, "room": req.room, "id": req.message_id}))

    def _remember_read(self, u: User, key: str, room: str, message_id: str | None) -> bool:
        """Move *u*'s position in *room* forward to *message_id*; whether it moved."""
        known = u.last_read.get(room)
        if message_id is None or (known is not None and message_id <= known):
            return False
        u.set_read(room, message_id)
        self.out.append(SaveRead(key, room, message_id))
        return True

    def remote_read(self, username: str, room: str, message_id: str) -> None:
        """*username* read *room* up to *message_id* on another node: tell their windows here."""
        u = self.presence.users.get(username)
        known = u.last_read.get(room) if u is not None else None
        if u is None or (known is not None and message_id <= known):
            return
        u.set_read(room, message_id)
        payload = encode(read_position_frame(room, message_id))
        for conn in u.conns:
            if not conn.session.document_only:
                self.out.append(Deliver(conn, payload))

    def _relay_state(self, u: User, *, exclude_user: bool) -> None:
        """Tell the other nodes about *u*'s connections here (``exclude_user``: their own
        connections there do not get the resulting presence frame)."""
        self._about(u, Relay({
            "t": "presence", "user": u.username, "user_id": u.user_id, "status": u.status,
            "count": len(u.conns), "xu": exclude_user, "v": u.verified,
        }))

    # -- other nodes ---------------------------------------------------------------

    def remote_presence(self, node: str, username: str, user_id: str, status: str, count: int,
                        exclude_user: bool = False, verified: bool = False) -> None:
        """Another node reports *username*'s connections there."""
        before = self.presence.aggregate(username)
        users = self.presence.remote.setdefault(node, {})
        if count > 0:
            users[username] = RemoteUser(user_id, status, count, self.clock.monotonic(), verified)
            u = self.presence.users.get(username)
            if u is not None and u.conns and u.status != status:  # a status is the user's everywhere
                u.status = status
        else:
            users.pop(username, None)
        after = self.presence.refresh(username, user_id)
        if after != before:
            local = self.presence.users.get(username)
            for e in self._presence_effects(user_id, username, after[0], after[1], self.presence.verified(username),
                                            local, exclude_user, None, False):
                if type(e) is Change:
                    self._collect(e)
                else:
                    self.out.append(e)

    def remote_typing(self, username: str, user_id: str, is_typing: bool, room: str = GENERAL) -> None:
        """Another node's user started or stopped typing."""
        if user_id in self.batch:
            self._flush_batch()  # their presence change before it goes first
        payload = encode(typing_frame(user_id, username, is_typing, room))
        if room == GENERAL:
            self.out.append(Broadcast(payload, exclude_user=user_id, lazy=True))
        else:
            self.out.extend(self._to_room(room, payload, exclude_user=user_id))

    def node_users(self, node: str, users: dict[str, tuple[Any, ...]]) -> None:
        """Everything *node* has (``username -> (user_id, status, count[, verified])``), replacing
        what we knew."""
        known = self.presence.remote.get(node, {})
        for name in [n for n in known if n not in users]:
            r = known[name]
            self.remote_presence(node, name, r.user_id, r.status, 0)
        for name, (user_id, status, count, *verified) in users.items():
            self.remote_presence(node, name, user_id, status, count, verified=bool(verified and verified[0]))

    def node_gone(self, node: str) -> None:
        """*node* stopped or died: its users leave with it (and a dead node cannot clear their typing)."""
        users = self.presence.remote.get(node)
        if users:
            for name, r in list(users.items()):
                self.remote_typing(name, r.user_id, False)
            self.node_users(node, {})
        self.presence.remote.pop(node, None)

    def local_users(self) -> dict[str, tuple[str, str, int, bool]]:
        """This node's visible-capable users, for announcing them to the other nodes."""
        return {n: (u.user_id, u.status, len(u.conns), u.verified) for n, u in self.presence.users.items() if u.conns}

    # -- history -------------------------------------------------------------------

    def _start_history(self, conn: Conn) -> None:
        """Right after ``connected``: the join history, or the resume the client asked for."""
        session = conn.session
        upto = self.last_message_id
        conn.reading = True
        if session.since is not None:
            conn.resume = Resume(session.since, upto)
            if upto is None or upto <= session.since:  # nothing after it: answer without a read
                self.history_read(conn, None, HistoryResult([], False, None))
                return
            self.out.append(Read(conn, HistoryQuery("after", RESUME_CHUNK, after=session.since, upto=upto,
                                                    rooms=self._resume_rooms(conn))))
        elif upto is None:
            self.history_read(conn, None, HistoryResult([], False))
        elif self._join_frame is not None and self._join_frame[0] == (session.history, upto):
            self.out.append(Deliver(conn, self._join_frame[1]))
            self._history_done(conn)
        else:
            self.out.append(Read(conn, HistoryQuery("latest", session.history, upto=upto)))

    def _resume_rooms(self, conn: Conn) -> tuple[str, ...]:
        """Every room the user is in (only general for a client written from the protocol document)."""
        if conn.session.document_only:
            return (GENERAL,)
        return (GENERAL, *sorted(r for r in conn.user.rooms if r != GENERAL))

    def _on_history_request(self, conn: Conn, req: RequestHistory) -> None:
        if not self._in_room(conn, req.room, "history:request"):
            return
        if len(conn.reads) >= MAX_QUEUED_READS:
            self._reject(conn, error_frame(
                ERR_RATE_LIMITED,
                f"too many history requests at once: at most {MAX_QUEUED_READS} wait for an answer",
                frame_type="history:request", retry_after_ms=1000,
            ))
            return
        conn.reads = [*conn.reads, req]  # most connections never ask: () until one does
        if not conn.reading:
            self._next_read(conn)

    def _next_read(self, conn: Conn) -> None:
        if conn.reads and not conn.closing:
            req = conn.reads.pop(0)
            conn.reading = True
            self.out.append(Read(conn, HistoryQuery("latest", req.limit, before=req.before, rooms=(req.room,))))

    def history_read(self, conn: Conn, query: HistoryQuery | None, result: HistoryResult | Exception) -> None:
        """A :class:`~.effects.Read` for *conn* completed (or failed with an exception)."""
        if conn.closing:
            conn.reading = False
            return
        out = self.out
        if isinstance(result, Exception):
            if conn.live:  # a page
                self._reject(conn, error_frame(
                    ERR_UNAVAILABLE, "history is unavailable right now", frame_type="history:request"))
                conn.reading = False
                self._next_read(conn)
            else:
                self._reject(conn, error_frame(ERR_UNAVAILABLE, "history is unavailable right now", frame_type="history"))
                conn.resume = None
                self._history_done(conn)
            return
        parts = encoded_messages(result.messages)
        resume = conn.resume
        if resume is not None:
            if resume.gap is None:
                resume.gap = result.oldest_id is not None and resume.since < result.oldest_id
            n = fit_oldest(parts)
            more = result.has_more or n < len(parts)
            if n:
                resume.cursor = result.messages[n - 1].id
            if conn.session.replay:  # a document-only client: what it missed, as it would have seen it live
                for part in parts[:n]:
                    out.append(Deliver(conn, [b'{"type":"message:new","data":', part, b"}"]))
            else:
                out.append(Deliver(conn, history_payload(parts[:n], "resume", more, since=resume.since,
                                                         gap=resume.gap)))
            if more:
                out.append(WhenDrained(conn))
            else:
                conn.resume = None
                self._history_done(conn)
            return
        n = fit_newest(parts)
        newest = parts[len(parts) - n:]
        has_more = result.has_more or n < len(parts)
        if conn.live:  # a page
            before = query.before if query is not None else None
            room = query.rooms[0] if query is not None else GENERAL
            out.append(Deliver(conn, history_payload(newest, "page", has_more, before=before, room=room)))
            out.append(WhenDrained(conn))
        else:
            payload = history_payload(newest, "join", has_more, room=GENERAL)
            if query is not None:
                self._join_frame = ((query.limit, query.upto), payload)
            out.append(Deliver(conn, payload))
            self._history_done(conn)

    def _history_done(self, conn: Conn) -> None:
        """The join or resume history went out: held broadcasts follow, then live ones."""
        conn.live = True
        conn.reading = False
        self.out.append(Release(conn))
        self._next_read(conn)

    def drained(self, conn: Conn) -> None:
        """*conn* has taken the history frame it was sent: produce the next."""
        if conn.closing:
            return
        resume = conn.resume
        if resume is not None:
            self.out.append(Read(conn, HistoryQuery("after", RESUME_CHUNK, after=resume.cursor, upto=resume.upto,
                                                    rooms=self._resume_rooms(conn))))
        else:
            conn.reading = False
            self._next_read(conn)

    # -- time ----------------------------------------------------------------------

    def _sweep_interval(self) -> float:
        idle = self.rules.idle_timeout
        return min(5.0, max(0.05, idle / 10)) if idle else 5.0

    def _keepalive_interval(self) -> float:
        interval = self.rules.ping_interval or 20.0
        timeout = self.rules.ping_timeout
        return max(0.02, min(interval, timeout or interval) / 4)

    def next_wake(self) -> float:
        """When :meth:`tick` has something to do next (monotonic seconds)."""
        wake = min(self._next_sweep, self._next_prune)
        if self._next_keepalive is not None:
            wake = min(wake, self._next_keepalive)
        if self._typing:
            wake = min(wake, self._typing[0][0])
        if self.batch.due is not None:
            wake = min(wake, self.batch.due)
        return wake

    def tick(self) -> None:
        """Do what is due: expire typing, close idle connections, ping quiet ones, forget the old."""
        now = self.clock.monotonic()
        if self.batch.due is not None and now >= self.batch.due:
            self._flush_batch()
        typing = self._typing
        while typing and typing[0][0] <= now:
            _, name = heapq.heappop(typing)
            u = self.presence.users.get(name)
            if u is not None and u.typing and u.typing_until <= now:
                self._clear_typing(u)
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval()
            idle = self.rules.idle_timeout
            if idle:
                for conn in list(self.conns):
                    if not conn.closing and now - conn.last_heard > idle:
                        self._close(conn, CLOSE_IDLE, f"idle timeout: nothing received for {idle:g} s")
        if self._next_keepalive is not None and now >= self._next_keepalive:
            self._next_keepalive = now + self._keepalive_interval()
            self._keepalive(now)
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            for limiters in (self.send_limiters, self.frame_limiters):
                for name in [n for n, lim in limiters.items() if n not in self.presence.users and lim.idle(now)]:
                    del limiters[name]
            for address in [a for a, lim in self.address_limiters.items() if lim.idle(now)]:
                del self.address_limiters[address]
            for address in [a for a, b in self.claim_buckets.items() if b.full(now)]:
                del self.claim_buckets[address]
            self.throttle.prune(now)
            self.token_throttle.prune(now)
            self.presence.prune(now)

    def _keepalive(self, now: float) -> None:
        """WebSocket pings to connections we have not heard from; drop those that stop answering."""
        interval = self.rules.ping_interval or 20.0
        timeout = self.rules.ping_timeout
        for conn in self.conns:
            if conn.closing:
                continue
            sent = conn.ping_sent
            heard = max(conn.last_heard, conn.last_pong)
            if sent and heard < sent:  # waiting for the pong
                if timeout and now - sent > timeout:  # dead: no close handshake to wait for
                    conn.closing = True
                    self.counters.closes[1011] += 1
                    self.out.append(Abort(conn))
                continue
            if now - max(sent, heard) >= interval:
                conn.ping_sent = now
                self.out.append(Ping(conn))
