"""The embedded backend: one SQLite file in WAL mode, ordered ids, durable exactly-once keys.

Every call is synchronous and short and runs on the event loop thread. With
``journal_mode=WAL`` and ``synchronous=NORMAL`` a commit is a write to the WAL
(no fsync), which survives ``kill -9`` of the process. Drafts appended during
one loop iteration are committed together, in one transaction, at its end.
Reads stop once a byte estimate (:func:`~workspace_tui.core.history.estimate`)
reaches the budget, walking rows one at a time, so no read loads much more than
a frame's worth. Age and size limits and the free-disk floor are kept by
:class:`~.sqlite_upkeep.Upkeep`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workspace_tui.core.identity import Account, Claim
from workspace_tui.core.rooms import RoomInfo
from workspace_tui.core.history import HistoryQuery, HistoryResult, estimate
from workspace_tui.core.outcomes import Duplicate, Failed
from workspace_tui.core.state import Draft
from workspace_tui.protocol import ChatMessage, RoomRequest, iso_timestamp, make_message_id, message_id_key

from . import reads, rooms_sqlite
from .accounts import SQLITE_SCHEMA, sqlite_get, sqlite_put
from .base import Backend, BackendEvents, StoreError
from .sqlite_upkeep import Upkeep

log = logging.getLogger("workspace.server.store")

# A rowid table, unlike the store's others: a message may be ~1 MB, and in a WITHOUT ROWID
# table (a B-tree of whole rows) every key comparison on the way to a row that spills onto
# overflow pages reads all of that row first: a history read of big messages cost 12x more.
_MESSAGE_COLUMNS = (
    "id TEXT PRIMARY KEY, user_id TEXT NOT NULL, username TEXT NOT NULL, text TEXT NOT NULL,"
    " created_at TEXT NOT NULL, client_msg_id TEXT, verified INTEGER NOT NULL DEFAULT 0,"
    " room TEXT NOT NULL DEFAULT 'general'"
)
_SCHEMA = f"CREATE TABLE IF NOT EXISTS messages ({_MESSAGE_COLUMNS});"
_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS messages_client_msg_id
    ON messages (username, client_msg_id) WHERE client_msg_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, id);
"""
_COLUMNS = "id, user_id, username, text, created_at, client_msg_id, verified, room"


def _give_messages_a_rowid(db: sqlite3.Connection) -> None:
    """Rebuild a store's messages table made before it had rowids (once, in one transaction)."""
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'messages'").fetchone()
    if row is None or "WITHOUT ROWID" not in row[0].upper():
        return
    count = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    log.info("rebuilding the messages table of the store (%d messages; once)", count)
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(f"CREATE TABLE messages_rebuilt ({_MESSAGE_COLUMNS})")
        db.execute(f"INSERT INTO messages_rebuilt ({_COLUMNS}) SELECT {_COLUMNS} FROM messages ORDER BY id")
        db.execute("DROP TABLE messages")  # and its indexes: made again below
        db.execute("ALTER TABLE messages_rebuilt RENAME TO messages")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _message(row: tuple[Any, ...]) -> ChatMessage:
    return ChatMessage(*row[:6], bool(row[6]), row[7])


WAL_LIMIT = 16 * 1024 * 1024


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


def open_database(path: str) -> sqlite3.Connection:
    """The store at *path*, checked: a clear :class:`StoreError` for every way it can be wrong."""
    if path != ":memory:":
        file = Path(path)
        folder = file.parent
        if file.is_dir():
            raise StoreError(path, "it is a folder, not a file")
        if not folder.exists():
            raise StoreError(path, f"the folder {folder} does not exist (create it, or choose another --db)")
        if not folder.is_dir():
            raise StoreError(path, f"{folder} is a file, not a folder")
        if not file.exists() and not os.access(folder, os.W_OK | os.X_OK):
            raise StoreError(path, f"the folder {folder} is not writable")
        if not file.exists():  # the whole history and every claim: readable by its owner only (SQLite's
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # -wal and -shm files copy the mode)
    db = None
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")  # the -wal file shrinks back after a checkpoint
        db.executescript(_SCHEMA)
        columns = {r[1] for r in db.execute("PRAGMA table_info(messages)")}
        if "verified" not in columns:  # a store from before names were owned
            db.execute("ALTER TABLE messages ADD COLUMN verified INTEGER NOT NULL DEFAULT 0")
        if "room" not in columns:  # ... or before rooms: every message was general's
            db.execute("ALTER TABLE messages ADD COLUMN room TEXT NOT NULL DEFAULT 'general'")
        _give_messages_a_rowid(db)
        db.executescript(_INDEXES)
        db.executescript(rooms_sqlite.SCHEMA)
        db.executescript(SQLITE_SCHEMA)
        db.executescript(reads.SQLITE_SCHEMA)
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        if db is not None:
            db.close()
        raise StoreError(path, _reason(exc, path)) from None
    if problems != ["ok"]:
        db.close()
        lines = [line.strip() for p in problems for line in p.splitlines()]
        raise StoreError(path, _damaged(path, next((x for x in lines if x and not x.startswith("***")), "?")))
    return db


