"""The outbox in memory: our messages in send order, and where each one stands.

:class:`Ledger` is the bookkeeping half of :class:`~workspace_tui.client.ChatClient`:
which entries wait, which failed and why, which went out on the current
connection without an answer yet, and which went out at some point and were
never answered (the server may have stored them). It does no I/O: the client
mirrors each change to the on-disk :class:`~workspace_tui.client.outbox.Outbox`
and emits the events.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from workspace_tui.client.events import OutboxEntry


class Ledger:
    """Outbox entries in send order, failure codes, and what is in flight."""

    def __init__(self) -> None:
        self.entries: OrderedDict[str, OutboxEntry] = OrderedDict()
        self.codes: dict[str, str] = {}  # client_msg_id -> error code of failed entries
        self.in_flight: dict[str, int] = {}  # client_msg_id -> frame size, sent on this connection, unanswered
        self.in_doubt: set[str] = set()  # sent at least once and never answered: maybe stored

    def __contains__(self, client_msg_id: object) -> bool:
        return client_msg_id in self.entries

    def get(self, client_msg_id: str) -> OutboxEntry | None:
        return self.entries.get(client_msg_id)

    @property
    def queued(self) -> int:
        """Entries waiting for the server (failed ones not counted)."""
        return sum(1 for e in self.entries.values() if not e.failed)

    def load(self, rows: Iterable[tuple[OutboxEntry, str | None]]) -> list[OutboxEntry]:
        """Add entries read from disk that are not known yet; returns those added, in order."""
        added = []
        for entry, code in rows:
            if entry.client_msg_id in self.entries:
                continue
            self.entries[entry.client_msg_id] = entry
            if entry.failed:
                self.codes[entry.client_msg_id] = code or "failed"
            added.append(entry)
        return added

    def add(self, entry: OutboxEntry, code: str | None = None) -> None:
        """A new entry, at the end (failed at once when *code* is given)."""
        self.entries[entry.client_msg_id] = entry
        if code:
            self.codes[entry.client_msg_id] = code

    def next_unsent(self) -> OutboxEntry | None:
        """The oldest entry that is neither failed nor in flight on this connection."""
        for entry in self.entries.values():
            if not entry.failed and entry.client_msg_id not in self.in_flight:
                return entry
        return None

    def sent(self, client_msg_id: str, size: int) -> None:
        """The entry went out on the current connection as a frame of *size* bytes."""
        self.in_flight[client_msg_id] = size
        self.in_doubt.add(client_msg_id)

    def acknowledged(self, client_msg_id: str) -> OutboxEntry | None:
        """The server stored it: forget it. Returns the entry, or ``None`` when it was not ours."""
        entry = self.entries.pop(client_msg_id, None)
        self._settled(client_msg_id)
        self.codes.pop(client_msg_id, None)
        return entry

    def failed(self, entry: OutboxEntry, code: str, reason: str) -> OutboxEntry:
        """The entry can never be accepted: it stays, marked failed. Returns the failed entry."""
        failed = entry._replace(failed=True, error=reason)
        if entry.client_msg_id in self.entries:
            self.entries[entry.client_msg_id] = failed
            self.codes[entry.client_msg_id] = code
        self._settled(entry.client_msg_id)
        return failed

    def pending_again(self, entry: OutboxEntry) -> None:
        """A failed entry is to be sent again, keeping its place in the order."""
        self.entries[entry.client_msg_id] = entry
        self.codes.pop(entry.client_msg_id, None)

    def remove(self, client_msg_id: str) -> OutboxEntry | None:
        """Drop an entry without sending it (discarded)."""
        self.codes.pop(client_msg_id, None)
        self._settled(client_msg_id)
        return self.entries.pop(client_msg_id, None)

    def resend_from(self, client_msg_id: str) -> None:
        """The server refused *client_msg_id* for now (rate limited): it and every later one go again."""
        self.in_doubt.discard(client_msg_id)  # answered: not stored
        order = list(self.entries)
        if client_msg_id in self.entries:
            for later in order[order.index(client_msg_id) :]:
                self.in_flight.pop(later, None)

    def connection_closed(self) -> None:
        """The connection ended: nothing is in flight any more (what was stays in doubt)."""
        self.in_flight.clear()

    def biggest_in_flight(self) -> str | None:
        """The in-flight entry with the largest frame (the likely cause of a 1009 close)."""
        if not self.in_flight:
            return None
        return max(self.in_flight, key=self.in_flight.__getitem__)

    def _settled(self, client_msg_id: str) -> None:
        self.in_flight.pop(client_msg_id, None)
        self.in_doubt.discard(client_msg_id)
