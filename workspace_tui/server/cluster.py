"""Several nodes, one workspace: :class:`ClusterServer`, the server with ``--broker redis://...``.

What changes against the single-node server (the wire protocol does not):

* **Messages** go into one Redis stream (:data:`.broker.SEND_LUA`: dedupe,
  global rate limit and ``XADD`` in one atomic script), sent in order through
  one pipeline per batch. Every node reads the stream with ``XREAD BLOCK`` and
  fans each message out to its own clients once, in stream order. History,
  resume and paging read the stream (``XRANGE``/``XREVRANGE``), so a client can
  resume on any node.
* **Presence and typing** are relayed through a second stream of events; each
  node keeps the other nodes' view of their users (:attr:`ClusterServer.remote`)
  and presents every user with global state (status, connection count;
  online on the first connection anywhere, offline after the last). That part,
  and liveness below, is :mod:`.cluster_presence`.
* **Liveness**: each node refreshes a heartbeat key with an expiry; survivors
  drop the users of a node whose key has expired (a node killed with SIGKILL
  cannot clean up after itself).
* **Redis down**: clients stay connected, ``/healthz`` says ``degraded``, sends
  get ``error`` ``unavailable`` (the client resends later); everything resumes
  from the last stream id read when Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from dataclasses import replace
from typing import Any

from workspace_tui.protocol import (
    CLOSE_POLICY,
    ERR_RATE_LIMITED,
    ERR_UNAVAILABLE,
    ChatMessage,
    RequestHistory,
    SendMessage,
    error_frame,
    history_frame,
    iso_timestamp,
    message_new_frame,
)

from . import broker as keys
from .app import RESUME_CHUNK, Server, _split_by_size
from .cluster_presence import ClusterPresenceMixin, RemoteUser
from .config import ServerConfig
from .handshake import ChatConnection, Session
from .hub import LocalHub, Peer
from .limits import Limiter

log = logging.getLogger("workspace.server.cluster")

RING = 10_000  # recently fanned-out messages kept to close the gap between a history read and attach


class HeldSession(Session):
    """A session that also holds a slot of the global per-user cap in Redis."""

    __slots__ = ()

    def release(self) -> None:
        if not self.released:
            super().release()
            self.server._give_back_later(self.username)  # type: ignore[attr-defined]


class ClusterHub(LocalHub):
    """The local hub, plus: presence and typing published here are relayed to the other nodes,
    and presence frames are rewritten to the user's global state before local delivery."""

    def __init__(self, server: ClusterServer, **kw: Any) -> None:
        super().__init__(**kw)
        self.server = server

    def publish(
        self,
        frame: dict[str, Any],
        *,
        exclude_user: str | None = None,
        exclude_peer: Peer | None = None,
        lazy: bool = False,
    ) -> int:
        kind = frame.get("type")
        if kind == "presence:update":
            frame = self.server._relay_presence(frame, exclude_user is not None)
        elif kind == "typing:indicator":
            self.server._relay({"t": "typing", "frame": frame, "xu": exclude_user is not None})
        return super().publish(frame, exclude_user=exclude_user, exclude_peer=exclude_peer, lazy=lazy)

    def publish_local(self, frame: dict[str, Any], *, exclude_user: str | None = None, lazy: bool = False) -> int:
        return LocalHub.publish(self, frame, exclude_user=exclude_user, lazy=lazy)


