"""Rooms, members and invitations in Redis, with the same answers as :mod:`.rooms_sqlite`.

Keys (``general`` is everyone's and is not stored):

* ``workspace:room:<id>`` hash ``kind`` (public, private, dm), ``topic``, ``by``;
* ``workspace:room:<id>:members`` hash name key -> username, and ``...:names`` a sorted set of the
  usernames (score 0, so ``ZRANGE BYLEX`` pages them in name order);
* ``workspace:room:<id>:invites`` set of name keys;
* ``workspace:user:<name key>:rooms`` set of the room ids a user is in;
* ``workspace:rooms:public`` sorted set (score 0) of the public rooms, for ``room:list``.

A direct message's room and members are written by the send script with its first message
(:data:`~.redis_scripts.SEND_LUA`). Every change here is one script (:data:`ROOM_LUA`): two nodes
creating the same room at once get one ``ok`` and one ``exists``.
"""

from __future__ import annotations

from typing import Any

from workspace_tui.core.rooms import RoomInfo
from workspace_tui.protocol import ERR_NOT_ALLOWED, GENERAL, UNREAD_CAP, RoomRequest, name_key, user_id_for

from . import reads
from . import redis_scripts as keys

MAX_ROOMS_LISTED = 500
STATE_SCAN = UNREAD_CAP * 4  # entries an unread count looks at, at most
PUBLIC = keys.PREFIX + "rooms:public"
_NO_ROOM = "no such room {room}, or you are not in it"


def room_key(room: str) -> str:
    return f"{keys.PREFIX}room:{room}"


def user_rooms_key(key: str) -> str:
    return f"{keys.PREFIX}user:{key}:rooms"


def room_keys(room: str, key: str) -> list[str]:
    """The KEYS of :data:`ROOM_LUA` for *room* and the user with name key *key*."""
    base = room_key(room)
    return [base, base + ":members", base + ":names", base + ":invites", user_rooms_key(key), PUBLIC]


# KEYS: room hash, members hash, names zset, invites set, the user's rooms set, public rooms zset.
# ARGV: op, room, name key, username, topic, private ('1' or ''), invitee's name key.
# Returns {code, kind, topic}: code 'ok', or why not: 'exists' (create), 'none' (no such room or not
# a member), 'private' (join without an invitation), 'noinvite' (a direct message).
ROOM_LUA = """
local op, room, key, name = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local found = redis.call('HMGET', KEYS[1], 'kind', 'topic')
local kind, topic = found[1], found[2] or ''
if op == 'create' then
  if kind then return {'exists', kind, topic} end
  kind = 'public'
  if ARGV[6] == '1' then kind = 'private' end
  redis.call('HSET', KEYS[1], 'kind', kind, 'topic', ARGV[5], 'by', name)
  if kind == 'public' then redis.call('ZADD', KEYS[6], 0, room) end
  redis.call('HSET', KEYS[2], key, name)
  redis.call('ZADD', KEYS[3], 0, name)
  redis.call('SADD', KEYS[5], room)
  return {'ok', kind, ARGV[5]}
end
if not kind then return {'none', '', ''} end
local member = redis.call('HEXISTS', KEYS[2], key) == 1
if op == 'join' then
  if kind == 'dm' then return {'none', kind, topic} end
  if kind == 'private' and not member and redis.call('SISMEMBER', KEYS[4], key) == 0 then
    return {'private', kind, topic}
  end
  if not member then
    redis.call('HSET', KEYS[2], key, name)
    redis.call('ZADD', KEYS[3], 0, name)
    redis.call('SADD', KEYS[5], room)
  end
  redis.call('SREM', KEYS[4], key)
  return {'ok', kind, topic}
end
if not member then return {'none', kind, topic} end
if op == 'leave' then
  local was = redis.call('HGET', KEYS[2], key)
  redis.call('HDEL', KEYS[2], key)
  redis.call('ZREM', KEYS[3], was)
  redis.call('SREM', KEYS[5], room)
elseif op == 'topic' then
  redis.call('HSET', KEYS[1], 'topic', ARGV[5])
elseif op == 'invite' then
  if kind == 'dm' then return {'noinvite', kind, topic} end
  redis.call('SADD', KEYS[4], ARGV[7])
end
return {'ok', kind, topic}
"""


def _error(why: str) -> dict[str, Any]:
    return {"error": (ERR_NOT_ALLOWED, why)}


