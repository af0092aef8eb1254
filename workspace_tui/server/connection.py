"""One TCP connection: websockets' Sans-I/O :class:`~websockets.server.ServerProtocol` under an
:class:`asyncio.Protocol` of our own.

websockets parses and frames; this class moves bytes between it and the
transport and hands what it parsed to the server: the HTTP request, whole
messages (fragments joined, UTF-8 checked), pings and pongs, the end. Only
websockets' public Sans-I/O API is used (``receive_data``/``receive_eof``,
``events_received``, ``data_to_send``, ``accept``/``reject``/``send_response``,
``handshake_exc``, ``send_close``, ``close_expected``, ``close_exc``).
Compared with a coroutine per connection on websockets' asyncio server this
holds a connection in about half the memory and delivers a broadcast with
about half the CPU (``benchmarks/network_layer_bench.py``).

Outgoing chat frames are written by the :mod:`.fanout` straight to the
transport as prebuilt WebSocket frames (one encoding for every recipient);
control frames and the close handshake go through the protocol.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from websockets.frames import Opcode

from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from workspace_tui.protocol import SUBPROTOCOL

from .badrequest import unreadable_reason
from .pending import BUSY

if TYPE_CHECKING:
    from workspace_tui.core.state import Conn, Session

    from .config import ServerConfig

# websockets logs "connection open" / "connection closed" for each connection at INFO: the
# server logs its own, more useful lines, so only websockets' warnings and errors are kept
# (and no log record is made twice per connection for nothing).
_ws_log = logging.getLogger("workspace.server.websockets")
_ws_log.setLevel(logging.WARNING)

# Bytes of messages from one connection handled per loop iteration (at least one message);
# the rest wait, with reading paused, for the next. Every connection gets its turn, and a
# burst of big messages is fanned out in steps that readers at full speed keep up with;
# a burst of small ones still goes out in one write per reader.
BYTES_PER_TURN = 64 * 1024

# Flow control for history: a frame produced as the reader drains comes only once the
# transport holds no more than this (pause_writing / resume_writing fire around it).
LOW_WATER = 64 * 1024

_TEXT, _BINARY, _CONT, _PING, _PONG, _CLOSE = (
    Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PING, Opcode.PONG, Opcode.CLOSE
)


def _select_subprotocol(_protocol: ServerProtocol, offered: Sequence[str]) -> str | None:
    """Ours when offered (the others a client offers carry its key or invite: never echoed back);
    none for clients that offer none, as the protocol document's do."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


class ConnectionEvents(Protocol):
    """What a connection reports, and the settings it reads (the server implements this)."""

    config: ServerConfig
    extensions: list[Any] | None

    def handshake_started(self, peer: Connection) -> bool: ...

    def handshake_over(self, peer: Connection) -> None: ...

    def on_request(self, peer: Connection, request: Request) -> None: ...

    def on_unreadable(self, peer: Connection, status: int, reason: str) -> None: ...

    def on_message(self, peer: Connection, data: str | bytes) -> None: ...

    def on_ping(self, peer: Connection) -> None: ...

    def on_pong(self, peer: Connection) -> None: ...

    def on_drained(self, peer: Connection) -> None: ...

    def on_lost(self, peer: Connection) -> None: ...


class Preface(bytes):
    """A 101 response waiting in ``pending`` for the first frames. Its type marks it, so that a
    protocol write (a pong) can send it first without the connection keeping a second reference
    to it for as long as it lives."""

    __slots__ = ()


