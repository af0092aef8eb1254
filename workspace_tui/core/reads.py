"""Read positions: where each user stopped reading each room, and who a message mentions.

Pure. The stores keep the positions; the core keeps the position of users connected here and
sends ``connected.rooms`` and ``read:position`` from them.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from workspace_tui.protocol import GENERAL, name_key

MAX_MENTIONS = 32  # names one message can mention (more are not counted)
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_.\-]{1,32})")


class ReadState(NamedTuple):
    """What a user's ``connected`` says about a room."""

    last_read: str | None  # the newest message they have read (None: never read anything)
    unread: int  # messages after it by others, up to UNREAD_CAP
    mentions: int  # ... of them that mention the user


NOTHING_READ = ReadState(None, 0, 0)


def mentioned(text: str) -> list[str]:
    """The name keys *text* mentions with ``@name``, each once, at most ``MAX_MENTIONS``."""
    found: dict[str, None] = {}
    for match in _MENTION.finditer(text):
        found[name_key(match.group(1).rstrip(".-"))] = None
        if len(found) >= MAX_MENTIONS:
            break
    return list(found)


def room_summary(room: str, state: ReadState, last_message_id: str | None) -> dict[str, object]:
    return {"room": room, "lastRead": state.last_read, "unread": state.unread, "mentions": state.mentions,
            "lastMessageId": last_message_id}


__all__ = ["GENERAL", "MAX_MENTIONS", "NOTHING_READ", "ReadState", "mentioned", "room_summary"]
