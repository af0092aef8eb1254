"""The server: lifecycle and one coroutine per connection.

Flow of a message: ``message:send`` is validated, de-duplicated and rate
limited, given the next ordered id and queued; at the end of the loop
iteration every queued message is committed in one SQLite transaction and only
then published through the hub (encoded once for all recipients).

Everything that touches shared state runs synchronously on the event loop, so
the order in which things happen is the order clients see them. The parts:
:mod:`.handshake` (who may connect), :mod:`.frames` (what each frame does),
:mod:`.housekeeping` (keepalive and idle timers), :mod:`.hub` (fan-out),
:mod:`.presence`, :mod:`.store`, :mod:`.limits`, :mod:`.metrics`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from workspace_tui.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_SLOW_CONSUMER,
    ERR_UNAVAILABLE,
    WS_PATH,
    ChatMessage,
    error_frame,
    history_frame,
    iso_timestamp,
    presence_frame,
)

from .config import ServerConfig
from .frames import FramesMixin
from .handshake import DONE_REQUEST, DONE_RESPONSE, HandshakeMixin, Session, ChatConnection
from .housekeeping import HousekeepingMixin
from .hub import LocalHub, Peer, encode
from .limits import Limiter
from .metrics import Metrics
from .presence import Presence, UserState
from .store import Store

log = logging.getLogger("workspace.server")

RESUME_CHUNK = 500  # messages per resume frame, at most
RESUME_BYTES = 512 * 1024  # and roughly this many bytes (a single bigger message goes alone)


def _split_by_size(messages: list[ChatMessage]) -> list[list[ChatMessage]]:
    """Cut *messages* so each resume frame stays near :data:`RESUME_BYTES` (clients cap frame sizes)."""
    parts: list[list[ChatMessage]] = []
    current: list[ChatMessage] = []
    size = 0
    for m in messages:
        est = 2 * len(m.text.encode()) + 300  # worst-case JSON escaping plus the other fields
        if current and size + est > RESUME_BYTES:
            parts.append(current)
            current, size = [], 0
        current.append(m)
        size += est
    if current:
        parts.append(current)
    return parts


class Server(HandshakeMixin, FramesMixin, HousekeepingMixin):
    """A running chat server. Create it with :func:`start_server`."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = Store(config.db_path)
        self.metrics = Metrics()
        self.presence = Presence(config.status_memory)
        self.hub = LocalHub(
            compression=config.compression, send_buffer_limit=config.send_buffer_limit, on_slow=self._on_slow
        )
        self.reservations: dict[str, int] = {}
        self.send_limiters: dict[str, Limiter] = {}
        self.frame_limiters: dict[str, Limiter] = {}
        self._batch: list[tuple[ChatMessage, Peer]] = []
        self._inflight: dict[tuple[str, str], ChatMessage] = {}
        self._dup_waiters: list[tuple[Peer, ChatMessage]] = []
        self._commit_scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._limits_json: bytes | None = None
        self._join_history: tuple[tuple[int, int], bytes] | None = None  # ((limit, store generation), frame)
        self.last_message_id: str | None = self.store.last_id()  # newest committed message
        self._ws_server: Any = None
        self._closing = False
        self._closed = asyncio.Event()
        self.port = config.port
        self.url = ""
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        self.loop = asyncio.get_running_loop()
        ctx = None
        if cfg.certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cfg.certfile), str(cfg.keyfile) if cfg.keyfile else None)
        self._ws_server = await serve(
            self._handle,
            cfg.host,
            cfg.port,
            compression="deflate" if cfg.compression else None,
            process_request=self._process_request,
            process_response=self._process_response,
            open_timeout=cfg.handshake_timeout or None,
            ping_interval=None,  # see _keepalive
            ping_timeout=None,
            close_timeout=cfg.close_timeout,
            max_size=cfg.max_payload,
            create_connection=ChatConnection,
            logger=logging.getLogger("workspace.server.websockets"),
            ssl=ctx,
            backlog=cfg.backlog,  # asyncio's default (100) drops SYNs when hundreds connect at once
        )
        sock = self._ws_server.sockets[0]
        self.port = sock.getsockname()[1]
        host = cfg.host or "0.0.0.0"
        if ":" in host:
            host = f"[{host}]"
        self.url = f"{'wss' if ctx else 'ws'}://{host}:{self.port}{WS_PATH}"
        self._sweeper = asyncio.create_task(self._sweep())
        if cfg.ping_interval:
            self._keepalive_task = asyncio.create_task(self._keepalive())
        log.debug("listening on %s (store: %s)", self.url, self.store.path)  # `serve` prints the line itself

    async def close(self) -> None:
        """Close every connection with 1001, flush the store and stop."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            self._commit()  # anything accepted is stored and delivered before the goodbye
            self.hub.flush()
            for t in (self._sweeper, self._keepalive_task):
                if t is not None:
                    t.cancel()
            self._ws_server.close(code=CLOSE_GOING_AWAY, reason="server shutting down")
            try:
                await asyncio.wait_for(self._ws_server.wait_closed(), self.config.close_timeout + 2)
            except TimeoutError:
                for conn in list(self._ws_server.all_connections):
                    conn.transport.abort()
                try:
                    await asyncio.wait_for(self._ws_server.wait_closed(), 2)
                except TimeoutError:
                    log.warning("some connections did not close")
            for task in list(self._tasks):
                task.cancel()
            for u in self.presence.users.values():
                if u.typing_timer:
                    u.typing_timer.cancel()
            self._commit()
            self.store.close()
            log.info("server closed")
        finally:
            self._closed.set()

    # -- connection ----------------------------------------------------------

    def _connected_parts(self, u: UserState) -> list[bytes]:
        """``connected`` as parts to write back to back: the roster (up to ~100 bytes per online
        user) is shared, not copied into every frame."""
        head = encode(
            {
                "type": "connected",
                "userId": u.user_id,
                "username": u.username,
                "timestamp": iso_timestamp(),
                "connectedUsers": self.presence.connected_users,
            }
        )
        if self._limits_json is None:
            self._limits_json = b'],"limits":' + encode(self.config.limits.to_wire())
        last = self.last_message_id
        tail = b',"lastMessageId":' + (b'"' + last.encode() + b'"' if last else b"null") + b"}"
        return [head[:-1] + b',"users":[', *self.presence.roster_parts(), self._limits_json + tail]

    def _send_history(self, peer: Peer, session: Session) -> None:
        store, hub = self.store, self.hub
        if session.since is not None:
            since = session.since
            oldest = store.oldest_id()
            gap = oldest is not None and since < oldest
            chunks = [part for chunk in store.after(since, RESUME_CHUNK) for part in _split_by_size(chunk)]
            if not chunks:
                hub.send(peer, history_frame([], reason="resume", has_more=False, gap=gap, since=since))
            for i, chunk in enumerate(chunks):
                last = i == len(chunks) - 1
                hub.send(peer, history_frame(chunk, reason="resume", has_more=not last, gap=gap, since=since))
            return
        # Everyone who joins between two commits gets the same frame: read and encode it once.
        key = (session.history, store.generation)
        cached = self._join_history
        if cached is None or cached[0] != key:
            messages, has_more = store.latest(session.history)
            cached = self._join_history = (key, encode(history_frame(messages, reason="join", has_more=has_more)))
        hub.send_encoded(peer, cached[1])

    async def _handle(self, ws: ChatConnection) -> None:
        session = ws.session
        if session is None or session.released or self._closing:
            return
        if ws.request is not None:
            # websockets' parser generator keeps the Request alive for the whole connection:
            # drop its headers (~1.5 KiB) as well as our references.
            ws.request.headers.clear()
        ws.request, ws.response = DONE_REQUEST, DONE_RESPONSE
        loop = self.loop or asyncio.get_running_loop()
        u = self.presence.user(session.username)
        peer = Peer(ws, u, session.quiet, session)
        peer.last_seen = loop.time()
        was_visible = u.visible
        if session.quiet:
            u.quiet += 1
        else:
            u.peers.append(peer)
            self.presence.refresh(u)
        # connected, then history, then live frames: all before the next await, so nothing interleaves.
        self.hub.send_parts(peer, self._connected_parts(u))
        try:
            self._send_history(peer, session)
        except Exception as exc:
            log.error("could not read history for %s: %s", u.username, exc)
            self.hub.send(peer, error_frame(ERR_UNAVAILABLE, "history is unavailable right now", frame_type="history"))
        # A big resume must not count as a slow reader before it had a chance to drain.
        peer.allowance = sum(map(len, peer.pending))
        self.hub.attach(peer)
        self.metrics.connections_total += 1
        if u.visible and not was_visible:
            self.hub.publish(
                presence_frame(u.user_id, u.username, u.status, len(u.peers)), exclude_user=u.user_id, lazy=True
            )
        elif was_visible and not session.quiet:
            # Another connection of a visible user: same status, new count (rosters show xN live).
            self.hub.publish(
                presence_frame(u.user_id, u.username, u.status, len(u.peers)), exclude_peer=peer, lazy=True
            )
        log.info(
            "connect %s%s (%d connection(s) of this user, %d in all)",
            u.username,
            " (quiet)" if session.quiet else "",
            len(u.peers) + u.quiet,
            len(self.hub.peers),
        )
        recv = ws.recv
        try:
            while True:  # not ``async for``: its async generator frame is kept per connection
                raw = await recv()
                peer.last_seen = loop.time()
                try:
                    self._on_frame(peer, raw)
                except Exception:  # a bug must not take the connection (or a traceback) to the client
                    log.exception("error handling a frame from %s", u.username)
        except ConnectionClosed:
            pass
        finally:
            self._leave(peer)

    def _leave(self, peer: Peer) -> None:
        self.hub.detach(peer)
        peer.closing = True
        u = peer.user
        if peer.quiet:
            u.quiet -= 1
        else:
            was_visible = u.visible
            if peer in u.peers:
                u.peers.remove(peer)
            self.presence.refresh(u)
            if not u.peers and u.typing:
                self._clear_typing(u)
            if was_visible and not u.visible and not self._closing:
                self.hub.publish(
                    presence_frame(u.user_id, u.username, "offline", 0), exclude_user=u.user_id, lazy=True
                )
            elif was_visible and u.visible and not self._closing:  # one of several closed: new count
                self.hub.publish(presence_frame(u.user_id, u.username, u.status, len(u.peers)), lazy=True)
        self.presence.forget_if_unused(u)
        if peer.session is not None:
            peer.session.release()
        ws = peer.ws
        log.info("disconnect %s (code %s)", u.username, ws.close_code if ws.close_code is not None else "none")

    def _close(self, peer: Peer, code: int, reason: str, *, flush: bool = True) -> None:
        """Close *peer* with *code*, after what is already queued for it."""
        if flush:
            self.hub.flush()
        peer.closing = True
        self.metrics.closes[code] += 1
        log.info("closing %s: %d %s", peer.user.username, code, reason)
        task = asyncio.get_running_loop().create_task(self._closer(peer, code, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _closer(self, peer: Peer, code: int, reason: str) -> None:
        ws = peer.ws
        try:
            await asyncio.wait_for(ws.close(code, reason), self.config.close_timeout + 1)
        except BaseException:
            pass
        finally:
            if not ws.transport.is_closing():
                ws.transport.abort()

    def _on_slow(self, peer: Peer) -> None:
        self._close(
            peer,
            CLOSE_SLOW_CONSUMER,
            f"slow consumer: more than {self.config.send_buffer_limit} bytes waiting to be read",
            flush=False,
        )

async def start_server(config: ServerConfig) -> Server:
    """Start a server for *config*; ``server.url`` is where clients connect.

    With ``config.broker`` set the node serves a workspace shared through Redis
    (:class:`~workspace_tui.server.cluster.ClusterServer`) instead of its own SQLite store."""
    if config.broker:
        from .cluster import ClusterServer

        server: Server = ClusterServer(config)
    else:
        server = Server(config)
    try:
        await server.start()
    except BaseException:
        server.store.close()
        raise
    return server
