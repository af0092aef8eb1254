"""The message store: SQLite in WAL mode, ordered ids, durable exactly-once keys.

All calls are synchronous and short; they run on the event loop thread. With
``journal_mode=WAL`` and ``synchronous=NORMAL`` a commit is a write to the WAL
(no fsync), which survives ``kill -9`` of the process: once :meth:`Store.commit`
returns, the messages are on disk as far as the OS is concerned.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from workspace_tui.protocol import ChatMessage, iso_timestamp, make_message_id, message_id_key

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    username TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    client_msg_id TEXT
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_client_msg_id
    ON messages (username, client_msg_id) WHERE client_msg_id IS NOT NULL;
"""

_COLUMNS = "id, user_id, username, text, created_at, client_msg_id"


class IdClock:
    """Issues message ids in strictly increasing order, even if the wall clock steps back."""

    __slots__ = ("ms", "seq")

    def __init__(self, last_id: str | None = None) -> None:
        key = message_id_key(last_id) if last_id else None
        self.ms, self.seq = key if key else (0, -1)

    def next(self) -> tuple[str, int]:
        """The next id and its millisecond timestamp."""
        now = time.time_ns() // 1_000_000
        if now > self.ms:
            self.ms, self.seq = now, 0
        else:
            self.seq += 1
            if self.seq > 999_999:  # a million in one ms: borrow the next one
                self.ms, self.seq = self.ms + 1, 0
        return make_message_id(self.ms, self.seq), self.ms


def _row(row: tuple) -> ChatMessage:
    return ChatMessage(*row)


class Store:
    """SQLite-backed history. ``path`` may be ``":memory:"``."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        row = self.db.execute("SELECT max(id) FROM messages").fetchone()
        self.clock = IdClock(row[0] if row else None)
        self.generation = 0  # bumped by every commit: lets readers cache what they derived from the store

    # -- writes --------------------------------------------------------------

    def new_message(self, user_id: str, username: str, text: str, client_msg_id: str | None) -> ChatMessage:
        """A message with the next id; not stored until :meth:`commit`."""
        mid, ms = self.clock.next()
        return ChatMessage(mid, user_id, username, text, iso_timestamp(ms), client_msg_id)

    def commit(self, messages: Iterable[ChatMessage]) -> None:
        """Store *messages* in one transaction. Raises ``sqlite3.Error`` on failure (nothing stored)."""
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany(
                f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                [(m.id, m.user_id, m.username, m.text, m.created_at, m.client_msg_id) for m in messages],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            self.generation += 1

    # -- reads ---------------------------------------------------------------

    def by_client_msg_id(self, username: str, client_msg_id: str) -> ChatMessage | None:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE username = ? AND client_msg_id = ?",
            (username, client_msg_id),
        ).fetchone()
        return _row(row) if row else None

    def latest(self, limit: int, before: str | None = None) -> tuple[list[ChatMessage], bool]:
        """Up to *limit* messages before *before* (or the newest), oldest first, and whether older ones exist."""
        if limit <= 0:
            if before is None:
                more = self.db.execute("SELECT 1 FROM messages LIMIT 1").fetchone()
            else:
                more = self.db.execute("SELECT 1 FROM messages WHERE id < ? LIMIT 1", (before,)).fetchone()
            return [], more is not None
        if before is None:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM messages ORDER BY id DESC LIMIT ?", (limit + 1,)
            ).fetchall()
        else:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE id < ? ORDER BY id DESC LIMIT ?", (before, limit + 1)
            ).fetchall()
        has_more = len(rows) > limit
        rows = rows[:limit]
        rows.reverse()
        return [_row(r) for r in rows], has_more

    def after(self, since: str, chunk: int = 500) -> Iterator[list[ChatMessage]]:
        """Every message after *since*, oldest first, in chunks of at most *chunk*."""
        cursor = since
        while True:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE id > ? ORDER BY id LIMIT ?", (cursor, chunk)
            ).fetchall()
            if not rows:
                return
            yield [_row(r) for r in rows]
            if len(rows) < chunk:
                return
            cursor = rows[-1][0]

    def last_id(self) -> str | None:
        row = self.db.execute("SELECT max(id) FROM messages").fetchone()
        return row[0] if row else None

    def oldest_id(self) -> str | None:
        row = self.db.execute("SELECT min(id) FROM messages").fetchone()
        return row[0] if row else None

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM messages").fetchone()[0]

    def close(self) -> None:
        try:
            if self.path != ":memory:":
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self.db.close()
