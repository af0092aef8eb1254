"""History in byte budgets: what to ask the backend for, and frames that stay within ~512 KiB.

Every ``history`` frame (join, page, resume) carries at most
:data:`~workspace_tui.protocol.HISTORY_FRAME_BYTES` of JSON, unless a single
message is bigger than that on its own; then it goes alone. A backend reads
with a cheap size estimate (see :func:`estimate`) so it never loads much more
than one frame's worth; the exact cut is made here, on the encoded bytes.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from workspace_tui.protocol import HISTORY_FRAME_BYTES, ChatMessage

from .encoding import encode

# Room left in a frame for everything around the messages (type, reason, since, hasMore, gap).
_FRAME_OVERHEAD = 512
MESSAGES_BUDGET = HISTORY_FRAME_BYTES - _FRAME_OVERHEAD
RESUME_CHUNK = 500  # messages per resume read, at most


def estimate(text: str) -> int:
    """A backend's guess at a message's encoded size, from its text alone (cheap; the exact cut
    is made on the encoded bytes)."""
    return len(text) + 160


class HistoryQuery(NamedTuple):
    """A read the core asks a backend for.

    ``latest``: the newest messages with ``id < before`` (when given) and ``id <= upto`` (when
    given), at most ``limit``, returned oldest first. ``after``: the oldest messages with
    ``id > after`` and ``id <= upto``, at most ``limit``. Both stop once the estimated size
    reaches ``max_bytes`` (so at least one message is returned when any matches, and the
    last one may overshoot: the core cuts exactly).
    """

    kind: Literal["latest", "after"]
    limit: int
    max_bytes: int = MESSAGES_BUDGET
    before: str | None = None
    after: str | None = None
    upto: str | None = None
    rooms: tuple[str, ...] = ("general",)  # only messages of these rooms


class HistoryResult(NamedTuple):
    """What a backend read: ``messages`` oldest first; ``has_more``: further messages match
    beyond the ones returned (older for ``latest``, newer for ``after``); ``oldest_id``: the
    oldest message the backend holds at all (``after`` reads only, to detect a gap)."""

    messages: list[ChatMessage]
    has_more: bool
    oldest_id: str | None = None


def encoded_messages(messages: list[ChatMessage]) -> list[bytes]:
    return [encode(m.to_wire()) for m in messages]


def fit_newest(parts: list[bytes], budget: int = MESSAGES_BUDGET) -> int:
    """How many of the last *parts* fit in *budget* bytes (commas included); at least one."""
    total = 0
    n = 0
    for part in reversed(parts):
        total += len(part) + 1
        if n and total > budget:
            break
        n += 1
    return n


def fit_oldest(parts: list[bytes], budget: int = MESSAGES_BUDGET) -> int:
    """How many of the first *parts* fit in *budget* bytes (commas included); at least one."""
    total = 0
    n = 0
    for part in parts:
        total += len(part) + 1
        if n and total > budget:
            break
        n += 1
    return n


def history_payload(parts: list[bytes], reason: str, has_more: bool, **extra: Any) -> bytes:
    """The ``history`` frame around already encoded messages (joined, not re-encoded)."""
    tail: dict[str, Any] = {"hasMore": has_more, **extra}
    return (
        b'{"type":"history","reason":"' + reason.encode() + b'","messages":['
        + b",".join(parts) + b"]," + encode(tail)[1:]
    )