class RedisRooms:
    """Room operations over an async Redis client and the registered scripts (``room``, ``read_state``)."""

    def __init__(self, redis: Any, scripts: dict[str, Any]) -> None:
        self.redis = redis
        self.scripts = scripts

    async def state(self, key: str, username: str, room: str, kind: str, topic: str, members: int) -> RoomInfo:
        """One room's summary for *username* (see :data:`~.reads.REDIS_STATE_LUA`)."""
        last, unread, mentions, newest = await self.scripts["read_state"](
            keys=[reads.REDIS_KEY, keys.MESSAGES, keys.ROOMS_LAST, keys.LAST],
            args=[f"{key}\x00{room}", username, "@" + username.lower(), UNREAD_CAP, room, STATE_SCAN])
        return RoomInfo(room, kind, topic, members, int(unread), int(mentions), last or None,
                        keys.message_id_of(newest) if newest else None)

    async def rooms_of(self, key: str, username: str, general_only: bool = False) -> list[RoomInfo]:
        r = self.redis
        mine = [] if general_only else sorted(await r.smembers(user_rooms_key(key)))[:MAX_ROOMS_LISTED]
        out = [await self.state(key, username, GENERAL, "public", "", 0)]
        if not mine:
            return out
        pipe = r.pipeline(transaction=False)
        for room in mine:
            pipe.hmget(room_key(room), "kind", "topic")
            pipe.hlen(room_key(room) + ":members")
        res = await pipe.execute()
        for i, room in enumerate(mine):
            kind, topic = res[2 * i]
            if kind:  # (a room whose hash is gone is nobody's)
                out.append(await self.state(key, username, room, kind, topic or "", int(res[2 * i + 1])))
        return out

    async def room_op(self, req: RoomRequest, username: str, key: str) -> dict[str, Any]:
        room, op = req.room, req.op
        if op == "list":
            return await self._list(key)
        if op == "members":
            return await self._members(req, key)
        if room == GENERAL and op in ("leave", "topic", "invite"):  # everyone is in general; it is not stored
            if op == "leave":
                return {}
            return _error("general has no topic to set" if op == "topic" else f"{room} takes no invitations")
        if op not in ("create", "join", "leave", "topic", "invite"):
            return _error(f"unknown room operation {op}")
        code, kind, topic = await self.scripts["room"](
            keys=room_keys(room, key),
            args=[op, room, key, username, req.topic, "1" if req.private else "", name_key(req.username)])
        if code == "exists":
            return _error(f"room {room} exists: /join {room}" if kind == "public" else f"room {room} exists")
        if code == "private":
            return _error(f"{room} is private: a member can invite you (/invite)")
        if code == "noinvite":
            return _error(f"{room} takes no invitations")
        if code != "ok":
            return _error(_NO_ROOM.format(room=room))
        if op in ("create", "join"):
            newest = await self.redis.hget(keys.ROOMS_LAST, room)
            if newest:  # joining a room: what was said before is history, not unread
                await self.redis.hsetnx(reads.REDIS_KEY, f"{key}\x00{room}", keys.message_id_of(newest))
            members = int(await self.redis.hlen(room_key(room) + ":members"))
            return {"info": await self.state(key, username, room, kind, topic or "", members)}
        if op == "invite":
            return {"username": req.username}
        return {}

    async def _list(self, key: str) -> dict[str, Any]:
        r = self.redis
        public = await r.zrange(PUBLIC, "-", "+", bylex=True, offset=0, num=MAX_ROOMS_LISTED)
        mine = set(await r.smembers(user_rooms_key(key)))
        ids = sorted(set(public) | mine)[:MAX_ROOMS_LISTED]
        rooms: list[dict[str, Any]] = [{"room": GENERAL, "kind": "public", "topic": "", "members": None, "joined": True}]
        if not ids:
            return {"rooms": rooms}
        pipe = r.pipeline(transaction=False)
        for room in ids:
            pipe.hmget(room_key(room), "kind", "topic")
            pipe.hlen(room_key(room) + ":members")
        res = await pipe.execute()
        for i, room in enumerate(ids):
            kind, topic = res[2 * i]
            if kind:
                rooms.append({"room": room, "kind": kind, "topic": topic or "", "members": int(res[2 * i + 1]),
                              "joined": room in mine})
        return {"rooms": rooms}

    async def _members(self, req: RoomRequest, key: str) -> dict[str, Any]:
        """Paged in name order, for members only."""
        room = req.room
        if room == GENERAL:
            return _error("general is everyone: see the roster (connected.users)")
        if not await self.redis.hexists(room_key(room) + ":members", key):
            return _error(_NO_ROOM.format(room=room))
        start = "(" + req.username if req.username else "-"
        rows = await self.redis.zrange(room_key(room) + ":names", start, "+", bylex=True, offset=0,
                                       num=req.limit + 1)
        names = rows[:req.limit]
        return {"members": [{"username": n, "userId": user_id_for(n)} for n in names],
                "next": names[-1] if len(rows) > req.limit else None}
