"""The one interface every backend implements, and what a backend reports back.

Calls never block the event loop for long and never raise into the caller:
what completes later (a Redis round trip) is reported through
:class:`BackendEvents`, exactly as what completes at once (SQLite) is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from workspace_tui.core.history import HistoryQuery, HistoryResult
from workspace_tui.core.identity import Account, Claim
from workspace_tui.core.rooms import RoomInfo
from workspace_tui.core.outcomes import Outcome
from workspace_tui.core.state import Draft
from workspace_tui.protocol import ChatMessage, RoomRequest


class StoreError(Exception):
    """The store cannot be opened or used; the message says which and what to do, in one line."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"cannot open the store {where}: {reason}")
        self.where = where
        self.reason = reason


class BackendEvents(Protocol):
    """What a backend tells the server (which hands it to the core)."""

    def committed(self, messages: list[ChatMessage], drafts: list[Draft | None]) -> None:
        """New messages, in the workspace's order; ``drafts[i]`` is this node's draft of
        ``messages[i]``, ``None`` for another node's."""

    def stored(self, draft: Draft, outcome: Outcome) -> None:
        """*draft* was not stored as a new message (a resend, a global limit, a failure)."""

    def available(self, up: bool) -> None:
        """The backend can (``True``) or cannot take messages from now on."""

    def remote_presence(self, node: str, username: str, user_id: str, status: str, count: int,
                        exclude_user: bool, verified: bool = False) -> None:
        """Another node reports a user's connections there."""

    def remote_typing(self, username: str, user_id: str, is_typing: bool) -> None:
        """Another node's user started or stopped typing."""

    def remote_read(self, username: str, room: str, message_id: str) -> None:
        """A user read *room* up to *message_id* on another node."""

    def remote_room(self, event: dict[str, Any]) -> None:
        """Another node's room change: ``t`` = member (user, room, joined, info), topic (room, topic)
        or invite (user, room, by), as the core relayed it."""

    def node_users(self, node: str, users: dict[str, tuple[str, str, int, bool]]) -> None:
        """Everything another node has: ``username -> (user_id, status, connections, verified)``."""

    def node_gone(self, node: str) -> None:
        """Another node stopped or died."""

    def local_users(self) -> dict[str, tuple[str, str, int, bool]]:
        """This node's users, to announce to the others."""


class Backend(ABC):
    """Messages, history, exactly-once keys, the workspace-wide caps and the link to other nodes."""

    #: where the messages are, for the start-up line and logs (no secrets)
    label: str = ""

    @abstractmethod
    async def start(self, events: BackendEvents) -> None:
        """Open the store (connect); raises ``OSError`` with a readable message if it cannot."""

    @property
    @abstractmethod
    def last_message_id(self) -> str | None:
        """The newest message stored when :meth:`start` returned."""

    @abstractmethod
    def append(self, draft: Draft) -> None:
        """Store *draft* (batched with the others of this loop iteration), after every earlier
        one; the answer is :meth:`BackendEvents.committed` or :meth:`BackendEvents.stored`."""

    @abstractmethod
    def read(self, query: HistoryQuery, done: Callable[[HistoryResult | Exception], None]) -> None:
        """Read history; *done* is called with the result (maybe before this returns)."""

    def reserve(self, username: str, cap: int, done: Callable[[bool], None]) -> None:
        """Take one slot of *username*'s workspace-wide connection cap; ``done(False)`` when full.
        A single node's cap is the core's own, so the default grants at once."""
        done(True)

    def release(self, username: str) -> None:
        """Give back a slot :meth:`reserve` granted."""

    @abstractmethod
    def account(self, name_key: str, done: Callable[[Account | None | Exception], None]) -> None:
        """Read the account of a name (``None``: nobody has it); *done* gets it or the error."""

    @abstractmethod
    def claim(self, claim: Claim, done: Callable[[bool | Exception], None]) -> None:
        """Write ``claim.account`` if the stored one is still ``claim.expected``; *done* gets
        whether it was written (``False``: another handshake or an admin changed it first)."""

    @abstractmethod
    def rooms_of(self, name_key: str, username: str, done: Callable[[list[RoomInfo] | Exception], None],
                 general_only: bool = False) -> None:
        """The rooms *username* is in, ``general`` first, each with where they stopped reading it and
        the unread and mention counts after that (``connected.rooms``); with *general_only*, only
        ``general`` (a client of the protocol document alone stays there)."""

    @abstractmethod
    def room_op(self, request: RoomRequest, username: str, name_key: str,
                done: Callable[[dict[str, Any] | Exception], None]) -> None:
        """Carry out ``room:create|join|leave|invite|topic|list|members`` for *username*. *done* gets
        ``{"error": (code, message)}`` or: create/join ``{"info": RoomInfo}``; leave, topic ``{}``;
        invite ``{"username": invited}``; list ``{"rooms": [wire dicts]}``; members
        ``{"members": [{"username", "userId", "verified"}], "next": name | None}``."""

    @abstractmethod
    def save_read(self, name_key: str, room: str, message_id: str) -> None:
        """Move the user's position in *room* forward to *message_id* (an older one is ignored)."""

    def relay(self, event: dict[str, Any]) -> None:
        """Tell the other nodes about a local user's presence or typing (nothing with one node)."""

    def health(self) -> dict[str, Any]:
        """Extra fields for ``/healthz`` (and ``"status": "degraded"`` when the backend is down)."""
        return {}

    def count(self) -> int | None:
        """How many messages are stored, where that is cheap to know."""
        return None

    @abstractmethod
    async def close(self) -> None:
        """Finish what was appended (as far as possible), then disconnect."""
