"""What a backend answers about a message it was asked to store, when it did not simply store it.

A stored message needs no answer of its own: it comes back through
:meth:`~.chat.ChatCore.committed`, in the workspace's global order, with the
draft it came from.
"""

from __future__ import annotations

from typing import NamedTuple

from workspace_tui.protocol import ChatMessage


class Duplicate(NamedTuple):
    """The same user sent the same ``clientMsgId`` before: this is the message stored then."""

    original: ChatMessage


class RateLimited(NamedTuple):
    """A workspace-wide rate limit (kept by the backend across nodes) refused it."""

    retry_after_ms: int


class Failed(NamedTuple):
    """The backend could not store it (disk full, broker down): the client may send it again."""

    reason: str


Outcome = Duplicate | RateLimited | Failed
