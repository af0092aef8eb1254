"""Fan-out: delivering server frames to connections.

:class:`Hub` is the seam a broker (Redis, a later issue) plugs into: the app
only ever calls :meth:`Hub.publish` (everyone, minus exclusions) and
:meth:`Hub.send` (one connection). :class:`LocalHub` delivers inside this
process:

* a frame is JSON-encoded once and, with compression off, turned into the
  WebSocket frame bytes once; the same bytes object is queued for every
  recipient (no per-recipient encoding);
* everything queued for one connection during a loop iteration is written with
  one ``transport.write`` at the end of it (one syscall instead of many);
* a connection whose transport buffer grows past ``send_buffer_limit`` is a
  slow consumer: it gets nothing more and ``on_slow`` closes it (4001).
"""

from __future__ import annotations

import asyncio
import json
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.protocol import OPEN

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def encode(frame: dict[str, Any]) -> bytes:
    """The JSON text of a frame, as UTF-8 bytes."""
    return _encode(frame).encode()


def frame_header(n: int) -> bytes:
    """The header of an unmasked, unfragmented WebSocket text frame with an *n*-byte payload."""
    if n < 126:
        return bytes((0x81, n))
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n)
    return struct.pack("!BBQ", 0x81, 127, n)


def text_frame(payload: bytes) -> bytes:
    """A complete unmasked, unfragmented WebSocket text frame (server to client) around *payload*."""
    return frame_header(len(payload)) + payload


BIG_WRITE = 64 * 1024  # above this, queued chunks are written one by one instead of joined (no copy)
SMALL_CHUNK = 16 * 1024  # ... except runs of chunks smaller than this, which are joined


class Peer:
    """One accepted connection, as the hub and the app see it."""

    __slots__ = (
        "ws", "transport", "user", "quiet", "pending", "mark", "closing", "last_seen", "session", "allowance",
        "ping_sent_at",
        "__weakref__",
    )

    def __init__(self, ws: ServerConnection, user: Any, quiet: bool, session: Any = None) -> None:
        self.ws = ws
        self.transport = ws.transport
        self.user = user  # presence.UserState
        self.quiet = quiet
        self.pending: list[bytes] = []  # wire bytes queued for the next flush
        self.mark = -1  # position in the hub's broadcast log this peer has taken; -1 = not attached
        self.closing = False
        self.last_seen = 0.0
        self.session = session
        self.allowance = 0  # extra buffer allowed while the join/resume backlog drains
        self.ping_sent_at = 0.0  # last keepalive ping (loop time)


class Hub(ABC):
    """Where frames go out. Implementations must keep per-publisher order."""

    @abstractmethod
    def attach(self, peer: Peer) -> None:
        """Start delivering published frames to *peer*."""

    @abstractmethod
    def detach(self, peer: Peer) -> None:
        """Stop delivering to *peer* (idempotent)."""

    @abstractmethod
    def publish(
        self,
        frame: dict[str, Any],
        *,
        exclude_user: str | None = None,
        exclude_peer: Peer | None = None,
        lazy: bool = False,
    ) -> int:
        """Deliver *frame* to every attached connection except those of ``exclude_user`` and
        ``exclude_peer``; returns the number of local recipients. ``lazy`` frames (presence,
        typing) may wait a few milliseconds to be coalesced with others; order is kept."""

    @abstractmethod
    def publish_many(self, frames: list[dict[str, Any]]) -> int:
        """Deliver several frames, in order, to every attached connection."""

    @abstractmethod
    def send(self, peer: Peer, frame: dict[str, Any]) -> None:
        """Deliver *frame* to one connection (attached or not yet)."""

    @abstractmethod
    def send_encoded(self, peer: Peer, payload: bytes) -> None:
        """Deliver already JSON-encoded *payload* to one connection."""

    @abstractmethod
    def send_parts(self, peer: Peer, parts: list[bytes]) -> None:
        """Deliver one frame whose JSON payload is the concatenation of *parts* (not copied)."""

    @abstractmethod
    def flush(self) -> None:
        """Write everything queued now."""

    @property
    @abstractmethod
    def peers(self) -> set[Peer]:
        """Attached local connections."""


