"""Room ids as the one-liners take them from the user and show them back.

Pure and cheap to import. A user types ``dev``, ``#dev``, ``@bob`` (a direct
message with bob) or the id itself (``dm:alice,bob``); lines show ``#dev`` for a
room and ``@bob`` / ``@bob,carol`` for a direct message, naming the others only.
"""

from __future__ import annotations

import re

from workspace_tui.protocol import GENERAL, validate_username

ROOM_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
DM_PREFIX = "dm:"
MAX_RECIPIENTS = 7  # a direct message has 2 to 8 participants, the sender included


class RoomNameError(ValueError):
    """What the user typed is not a room: the message says why, in one line."""


def dm_room(me: str, others: list[str] | tuple[str, ...]) -> str:
    """The id of the direct message between *me* and *others* (``dm:`` + sorted lowercase names)."""
    names = {me.lower()}
    for name in others:
        name = name.lstrip("@")
        reason = validate_username(name)
        if reason:
            raise RoomNameError(f"{name!r} is not a username: {reason}")
        names.add(name.lower())
    if len(names) < 2:
        raise RoomNameError("a direct message needs someone else: --to is yourself")
    if len(names) > MAX_RECIPIENTS + 1:
        raise RoomNameError(f"a direct message has at most {MAX_RECIPIENTS} other people (got {len(names) - 1})")
    return DM_PREFIX + ",".join(sorted(names))


def parse_room(value: str, me: str) -> str:
    """The room id for what the user typed after ``--room``."""
    value = value.strip()
    if value.startswith("@"):
        return dm_room(me, [n for n in value[1:].split(",") if n])
    if value.startswith(DM_PREFIX):  # the id itself, taken as it is: it may not be ours (the server says so)
        names = [n for n in value[len(DM_PREFIX):].split(",") if n]
        if len(names) < 2:
            raise RoomNameError(f"{value!r} is not a direct message: it names 2 to {MAX_RECIPIENTS + 1} people")
        return dm_room(names[0], names[1:])
    room = value[1:] if value.startswith("#") else value
    if not ROOM_ID.fullmatch(room):
        raise RoomNameError(
            f"{value!r} is not a room name: lowercase letters, digits, '_' and '-', at most 32,"
            " starting with a letter or digit (or @NAME for a direct message)"
        )
    return room


def room_label(room: str | None, me: str) -> str:
    """``#dev``, ``#general``; ``@bob`` for the direct message between *me* and bob."""
    if not room:
        room = GENERAL
    if room.startswith(DM_PREFIX):
        others = [n for n in room[len(DM_PREFIX):].split(",") if n and n != me.lower()]
        return "@" + ",".join(others or [me.lower()])
    return "#" + room
