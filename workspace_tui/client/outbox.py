"""The client's durable state: the outbox and the resume point, in one SQLite file.

One file per server and username (``paths.client_state_path``). WAL mode and a
busy timeout make it safe for two processes of the same user (a TUI and a
``workspace send``) to use it at once: both may send the same entry, and the
server's ``clientMsgId`` dedupe makes that harmless. Writes are committed with
``synchronous=FULL`` before :meth:`Outbox.add` returns, so a message the user
sent survives a crash of the client, or of the machine.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from workspace_tui.client.events import OutboxEntry

_SCHEMA = """
BEGIN;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_msg_id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    failed INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error TEXT,
    room TEXT
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
COMMIT;
"""  # one transaction: a new file costs one commit, not one per table (and no fsync: see __init__)

LAST_MESSAGE_ID = "last_message_id"
_LEFT_OPEN: list[sqlite3.Connection] = []  # see Outbox.close


def _with_retry(step, attempts: int = 100, pause: float = 0.05):
    """*step*, again while another process holds the file: two processes of one user (two tails)
    opening a new state file at once collide on the switch to WAL, which the busy timeout does not cover."""
    import time

    for attempt in range(attempts):
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(pause)


class Outbox:
    """Unacknowledged messages in send order, plus small key/value state."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 30000")
        _with_retry(lambda: self._db.execute("PRAGMA journal_mode = WAL"))
        # The schema needs no sync of its own: a crash loses at most the empty tables, made again
        # next time, and the first add() syncs the log that holds them too.
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute("PRAGMA synchronous = FULL")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "room" not in columns:  # a file from before rooms: its messages all go to general
            self._db.execute("ALTER TABLE outbox ADD COLUMN room TEXT")

    def close(self, *, checkpoint: bool = True) -> None:
        """Close the file. ``checkpoint=False`` is for a process that exits right after: the
        connection is left open, so SQLite neither folds the log into the file (two fsyncs) nor
        deletes it (which the next start would make again, with another). Everything committed
        is in the log and as safe as after a crash, which the log is made for."""
        if checkpoint:
            self._db.close()
        else:
            _LEFT_OPEN.append(self._db)  # referenced: never closed before the process ends

    # -- outbox ---------------------------------------------------------------

    def add(self, entry: OutboxEntry, error_code: str | None = None) -> None:
        """Store *entry* durably (committed before this returns)."""
        self._db.execute(
            "INSERT OR IGNORE INTO outbox (client_msg_id, text, created_at, failed, error_code, error, room)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.client_msg_id, entry.text, entry.created_at, int(entry.failed), error_code, entry.error, entry.room),
        )

    def remove(self, client_msg_id: str) -> bool:
        """Forget an entry (acknowledged or discarded); ``False`` when it was not there."""
        cur = self._db.execute("DELETE FROM outbox WHERE client_msg_id = ?", (client_msg_id,))
        return cur.rowcount > 0

    def remove_acknowledged(self, client_msg_id: str) -> None:
        """Forget an entry the server has stored, without waiting for the disk: should a crash
        undo this, the entry goes out again and the server answers with its stored copy (the
        clientMsgId dedupe), so nothing is sent twice. Made durable by the next add() or close()."""
        self._db.execute("PRAGMA synchronous = NORMAL")
        try:
            self.remove(client_msg_id)
        finally:
            self._db.execute("PRAGMA synchronous = FULL")

    def mark_failed(self, client_msg_id: str, code: str, reason: str) -> None:
        self._db.execute(
            "UPDATE outbox SET failed = 1, error_code = ?, error = ? WHERE client_msg_id = ?",
            (code, reason, client_msg_id),
        )

    def mark_pending(self, client_msg_id: str) -> None:
        self._db.execute(
            "UPDATE outbox SET failed = 0, error_code = NULL, error = NULL WHERE client_msg_id = ?",
            (client_msg_id,),
        )

    def entries(self) -> list[tuple[OutboxEntry, str | None]]:
        """Every entry in send order, with the error code of failed ones."""
        rows = self._db.execute(
            "SELECT client_msg_id, text, created_at, failed, error_code, error, room FROM outbox ORDER BY seq"
        ).fetchall()
        return [
            (OutboxEntry(cmid, text, created, bool(failed), error, room), code)
            for cmid, text, created, failed, code, error, room in rows
        ]

    def pending_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM outbox WHERE failed = 0").fetchone()[0]

    # -- state ------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def advance_last_message_id(self, message_id: str) -> None:
        """Move the resume point forward (ids sort as strings); never back."""
        self._db.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            " WHERE excluded.value > state.value",
            (LAST_MESSAGE_ID, message_id),
        )