class ClusterServer(ClusterPresenceMixin, Server):
    """A node of a workspace shared through Redis (see the module docstring)."""

    def __init__(self, config: ServerConfig) -> None:
        assert config.broker
        super().__init__(replace(config, db_path=":memory:"))  # the SQLite store is not used
        self.config = config
        self.node = uuid.uuid4().hex[:12]
        self.hub = ClusterHub(
            self, compression=config.compression, send_buffer_limit=config.send_buffer_limit, on_slow=self._on_slow
        )
        self.last_message_id = None
        self.remote: dict[str, dict[str, RemoteUser]] = {}
        self.broker_up = False
        self._redis: Any = None
        self._reader: Any = None
        self._send_script: Any = None
        self._reserve_script: Any = None
        self._release_script: Any = None
        self._cursor = "0-0"  # last message stream id fanned out
        self._events_cursor = "$"
        self._ring: deque[ChatMessage] = deque(maxlen=RING)
        self._sendq: list[tuple[Peer, str, str | None]] = []
        self._send_wake = asyncio.Event()
        self._relayq: list[dict[str, Any]] = []
        self._relay_wake = asyncio.Event()
        self._inflight_waiters: dict[tuple[str, str], list[Peer]] = {}
        self._prefetched: dict[Session, Any] = {}
        self._global_held: dict[str, int] = {}
        self._bg: list[asyncio.Task[Any]] = []
        self._stopping = False
        self._draining = False  # closing: new sends are refused, queued ones still go out
        self._sending = False
        self._last_sent: str | None = None  # message id of the newest send this node stored
        self._need_announce = False  # a relay was lost: re-announce our users on the next heartbeat

    @property
    def store_label(self) -> str:
        return keys.redact(self.config.broker or "")

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        url = self.config.broker
        opts = dict(decode_responses=True, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))
        self._redis = redis.from_url(url, socket_timeout=2.0, **opts)
        self._reader = redis.from_url(url, socket_timeout=5.0, **opts)  # XREAD BLOCK holds its connection
        try:
            await self._redis.ping()
            last = await self._redis.xrevrange(keys.MESSAGES, count=1)
            ev = await self._redis.xrevrange(keys.EVENTS, count=1)
        except Exception as exc:
            await self._close_redis()
            raise OSError(f"cannot reach the broker {keys.redact(url or '')}: {exc}") from None
        self._cursor = last[0][0] if last else "0-0"
        self._events_cursor = ev[0][0] if ev else "0-0"
        if last:
            self.last_message_id = keys.message_id_of(self._cursor)
        self._send_script = self._redis.register_script(keys.SEND_LUA)
        self._reserve_script = self._redis.register_script(keys.RESERVE_LUA)
        self._release_script = self._redis.register_script(keys.RELEASE_LUA)
        await self._announce()
        await self._load_remote()
        self.broker_up = True
        try:
            await super().start()
        except BaseException:
            await self._close_redis()
            raise
        for coro in (self._read_loop(), self._send_loop(), self._relay_loop(), self._heartbeat_loop()):
            self._bg.append(asyncio.create_task(coro))
        log.info("node %s joined the workspace at %s", self.node, self.store_label)

    async def close(self) -> None:
        if self._closing:
            await self._closed.wait()
            return
        # Like the single node's final commit: sends already taken are stored and delivered
        # (their echo is the fan-out) before the connections are closed.
        self._draining = True
        deadline = asyncio.get_running_loop().time() + 2.0
        while self.broker_up and asyncio.get_running_loop().time() < deadline and (
            self._sendq or self._sending or (self._last_sent and (self.last_message_id or "") < self._last_sent)
        ):
            await asyncio.sleep(0.01)
        await super().close()
        self._stopping = True
        for t in self._bg:
            t.cancel()
        # redis-py may turn a cancellation into a ConnectionError: the loops also check _stopping
        await asyncio.wait(self._bg, timeout=3)
        if self.broker_up:
            try:  # a clean goodbye: the others drop our users now rather than after the heartbeat expires
                await self._redis.xadd(
                    keys.EVENTS, {"j": json.dumps({"node": self.node, "t": "bye"})},
                    maxlen=keys.EVENTS_MAXLEN, approximate=True,
                )
                pipe = self._redis.pipeline(transaction=False)
                pipe.delete(keys.alive_key(self.node), keys.node_users_key(self.node))
                pipe.srem(keys.NODES, self.node)
                await pipe.execute()
            except Exception:
                pass
        await self._close_redis()

    async def _close_redis(self) -> None:
        for client in (self._redis, self._reader):
            if client is not None:
                try:
                    await client.aclose()
                except Exception:
                    pass

    def _broker_down(self, exc: BaseException) -> None:
        if self.broker_up:
            log.warning("broker %s is unreachable: %s", self.store_label, exc)
        self.broker_up = False

    def _broker_back(self) -> None:
        if not self.broker_up:
            log.info("broker %s is back", self.store_label)
            self.broker_up = True

    def health(self) -> dict[str, Any]:
        h = super().health()
        h["broker"] = "up" if self.broker_up else "down"
        h["node"] = self.node
        if h["status"] == "ok" and not self.broker_up:
            h["status"] = "degraded"
        return h

    # -- the stream reader: messages and events -----------------------------

    async def _read_loop(self) -> None:
        while not self._stopping:
            try:
                resp = await self._reader.xread(
                    {keys.MESSAGES: self._cursor, keys.EVENTS: self._events_cursor}, count=1000, block=1000
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._broker_down(exc)
                await asyncio.sleep(0.5)
                continue
            self._broker_back()
            for stream, entries in resp or ():
                if not entries:
                    continue
                if stream == keys.MESSAGES:
                    self._cursor = entries[-1][0]
                    self._fan_out([keys.message_from_entry(i, f) for i, f in entries])
                else:
                    self._events_cursor = entries[-1][0]
                    for _, fields in entries:
                        try:
                            event = json.loads(fields.get("j", "{}"))
                        except ValueError:
                            continue
                        if event.get("node") != self.node:
                            self._on_event(event)
            self.hub.flush()

    def _fan_out(self, messages: list[ChatMessage]) -> None:
        self._ring.extend(messages)
        self.last_message_id = messages[-1].id
        self.hub.publish_many([message_new_frame(m) for m in messages])

    # -- sends -----------------------------------------------------------------

    def _on_send(self, peer: Peer, req: SendMessage) -> None:
        u = peer.user
        cmid = req.client_msg_id
        if cmid is not None:
            waiters = self._inflight_waiters.get((u.username, cmid))
            if waiters is not None:  # the same message is on its way to Redis: answered with it
                if self._frame_allowed(peer, "message:send", cmid):
                    self.metrics.duplicates_total += 1
                    waiters.append(peer)
                return
        if self._closing or self._draining or not self.broker_up:
            why = "server is shutting down" if self._closing or self._draining else "the broker is unavailable; send it again later"
            self._reject(peer, error_frame(ERR_UNAVAILABLE, why, client_msg_id=cmid, frame_type="message:send"))
            return
        if u.typing:
            self._clear_typing(u)
        self._sendq.append((peer, req.text, cmid))
        if cmid is not None:
            self._inflight_waiters[(u.username, cmid)] = []
        self._send_wake.set()

    def _commit(self) -> None:
        """Nothing to commit locally: messages are committed by the send script in Redis."""
        self._commit_scheduled = False

    async def _send_loop(self) -> None:
        """One batch at a time, through one pipeline: the stream order is the order of the sends."""
        cfg = self.config
        rate = cfg.rate_limit
        while not self._stopping:
            await self._send_wake.wait()
            self._send_wake.clear()
            batch, self._sendq = self._sendq, []
            if not batch:
                continue
            results: list[Any]
            self._sending = True
            try:
                pipe = self._redis.pipeline(transaction=False)
                for peer, text, cmid in batch:
                    u = peer.user
                    await self._send_script(
                        keys=[keys.MESSAGES, keys.dedupe_key(u.username, cmid or ""), keys.rate_key(u.username)],
                        args=[
                            u.user_id, u.username, text, cmid or "", cfg.broker_stream_maxlen,
                            rate, rate / 60_000.0 if rate else 0, keys.DEDUPE_TTL,
                        ],
                        client=pipe,
                    )
                results = await pipe.execute(raise_on_error=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._broker_down(exc)
                results = [exc] * len(batch)
            finally:
                self._sending = False
            for (peer, text, cmid), res in zip(batch, results):
                self._send_result(peer, text, cmid, res)
            self.hub.flush()

    def _send_result(self, peer: Peer, text: str, cmid: str | None, res: Any) -> None:
        u = peer.user
        waiters = self._inflight_waiters.pop((u.username, cmid), []) if cmid is not None else []
        if isinstance(res, BaseException) or not isinstance(res, list) or not res:
            log.error("could not send a message of %s: %s", u.username, res)
            for p in (peer, *waiters):
                self._reject(
                    p,
                    error_frame(
                        ERR_UNAVAILABLE, "the message could not be stored; send it again",
                        client_msg_id=cmid, frame_type="message:send",
                    ),
                )
            return
        kind = res[0]
        if kind == "ok":
            self.metrics.messages_total += 1
            self._last_sent = keys.message_id_of(res[1])
            if waiters:
                m = ChatMessage(keys.message_id_of(res[1]), u.user_id, u.username, text,
                                iso_timestamp(int(res[1].partition("-")[0])), cmid)
                for p in waiters:
                    self.hub.send(p, message_new_frame(m))
        elif kind == "dup":
            self.metrics.duplicates_total += 1
            fields = res[2] if len(res) > 2 else []
            m = keys.message_from_entry(res[1], fields) if fields else ChatMessage(
                keys.message_id_of(res[1]), u.user_id, u.username, text,
                iso_timestamp(int(res[1].partition("-")[0])), cmid,
            )
            for p in (peer, *waiters):
                self.hub.send(p, message_new_frame(m))
        elif kind == "rate":
            wait = max(1, int(res[1]))
            rl = self.config.rate_limit
            for p in (peer, *waiters):
                self._reject(
                    p,
                    error_frame(
                        ERR_RATE_LIMITED, f"rate limit: at most {rl} messages per minute",
                        client_msg_id=cmid, frame_type="message:send", retry_after_ms=wait,
                    ),
                )
            lim = self.send_limiters.get(u.username)
            if lim is None:  # only its refusal window is used: the bucket lives in Redis
                lim = self.send_limiters[u.username] = Limiter(1, 1, self.config.flood_threshold)
            lim.refusals.append(time.monotonic())
            if lim.flooding() and not peer.closing:
                self._close(peer, CLOSE_POLICY, "flooding: too many messages past the rate limit")

    # -- history ---------------------------------------------------------------

    async def _read_history(self, session: Session) -> tuple[str, list[ChatMessage], bool, bool]:
        r = self._redis
        if session.since is not None:
            sid = keys.stream_id(session.since) or "0-0"
            first = await r.xrange(keys.MESSAGES, count=1)
            gap = bool(first) and keys.message_id_of(first[0][0]) > session.since
            out: list[ChatMessage] = []
            cursor = "(" + sid
            while True:
                entries = await r.xrange(keys.MESSAGES, min=cursor, count=RESUME_CHUNK)
                out.extend(keys.message_from_entry(i, f) for i, f in entries)
                if len(entries) < RESUME_CHUNK:
                    break
                cursor = "(" + entries[-1][0]
            return "resume", out, False, gap
        n = session.history
        entries = await r.xrevrange(keys.MESSAGES, count=n + 1)
        has_more = len(entries) > n
        entries = entries[:n]
        entries.reverse()
        return "join", [keys.message_from_entry(i, f) for i, f in entries], has_more, False

    async def _handle(self, ws: ChatConnection) -> None:
        session = ws.session
        if session is None or session.released or self._closing:
            return
        try:
            self._prefetched[session] = await self._read_history(session)
        except Exception as exc:
            self._broker_down(exc)
            self._prefetched[session] = exc
        if session.released or self._closing:
            self._prefetched.pop(session, None)
            return
        u = self.presence.users.get(session.username)
        if u is None and not session.quiet:
            # First connection here of a user who may be online elsewhere: their status is global.
            status, count = self._aggregate(session.username, "")
            u = self.presence.user(session.username)
            if count:
                u.status = status
        await super()._handle(ws)  # runs without suspending until the connection is set up

    def _send_history(self, peer: Peer, session: Session) -> None:
        got = self._prefetched.pop(session, None)
        if got is None or isinstance(got, BaseException):
            raise RuntimeError(f"history read failed: {got}")
        kind, messages, has_more, gap = got
        # What was read may be ahead of or behind what this node has fanned out so far: keep
        # what was fanned out (the rest comes live once attached) and add what was fanned out
        # since the read.
        cursor = self.last_message_id
        seen = messages[-1].id if messages else session.since
        messages = [m for m in messages if cursor is not None and m.id <= cursor]
        newer: list[ChatMessage] = []
        for m in reversed(self._ring):
            if seen is not None and m.id <= seen:
                break
            newer.append(m)
        newer.reverse()
        messages.extend(newer)
        if kind == "join":
            if len(messages) > session.history:
                messages = messages[len(messages) - session.history:] if session.history else []
                has_more = True
            self.hub.send(peer, history_frame(messages, reason="join", has_more=has_more))
            return
        since = session.since
        chunks = [part for i in range(0, len(messages), RESUME_CHUNK)
                  for part in _split_by_size(messages[i:i + RESUME_CHUNK])]
        if not chunks:
            self.hub.send(peer, history_frame([], reason="resume", has_more=False, gap=gap, since=since))
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            self.hub.send(peer, history_frame(chunk, reason="resume", has_more=not last, gap=gap, since=since))

    def _on_history(self, peer: Peer, req: RequestHistory) -> None:
        task = asyncio.get_running_loop().create_task(self._page(peer, req))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _page(self, peer: Peer, req: RequestHistory) -> None:
        try:
            top = "(" + (keys.stream_id(req.before) or "0-0") if req.before else "+"
            entries = await self._redis.xrevrange(keys.MESSAGES, max=top, count=req.limit + 1)
        except Exception as exc:
            self._broker_down(exc)
            self._reject(
                peer, error_frame(ERR_UNAVAILABLE, "history is unavailable right now", frame_type="history:request")
            )
            self.hub.flush()
            return
        has_more = len(entries) > req.limit
        entries = entries[: req.limit]
        entries.reverse()
        messages = [keys.message_from_entry(i, f) for i, f in entries]
        self.hub.send(peer, history_frame(messages, reason="page", has_more=has_more, before=req.before))
        self.hub.flush()

    # -- the global connection cap ------------------------------------------------

    async def _process_request(self, ws: ChatConnection, request: Any) -> Any:  # type: ignore[override]
        response = super()._process_request(ws, request)
        session = ws.session
        cap = self.config.max_connections_per_user
        if response is not None or session is None or not cap or not self.broker_up:
            return response  # Redis down: only the local cap applies (fail open, clients keep working)
        name = session.username
        try:
            ok = await self._reserve_script(
                keys=[keys.conns_key(name)],
                args=[self.node, cap, keys.PREFIX + "node:", ":alive"],
            )
        except Exception as exc:
            self._broker_down(exc)
            return None
        if not ok:
            return self._refuse(
                ws, 429, f"too many connections: {name} already has {cap} open (the limit is {cap} per user)"
            )
        if session.released:  # the client went away while we asked
            self._spawn(self._give_back(name))
        else:
            session.__class__ = HeldSession  # gives the global slot back when released
            self._global_held[name] = self._global_held.get(name, 0) + 1
        return None

    def _give_back_later(self, username: str) -> None:
        held = self._global_held.get(username, 0)
        if held <= 1:
            self._global_held.pop(username, None)
        else:
            self._global_held[username] = held - 1
        if self.loop is not None and not self.loop.is_closed():
            self._spawn(self._give_back(username))

    async def _give_back(self, username: str) -> None:
        try:
            await self._release_script(keys=[keys.conns_key(username)], args=[self.node])
        except Exception as exc:
            self._broker_down(exc)  # our counts are rewritten when we announce ourselves again

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