class LocalHub(Hub):
    """In-process fan-out with encode-once, per-iteration coalescing and slow-consumer detection.

    ``publish`` is O(1): it appends the encoded frame to this iteration's
    broadcast log. At the end of the iteration (for ``lazy`` frames such as
    presence and typing, up to ``lazy_delay`` later, so a burst of joins is
    one write per connection) :meth:`flush` joins the log into one bytes
    object and queues that same object for every connection, so a
    burst of k broadcasts to n connections costs O(k + n) Python work, not
    O(k * n). Connections excluded from some entry (the sender of a typing
    frame, a user who just joined) or attached mid-iteration take the slow path
    and get exactly their entries. A direct :meth:`send` to a connection first
    takes the log entries it has not taken yet, so per-connection order is the
    order of the calls.
    """

    def __init__(
        self,
        *,
        compression: bool = False,
        send_buffer_limit: int = 4 * 1024 * 1024,
        on_slow: Callable[[Peer], None] | None = None,
        lazy_delay: float = 0.01,
    ) -> None:
        self._peers: set[Peer] = set()
        self._dirty: list[Peer] = []  # peers with something in .pending
        self._log: list[tuple[bytes, str | None, Peer | None]] = []  # this iteration's broadcasts
        self._excluded_users: set[str] = set()
        self._excluded_peers: set[Peer] = set()
        self._scheduled = False
        self._urgent = False  # the log holds a frame that must go out this iteration
        self._timer: asyncio.TimerHandle | None = None
        self.lazy_delay = lazy_delay
        self.raw = not compression  # write prebuilt frames straight to the transport
        self.limit = send_buffer_limit
        self.on_slow = on_slow
        self.deliveries = 0

    @property
    def peers(self) -> set[Peer]:
        return self._peers

    def attach(self, peer: Peer) -> None:
        peer.mark = len(self._log)  # broadcasts from now on
        self._peers.add(peer)

    def detach(self, peer: Peer) -> None:
        self._peers.discard(peer)
        peer.mark = -1

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _schedule_lazy(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.lazy_delay, self._flush_lazy)

    def _flush_soon(self) -> None:
        """End of iteration: write what was sent directly, and the log if something urgent is in it."""
        self._scheduled = False
        if self._urgent:
            self._spread_log()
        self._write_dirty()

    def _flush_lazy(self) -> None:
        self._timer = None
        self.flush()

    def _wire(self, payload: bytes) -> bytes:
        return text_frame(payload) if self.raw else payload

    def _take_log(self, peer: Peer) -> None:
        """Queue for *peer* the broadcast log entries it has not taken yet."""
        log = self._log
        start = peer.mark
        if start < 0 or start >= len(log):
            return
        peer.mark = len(log)
        if peer.closing:
            return
        uid = peer.user.user_id
        items = [d for d, xu, xp in log[start:] if xp is not peer and xu != uid]
        if items:
            if not peer.pending:
                self._dirty.append(peer)
            peer.pending.extend(items)

    def send(self, peer: Peer, frame: dict[str, Any]) -> None:
        self.send_encoded(peer, encode(frame))

    def send_encoded(self, peer: Peer, payload: bytes) -> None:
        if peer.closing:
            return
        if self._log:
            self._take_log(peer)
        if not peer.pending:
            self._dirty.append(peer)
        peer.pending.append(self._wire(payload))
        self._schedule()

    def send_parts(self, peer: Peer, parts: list[bytes]) -> None:
        if not self.raw:
            self.send_encoded(peer, b"".join(parts))
            return
        if peer.closing:
            return
        if self._log:
            self._take_log(peer)
        if not peer.pending:
            self._dirty.append(peer)
        header = frame_header(sum(map(len, parts)))
        peer.pending.append(header + parts[0])
        peer.pending.extend(parts[1:])
        self._schedule()

    def publish(
        self,
        frame: dict[str, Any],
        *,
        exclude_user: str | None = None,
        exclude_peer: Peer | None = None,
        lazy: bool = False,
    ) -> int:
        if not self._peers:
            return 0
        self._log.append((self._wire(encode(frame)), exclude_user, exclude_peer))
        if exclude_user is not None:
            self._excluded_users.add(exclude_user)
        if exclude_peer is not None:
            self._excluded_peers.add(exclude_peer)
        n = len(self._peers) - (exclude_user is not None or exclude_peer is not None)
        self.deliveries += n
        if lazy:
            self._schedule_lazy()
        else:
            self._urgent = True
            self._schedule()
        return n

    def publish_many(self, frames: list[dict[str, Any]]) -> int:
        return sum(self.publish(f) for f in frames)

    def _spread_log(self) -> None:
        """Queue this iteration's broadcasts for every attached peer; reset the log."""
        log = self._log
        self._log = []
        self._urgent = False
        if not log:
            return
        xu, self._excluded_users = self._excluded_users, set()
        xp, self._excluded_peers = self._excluded_peers, set()
        fast_for_all = not xu and not xp
        if self.raw:
            everything = [log[0][0] if len(log) == 1 else b"".join(e[0] for e in log)]
        else:
            everything = [e[0] for e in log]
        dirty = self._dirty
        for peer in self._peers:
            mark = peer.mark
            peer.mark = 0
            if peer.closing:
                continue
            if mark == 0 and (fast_for_all or (peer not in xp and peer.user.user_id not in xu)):
                items = everything
            else:
                uid = peer.user.user_id
                items = [d for d, u, p in log[mark:] if p is not peer and u != uid]
                if not items:
                    continue
            pending = peer.pending
            if not pending:
                dirty.append(peer)
            pending.extend(items)

    def flush(self) -> None:
        if self._log:
            self._spread_log()
        self._write_dirty()

    def _write_dirty(self) -> None:
        dirty, self._dirty = self._dirty, []
        limit = self.limit
        raw = self.raw
        for peer in dirty:
            chunks, peer.pending = peer.pending, []
            if not chunks:
                continue
            ws = peer.ws
            if ws.protocol.state is not OPEN:
                continue
            tr = peer.transport
            try:
                if raw:
                    if len(chunks) == 1:
                        tr.write(chunks[0])
                    elif sum(map(len, chunks)) > BIG_WRITE:
                        # big (a roster, a resume): write big chunks as they are (no copy),
                        # runs of small ones joined (one syscall, not one each)
                        small: list[bytes] = []
                        for chunk in chunks:
                            if len(chunk) < SMALL_CHUNK:
                                small.append(chunk)
                                continue
                            if small:
                                tr.write(small[0] if len(small) == 1 else b"".join(small))
                                small = []
                            tr.write(chunk)
                        if small:
                            tr.write(small[0] if len(small) == 1 else b"".join(small))
                    else:
                        tr.write(b"".join(chunks))
                else:
                    for payload in chunks:
                        ws.protocol.send_text(payload)
                    ws.send_data()
            except Exception:  # the transport is gone; connection_lost will clean up
                continue
            if limit:
                size = tr.get_write_buffer_size()
                if size > limit + peer.allowance:
                    peer.closing = True
                    if self.on_slow is not None:
                        self.on_slow(peer)
                elif peer.allowance and size <= limit:
                    peer.allowance = 0  # the backlog has drained: the plain limit applies again
