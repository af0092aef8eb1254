"""Several nodes, one workspace: the Redis Streams backend (``workspace serve --broker redis://...``).

* **Messages** go into one stream. :meth:`RedisBackend.append` queues a draft;
  the send loop sends each batch through one pipeline of
  :data:`~.redis_scripts.SEND_LUA` calls (exactly-once key, global rate limit,
  ``XADD``, trimming), so the stream order is the order of the appends. Every
  node reads the stream with ``XREAD BLOCK`` and reports what it read as
  committed, in stream order; an entry whose origin tag (``o``) is one of this
  node's drafts is reported with that draft, so a node's own messages are
  acknowledged by the fan-out, in the global order, exactly once.
* **Presence and typing** of local users (:meth:`RedisBackend.relay`) are
  *relay entries* of the same stream, queued with the drafts and written by
  the same pipeline (:data:`~.redis_scripts.RELAY_LUA`), so a relay made after
  a draft is stored after it; the reader hands them to the core in stream
  order, between the messages, so every node sees what a user did in the order
  they did it. Each node also keeps its users in a hash (written in the same
  pipeline) so a node that starts later (or comes back after an outage) can
  read them. Node-level events (hello, bye) use a second stream.
* **History** is read inside Redis by :data:`~.redis_scripts.READ_LUA`, which
  stops at the byte budget, so a read ships about one frame's worth at most.
  It keeps the messages of the rooms asked for (field ``r``; none = general)
  and looks at :data:`~.redis_scripts.READ_SCAN` entries per call at most; a
  call that found nothing yet is followed by another from where it stopped.
* **Rooms** (members, invitations, topics) are hashes and sets kept by
  :mod:`.rooms_redis`; a direct message's room is recorded by the send script
  with its first message. Room changes reach the other nodes as relay entries
  (``member``, ``topic``, ``invite``).
* **Trimming**: the stream holds at most ``max_bytes`` of messages (oldest
  removed first, by the send script) and, with ``max_age``, nothing older
  (removed from the heartbeat). The newest message is always kept.
* **Liveness**: each node refreshes a heartbeat key with an expiry; survivors
  drop the users of a node whose key has expired (a node killed with SIGKILL
  cannot say goodbye).
* **Durability**: at start the node checks that Redis keeps what it
  acknowledged (:mod:`.redis_safety`) and refuses to start otherwise, unless
  told to (``allow_unsafe``: a warning in the log and ``/healthz``).
* **Redis down**: :meth:`BackendEvents.available` ``(False)`` (the core refuses
  sends; clients stay connected), ``/healthz`` says ``degraded``; when Redis is
  back every loop carries on from where it was, and the node announces its
  users again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from workspace_tui.core.history import HistoryQuery, HistoryResult, estimate
from workspace_tui.core.identity import Account, Claim
from workspace_tui.core.rooms import RoomInfo
from workspace_tui.core.outcomes import Duplicate, Failed, RateLimited
from workspace_tui.core.state import Draft
from workspace_tui.protocol import GENERAL, ChatMessage, RoomRequest, dm_participants, iso_timestamp, name_key

from . import accounts, reads
from . import redis_safety
from . import redis_scripts as keys
from .rooms_redis import ROOM_LUA, RedisRooms
from .base import Backend, BackendEvents

log = logging.getLogger("workspace.server.redis")

READ_OVERHEAD = estimate("")  # a history read counts each message as core.history.estimate does
SEND_BATCH = 256  # drafts per pipeline, at most
SEND_BATCH_BYTES = 4 * 1024 * 1024  # ... and bytes of text
XREAD_BYTES = 4 * 1024 * 1024  # aim for replies of about this size (the count adapts to the texts)
CLOSE_WAIT = 2.0  # seconds close() waits for queued sends to be stored and read back
TRIM_CALLS = 64  # age-trim calls per heartbeat, at most (each removes up to TRIM_MAX_ENTRIES)


class RedisBackend(Backend):
    """Messages in a Redis stream shared by every node of the workspace (see the module docstring)."""

    def __init__(self, url: str, *, node_ttl: float = 10.0, max_bytes: int = 512 * 1024 * 1024,
                 max_age: float = 0.0, rate_limit: int = 0, allow_unsafe: bool = False) -> None:
        self.url = url
        self.label = keys.redact(url)
        self.node = uuid.uuid4().hex[:12]
        self.node_ttl = node_ttl
        self.max_bytes = max(0, int(max_bytes))
        self.max_age = max(0.0, float(max_age))
        self.rate_limit = rate_limit  # message:send per minute per user, workspace-wide; 0 = off
        self.allow_unsafe = allow_unsafe
        self.unsafe: str | None = None  # why Redis may lose acknowledged messages, when allowed anyway
        self.up = False
        self._events: BackendEvents | None = None
        self._redis: Any = None
        self._reader: Any = None
        self._scripts: dict[str, Any] = {}
        self._rooms: RedisRooms | None = None
        self._last: str | None = None
        self._cursor = "0-0"  # the last entry of the messages stream read (a message or a relay)
        self._events_cursor = "0-0"
        self._read_count = 500
        self._seq = 0
        # drafts (origin tag, draft) and relays (None, event), in the order they were made
        self._sendq: list[tuple[str, Draft] | tuple[None, dict[str, Any]]] = []
        self._send_wake = asyncio.Event()
        self._sending = False
        self._sent: dict[str, Draft] = {}  # origin tag -> draft sent and not yet seen by the reader
        # (stream key, tag, stream id) of sends Redis took, in stream order, until the reader sees
        # them: one trimmed before this node read it is still reported, from the draft
        self._stored: deque[tuple[tuple[int, int], str, str]] = deque()
        self._held: dict[str, int] = {}  # username -> slots of the global cap held by this node
        self._unbacked: dict[str, int] = {}  # ... of which granted while Redis was down
        self._dirty: set[str] = set()  # usernames whose count in Redis may be wrong (fixed on announce)
        self._remote_nodes: set[str] = set()  # nodes whose users we reported
        self._need_announce = False
        self._loops: list[asyncio.Task[Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------

    async def start(self, events: BackendEvents) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._events = events
        opts: dict[str, Any] = dict(decode_responses=True, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0),
                                    protocol=2)
        self._redis = aioredis.from_url(self.url, socket_timeout=3.0, **opts)
        self._reader = aioredis.from_url(self.url, socket_timeout=5.0, **opts)  # XREAD BLOCK holds it
        r = self._redis
        try:
            await r.ping()
            problems = await redis_safety.unsafe_settings(r)
        except Exception as exc:
            await self._close_clients()
            raise OSError(f"cannot reach the broker {self.label}: {exc}") from None
        if problems is None or problems:
            if not self.allow_unsafe:
                await self._close_clients()
                raise OSError(redis_safety.refusal(self.label, problems))
            self.unsafe = redis_safety.warning(problems)
            log.warning("%s (--allow-unsafe-redis)", self.unsafe)
        try:
            for name, src in (("send", keys.SEND_LUA), ("relay", keys.RELAY_LUA), ("read", keys.READ_LUA),
                              ("trim", keys.TRIM_LUA), ("size", keys.SIZE_LUA), ("init", keys.INIT_BYTES_LUA),
                              ("newest", keys.NEWEST_LUA), ("reserve", keys.RESERVE_LUA),
                              ("release", keys.RELEASE_LUA), ("account_cas", accounts.REDIS_CAS_LUA), ("read_state", reads.REDIS_STATE_LUA),
                              ("read_save", reads.REDIS_SAVE_LUA), ("room", ROOM_LUA)):
                self._scripts[name] = r.register_script(src)
            self._rooms = RedisRooms(r, self._scripts)
            top, last = await self._scripts["newest"](keys=[keys.MESSAGES, keys.LAST])
            ev = await r.xrevrange(keys.EVENTS, count=1)
            self._cursor = top or "0-0"  # read from the newest entry on (relays before it are old news)
            self._events_cursor = ev[0][0] if ev else "0-0"
            self._last = keys.message_id_of(last) if last else None  # the newest message, not a relay
            await self._count_bytes()
            await self._announce({})
            initial = await self._read_remote()
        except Exception as exc:
            await self._close_clients()
            raise OSError(f"cannot reach the broker {self.label}: {exc}") from None
        self.up = True
        self._apply_remote(initial)  # the other nodes' users, as they are now
        for coro in (self._read_loop(), self._send_loop(), self._heartbeat_loop()):
            self._loops.append(asyncio.create_task(coro))
        log.info("node %s joined the workspace at %s", self.node, self.label)

    @property
    def last_message_id(self) -> str | None:
        return self._last

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_WAIT
        while self.up and loop.time() < deadline and (self._sendq or self._sending or self._sent):
            await asyncio.sleep(0.005)
        self._stopping = True
        for t in self._loops:
            t.cancel()
        for t in list(self._tasks):
            t.cancel()
        pending = [*self._loops, *self._tasks]
        if pending:  # redis-py may turn a cancellation into a ConnectionError: the loops check _stopping
            await asyncio.wait(pending, timeout=3)
        if self.up:
            try:  # a clean goodbye: the others drop our users now rather than when the heartbeat expires
                pipe = self._redis.pipeline(transaction=False)
                pipe.xadd(keys.EVENTS, {"j": json.dumps({"node": self.node, "t": "bye"})},
                          maxlen=keys.EVENTS_MAXLEN, approximate=True)
                pipe.delete(keys.alive_key(self.node), keys.node_users_key(self.node))
                pipe.srem(keys.NODES, self.node)
                for name in self._held:
                    pipe.hdel(keys.conns_key(name), self.node)
                await pipe.execute()
            except Exception as exc:
                log.debug("goodbye failed: %s", exc)
        await self._close_clients()
        log.info("node %s left the workspace", self.node)

    async def _close_clients(self) -> None:
        for client in (self._redis, self._reader):
            if client is not None:
                try:
                    await client.aclose()
                except Exception:
                    pass

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- up and down -----------------------------------------------------------------

    def _down(self, exc: BaseException) -> None:
        self._need_announce = True  # whatever was lost meanwhile, the others get our state again
        if self.up and not self._stopping:
            log.warning("broker %s is unreachable: %s", self.label, exc)
            self.up = False
            if self._events is not None:
                self._events.available(False)

    def _back(self) -> None:
        if not self.up and not self._stopping:
            log.info("broker %s is back", self.label)
            self.up = True
            if self._events is not None:
                self._events.available(True)

    def health(self) -> dict[str, Any]:
        h: dict[str, Any] = {"broker": "up" if self.up else "down", "node": self.node}
        if self.unsafe:
            h["broker_unsafe"] = self.unsafe
        if not self.up:
            h["status"] = "degraded"
        return h

    def count(self) -> int | None:
        return None  # XLEN is a round trip: /metrics does not wait for one

    # -- sends -----------------------------------------------------------------------

    def append(self, draft: Draft) -> None:
        self._seq += 1
        tag = f"{self.node}:{self._seq}"
        self._sent[tag] = draft  # before it can be sent, so the reader always recognises it
        self._sendq.append((tag, draft))
        self._send_wake.set()

    async def _send_loop(self) -> None:
        while not self._stopping:
            await self._send_wake.wait()
            self._send_wake.clear()
            while self._sendq and not self._stopping:
                q = self._sendq
                n, size = 0, 0
                while n < len(q) and n < SEND_BATCH and (not n or size < SEND_BATCH_BYTES):
                    item = q[n][1]
                    if isinstance(item, Draft):
                        size += len(item.text)
                    n += 1
                batch, self._sendq = q[:n], q[n:]
                await self._send_batch(batch)

    async def _send_batch(self, batch: list[tuple[str, Draft] | tuple[None, dict[str, Any]]]) -> None:
        """One pipeline, in queue order: drafts and relays are stored in the order they were made."""
        send, relay = self._scripts["send"], self._scripts["relay"]
        users_key = keys.node_users_key(self.node)
        rate = self.rate_limit
        per_ms = rate / 60_000.0 if rate else 0
        results: list[Any]
        self._sending = True
        try:
            pipe = self._redis.pipeline(transaction=False)
            for tag, item in batch:
                if isinstance(item, Draft):
                    name = item.user.username
                    cmid = item.client_msg_id or ""
                    dm = [x for n in dm_participants(item.room) or () for x in (name_key(n), n)]
                    await send(
                        keys=[keys.MESSAGES, keys.dedupe_key(name, cmid), keys.rate_key(name), keys.BYTES, keys.LAST,
                              keys.ROOMS_LAST],
                        args=[item.user.user_id, name, item.text, cmid, rate, per_ms, keys.DEDUPE_TTL, tag,
                              self.max_bytes, keys.ENTRY_OVERHEAD, "1" if item.user.verified else "", item.room,
                              keys.PREFIX, *dm],
                        client=pipe,
                    )
                    continue
                event = item
                if event["t"] == "presence":  # the users hash first: it is never behind the stream
                    if event["count"] > 0:
                        pipe.hset(users_key, event["user"], json.dumps(
                            {"user_id": event["user_id"], "status": event["status"], "count": event["count"],
                             "v": event.get("v", False)}))
                    else:
                        pipe.hdel(users_key, event["user"])
                await relay(
                    keys=[keys.MESSAGES, keys.BYTES, keys.LAST],
                    args=[event["t"], json.dumps(event), self.max_bytes, keys.ENTRY_OVERHEAD],
                    client=pipe,
                )
            results = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # (relays are lost with it: the node announces its users again)
            self._down(exc)
            for tag, item in batch:
                if isinstance(item, Draft):
                    self._send_result(tag, item, exc)  # type: ignore[arg-type]
            return
        else:
            self._back()
        finally:
            self._sending = False
        i = 0
        for tag, item in batch:
            if isinstance(item, Draft):
                self._send_result(tag, item, results[i])  # type: ignore[arg-type]
                i += 1
                continue
            n = 2 if item["t"] == "presence" else 1  # (the users hash, then the relay entry)
            err = next((r for r in results[i:i + n] if isinstance(r, BaseException)), None)
            i += n
            if err is not None:  # presence is state: the node announces it in full again
                log.warning("could not relay a %s event of %s: %s", item["t"], item["user"], err)
                self._need_announce = True

    def _send_result(self, tag: str, draft: Draft, res: Any) -> None:
        events = self._events
        assert events is not None
        if isinstance(res, BaseException) or not isinstance(res, list) or not res:
            # Not known to be stored: if it was after all, the reader reports it as anyone's message.
            self._sent.pop(tag, None)
            log.error("could not store a message of %s: %s", draft.user.username, res)
            events.stored(draft, Failed(str(res)))
            return
        kind = res[0]
        if kind == "ok":
            if tag in self._sent:  # not read back yet
                key = keys.stream_key(res[1])
                if key <= keys.stream_key(self._cursor):
                    # The reader went past it without seeing it: trimmed before it was read.
                    d = self._sent.pop(tag)
                    events.committed([d.message(keys.message_id_of(res[1]), iso_timestamp(key[0]))], [d])
                else:
                    self._stored.append((key, tag, res[1]))
            return
        self._sent.pop(tag, None)
        if kind == "dup":
            fields = res[2] if len(res) > 2 else []
            original = keys.message_from_entry(res[1], fields) if fields else draft.message(
                keys.message_id_of(res[1]), iso_timestamp(keys.stream_key(res[1])[0]))  # trimmed since
            events.stored(draft, Duplicate(original))
        elif kind == "rate":
            events.stored(draft, RateLimited(max(1, int(res[1]))))
        else:
            events.stored(draft, Failed(f"unexpected answer from the send script: {res!r}"))

    # -- the reader: messages and events ----------------------------------------------

    async def _read_loop(self) -> None:
        recovering = False
        while not self._stopping:
            count = self._read_count
            try:
                resp = await self._reader.xread(
                    {keys.MESSAGES: self._cursor, keys.EVENTS: self._events_cursor},
                    count=count, block=1000,
                )
                if recovering:
                    recovering = False
                    await self._check_lost_sends()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    break
                self._down(exc)
                recovering = True
                await asyncio.sleep(0.5)
                continue
            self._back()
            self._on_reply(resp, count)

    def _on_reply(self, resp: Any, count: int) -> None:
        """One ``XREAD`` reply: the messages stream in stream order and, between its entries, the
        node events (hello, bye) in id order, so a node's hello and its users' relays are applied
        in the order Redis took them. A stream whose reply was cut at *count* may have entries
        older than the other's last: both are handled only up to its end, the rest is read again."""
        msgs: list[Any] = []
        evs: list[Any] = []
        for stream, entries in resp or ():  # RESP2 (the clients are made with protocol=2)
            if stream == keys.MESSAGES:
                msgs = entries or []
            elif stream == keys.EVENTS:
                evs = entries or []
        if msgs and evs:
            bound: tuple[int, int] | None = None
            for entries in (msgs, evs):
                if len(entries) >= count:
                    last = keys.stream_key(entries[-1][0])
                    bound = last if bound is None or last < bound else bound
            if bound is not None:
                msgs = [e for e in msgs if keys.stream_key(e[0]) <= bound]
                evs = [e for e in evs if keys.stream_key(e[0]) <= bound]
        if msgs:
            size = sum(len(f.get("t", "")) for _, f in msgs)
            self._read_count = max(8, min(1000, XREAD_BYTES // (size // len(msgs) + 200)))
        i = 0
        for entry_id, fields in evs:
            key = keys.stream_key(entry_id)
            j = i
            while j < len(msgs) and keys.stream_key(msgs[j][0]) <= key:  # (a tie: the message first)
                j += 1
            if j > i:
                self._on_messages(msgs[i:j])
                i = j
            self._events_cursor = entry_id
            self._on_event(fields)
        if i < len(msgs):
            self._on_messages(msgs[i:])

    def _on_messages(self, entries: list[Any]) -> None:
        """Entries of the messages stream, handled in stream order: runs of messages are reported
        committed together; a relay entry between them is handled after the messages before it."""
        events = self._events
        assert events is not None
        messages: list[ChatMessage] = []
        drafts: list[Draft | None] = []
        self._trimmed_before(keys.stream_key(entries[0][0]), messages, drafts)
        sent = self._sent
        for entry_id, fields in entries:
            if keys.is_relay(fields):
                if messages:
                    events.committed(messages, drafts)
                    messages, drafts = [], []
                self._cursor = entry_id
                self._on_relay(fields)
                continue
            m = keys.message_from_entry(entry_id, fields)
            tag = keys.origin_of(fields)
            messages.append(m)
            drafts.append(sent.pop(tag, None) if tag is not None else None)
            self._cursor = entry_id
        if messages:
            events.committed(messages, drafts)

    def _trimmed_before(self, first: tuple[int, int], messages: list[ChatMessage], drafts: list[Draft | None]) -> None:
        """Our sends Redis took that are older than *first*, the first entry read, and were not
        read: trimmed before this node read them. They were stored: report them from the draft."""
        stored, sent = self._stored, self._sent
        while stored:
            key, tag, sid = stored[0]
            if tag not in sent:
                stored.popleft()
                continue
            if key >= first:
                break
            stored.popleft()
            d = sent.pop(tag)
            messages.append(d.message(keys.message_id_of(sid), iso_timestamp(key[0])))
            drafts.append(d)

    async def _check_lost_sends(self) -> None:
        """Back after an outage: sends Redis took but no longer has (it restarted without them)
        were not stored after all."""
        _, newest = await self._scripts["newest"](keys=[keys.MESSAGES, keys.LAST])
        top = keys.stream_key(newest) if newest else (0, 0)  # the newest message (relays are no sends)
        lost = [(tag, self._sent[tag]) for key, tag, _ in self._stored if key > top and tag in self._sent]
        if not lost:
            return
        log.warning("%d message(s) taken by %s before it went away are gone", len(lost), self.label)
        lost_tags = {tag for tag, _ in lost}
        self._stored = deque(s for s in self._stored if s[1] not in lost_tags)
        for tag, d in lost:
            del self._sent[tag]
            self._events.stored(d, Failed("the broker lost the message"))  # type: ignore[union-attr]

    def _another_nodes(self, fields: dict[str, str]) -> tuple[str, dict[str, Any]] | None:
        """The sending node and the JSON of an entry (relay or event), or ``None`` for our own."""
        event = json.loads(fields.get("j", "{}"))
        node = event.get("node", "")
        return None if node == self.node or not node else (node, event)

    def _on_relay(self, fields: dict[str, str]) -> None:
        """A relay entry of the messages stream: another node's user changed presence or typing."""
        try:
            found = self._another_nodes(fields)
            if found is None:
                return
            node, event = found
            kind = fields.get("k")
            events = self._events
            assert events is not None
            if kind == "presence":
                self._remote_nodes.add(node)
                events.remote_presence(node, event["user"], event["user_id"], event["status"], int(event["count"]),
                                       bool(event.get("xu")), bool(event.get("v")))
            elif kind == "typing":
                events.remote_typing(event["user"], event["user_id"], bool(event["typing"]), event.get("room", GENERAL))
            elif kind == "read":
                events.remote_read(event["user"], event["room"], event["id"])
            elif kind in ("member", "topic", "invite"):
                events.remote_room(event)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring a malformed relay entry: %s", exc)

    def _on_event(self, fields: dict[str, str]) -> None:
        """An entry of the events stream: a node announced itself (hello) or left (bye)."""
        try:
            found = self._another_nodes(fields)
            if found is None:
                return
            node, event = found
            kind = event.get("t")
            events = self._events
            assert events is not None
            if kind == "hello":
                self._remote_nodes.add(node)
                users = {}
                for name, raw in (event.get("users") or {}).items():
                    st = keys.node_state(raw)
                    if st is not None and st[2] > 0:
                        users[name] = st
                events.node_users(node, users)
            elif kind == "bye":
                self._gone(node)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring a malformed event: %s", exc)

    def _gone(self, node: str) -> None:
        self._remote_nodes.discard(node)
        log.info("node %s is gone", node)
        self._events.node_gone(node)  # type: ignore[union-attr]

    # -- history -----------------------------------------------------------------------

    def read(self, query: HistoryQuery, done: Callable[[HistoryResult | Exception], None]) -> None:
        if self._redis is None or self._stopping:
            done(OSError("the broker is not connected"))
            return
        self._spawn(self._read(query, done))

    async def _read(self, query: HistoryQuery, done: Callable[[HistoryResult | Exception], None]) -> None:
        latest = query.kind != "after"
        if latest:
            start = keys.latest_bounds(query.before, query.upto)
            if start is None:
                done(HistoryResult([], False))
                return
            bounds = [start, "-"]
        else:
            bounds = [keys.after_bound(query.after), (keys.stream_id(query.upto) if query.upto else None) or "+"]
        try:
            while True:  # each call looks at READ_SCAN entries at most: Redis is never held long
                more, oldest, entries, scanned_to = await self._scripts["read"](
                    keys=[keys.MESSAGES],
                    args=["latest" if latest else "after", *bounds, max(0, query.limit), query.max_bytes,
                          keys.READ_STEP, READ_OVERHEAD, keys.READ_SCAN, *query.rooms],
                )
                if not scanned_to:
                    break
                if entries:  # what was found; the next page or resume chunk carries on after it
                    more = 1
                    break
                bounds[0] = "(" + scanned_to  # nothing of these rooms yet: look further (the
                # core cannot carry on from an empty answer, it has no message to carry on after)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _unreachable(exc):
                self._down(exc)
            log.error("history read failed: %s", exc)
            done(exc)
            return
        messages = [keys.message_from_entry(e[0], e[1]) for e in entries if not keys.is_relay(e[1])]
        if latest:
            messages.reverse()
        done(HistoryResult(messages, bool(more), keys.message_id_of(oldest) if oldest else None))

    # -- accounts ----------------------------------------------------------------------

    def account(self, name_key: str, done: Callable[[Account | None | Exception], None]) -> None:
        self._spawn(self._account(name_key, done))

    async def _account(self, name_key: str, done: Callable[[Account | None | Exception], None]) -> None:
        try:
            raw = await self._redis.hget(accounts.REDIS_KEY, name_key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            done(exc)
            return
        done(accounts.from_json(name_key, raw))

    def claim(self, claim: Claim, done: Callable[[bool | Exception], None]) -> None:
        self._spawn(self._claim(claim, done))

    async def _claim(self, claim: Claim, done: Callable[[bool | Exception], None]) -> None:
        expected = accounts.to_json(claim.expected) if claim.expected is not None else ""
        try:
            ok = await self._scripts["account_cas"](
                keys=[accounts.REDIS_KEY], args=[claim.account.name_key, accounts.to_json(claim.account), expected])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            done(exc)
            return
        done(bool(ok))

    # -- read positions ------------------------------------------------------------------

    def rooms_of(self, name_key: str, username: str, done: Callable[[list[RoomInfo] | Exception], None],
                 general_only: bool = False) -> None:
        self._spawn(self._rooms_call(done, "rooms_of", name_key, username, general_only))

    def room_op(self, request: RoomRequest, username: str, name_key: str,
                done: Callable[[dict[str, Any] | Exception], None]) -> None:
        self._spawn(self._rooms_call(done, "room_op", request, username, name_key))

    async def _rooms_call(self, done: Callable[[Any], None], method: str, *args: Any) -> None:
        """One :class:`~.rooms_redis.RedisRooms` call; *done* gets its answer or the error."""
        if self._rooms is None or self._stopping:
            done(OSError("the broker is not connected"))
            return
        try:
            result = await getattr(self._rooms, method)(*args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _unreachable(exc):
                self._down(exc)
            log.error("%s failed: %s", method, exc)
            done(exc)
            return
        done(result)

    def save_read(self, name_key: str, room: str, message_id: str) -> None:
        self._spawn(self._save_read(name_key, room, message_id))

    async def _save_read(self, name_key: str, room: str, message_id: str) -> None:
        try:
            await self._scripts["read_save"](keys=[reads.REDIS_KEY], args=[f"{name_key}\x00{room}", message_id])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("could not store a read position: %s", exc)

    # -- the global connection cap -------------------------------------------------------

    def reserve(self, username: str, cap: int, done: Callable[[bool], None]) -> None:
        if not self.up or self._stopping:
            self._grant_unbacked(username)  # fail open: only the local cap applies meanwhile
            done(True)
            return
        self._spawn(self._reserve(username, cap, done))

    async def _reserve(self, username: str, cap: int, done: Callable[[bool], None]) -> None:
        try:
            ok = bool(await self._scripts["reserve"](
                keys=[keys.conns_key(username)], args=[self.node, cap, keys.ALIVE_PREFIX, keys.ALIVE_SUFFIX],
            ))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._down(exc)
            self._grant_unbacked(username)
            done(True)
            return
        if ok:
            self._held[username] = self._held.get(username, 0) + 1
        done(ok)

    def _grant_unbacked(self, username: str) -> None:
        self._held[username] = self._held.get(username, 0) + 1
        self._unbacked[username] = self._unbacked.get(username, 0) + 1
        self._dirty.add(username)
        self._need_announce = True

    def release(self, username: str) -> None:
        held = self._held.get(username, 0)
        if held <= 1:
            self._held.pop(username, None)
        else:
            self._held[username] = held - 1
        unbacked = self._unbacked.get(username, 0)
        if unbacked:  # Redis never counted it
            if unbacked <= 1:
                self._unbacked.pop(username, None)
            else:
                self._unbacked[username] = unbacked - 1
            return
        if not self.up or self._stopping:
            self._dirty.add(username)  # rewritten when we announce ourselves again
            self._need_announce = True
            return
        self._spawn(self._release(username))

    async def _release(self, username: str) -> None:
        try:
            await self._scripts["release"](keys=[keys.conns_key(username)], args=[self.node])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._dirty.add(username)
            self._down(exc)

    # -- presence and typing to the other nodes --------------------------------------------

    def relay(self, event: dict[str, Any]) -> None:
        """Queued with the drafts: stored after every draft appended before it (see :meth:`_send_batch`)."""
        if event.get("t") not in keys.RELAY_KINDS:
            log.warning("not relaying an unknown event: %r", event.get("t"))
            return
        self._sendq.append((None, {**event, "node": self.node}))
        self._send_wake.set()

    # -- liveness --------------------------------------------------------------------------

    async def _announce(self, users: dict[str, tuple[str, str, int, bool]]) -> None:
        """(Re)write this node's heartbeat, users and connection counts, and tell the others."""
        ttl = max(1, int(self.node_ttl * 1000))
        states = {n: {"user_id": uid, "status": st, "count": c, "v": v} for n, (uid, st, c, v) in users.items() if c > 0}
        dirty = set(self._dirty)
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(keys.alive_key(self.node), "1", px=ttl)
        pipe.sadd(keys.NODES, self.node)
        pipe.delete(keys.node_users_key(self.node))
        if states:
            pipe.hset(keys.node_users_key(self.node), mapping={n: json.dumps(s) for n, s in states.items()})
        for name in set(self._held) | dirty:
            n = self._held.get(name, 0)
            if n > 0:
                pipe.hset(keys.conns_key(name), self.node, n)
            else:
                pipe.hdel(keys.conns_key(name), self.node)
        pipe.xadd(keys.EVENTS, {"j": json.dumps({"node": self.node, "t": "hello", "users": states})},
                  maxlen=keys.EVENTS_MAXLEN, approximate=True)
        await pipe.execute()
        self._dirty -= dirty
        self._unbacked.clear()  # Redis now counts every slot we hold

    async def _read_remote(self) -> dict[str, dict[str, tuple[str, str, int, bool]]]:
        """The other live nodes' users, from their hashes."""
        r = self._redis
        nodes = [n for n in await r.smembers(keys.NODES) if n != self.node]
        out: dict[str, dict[str, tuple[str, str, int, bool]]] = {}
        if not nodes:
            return out
        pipe = r.pipeline(transaction=False)
        for node in nodes:
            pipe.exists(keys.alive_key(node))
            pipe.hgetall(keys.node_users_key(node))
        res = await pipe.execute()
        for i, node in enumerate(nodes):
            if not res[2 * i]:
                continue
            users = {}
            for name, raw in (res[2 * i + 1] or {}).items():
                st = keys.node_state(raw)
                if st is not None and st[2] > 0:
                    users[name] = st
            out[node] = users
        return out

    def _apply_remote(self, remote: dict[str, dict[str, tuple[str, str, int, bool]]]) -> None:
        events = self._events
        assert events is not None
        for node, users in remote.items():
            self._remote_nodes.add(node)
            events.node_users(node, users)
        for node in [n for n in self._remote_nodes if n not in remote]:
            self._gone(node)

    async def _heartbeat_loop(self) -> None:
        events = self._events
        assert events is not None
        r = self._redis
        interval = max(0.2, self.node_ttl / 4)
        ttl_ms = max(1, int(self.node_ttl * 1000))
        alive = keys.alive_key(self.node)
        while not self._stopping:
            await asyncio.sleep(interval)
            try:
                # NX first: if our key had expired (Redis was away, or restarted), the others may
                # have dropped us; announce everything again and re-read theirs.
                fresh = await r.set(alive, "1", px=ttl_ms, nx=True)
                if fresh or self._need_announce:
                    self._need_announce = False
                    try:
                        await self._announce(events.local_users())
                        remote = await self._read_remote()
                    except BaseException:
                        self._need_announce = True
                        raise
                    self._apply_remote(remote)
                else:
                    await r.pexpire(alive, ttl_ms)
                nodes = [n for n in await r.smembers(keys.NODES) if n != self.node]
                if nodes:
                    pipe = r.pipeline(transaction=False)
                    for node in nodes:
                        pipe.exists(keys.alive_key(node))
                    living = await pipe.execute()
                    dead = [n for n, ok in zip(nodes, living) if not ok]
                    if dead:
                        pipe = r.pipeline(transaction=False)
                        pipe.srem(keys.NODES, *dead)
                        pipe.delete(*[keys.node_users_key(n) for n in dead])
                        await pipe.execute()
                    for node in dead:
                        if node in self._remote_nodes:
                            self._gone(node)
                for node in [n for n in self._remote_nodes if n not in nodes]:
                    self._gone(node)
                self._back()
                await self._trim()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    break
                self._down(exc)

    # -- the stream's size -------------------------------------------------------------------

    async def _trim(self) -> None:
        """Messages older than ``max_age`` go (sends trim by bytes themselves)."""
        await self._count_bytes()
        if not self.max_age:
            return
        script = self._scripts["trim"]
        args = [self.max_bytes, int(self.max_age * 1000), keys.ENTRY_OVERHEAD]
        for _ in range(TRIM_CALLS):
            n = await script(keys=[keys.MESSAGES, keys.BYTES, keys.LAST], args=args)
            if int(n) < keys.TRIM_MAX_ENTRIES:
                return
            await asyncio.sleep(0)

    async def _count_bytes(self) -> None:
        """A stream without a byte count (written before there was one, or the key was deleted):
        count it once, in chunks, each summed inside Redis. Meanwhile sends do not trim."""
        r = self._redis
        if await r.exists(keys.BYTES):
            return
        newest = await r.xrevrange(keys.MESSAGES, count=1)
        if not newest:
            return  # no stream: the first send starts the count
        last = newest[0][0]
        total, entries, cur = 0, 0, "-"
        while True:
            size, n, last_read = await self._scripts["size"](
                keys=[keys.MESSAGES], args=[cur, last, keys.ENTRY_OVERHEAD])
            total += int(size)
            entries += int(n)
            if int(n) == 0 or last_read == last:
                break
            cur = "(" + last_read
        if await self._scripts["init"](keys=[keys.MESSAGES, keys.BYTES], args=[last, total, keys.ENTRY_OVERHEAD]):
            log.info("counted the stream: %d message(s), %d bytes", entries, total)


def _unreachable(exc: BaseException) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError))
