"""Fan-out: getting encoded frames to connections, cheaply and in order.

* A frame is JSON-encoded once (by the core) and, with compression off, framed
  once; the same bytes object is queued for every recipient.
* ``publish`` is O(1): it appends to this iteration's broadcast log. At the end
  of the iteration (for ``lazy`` frames such as presence and typing, up to
  ``lazy_delay`` later, so a burst of joins is one write per connection)
  :meth:`Fanout.flush` joins the log into one bytes object and queues that same
  object for every connection: k broadcasts to n connections cost O(k + n)
  Python work, not O(k * n). Connections excluded from some entry, or attached
  mid-iteration, take the slow path and get exactly their entries. A direct
  :meth:`send` first takes the log entries the connection has not taken yet,
  so per-connection order is the order of the calls.
* Everything queued for one connection is written with one ``transport.write``.
* A *held* connection (its history is still going out) keeps broadcasts back,
  in order, until :meth:`release`; they count against its buffer limit.
* A connection that leaves more than ``send_buffer_limit`` bytes unread between
  two writes (or twice that at any moment) is a slow consumer: it gets nothing
  more and ``on_slow`` is told.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .connection import Connection

BIG_WRITE = 64 * 1024  # above this, queued chunks are written one by one instead of joined (no copy)
SMALL_CHUNK = 16 * 1024  # ... except runs of chunks smaller than this, which are joined


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


class Fanout:
    """In-process fan-out with encode-once, per-iteration coalescing and slow-consumer detection."""

    def __init__(
        self,
        *,
        raw: bool = True,
        send_buffer_limit: int = 4 * 1024 * 1024,
        on_slow: Callable[[Connection], None] | None = None,
        on_written: Callable[[Connection], None] | None = None,
        lazy_delay: float = 0.01,
    ) -> None:
        self.peers: set[Connection] = set()
        self._dirty: list[Connection] = []  # peers with something in .pending
        # this iteration's broadcasts: (wire bytes, excluded user, excluded peer, document_only audience)
        self._log: list[tuple[bytes, str | None, Connection | None, bool | None]] = []
        self._document_peers: set[Connection] = set()  # attached peers that offered no workspace.v1
        self._split = False  # the log holds a frame for one kind of peer only
        self._excluded_users: set[str] = set()
        self._excluded_peers: set[Connection] = set()
        self._scheduled = False
        self._urgent = False  # the log holds a frame that must go out this iteration
        self._timer: asyncio.TimerHandle | None = None
        self.lazy_delay = lazy_delay
        self.raw = raw  # write prebuilt frames straight to the transport (no compression)
        self.limit = send_buffer_limit
        self.on_slow = on_slow
        self.on_written = on_written  # told after a write to a peer that waits for a drain
        self.deliveries = 0

    # -- membership ----------------------------------------------------------------

    def attach(self, peer: Connection, held: bool, document_only: bool = False) -> None:
        peer.mark = len(self._log)  # broadcasts from now on
        if held:
            peer.held = []
        self.peers.add(peer)
        if document_only:
            self._document_peers.add(peer)

    def release(self, peer: Connection) -> None:
        """What was held back for *peer* goes out now, after what it was sent directly."""
        if self._log:
            self._take_log(peer)
        held, peer.held = peer.held, None
        peer.held_bytes = 0
        if held and not peer.closing:
            self._queue(peer, held)
            self._schedule()

    def detach(self, peer: Connection) -> None:
        self.peers.discard(peer)
        self._document_peers.discard(peer)
        peer.mark = -1
        peer.held = None

    # -- queueing ------------------------------------------------------------------

    def _wire(self, payload: bytes) -> bytes:
        return text_frame(payload) if self.raw else payload

    def _queue(self, peer: Connection, items: list[bytes]) -> None:
        """Queue *items* (broadcast bytes) for *peer*, or hold them while it is held."""
        held = peer.held
        if held is not None:
            held.extend(items)
            peer.held_bytes += sum(map(len, items))
            if self.limit and peer.held_bytes > self.limit and not peer.closing:
                peer.closing = True
                if self.on_slow is not None:
                    self.on_slow(peer)
            return
        if not peer.pending:
            self._dirty.append(peer)
        peer.pending.extend(items)

    def _take_log(self, peer: Connection) -> None:
        """Queue for *peer* the broadcast log entries it has not taken yet."""
        log = self._log
        start = peer.mark
        if start < 0 or start >= len(log):
            return
        peer.mark = len(log)
        if peer.closing:
            return
        uid = peer.user_id
        doc = peer in self._document_peers
        items = [d for d, xu, xp, a in log[start:] if xp is not peer and xu != uid and (a is None or a is doc)]
        if items:
            self._queue(peer, items)

    def send(self, peer: Connection, payload: bytes | list[bytes]) -> None:
        """Deliver one frame to one connection (attached or not yet); a list is written back to
        back as one frame's payload, without joining it."""
        if peer.closing:
            return
        if self._log:
            self._take_log(peer)
        if not peer.pending:
            self._dirty.append(peer)
        if type(payload) is bytes:
            peer.pending.append(self._wire(payload))
        elif self.raw:
            peer.pending.append(frame_header(sum(map(len, payload))) + payload[0])
            peer.pending.extend(payload[1:])
        else:
            peer.pending.append(b"".join(payload))
        self._schedule()

    def send_raw(self, peer: Connection, data: bytes) -> None:
        """Bytes that are not a frame (a handshake response) to go out with *peer*'s next write."""
        if not peer.pending:
            self._dirty.append(peer)
        peer.pending.append(data)
        self._schedule()

    def post(self, peer: Connection, payload: bytes) -> None:
        """A live frame for *peer* alone, after the broadcasts before it (held while *peer* is)."""
        if peer.closing:
            return
        if self._log:
            self._take_log(peer)
        self._queue(peer, [self._wire(payload)])
        self._schedule()

    def publish(self, payload: bytes, exclude_user: str | None, exclude_peer: Connection | None, lazy: bool,
                document_only: bool | None = None) -> None:
        """Deliver *payload* to every attached connection except those of ``exclude_user`` (a user
        id) and ``exclude_peer``; with ``document_only`` set, only to the peers that offered no
        workspace.v1 (``True``) or only to those that did (``False``)."""
        if not self.peers:
            return
        self._log.append((self._wire(payload), exclude_user, exclude_peer, document_only))
        if exclude_user is not None:
            self._excluded_users.add(exclude_user)
        if exclude_peer is not None:
            self._excluded_peers.add(exclude_peer)
        if document_only is None:
            reach = len(self.peers)
        else:
            self._split = True
            docs = len(self._document_peers)
            reach = docs if document_only else len(self.peers) - docs
        self.deliveries += reach - (exclude_user is not None or exclude_peer is not None)
        if lazy:
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self.lazy_delay, self._flush_lazy)
        else:
            self._urgent = True
            self._schedule()

    # -- writing -------------------------------------------------------------------

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        """End of iteration: write what was sent directly, and the log if something urgent is in it."""
        self._scheduled = False
        if self._urgent:
            self._spread_log()
        self._write_dirty()

    def _flush_lazy(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write everything queued now."""
        if self._log:
            self._spread_log()
        self._write_dirty()

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
        split, self._split = self._split, False
        docs = self._document_peers
        if split:  # what each kind of peer gets, joined once per kind
            for_docs = self._joined([e[0] for e in log if e[3] is not False])
            for_v1 = self._joined([e[0] for e in log if e[3] is not True])
        else:
            everything = self._joined([e[0] for e in log])
        dirty = self._dirty
        for peer in self.peers:
            mark = peer.mark
            peer.mark = 0
            if peer.closing:
                continue
            if mark == 0 and (fast_for_all or (peer not in xp and peer.user_id not in xu)):
                items = (for_docs if peer in docs else for_v1) if split else everything
                if not items:
                    continue
            else:
                uid = peer.user_id
                doc = peer in docs
                items = [d for d, u, p, a in log[mark:] if p is not peer and u != uid and (a is None or a is doc)]
                if not items:
                    continue
            if peer.held is not None:
                self._queue(peer, items)
                continue
            pending = peer.pending
            if not pending:
                dirty.append(peer)
            pending.extend(items)

    def _joined(self, chunks: list[bytes]) -> list[bytes]:
        """Broadcast chunks as queued for a peer: one bytes object when framed here."""
        if not self.raw or len(chunks) < 2:
            return chunks
        return [b"".join(chunks)]

    def _write_dirty(self) -> None:
        dirty, self._dirty = self._dirty, []
        limit = self.limit
        for peer in dirty:
            chunks, peer.pending = peer.pending, []
            if not chunks or not peer.writable():
                continue
            tr = peer.transport
            unread = tr.get_write_buffer_size() if limit else 0
            try:
                if not self.raw:
                    peer.send_texts(chunks)
                elif len(chunks) == 1:
                    tr.write(chunks[0])
                elif sum(map(len, chunks)) > BIG_WRITE:
                    # big (a roster, a history frame): big chunks as they are (no copy), runs of
                    # small ones joined (one syscall, not one each)
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
            except Exception:  # the transport is gone; connection_lost will clean up
                continue
            # Slow: it left more than the limit unread since the last write, or a burst took it
            # past twice the limit. (A reader at full speed can be a burst behind, not more.)
            if limit and (unread > limit or tr.get_write_buffer_size() > 2 * limit):
                peer.closing = True
                if self.on_slow is not None:
                    self.on_slow(peer)
            elif peer.wait_drain and self.on_written is not None:
                self.on_written(peer)
