"""Read positions kept by the server: the frames about them and when to report ours.

Pure: no I/O, the time is given. ``connected.rooms`` says where each room's reading
stopped (``lastRead``) and how much is unread; ``read:position`` says another
connection of ours read further (protocol.py builds ``read:update``, not yet these two). :class:`ReadReporter` decides when a
``read:update`` goes out: only forward, at most one per :data:`READ_UPDATE_INTERVAL`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from workspace_tui.protocol import GENERAL, UNREAD_CAP, message_id_key

READ_UPDATE_INTERVAL = 1.0  # seconds between two read:update frames: scrolling must not flood the server


class RoomSummary(NamedTuple):
    """One room of ``connected.rooms``: where we stopped reading and what came since."""

    room: str
    last_read: str | None  # None: never read anything here
    unread: int  # messages after last_read, not ours; UNREAD_CAP means "that many or more"
    mentions: int  # those of them that name us
    last_message_id: str | None = None
    kind: str = "public"  # "public", "private" or "dm"
    topic: str = ""
    members: int = 0
    with_: tuple[str, ...] = ()  # a DM's other participants


class ReadPositionChanged(NamedTuple):
    """Another connection of ours (a window, a device) read *room* up to *message_id*."""

    room: str
    message_id: str


def _message_id(value: Any) -> str | None:
    return value if isinstance(value, str) and message_id_key(value) is not None else None


def _count(value: Any) -> int:
    return max(0, min(value, UNREAD_CAP)) if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_rooms(frame: Any) -> tuple[RoomSummary, ...]:
    """The room summaries of a raw ``connected`` frame; ``()`` from a server that sends none.

    Entries that are not objects or name no room are skipped: a newer server may add kinds we do not know.
    """
    rooms = frame.get("rooms") if isinstance(frame, dict) else None
    if not isinstance(rooms, list):
        return ()
    out = []
    for item in rooms[:10_000]:  # bounded, whatever the server sends
        summary = parse_room_summary(item)
        if summary is not None:
            out.append(summary)
    return tuple(out)


def parse_room_summary(item: Any) -> RoomSummary | None:
    """One ROOM SUMMARY object (``connected.rooms``, ``room:joined``); ``None`` when it names no room."""
    if not isinstance(item, dict) or not isinstance(item.get("room"), str) or not item["room"]:
        return None
    kind = item.get("kind")
    topic = item.get("topic")
    members = item.get("members")
    with_ = item.get("with")
    return RoomSummary(
        item["room"][:100],
        _message_id(item.get("lastRead")),
        _count(item.get("unread")),
        _count(item.get("mentions")),
        _message_id(item.get("lastMessageId")),
        kind if kind in ("public", "private", "dm") else ("dm" if item["room"].startswith("dm:") else "public"),
        topic[:200] if isinstance(topic, str) else "",
        members if isinstance(members, int) and not isinstance(members, bool) and members >= 0 else 0,
        tuple(n[:64] for n in with_[:8] if isinstance(n, str)) if isinstance(with_, list) else (),
    )


def parse_read_position(frame: Any) -> ReadPositionChanged | None:
    """A raw ``read:position`` frame as an event; ``None`` for any other or a malformed one."""
    if not isinstance(frame, dict) or frame.get("type") != "read:position":
        return None
    room, mid = frame.get("room"), _message_id(frame.get("messageId"))
    if not isinstance(room, str) or not room or mid is None:
        return None
    return ReadPositionChanged(room, mid)


class ReadReporter:
    """When our read position goes to the server: forward only, coalesced, at most one a second.

    ``known`` is the newest position the server has (from ``connected``, ``read:position``,
    or what we sent). The caller says what was read (:meth:`read`), asks what to send
    (:meth:`take`, then :meth:`sent`) and, if nothing yet, how long to wait (:meth:`wait`).
    """

    def __init__(self, interval: float = READ_UPDATE_INTERVAL) -> None:
        self.interval = interval
        self.known: str | None = None
        self.wanted: str | None = None  # read here, not yet sent
        self._sent_at: float | None = None

    def learned(self, message_id: str | None) -> None:
        """The server has this position (from ``connected`` or another connection of ours)."""
        if message_id is not None and (self.known is None or message_id > self.known):
            self.known = message_id
        if self.wanted is not None and self.known is not None and self.wanted <= self.known:
            self.wanted = None  # nothing left to say

    def read(self, message_id: str) -> bool:
        """The user has read up to *message_id*; ``True`` when that is news for the server."""
        if self.known is not None and message_id <= self.known:
            return False
        if self.wanted is not None and message_id <= self.wanted:
            return False  # already on its way
        self.wanted = message_id
        return True

    def wait(self, now: float) -> float:
        """Seconds before the next ``read:update`` may go (0: now)."""
        if self._sent_at is None:
            return 0.0
        return max(0.0, self._sent_at + self.interval - now)

    def take(self, now: float) -> str | None:
        """The position to send now, or ``None`` (nothing new, or too soon: see :meth:`wait`)."""
        if self.wanted is None or self.wait(now) > 0:
            return None
        mid, self.wanted = self.wanted, None
        self._sent_at = now
        return mid

    def sent(self, message_id: str, ok: bool) -> None:
        """What became of a position from :meth:`take`: on the server (``ok``), or to send after the next join."""
        if ok:
            self.learned(message_id)
        else:
            self._sent_at = None  # nothing went out: no reason to wait after the join
            self.read(message_id)


__all__ = [
    "GENERAL",
    "READ_UPDATE_INTERVAL",
    "UNREAD_CAP",
    "ReadPositionChanged",
    "ReadReporter",
    "RoomSummary",
    "parse_read_position",
    "parse_room_summary",
    "parse_rooms",
]
