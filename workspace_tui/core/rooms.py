"""Rooms as the core sees them: what a user is in, and what ``connected.rooms`` says about each.

Pure. The stores keep rooms, members and read positions; the core keeps, for the users
connected here, the rooms they are in, so that a room's messages and typing reach its members
only. A direct message's members are in its id (``dm:alice,bob``): no store is asked.
"""

from __future__ import annotations

from typing import NamedTuple

from workspace_tui.protocol import DM_PREFIX, GENERAL, dm_participants


class RoomInfo(NamedTuple):
    """One room of a user: what ``connected.rooms`` and ``room:joined`` carry."""

    room: str
    kind: str  # public, private, dm
    topic: str = ""
    members: int = 0
    unread: int = 0
    mentions: int = 0
    last_read: str | None = None
    last_message_id: str | None = None

    def to_wire(self, me: str = "") -> dict[str, object]:
        out: dict[str, object] = {
            "room": self.room, "kind": self.kind, "topic": self.topic, "members": self.members,
            "unread": self.unread, "mentions": self.mentions, "lastRead": self.last_read,
            "lastMessageId": self.last_message_id,
        }
        if self.kind == "dm":
            out["with"] = [n for n in dm_participants(self.room) or () if n != me.lower()]
        return out


def general_info(members: int = 0) -> RoomInfo:
    return RoomInfo(GENERAL, "public", "", members)


def dm_info(room: str) -> RoomInfo:
    return RoomInfo(room, "dm", "", len(dm_participants(room) or ()))


def is_dm(room: str) -> bool:
    return room.startswith(DM_PREFIX)
