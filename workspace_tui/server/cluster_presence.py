"""Presence across nodes and node liveness: :class:`ClusterPresenceMixin`, part of
:class:`~workspace_tui.server.cluster.ClusterServer`.

Each node relays its users' state (status, local connection count) through the
events stream and keeps the other nodes' reports in :attr:`remote`; every
presence frame a client sees carries the user's global state. A node's
heartbeat key expires when it stops (killed): the survivors then drop its users.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from workspace_tui.protocol import iso_timestamp, presence_frame, typing_frame

from . import broker as keys
from .hub import encode
from .presence import UserState

log = logging.getLogger("workspace.server.cluster")


@dataclass(slots=True)
class RemoteUser:
    """One user's connections on another node, as that node last reported."""

    user_id: str
    status: str
    count: int
    stamp: float


class ClusterPresenceMixin:
    """Global presence, the global roster, heartbeats and reaping dead nodes."""

    remote: dict[str, dict[str, RemoteUser]]

    # -- presence across nodes ----------------------------------------------------

    def _local_state(self, username: str) -> dict[str, Any] | None:
        u = self.presence.users.get(username)
        if u is None:
            return None
        return {"user_id": u.user_id, "status": u.status, "count": len(u.peers)}

    def _aggregate(self, username: str, user_id: str) -> tuple[str, int]:
        """The user's global (status, connections); status ``offline`` when not visible anywhere."""
        u = self.presence.users.get(username)
        count = len(u.peers) if u else 0
        status = u.status if u is not None and u.peers else None
        stamp = -1.0
        for users in self.remote.values():
            r = users.get(username)
            if r is None or r.count <= 0:
                continue
            count += r.count
            if (u is None or not u.peers) and r.stamp > stamp:
                status, stamp = r.status, r.stamp
        if not count or status is None or status == "offline":
            return "offline", 0
        return status, count

    def _relay_presence(self, frame: dict[str, Any], exclude_user: bool) -> dict[str, Any]:
        data = frame["data"]
        name, uid = data["username"], data["userId"]
        state = self._local_state(name) or {"user_id": uid, "status": data["status"], "count": 0}
        self._relay({"t": "presence", "user": name, "xu": exclude_user, **state})
        status, count = self._aggregate(name, uid)
        return presence_frame(uid, name, status, count)

    def _relay(self, event: dict[str, Any]) -> None:
        event["node"] = self.node
        self._relayq.append(event)
        self._relay_wake.set()

    async def _relay_loop(self) -> None:
        while not self._stopping:
            await self._relay_wake.wait()
            self._relay_wake.clear()
            batch, self._relayq = self._relayq, []
            if not batch:
                continue
            try:
                pipe = self._redis.pipeline(transaction=False)
                users_key = keys.node_users_key(self.node)
                for event in batch:
                    if event["t"] == "presence":
                        if event["count"] > 0:
                            pipe.hset(users_key, event["user"], json.dumps(
                                {"user_id": event["user_id"], "status": event["status"], "count": event["count"]}
                            ))
                        else:
                            pipe.hdel(users_key, event["user"])
                    pipe.xadd(keys.EVENTS, {"j": json.dumps(event)}, maxlen=keys.EVENTS_MAXLEN, approximate=True)
                await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # presence is state: it is re-announced in full when Redis is back
                self._need_announce = True
                self._broker_down(exc)

    def _apply_remote(self, node: str, name: str, user_id: str, status: str, count: int,
                      exclude_user: bool = False) -> None:
        before = self._aggregate(name, user_id)
        users = self.remote.setdefault(node, {})
        if count > 0:
            users[name] = RemoteUser(user_id, status, count, time.monotonic())
            u = self.presence.users.get(name)
            if u is not None and u.peers and u.status != status:  # a status is the user's everywhere
                u.status = status
                self.presence.refresh(u)
        else:
            users.pop(name, None)
        after = self._aggregate(name, user_id)
        if after != before:
            self.hub.publish_local(
                presence_frame(user_id, name, after[0], after[1]),
                exclude_user=user_id if exclude_user else None,
                lazy=True,
            )

    def _on_event(self, event: dict[str, Any]) -> None:
        node, kind = event.get("node", ""), event.get("t")
        if kind == "presence":
            self._apply_remote(node, event["user"], event["user_id"], event["status"], int(event["count"]),
                               bool(event.get("xu")))
        elif kind == "typing":
            frame = event["frame"]
            self.hub.publish_local(frame, exclude_user=frame["data"]["userId"] if event.get("xu") else None, lazy=True)
        elif kind == "hello":
            self._replace_node(node, event.get("users", {}))
        elif kind == "bye":
            self._reap(node)

    def _replace_node(self, node: str, users: dict[str, Any]) -> None:
        for name in list(self.remote.get(node, {})):
            if name not in users:
                r = self.remote[node][name]
                self._apply_remote(node, name, r.user_id, r.status, 0)
        for name, st in users.items():
            if isinstance(st, str):
                st = json.loads(st)
            self._apply_remote(node, name, st["user_id"], st["status"], int(st["count"]))

    def _reap(self, node: str) -> None:
        users = self.remote.get(node)
        if users:
            log.info("node %s is gone: %d user(s) leave with it", node, len(users))
            for name, r in users.items():  # a dead node cannot clear its users' typing
                self.hub.publish_local(typing_frame(r.user_id, name, False), exclude_user=r.user_id, lazy=True)
            self._replace_node(node, {})
        self.remote.pop(node, None)
        self.hub.flush()

    def _connected_parts(self, u: UserState) -> list[bytes]:
        """``connected`` with the global roster (users on every node, global counts)."""
        tail = super()._connected_parts(u)[-1]  # limits and lastMessageId
        names = {v.username: v.user_id for v in self.presence.visible.values()}
        for users in self.remote.values():
            for name, r in users.items():
                names.setdefault(name, r.user_id)
        entries = []
        for name, uid in names.items():
            status, count = self._aggregate(name, uid)
            if count:
                entries.append(encode({"userId": uid, "username": name, "status": status, "connections": count}))
        head = encode(
            {
                "type": "connected",
                "userId": u.user_id,
                "username": u.username,
                "timestamp": iso_timestamp(),
                "connectedUsers": len(entries),
            }
        )
        return [head[:-1] + b',"users":[', b",".join(entries), tail]

    # -- liveness ------------------------------------------------------------------

    async def _announce(self) -> None:
        """(Re)write this node's heartbeat, users and connection counts, and tell the others."""
        ttl = max(1, int(self.config.broker_node_ttl * 1000))
        users = {n: s for n in self.presence.users if (s := self._local_state(n)) and s["count"] > 0}
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(keys.alive_key(self.node), "1", px=ttl)
        pipe.sadd(keys.NODES, self.node)
        pipe.delete(keys.node_users_key(self.node))
        if users:
            pipe.hset(keys.node_users_key(self.node), mapping={n: json.dumps(s) for n, s in users.items()})
        for name, n in self._global_held.items():
            pipe.hset(keys.conns_key(name), self.node, n)
        pipe.xadd(keys.EVENTS, {"j": json.dumps({"node": self.node, "t": "hello", "users": users})},
                  maxlen=keys.EVENTS_MAXLEN, approximate=True)
        await pipe.execute()

    async def _load_remote(self) -> None:
        """The other live nodes' users, read from their hashes (after a start or an outage)."""
        r = self._redis
        nodes = await r.smembers(keys.NODES)
        seen = set()
        for node in nodes:
            if node == self.node:
                continue
            if not await r.exists(keys.alive_key(node)):
                continue
            seen.add(node)
            self._replace_node(node, await r.hgetall(keys.node_users_key(node)))
        for node in list(self.remote):
            if node not in seen:
                self._reap(node)

    async def _heartbeat_loop(self) -> None:
        ttl = self.config.broker_node_ttl
        interval = max(0.2, ttl / 4)
        ttl_ms = max(1, int(ttl * 1000))
        lost = False
        while not self._stopping:
            await asyncio.sleep(interval)
            try:
                # NX first: if our key had expired (Redis was away, or restarted), the others may
                # have dropped us; announce everything again and re-read theirs.
                fresh = await self._redis.set(keys.alive_key(self.node), "1", px=ttl_ms, nx=True)
                if fresh or lost or self._need_announce:
                    self._need_announce = False
                    await self._announce()
                    await self._load_remote()
                    self.hub.flush()
                else:
                    await self._redis.pexpire(keys.alive_key(self.node), ttl_ms)
                lost = False
                nodes = await self._redis.smembers(keys.NODES)
                for node in nodes:
                    if node != self.node and not await self._redis.exists(keys.alive_key(node)):
                        self._reap(node)
                        await self._redis.srem(keys.NODES, node)
                        await self._redis.delete(keys.node_users_key(node))
                for node in list(self.remote):
                    if node not in nodes:
                        self._reap(node)
                self._broker_back()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                lost = True
                self._broker_down(exc)