class Connection(asyncio.Protocol):
    """A connection from accept to close. The fan-out reads ``pending``/``held``/``mark``."""

    __slots__ = (
        "server", "ws", "transport", "conn", "session", "user_id", "pending", "held", "held_bytes", "mark",
        "closing", "wait_drain", "fragments", "fragment_text", "timer", "lost", "waiting", "address",
        "handshaking", "pending_from", "answered",
    )

    def __init__(self, server: ConnectionEvents) -> None:
        self.server = server
        self.ws: ServerProtocol = None  # type: ignore[assignment]
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.conn: Conn | None = None  # the core's record, once open
        self.session: Session | None = None  # admitted, waiting for the backend's cap
        self.user_id: str | None = None
        self.pending: list[bytes] = []  # wire bytes queued for the next write
        self.held: list[bytes] | None = None  # broadcasts kept back while history goes out
        self.held_bytes = 0
        self.mark = -1  # position in the fan-out's broadcast log; -1 = not attached
        self.closing = False
        self.wait_drain = False  # tell the core when the buffer is low again
        self.fragments: list[bytes] | None = None  # a fragmented message being received
        self.fragment_text = True  # ... and whether it is text
        self.timer: asyncio.TimerHandle | None = None  # handshake or close timeout
        self.lost = False
        self.waiting: list[Any] | None = None  # frames parsed but not handled yet (next turn)
        self.address = "?"  # the client's IP address (from X-Forwarded-For with trust_proxy)
        self.handshaking = False  # counted as a pending handshake (server.handshake_started)
        self.pending_from: str | None = None  # ... under this address (None: not per address)
        self.answered = False  # the HTTP response is out (or queued)

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.address = peer_address(transport.get_extra_info("peername"))
        server = self.server
        self.ws = ServerProtocol(
            max_size=server.config.max_payload,
            extensions=server.extensions,
            select_subprotocol=_select_subprotocol,
            logger=_ws_log,
        )
        transport.set_write_buffer_limits(high=LOW_WATER, low=LOW_WATER)
        if not server.handshake_started(self):
            transport.write(BUSY)  # over a cap on pending handshakes: say when to come back, and go
            transport.close()
            return
        timeout = server.config.handshake_timeout
        if timeout:
            self.timer = asyncio.get_running_loop().call_later(timeout, self._handshake_timeout)

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        events = ws.events_received()
        if events:
            if self.waiting is not None:
                self.waiting.extend(events)
            else:
                self._handle(events)
        elif ws.handshake_exc is not None and not self.answered:  # no request came of these bytes
            self._answer_unreadable(ws.handshake_exc)
        self.flush_protocol()

    def _answer_unreadable(self, exc: Exception) -> None:
        """The bytes were not an HTTP request. websockets queued the end of the stream, after an
        answer of its own for some faults only (414, 431): the others get a 400 saying what was wrong."""
        ws = self.ws
        answer = b"".join(ws.data_to_send())  # the end of the stream is b"": closing follows anyway
        reason = unreadable_reason(exc)
        if answer:
            status = int(answer.split(b" ", 2)[1])  # its status line: HTTP/1.1 431 ...
        else:
            status = 400
            answer = ws.reject(status, reason + "\n").serialize()
        self._answered()
        self.server.on_unreadable(self, status, reason)
        self.transport.write(answer)

    def _handle(self, events: list[Any]) -> None:
        """Handle parsed events, about :data:`BYTES_PER_TURN` of messages this turn."""
        used = 0
        for i, event in enumerate(events):
            if type(event) is Request:
                self.server.on_request(self, event)
                continue
            if event.opcode in (_TEXT, _BINARY, _CONT):
                if used >= BYTES_PER_TURN:
                    self.waiting = events[i:]
                    self.transport.pause_reading()
                    asyncio.get_running_loop().call_soon(self._next_turn)
                    return
                used += len(event.data)
            self._on_frame(event)

    def _next_turn(self) -> None:
        events, self.waiting = self.waiting, None
        if self.lost or not events:
            return
        self._handle(events)
        if self.waiting is None:
            self.transport.resume_reading()
        self.flush_protocol()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self.flush_protocol()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        # The protocol learns that the stream ended (idempotent): only then is it CLOSED and its
        # close code known. A connection we drop (abort, a client that never closed) read no EOF.
        self.ws.receive_eof()
        self.lost = True
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.handshaking:
            self.handshaking = False
            self.server.handshake_over(self)
        self.server.on_lost(self)

    def pause_writing(self) -> None:
        pass  # the fan-out watches the buffer itself (slow consumers); history waits for resume

    def resume_writing(self) -> None:
        if self.wait_drain and not self.pending:
            self.wait_drain = False
            self.server.on_drained(self)

    # -- frames in -------------------------------------------------------------------

    def _on_frame(self, frame: Any) -> None:
        opcode = frame.opcode
        if opcode is _TEXT or opcode is _BINARY:
            if not frame.fin:
                self.fragments = [frame.data]
                self.fragment_text = opcode is _TEXT
                return
            self._message(frame.data, opcode is _TEXT)
        elif opcode is _CONT:
            if self.fragments is None:
                return  # websockets already failed the connection
            self.fragments.append(frame.data)
            if frame.fin:
                data = b"".join(self.fragments)
                self.fragments = None
                self._message(data, self.fragment_text)
        elif opcode is _PING:
            self.server.on_ping(self)  # websockets queued the pong already
        elif opcode is _PONG:
            self.server.on_pong(self)

    def _message(self, data: bytes, text: bool) -> None:
        if self.conn is None or self.closing:
            return
        if text:
            try:
                decoded = data.decode()
            except UnicodeDecodeError as exc:
                self.ws.fail(1007, f"invalid UTF-8 at position {exc.start}")
                return
            self.server.on_message(self, decoded)
        else:
            self.server.on_message(self, bytes(data))

    # -- bytes out -------------------------------------------------------------------

    def flush_protocol(self) -> None:
        """Write what websockets has queued (handshake response, pongs, close frames)."""
        ws = self.ws
        out = ws.data_to_send()
        pending = self.pending
        if out and pending and type(pending[0]) is Preface:  # the 101, not written by the fan-out yet: first
            self.transport.write(pending.pop(0))
        for data in out:
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()
            else:
                self._close_transport()  # TLS cannot half-close: the TCP close ends the handshake
        if ws.close_expected():
            self._expect_close()

    def _expect_close(self) -> None:
        """The TCP close should come now. After a refused handshake it is ours, at once. After a
        close frame it is the client's, once it has answered it: closing first would turn what it
        still sends into a reset, and a reset can wipe our close frame, unread, from its socket,
        so a flooding client would see 1006 instead of 1008. A client that does not close within
        the close timeout is dropped."""
        if self.ws.state is State.CONNECTING:
            self._close_transport()
        elif not self.closing:  # close() arms the same timer itself
            self.closing = True
            self._abort_later()

    def how_closed(self) -> str:
        """How the connection ended, for the log (once lost): the close code the client sent, else ours."""
        ended = self.ws.close_exc
        if ended.sent is not None and not ended.rcvd_then_sent:  # ours came first (answered or not)
            return f"closed by the server with {ended.sent.code}"
        if ended.rcvd is not None:
            return f"code {ended.rcvd.code}"
        return "closed without a close frame"

    def writable(self) -> bool:
        return not self.lost and self.ws.state is State.OPEN

    def send_texts(self, payloads: list[bytes]) -> None:
        """Frames through websockets (compression on: it compresses each one)."""
        ws = self.ws
        for payload in payloads:
            ws.send_text(payload)
        self.flush_protocol()

    def respond(self, response: Any) -> None:
        self._answered()
        self.ws.send_response(response)
        self.flush_protocol()

    def accepted(self, response: Any) -> Preface:
        """The bytes of a 101 *response*, for the fan-out to write together with the first frames
        (queued at the head of ``pending``; a write of the protocol's own sends them first)."""
        self._answered()
        ws = self.ws
        ws.send_response(response)
        return Preface(b"".join(ws.data_to_send()))

    def _answered(self) -> None:
        self.answered = True
        if self.handshaking:  # no longer a pending handshake
            self.handshaking = False
            self.server.handshake_over(self)

    def ping(self) -> None:
        if self.writable():
            self.ws.send_ping(b"ka")
            self.flush_protocol()

    def close(self, code: int, reason: str, wait_for_answer: bool = True) -> None:
        """Start the closing handshake; drop the TCP connection if the client does not finish it.
        Without *wait_for_answer* (the server is going away) the TCP close follows the close frame
        at once: a shutdown is over sooner, and so is the time clients' reconnects are refused."""
        self.closing = True
        if self.lost:
            return
        if self.ws.state is State.OPEN:
            self.ws.send_close(code, reason)
            self.flush_protocol()
        if not wait_for_answer:
            self._close_transport()
        self._abort_later()

    def _abort_later(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.server.config.close_timeout, self.abort)

    def abort(self) -> None:
        self.closing = True
        if not self.lost:
            self.transport.abort()

    def _close_transport(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def _handshake_timeout(self) -> None:
        self.timer = None
        if self.ws.state is State.CONNECTING or self.session is not None and self.conn is None:
            self.abort()


def peer_address(peername: Any) -> str:
    """The IP address in a transport's ``peername`` (``"local"`` for a Unix socket)."""
    if isinstance(peername, tuple) and peername:
        return sys.intern(str(peername[0]))  # one string per address, however many connections it has
    return "local"
