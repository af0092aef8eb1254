"""The server: wires the chat core, a backend and the sockets together.

Flow of a message: a :class:`~.connection.Connection` hands a whole text
message to :meth:`Server.on_message`; the core validates it and answers with a
``Store`` effect; the backend stores it (SQLite: in one transaction at the end
of the loop iteration; Redis: through the stream) and reports it committed; the
core answers with a ``Broadcast``; the :mod:`.fanout` queues the same bytes for
every connection and writes each connection's share once.

Everything runs on the event loop, synchronously between two awaits, so the
order in which the core decides is the order clients see. :meth:`run` carries
out the core's effects in order; a backend that answers at once (SQLite) is
answered inside that loop, one that answers later (Redis) calls back into it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import time
from collections import Counter, deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request

from workspace_tui.backends.base import Backend
from workspace_tui.core.chat import ChatCore
from workspace_tui.core.effects import (
    Abort,
    Attach,
    Broadcast,
    CheckNames,
    Close,
    Deliver,
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
from workspace_tui.core.history import HistoryQuery, HistoryResult
from workspace_tui.core.origins import OriginPolicy, forwarded_client
from workspace_tui.core.outcomes import Outcome
from workspace_tui.core.identity import Claim
from workspace_tui.core.state import Conn, Draft, Refusal, Session
from workspace_tui.protocol import CLOSE_SLOW_CONSUMER, GENERAL, REFUSAL_HEADER, WS_PATH, ChatMessage, name_key

from .config import ServerConfig
from .burstlog import BurstLog
from .connection import LOW_WATER, Connection
from .fanout import Fanout
from .metrics import render_metrics
from .pending import PendingHandshakes

log = logging.getLogger("workspace.server")

# History reads (each up to a ~512 KiB frame) done per loop iteration, across all
# connections: the rest wait for the next iteration, so pings and chat are never stuck
# behind ten clients joining with, or paging through, big messages.
READS_PER_TURN = 1


class SystemClock:
    """The real time, for the core."""

    monotonic = staticmethod(time.monotonic)

    @staticmethod
    def wall_ms() -> int:
        return time.time_ns() // 1_000_000


def make_backend(config: ServerConfig) -> Backend:
    if config.broker:
        from workspace_tui.backends.redis import RedisBackend

        return RedisBackend(config.broker, node_ttl=config.broker_node_ttl,
                            max_bytes=config.broker_max_bytes, max_age=config.broker_max_age,
                            rate_limit=config.rate_limit, allow_unsafe=config.allow_unsafe_redis)
    from workspace_tui.backends.sqlite import SQLiteBackend

    return SQLiteBackend(config.db_path, retention=config.retention, max_bytes=config.max_store_bytes,
                         min_free_disk=config.min_free_disk)


class Server:
    """A running chat server. Create it with :func:`start_server`."""

    def __init__(self, config: ServerConfig, backend: Backend | None = None) -> None:
        self.config = config
        self.backend = backend if backend is not None else make_backend(config)
        self.core = ChatCore(config.rules, SystemClock())
        self.fanout = Fanout(
            raw=not config.compression, send_buffer_limit=config.send_buffer_limit,
            on_slow=self._on_slow, on_written=self._on_written,
        )
        self.extensions: list[Any] | None = None
        if config.compression:
            from websockets.extensions.permessage_deflate import enable_server_permessage_deflate

            # websockets' defaults for servers: smaller windows and memLevel, less memory per connection
            self.extensions = list(enable_server_permessage_deflate(None))
        self.handshake_rejections: Counter[int] = Counter()
        # connects, disconnects and refusals: a line each while they are few, a count in a storm
        self.events_log = BurstLog(log, later=lambda delay, fn: asyncio.get_running_loop().call_later(delay, fn))
        self.policy = OriginPolicy.build(config.allow_origins, config.allow_hosts, server_names(config.host))
        self.pending = PendingHandshakes(
            config.max_pending_per_address if config.address_limits else 0, config.max_pending_handshakes
        )
        self.started = time.monotonic()
        self.connections: set[Connection] = set()  # every TCP connection, handshake or not
        self._listener: asyncio.Server | None = None
        self._running = False
        self._reads: deque[tuple[Conn, HistoryQuery]] = deque()  # history reads waiting for their turn
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._closing = False
        self._closed = asyncio.Event()
        self.port = config.port
        self.url = ""
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        self.loop = loop = asyncio.get_running_loop()
        await self.backend.start(self)
        self.core.last_message_id = self.backend.last_message_id
        ctx = None
        if cfg.certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cfg.certfile), str(cfg.keyfile) if cfg.keyfile else None)
        try:
            self._listener = await loop.create_server(
                lambda: Connection(self), cfg.host or None, cfg.port, ssl=ctx,
                backlog=cfg.backlog,  # asyncio's default (100) drops SYNs when hundreds connect at once
                # a TLS handshake comes before connection_made, so before the pending caps: bound its time
                ssl_handshake_timeout=(cfg.handshake_timeout or None) if ctx else None,
            )
        except BaseException:
            await self.backend.close()
            raise
        sock = self._listener.sockets[0]
        self.port = sock.getsockname()[1]
        host = cfg.host or "0.0.0.0"
        if ":" in host:
            host = f"[{host}]"
        self.url = f"{'wss' if ctx else 'ws'}://{host}:{self.port}{WS_PATH}"
        self._arm_timer()
        log.debug("listening on %s (store: %s)", self.url, self.backend.label)  # `serve` prints the line

    async def close(self) -> None:
        """Store what was accepted, close every connection with 1001, close the backend."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            core = self.core
            core.shutdown()
            if self._listener is not None:
                self._listener.close()
            # Sends already taken are stored and delivered before the goodbye.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2.0
            while core.pending and loop.time() < deadline:
                await asyncio.sleep(0.005)
            self.fanout.flush()
            core.close_all()
            self.run()
            for c in list(self.connections):
                if c.conn is None:
                    c.abort()  # still in its handshake
            deadline = loop.time() + self.config.close_timeout + 1
            while self.connections and loop.time() < deadline:
                await asyncio.sleep(0.01)
            for c in list(self.connections):
                c.abort()
            if self._timer is not None:
                self._timer.cancel()
            await self.backend.close()
            self.events_log.summarize()
            log.info("server closed")
        finally:
            self._closed.set()

    # -- carrying out the core's decisions -----------------------------------------

    def run(self) -> None:
        """Carry out the core's effects, in order, until it has nothing more to say."""
        if self._running:
            return  # called back from inside the loop below: it picks the new effects up
        self._running = True
        core, fanout, backend = self.core, self.fanout, self.backend
        try:
            while core.out:
                for e in core.take():
                    kind = type(e)
                    if kind is Broadcast:
                        x = e.exclude_conn
                        fanout.publish(e.payload, e.exclude_user, x.link if x is not None else None, e.lazy,
                                       e.document_only)
                    elif kind is Deliver:
                        fanout.send(e.conn.link, e.payload)
                    elif kind is Store:
                        backend.append(e.draft)
                    elif kind is Read:
                        self._read(e.conn, e.query)
                    elif kind is Attach:
                        fanout.attach(e.conn.link, e.held, e.conn.session.document_only)
                    elif kind is Release:
                        fanout.release(e.conn.link)
                    elif kind is WhenDrained:
                        self._when_drained(e.conn.link)
                    elif kind is Relay:
                        backend.relay(e.event)
                    elif kind is Post:
                        fanout.post(e.conn.link, e.payload)
                    elif kind is SaveRead:
                        backend.save_read(e.name_key, e.room, e.message_id)
                    elif kind is RoomOp:
                        self._room_op(e)
                    elif kind is CheckNames:
                        self._check_names(e)
                    elif kind is Close:
                        self._close(e.conn, e.code, e.reason)
                    elif kind is Abort:
                        log.info("dropping %s: keepalive ping timeout", e.conn.user.username)
                        e.conn.link.abort()
                    elif kind is Ping:
                        e.conn.link.ping()
        finally:
            self._running = False
        if core.next_wake() < self._timer_at:
            self._arm_timer()

    def _check_names(self, check: CheckNames) -> None:
        """Each recipient's account: those nobody owns are unverified (SQLite answers at once, before
        the batched commit; a late answer from Redis only leaves the note out)."""
        names = list(check.names)
        unverified: list[str] = []
        answers = [0]

        def got(name: str, account: Any) -> None:
            if account is None or isinstance(account, Exception) or not account.key_hash:
                unverified.append(name)
            answers[0] += 1
            if answers[0] == len(names):
                self.core.names_checked(check.draft, sorted(unverified))

        for name in names:
            self.backend.account(name_key(name), lambda account, name=name: got(name, account))

    def _room_op(self, op: RoomOp) -> None:
        def done(result: Any) -> None:
            self.core.room_done(op.conn, op.request, result)
            self.run()

        self.backend.room_op(op.request, op.username, op.name_key, done)

    def _read(self, conn: Conn, query: HistoryQuery) -> None:
        if not self._reads:
            asyncio.get_running_loop().call_soon(self._serve_reads)
        self._reads.append((conn, query))

    def _serve_reads(self) -> None:
        reads = self._reads
        for _ in range(min(READS_PER_TURN, len(reads))):
            conn, query = reads.popleft()
            if conn.closing:
                self.core.history_read(conn, query, HistoryResult([], False))  # lets go of it
                continue

            def done(result: HistoryResult | Exception, conn: Conn = conn, query: HistoryQuery = query) -> None:
                self.core.history_read(conn, query, result)
                self.run()

            self.backend.read(query, done)
        if reads:
            asyncio.get_running_loop().call_soon(self._serve_reads)

    def _when_drained(self, peer: Connection) -> None:
        peer.wait_drain = True
        if not peer.pending and not peer.lost and peer.transport.get_write_buffer_size() <= LOW_WATER:
            self._on_written(peer)

    def _on_written(self, peer: Connection) -> None:
        """A write to *peer* that waits for a drain: go on at once if the buffer is already low
        (on the next iteration, so others get their turn), else when it drains."""
        if peer.transport.get_write_buffer_size() <= LOW_WATER:
            peer.wait_drain = False
            self.on_drained(peer)

    def on_drained(self, peer: Connection) -> None:
        if peer.conn is not None and not peer.lost:
            self.core.drained(peer.conn)
            self.run()

    def _close(self, conn: Conn, code: int, reason: str) -> None:
        peer = conn.link
        log.info("closing %s: %d %s", conn.user.username, code, reason)
        if code != CLOSE_SLOW_CONSUMER:
            self.fanout.flush()  # what is already queued goes first
        peer.close(code, reason, wait_for_answer=not self._closing)

    def _on_slow(self, peer: Connection) -> None:
        if peer.conn is not None:
            self.core.slow(peer.conn)
            self.run()

    def _arm_timer(self) -> None:
        loop = self.loop
        if loop is None or self._closing:
            return
        wake = self.core.next_wake()
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = wake
        self._timer = loop.call_at(max(loop.time(), wake - time.monotonic() + loop.time()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        self.core.tick()
        self.run()
        self._arm_timer()

    # -- what connections report ---------------------------------------------------

    def handshake_started(self, peer: Connection) -> bool:
        """A new TCP connection: count it as a pending handshake, or refuse it (over a cap)."""
        # Behind a trusted proxy every connection comes from the proxy's address, and the real
        # one is known only from the request: only the overall cap applies until then.
        per_address = self.config.address_limits and not self.config.trust_proxy
        key = peer.address if per_address else None
        if not self.pending.begin(key):
            refused = sum(self.pending.refused.values())
            if refused == 1 or refused % 1000 == 0:
                log.warning("dropped a new connection from %s: too many pending handshakes "
                            "(%d so far; see workspace_pending_handshakes_refused_total)", peer.address, refused)
            return False
        peer.handshaking = True
        peer.pending_from = key
        return True

    def handshake_over(self, peer: Connection) -> None:
        self.pending.end(peer.pending_from)

    def on_request(self, peer: Connection, request: Request) -> None:
        """The HTTP request of a new connection: a WebSocket handshake or an endpoint."""
        self.connections.add(peer)
        headers = request.headers
        if self.config.trust_proxy:
            peer.address = forwarded_client(headers.get_all("X-Forwarded-For")) or peer.address
        # Origin and Host first: a web page or a rebound name learns nothing, not even the token's need.
        wrong_place = self.policy.check(headers.get_all("Host"), headers.get_all("Origin"))
        if wrong_place is not None:
            self._refuse(peer, request, wrong_place)
            return
        parts = urlsplit(request.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        path = parts.path
        auth = request.headers.get("Authorization")
        if path != WS_PATH:
            if path in ("/healthz", "/metrics"):
                wrong = self.core.check_token(query, auth, peer.address)
                if wrong is not None:
                    self._refuse(peer, request, wrong)
                    self.run()
                else:
                    self._endpoint(peer, path)
            else:
                self._refuse(peer, request, Refusal(404, f"not found: the chat is at {WS_PATH}?username=NAME"))
            return
        protocols = [p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",")]
        decision = self.core.admit(query, auth, peer.address, protocols)
        if isinstance(decision, Refusal):
            self._refuse(peer, request, decision)
            return
        peer.session = decision
        if self.core.needs_accounts:
            self.backend.account(decision.name_key, lambda account: self._identified(peer, request, decision, account))
        else:
            self._decided(peer, request, self.core.identify(decision, None))  # type: ignore[arg-type]

    def on_unreadable(self, peer: Connection, status: int, reason: str) -> None:
        """Bytes that were no HTTP request, answered with *status*: a refusal like the others."""
        self._count_refusal(peer, "-", status, reason.encode())

    def _identified(self, peer: Connection, request: Request, session: Session, account: Any) -> None:
        """The name's account is read: the core decides what the handshake proves."""
        if peer.lost or session.released:
            self.core.release(session)
            return
        decision = self.core.identify(session, account)
        if isinstance(decision, Claim):
            claim = decision
            self.backend.claim(claim, lambda ok: self._claimed(peer, request, session, claim, ok))
        else:
            self._decided(peer, request, decision)
        self.run()  # a claim may close the name's unverified connections

    def _claimed(self, peer: Connection, request: Request, session: Session, claim: Claim, ok: Any) -> None:
        if peer.lost or session.released:
            self.core.release(session)
            if ok is True:
                log.info("%s claimed by %s", claim.account.username, session.address)
            return
        decision = self.core.claimed(session, claim, ok)
        if not isinstance(decision, Refusal):
            log.info("%s claimed by %s", claim.account.username, session.address)
        self._decided(peer, request, decision)
        self.run()

    def _decided(self, peer: Connection, request: Request, decision: Session | Refusal) -> None:
        if isinstance(decision, Refusal):
            peer.session = None
            self._refuse(peer, request, decision)
        else:
            self._read_state(peer, request, decision)

    def _read_state(self, peer: Connection, request: Request, session: Session) -> None:
        """The user's rooms and where they stopped reading each (``connected.rooms``, a document-only
        client's replay)."""

        def got(rooms: Any) -> None:
            if peer.lost or session.released:
                self.core.release(session)
                return
            if isinstance(rooms, Exception):
                log.warning("could not read %s's rooms: %s", session.username, rooms)
            else:
                session.rooms = rooms
            self._reserve(peer, request, session)

        self.backend.rooms_of(session.name_key, session.username, got, general_only=session.document_only)

    def _reserve(self, peer: Connection, request: Request, session: Session) -> None:
        """The last step: a slot of the workspace-wide per-user cap (Redis), then accept."""
        cap = self.config.max_connections_per_user

        def reserved(ok: bool) -> None:
            if ok:
                session.global_slot = cap > 0
            if peer.lost or session.released:
                self._give_back(session)
            elif not ok:
                self._refuse(peer, request, self.core.refuse_over_cap(session))
            else:
                self._accept(peer, request, session)

        if cap:
            self.backend.reserve(session.username, cap, reserved)
        else:
            reserved(True)

    def _accept(self, peer: Connection, request: Request, session: Session) -> None:
        response = peer.ws.accept(request)
        if response.status_code != 101:  # not a valid WebSocket handshake
            self._give_back(session)
            self._count_refusal(peer, request.path, response.status_code, response.body or b"")
            peer.respond(response)
            return
        # The 101 goes out in the same write as `connected` (one send syscall per accept, not two).
        if self.fanout.raw:
            self.fanout.send_raw(peer, peer.accepted(response))
        else:  # compressed: the fan-out's queue holds payloads for websockets to frame
            peer.respond(response)
        if peer.timer is not None:
            peer.timer.cancel()
            peer.timer = None
        # websockets' parser keeps the request it parsed for as long as the connection lasts
        # (a local of its generator): empty it, about 2 KB per connection that nothing reads again.
        request.headers.clear()
        request.path = ""
        conn = Conn(session, peer)
        peer.conn = conn
        peer.session = None
        core = self.core
        core.open(conn)
        peer.user_id = conn.user.user_id
        u = conn.user
        self.events_log.info(
            "connects", "connect %s%s (%d connection(s) of this user, %d in all)",
            u.username, " (quiet)" if conn.quiet else "", len(u.conns) + u.quiet, len(core.conns),
        )
        self.run()

    def _give_back(self, session: Session) -> None:
        self.core.release(session)
        if session.global_slot:
            session.global_slot = False
            self.backend.release(session.username)

    def _refuse(self, peer: Connection, request: Request, refusal: Refusal) -> None:
        self._count_refusal(peer, request.path, refusal.status, refusal.reason.encode())
        response = peer.ws.reject(refusal.status, refusal.reason.rstrip("\n") + "\n")
        if refusal.code:
            response.headers[REFUSAL_HEADER] = refusal.code
        if refusal.retry_after:
            response.headers["Retry-After"] = str(refusal.retry_after)
        peer.respond(response)

    def _count_refusal(self, peer: Connection, path: str, status: int, body: bytes) -> None:
        self.handshake_rejections[status] += 1
        self.events_log.info("refusals", "refused %s %s: %d %s", peer.address, urlsplit(path).path, status,
                             body.decode(errors="replace").strip()[:200])

    def _endpoint(self, peer: Connection, path: str) -> None:
        if path == "/healthz":
            body = json.dumps(self.health())
            ctype = "application/json"
        else:
            body = render_metrics(
                self.core.counters, handshake_rejections=self.handshake_rejections,
                connections=len(self.core.conns), users=self.core.presence.connected_users,
                deliveries=self.fanout.deliveries, uptime=time.monotonic() - self.started,
                stored=self.backend.count() if not self.config.broker else None,
                pending=self.pending.total, pending_refused=self.pending.refused,
            )
            ctype = "text/plain; version=0.0.4; charset=utf-8"
        response = peer.ws.reject(200, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = ctype
        peer.respond(response)

    def health(self) -> dict[str, Any]:
        core = self.core
        out: dict[str, Any] = {
            "status": "closing" if self._closing else "ok",
            "users": sum(1 for u in core.presence.users.values() if u.visible_here),
            "connections": len(core.conns),
            "uptime": round(time.monotonic() - self.started, 3),
        }
        extra = self.backend.health()
        if extra.get("status") == "degraded" and out["status"] == "ok":
            out["status"] = "degraded"
        extra.pop("status", None)
        out.update(extra)
        return out

    def on_message(self, peer: Connection, data: str | bytes) -> None:
        conn = peer.conn
        assert conn is not None
        try:
            self.core.receive(conn, data)
        except Exception as exc:  # a bug must not take the connection down, nor put text in the log
            log.error("internal error on a frame from %s (%s); the frame was dropped", conn.user.username,
                      type(exc).__name__)
            log.debug("the internal error", exc_info=True)
        self.run()

    def on_ping(self, peer: Connection) -> None:
        if peer.conn is not None:
            self.core.heard(peer.conn)

    def on_pong(self, peer: Connection) -> None:
        if peer.conn is not None:
            self.core.pong(peer.conn)

    def on_lost(self, peer: Connection) -> None:
        self.connections.discard(peer)
        self.fanout.detach(peer)
        conn = peer.conn
        if conn is not None:
            u = conn.user
            self.core.gone(conn)
            self._give_back(conn.session)  # the core's slot went with gone(); the workspace-wide one here
            self.events_log.info("disconnects", "disconnect %s (%s)", u.username, peer.how_closed())
            self.run()
        elif peer.session is not None:
            self._give_back(peer.session)

    # -- what the backend reports (BackendEvents) ----------------------------------

    def committed(self, messages: list[ChatMessage], drafts: list[Draft | None]) -> None:
        self.core.committed(messages, drafts)
        self.run()
        self.fanout.flush()  # stored: deliver now rather than one loop iteration later

    def stored(self, draft: Draft, outcome: Outcome) -> None:
        self.core.stored(draft, outcome)
        self.run()

    def available(self, up: bool) -> None:
        self.core.store_available(up)

    def remote_presence(self, node: str, username: str, user_id: str, status: str, count: int,
                        exclude_user: bool, verified: bool = False) -> None:
        self.core.remote_presence(node, username, user_id, status, count, exclude_user, verified)
        self.run()

    def remote_read(self, username: str, room: str, message_id: str) -> None:
        self.core.remote_read(username, room, message_id)
        self.run()

    def remote_room(self, event: dict[str, Any]) -> None:
        self.core.remote_room(event)
        self.run()

    def remote_typing(self, username: str, user_id: str, is_typing: bool, room: str = GENERAL) -> None:
        self.core.remote_typing(username, user_id, is_typing, room)
        self.run()

    def node_users(self, node: str, users: dict[str, tuple[str, str, int, bool]]) -> None:
        self.core.node_users(node, users)
        self.run()

    def node_gone(self, node: str) -> None:
        self.core.node_gone(node)
        self.run()
        self.fanout.flush()

    def local_users(self) -> dict[str, tuple[str, str, int, bool]]:
        return self.core.local_users()


def server_names(bound_host: str) -> list[str]:
    """The names a Host header may use for this server besides IP literals and localhost:
    the machine's hostname (and its first label) and the host it is bound to."""
    hostname = socket.gethostname()
    return [hostname, hostname.partition(".")[0], bound_host]


async def start_server(config: ServerConfig) -> Server:
    """Start a server for *config*; ``server.url`` is where clients connect. With
    ``config.broker`` the node serves a workspace shared through Redis instead of its own
    SQLite store: the same server on another backend."""
    server = Server(config)
    await server.start()
    return server
