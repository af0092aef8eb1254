"""Who a message mentions: the names a room's unread ``@`` counts are kept for.

Pure. The stores keep read positions and mentions (``backends/reads.py``); the core keeps the
positions of users connected here (``User.last_read``).
"""

from __future__ import annotations

import re

from workspace_tui.protocol import name_key

MAX_MENTIONS = 32  # names one message can mention (more are not counted)
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_.\-]{1,32})")


def mentioned(text: str) -> list[str]:
    """The name keys *text* mentions with ``@name``, each once, at most ``MAX_MENTIONS``."""
    found: dict[str, None] = {}
    for match in _MENTION.finditer(text):
        found[name_key(match.group(1).rstrip(".-"))] = None
        if len(found) >= MAX_MENTIONS:
            break
    return list(found)