def _damaged(path: str, detail: str) -> str:
    return (f"the database is damaged ({detail}); move it aside to start with an empty store, "
            f"or try to rescue it with: sqlite3 {path} .recover")


def _reason(exc: sqlite3.DatabaseError, path: str) -> str:
    text = str(exc)
    if "file is not a database" in text:
        return "it is not a workspace store (not an SQLite database)"
    if "malformed" in text:
        return _damaged(path, text)
    if "readonly" in text or "read-only" in text:
        return "it is read-only (the server must be able to write it)"
    if "unable to open" in text:
        return "the file cannot be opened (check its permissions and its folder's)"
    return text


class SQLiteBackend(Backend):
    """History in one SQLite file (``":memory:"`` for an ephemeral one)."""

    def __init__(self, path: Path | str, *, retention: float = 0.0, max_bytes: int = 0,
                 min_free_disk: int = 0) -> None:
        """*retention*: seconds a message is kept; *max_bytes*: what the messages may take in
        the file; *min_free_disk*: below this free space sends are refused (0 turns each off)."""
        self.path = str(path)
        self.label = self.path
        self.db = open_database(self.path)
        self._last = self._newest_id()
        self.clock = IdClock(self._last)
        self._events: BackendEvents | None = None
        self._batch: list[Draft] = []
        self._scheduled = False
        folder = None if self.path == ":memory:" else str(Path(self.path).resolve().parent)
        self.upkeep = Upkeep(self.db, folder, retention=retention, max_bytes=max_bytes,
                             min_free_disk=min_free_disk, on_disk=self._disk_low)

    async def start(self, events: BackendEvents) -> None:
        self._events = events
        self.upkeep.start()

    def _disk_low(self, low: bool) -> None:
        if self._events is not None:
            self._events.available(not low)

    @property
    def last_message_id(self) -> str | None:
        return self._last

    # -- writes --------------------------------------------------------------

    def append(self, draft: Draft) -> None:
        self._batch.append(draft)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.commit)

    def commit(self) -> None:
        """Store what was appended, in one transaction, and report it."""
        self._scheduled = False
        batch, self._batch = self._batch, []
        if not batch or self._events is None:
            return
        events = self._events
        fresh: list[Draft] = []
        try:
            for draft in batch:
                original = self._by_client_msg_id(draft) if draft.client_msg_id is not None else None
                if original is not None:
                    events.stored(draft, Duplicate(original))
                else:
                    fresh.append(draft)
            if not fresh:
                return
            messages = []
            for draft in fresh:
                mid, ms = self.clock.next()
                messages.append(draft.message(mid, iso_timestamp(ms)))
            self.insert(messages)
        except Exception as exc:
            log.error("could not store %d message(s): %s", len(fresh) or len(batch), exc)
            for draft in fresh or batch:
                events.stored(draft, Failed(str(exc)))
            return
        self._last = messages[-1].id
        events.committed(messages, fresh)  # type: ignore[arg-type]
        self.upkeep.committed()

    def insert(self, messages: list[ChatMessage]) -> None:
        """Store already made messages in one transaction (the server's commit, and tools)."""
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany(
                f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(m.id, m.user_id, m.username, m.text, m.created_at, m.client_msg_id, int(m.verified), m.room)
                 for m in messages],
            )
            mentions = reads.mention_rows(messages)
            if mentions:
                db.executemany("INSERT OR IGNORE INTO mentions (name_key, room, message_id) VALUES (?, ?, ?)",
                               mentions)
            rooms_sqlite.store_dms(db, messages)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    # -- reads ---------------------------------------------------------------

    def _by_client_msg_id(self, draft: Draft) -> ChatMessage | None:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE username = ? AND client_msg_id = ?",
            (draft.user.username, draft.client_msg_id),
        ).fetchone()
        return _message(row) if row else None

    def read(self, query: HistoryQuery, done: Callable[[HistoryResult | Exception], None]) -> None:
        try:
            result = self.read_now(query)
        except Exception as exc:
            log.error("history read failed: %s", exc)
            done(exc)
            return
        done(result)

    def read_now(self, query: HistoryQuery) -> HistoryResult:
        """The answer to *query* (see :class:`~workspace_tui.core.history.HistoryQuery`)."""
        where, args = [f"room IN ({','.join('?' * len(query.rooms))})"], [*query.rooms]
        if query.kind == "after":
            where.append("id > ?")
            args.append(query.after)
        if query.before is not None:
            where.append("id < ?")
            args.append(query.before)
        if query.upto is not None:
            where.append("id <= ?")
            args.append(query.upto)
        forward = query.kind == "after"
        cond = " AND ".join(where) or "1"
        order = "ASC" if forward else "DESC"
        cursor = self.db.execute(f"SELECT {_COLUMNS} FROM messages WHERE {cond} ORDER BY id {order}", args)
        messages: list[ChatMessage] = []
        used = 0
        has_more = False
        try:
            # One row at a time, and no further once the budget is used: a big text is loaded
            # only when it is sent. Whether more follow is asked of the index alone.
            for row in cursor:
                if len(messages) >= query.limit:
                    has_more = True
                    break
                messages.append(_message(row))
                used += estimate(row[3])
                if used >= query.max_bytes:
                    edge = "id > ?" if forward else "id < ?"
                    more = self.db.execute(f"SELECT 1 FROM messages WHERE {cond} AND {edge} LIMIT 1",
                                           [*args, row[0]]).fetchone()
                    has_more = more is not None
                    break
        finally:
            cursor.close()
        oldest = None
        if forward:
            row = self.db.execute("SELECT min(id) FROM messages").fetchone()
            oldest = row[0] if row else None
        else:
            messages.reverse()
        return HistoryResult(messages, has_more, oldest)

    def _newest_id(self) -> str | None:
        row = self.db.execute("SELECT max(id) FROM messages").fetchone()
        return row[0] if row else None

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM messages").fetchone()[0]

    def health(self) -> dict[str, Any]:
        up = self.upkeep
        h: dict[str, Any] = {"store_bytes": up.used}
        if up.disk_free is not None:
            h["disk_free"] = up.disk_free
        if up.disk_low:
            h["disk_low"] = True
            h["status"] = "degraded"
        return h

    def new_message(self, username: str, text: str) -> ChatMessage:
        """A message with the next id, not stored (for tools and tests that plant history)."""
        from workspace_tui.protocol import user_id_for

        mid, ms = self.clock.next()
        return ChatMessage(mid, user_id_for(username), username, text, iso_timestamp(ms))

    def all_after(self, since: str) -> list[ChatMessage]:
        """Every message after *since*, oldest first (for tests and tools, not the server)."""
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM messages WHERE id > ? ORDER BY id", (since,)).fetchall()
        return [_message(r) for r in rows]

    # -- accounts ------------------------------------------------------------

    def account(self, name_key: str, done: Callable[[Account | None | Exception], None]) -> None:
        try:
            found = sqlite_get(self.db, name_key)
        except sqlite3.Error as exc:
            done(exc)
            return
        done(found)

    def claim(self, claim: Claim, done: Callable[[bool | Exception], None]) -> None:
        try:
            ok = sqlite_put(self.db, claim)
        except sqlite3.Error as exc:
            done(exc)
            return
        done(ok)

    # -- read positions --------------------------------------------------------

    def rooms_of(self, name_key: str, username: str, done: Callable[[list[RoomInfo] | Exception], None],
                 general_only: bool = False) -> None:
        try:
            rooms = rooms_sqlite.rooms_of(self.db, name_key, username, general_only)
        except sqlite3.Error as exc:
            done(exc)
            return
        done(rooms)

    def room_op(self, request: RoomRequest, username: str, name_key: str,
                done: Callable[[dict[str, Any] | Exception], None]) -> None:
        try:
            result = rooms_sqlite.room_op(self.db, request, username, name_key)
        except sqlite3.Error as exc:
            done(exc)
            return
        done(result)

    def save_read(self, name_key: str, room: str, message_id: str) -> None:
        try:
            reads.sqlite_save(self.db, name_key, room, message_id)
        except sqlite3.Error as exc:
            log.error("could not store a read position: %s", exc)

    async def close(self) -> None:
        self.commit()
        self.shut()

    def shut(self) -> None:
        self.upkeep.stop()
        try:
            if self.path != ":memory:":
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self.db.close()
