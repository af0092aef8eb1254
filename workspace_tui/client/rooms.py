"""Rooms and direct messages on the client side: the frames about them, parsed from raw JSON.

Pure: no I/O. protocol.py does not type these frames (yet), so the client reads them
from the decoded object here, bounded and defensive: a newer server may add fields,
a hostile one may send anything. The ROOM SUMMARY itself is parsed in client/reads.py
(:class:`~workspace_tui.client.reads.RoomSummary`), where read positions live.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from workspace_tui.client.reads import GENERAL, RoomSummary, parse_room_summary
from workspace_tui.protocol import STATUSES

ROOM_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
DM_PREFIX = "dm:"
DM_MAX = 8  # participants, the sender included
MAX_LISTED = 500  # rooms in one room:list, as the server promises


class RoomJoined(NamedTuple):
    """We are in a room now (created, joined, or a first DM arrived), on this connection or another of ours."""

    room: RoomSummary


class RoomLeft(NamedTuple):
    """We left *room* (here or in another window of ours)."""

    room: str


class RoomUpdated(NamedTuple):
    """The topic of *room* changed."""

    room: str
    topic: str


class RoomMemberChanged(NamedTuple):
    """*username* joined (or left) *room*."""

    room: str
    username: str
    joined: bool


class RoomInvited(NamedTuple):
    """*by* invited us to the private room *room*: ``/join`` it to go in."""

    room: str
    by: str


class ListedRoom(NamedTuple):
    """One entry of ``room:list``."""

    room: str
    kind: str
    topic: str
    members: int
    joined: bool


class RoomsListed(NamedTuple):
    """The answer to ``room:list``: public rooms and our own."""

    rooms: tuple[ListedRoom, ...]


class RoomMember(NamedTuple):
    """One entry of ``room:members``."""

    username: str
    user_id: str
    status: str
    verified: bool = False


class RoomMembersListed(NamedTuple):
    """One page of ``room:members``; ``next`` is the name to page on from (``None``: the last page)."""

    room: str
    members: tuple[RoomMember, ...]
    next: str | None


class TypingInRoom(NamedTuple):
    """Someone is (not) typing in a room other than general (general's stays a plain ``TypingChanged``)."""

    user_id: str
    username: str
    is_typing: bool
    room: str


RoomEvent = RoomJoined | RoomLeft | RoomUpdated | RoomMemberChanged | RoomInvited | RoomsListed | RoomMembersListed


def valid_room_id(room: str) -> bool:
    """Whether *room* names a room the user may create or join (``#`` stripped by the caller)."""
    return room == GENERAL or bool(ROOM_ID.match(room))


def dm_room_id(me: str, others: list[str] | tuple[str, ...]) -> str:
    """The DM room of *me* and *others*: ``dm:`` + lowercase names, sorted, no repeats."""
    names = sorted({n.lower() for n in (me, *others)})
    return DM_PREFIX + ",".join(names)


def dm_others(room: str, me: str) -> tuple[str, ...]:
    """The other participants named in a DM room id (ours excepted)."""
    if not room.startswith(DM_PREFIX):
        return ()
    return tuple(n for n in room[len(DM_PREFIX) :].split(",") if n and n != me.lower())


def _name(value: Any) -> str | None:
    return value[:64] if isinstance(value, str) and value else None


def _room(value: Any) -> str | None:
    return value[:100] if isinstance(value, str) and value else None


def parse_room_frame(frame: Any) -> RoomEvent | None:
    """A raw server frame about rooms as an event; ``None`` for any other frame or a malformed one."""
    if not isinstance(frame, dict):
        return None
    kind = frame.get("type")
    if kind == "room:joined":
        summary = parse_room_summary(frame.get("room"))
        return RoomJoined(summary) if summary is not None else None
    if kind == "room:left":
        room = _room(frame.get("room"))
        return RoomLeft(room) if room else None
    if kind == "room:updated":
        room, topic = _room(frame.get("room")), frame.get("topic")
        return RoomUpdated(room, topic[:200] if isinstance(topic, str) else "") if room else None
    if kind == "room:member":
        room, name = _room(frame.get("room")), _name(frame.get("username"))
        if not room or not name:
            return None
        return RoomMemberChanged(room, name, frame.get("joined") is not False)
    if kind == "room:invited":
        room, by = _room(frame.get("room")), _name(frame.get("by"))
        return RoomInvited(room, by or "someone") if room else None
    if kind == "room:list":
        return RoomsListed(tuple(_listed(frame.get("rooms"))))
    if kind == "room:members":
        room = _room(frame.get("room"))
        if not room:
            return None
        nxt = frame.get("next")
        return RoomMembersListed(room, tuple(_members(frame.get("members"))), _name(nxt))
    return None


def _listed(items: Any) -> list[ListedRoom]:
    out: list[ListedRoom] = []
    for item in items[:MAX_LISTED] if isinstance(items, list) else ():
        summary = parse_room_summary(item)
        if summary is not None:
            out.append(ListedRoom(summary.room, summary.kind, summary.topic, summary.members, item.get("joined") is True))
    return out


def _members(items: Any) -> list[RoomMember]:
    out: list[RoomMember] = []
    for item in items[:1000] if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        name = _name(item.get("username"))
        if name is None:
            continue
        status = item.get("status")
        user_id = item.get("userId")
        out.append(
            RoomMember(
                name,
                user_id[:100] if isinstance(user_id, str) else "",
                status if status in STATUSES else "offline",
                item.get("verified") is True,
            )
        )
    return out


def room_of(obj: Any) -> str:
    """The room a raw ``message:new`` / ``typing:indicator`` data object, or a history message, names."""
    room = obj.get("room") if isinstance(obj, dict) else None
    return room[:100] if isinstance(room, str) and room else GENERAL


def history_rooms(frame: Any) -> tuple[str | None, tuple[str, ...]]:
    """A raw ``history`` frame's room (top level; ``None``: a resume across rooms) and each message's room."""
    if not isinstance(frame, dict):
        return GENERAL, ()
    top = frame.get("room")
    top = top[:100] if isinstance(top, str) and top else None
    msgs = frame.get("messages")
    rooms = tuple(
        room_of(m) if isinstance(m, dict) and "room" in m else (top or GENERAL)
        for m in (msgs if isinstance(msgs, list) else ())
        if isinstance(m, dict)
    )
    return top, rooms
