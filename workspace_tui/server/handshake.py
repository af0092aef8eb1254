"""The opening handshake: who may connect (404/401/400/429), quiet connections, and HTTP endpoints.

:class:`HandshakeMixin` is part of :class:`~workspace_tui.server.app.Server`; it
runs inside websockets' ``process_request``/``process_response`` hooks, before
anything is sent over WebSocket.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.frames import Opcode
from websockets.http11 import Request, Response

from workspace_tui.protocol import WS_PATH, message_id_key, validate_username

if TYPE_CHECKING:
    from .app import Server

log = logging.getLogger("workspace.server")

MAX_JOIN_HISTORY = 1000


@dataclass(eq=False, slots=True)
class Session:
    """What the handshake decided about a connection; holds its slot in the per-user cap."""

    server: Server
    username: str
    quiet: bool = False
    since: str | None = None
    history: int = 100
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.server._release(self.username)


class _FrameQueue(list):
    """The deque operations websockets' frame queue uses, at the size of a list: it holds a
    frame or two at a time, and an empty deque costs ~600 bytes more per connection."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)

    def extendleft(self, items: Any) -> None:
        self[:0] = list(items)[::-1]  # as deque.extendleft: each item goes to the front in turn


class ChatConnection(ServerConnection):
    """A websockets connection that gives its cap slot back whenever the TCP connection ends
    and records when it last saw a pong (keepalive runs in one server-wide task, not one per
    connection: a task per connection costs several KiB)."""

    session: Session | None = None
    pong_at: float = 0.0  # last pong (answer to our keepalive ping)
    ping_at: float = 0.0  # last ping from the client: a heartbeat, counts as activity

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # websockets uses this only to append, remove and iterate: an empty list is 56 bytes,
        # an empty deque ~700 (one per connection adds up at 10,000 connections).
        self.drain_waiters = []  # type: ignore[assignment]

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        # As for drain_waiters: the queue of received frames (append, popleft, extendleft).
        self.recv_messages.frames.queue = _FrameQueue()  # type: ignore[assignment]

    def acknowledge_pings(self, data: bytes) -> None:
        self.pong_at = self.loop.time()
        super().acknowledge_pings(data)

    def process_event(self, event: Any) -> None:
        if getattr(event, "opcode", None) is Opcode.PING:
            self.ping_at = self.loop.time()
        super().process_event(event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.session is not None:
            self.session.release()


# After the handshake the request and response are dead weight (~3 KiB of headers per
# connection); websockets only checks ``request is None`` from then on.
DONE_REQUEST = Request("/ws", Headers())
DONE_RESPONSE = Response(101, "Switching Protocols", Headers())


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None



class HandshakeMixin:
    """Handshake checks and the per-user connection cap (reserved synchronously, so race-free)."""

    def _refuse(self, ws: ServerConnection, status: int, reason: str) -> Response:
        return ws.respond(status, reason.rstrip("\n") + "\n")

    def _authorized(self, query: dict[str, list[str]], request: Request) -> bool:
        token = self.config.token
        if not token:
            return True
        presented = _first(query, "token")
        if presented is None:
            auth = request.headers.get("Authorization", "")
            if auth[:7].lower() == "bearer ":
                presented = auth[7:].strip()
        return presented is not None and hmac.compare_digest(presented.encode(), token.encode())

    def _process_request(self, ws: ChatConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        path = parts.path
        if path != WS_PATH:
            if path in ("/healthz", "/metrics"):
                if not self._authorized(query, request):
                    return self._refuse(ws, 401, "unauthorized: this server needs a token")
                return self._http_response(ws, path)
            return self._refuse(ws, 404, f"not found: the chat is at {WS_PATH}?username=NAME")
        if not self._authorized(query, request):
            return self._refuse(ws, 401, "unauthorized: missing or wrong token (token=... or Authorization: Bearer ...)")
        username = _first(query, "username")
        reason = validate_username(username)
        if reason:
            return self._refuse(ws, 400, f"bad request: {reason}")
        assert username is not None
        since = _first(query, "since")
        if since is not None and message_id_key(since) is None:
            return self._refuse(ws, 400, "bad request: since must be a message id (msg_<13 digits>_<6 digits>)")
        history = self.config.history
        raw_history = _first(query, "history")
        if raw_history is not None:
            if not raw_history.isdigit() or int(raw_history) > MAX_JOIN_HISTORY:
                return self._refuse(ws, 400, f"bad request: history must be an integer from 0 to {MAX_JOIN_HISTORY}")
            history = int(raw_history)
        presence = _first(query, "presence")
        if presence is not None and presence != "none":
            return self._refuse(ws, 400, "bad request: presence may only be 'none' (a quiet connection)")
        if self._closing:
            return self._refuse(ws, 503, "server is shutting down")
        cap = self.config.max_connections_per_user
        if cap and self.reservations.get(username, 0) >= cap:
            return self._refuse(
                ws, 429, f"too many connections: {username} already has {cap} open (the limit is {cap} per user)"
            )
        # Reserve now, synchronously: concurrent handshakes cannot all pass the check above.
        self.reservations[username] = self.reservations.get(username, 0) + 1
        ws.session = Session(self, username, presence == "none", since, history)
        return None

    def _process_response(self, ws: ChatConnection, request: Request, response: Response) -> None:
        if response.status_code == 101:
            return
        if ws.session is not None:
            ws.session.release()
        if response.status_code >= 400:
            self.metrics.handshake_rejections[response.status_code] += 1
            log.info(
                "refused %s %s: %d %s",
                ws.remote_address[0] if ws.remote_address else "?",
                urlsplit(request.path).path,
                response.status_code,
                response.body.decode(errors="replace").strip()[:200],
            )

    def _release(self, username: str) -> None:
        n = self.reservations.get(username, 0) - 1
        if n > 0:
            self.reservations[username] = n
        else:
            self.reservations.pop(username, None)

    def _http_response(self, ws: ServerConnection, path: str) -> Response:
        if path == "/healthz":
            body = json.dumps(self.health())
            ctype = "application/json"
        else:
            body = self.metrics.render(
                connections=len(self.hub.peers),
                users=self.presence.connected_users,
                deliveries=self.hub.deliveries,
            )
            ctype = "text/plain; version=0.0.4; charset=utf-8"
        response = ws.respond(200, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = ctype
        return response

    def health(self) -> dict[str, Any]:
        return {
            "status": "closing" if self._closing else "ok",
            "users": self.presence.connected_users,
            "connections": len(self.hub.peers),
            "uptime": round(self.metrics.uptime, 3),
        }

