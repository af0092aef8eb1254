"""Rooms, members and invitations in the SQLite store (the ``general`` room is everyone's and is
not stored; a direct message's room and members are stored with its first message)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from workspace_tui.core.rooms import RoomInfo
from workspace_tui.protocol import (
    ERR_NOT_ALLOWED,
    GENERAL,
    UNREAD_CAP,
    ChatMessage,
    RoomRequest,
    dm_participants,
    name_key,
    user_id_for,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members (
    room TEXT NOT NULL,
    name_key TEXT NOT NULL,
    username TEXT NOT NULL,
    joined_ms INTEGER NOT NULL,
    PRIMARY KEY (room, name_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_user ON members (name_key, room);
CREATE TABLE IF NOT EXISTS invites (
    room TEXT NOT NULL,
    name_key TEXT NOT NULL,
    PRIMARY KEY (room, name_key)
) WITHOUT ROWID;
"""
MAX_ROOMS_LISTED = 500
_NO_ROOM = "no such room {room}, or you are not in it"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _error(why: str) -> dict[str, Any]:
    return {"error": (ERR_NOT_ALLOWED, why)}


# A room r's summary for the user :username (name key :key), whose read position there is rd:
# members, unread and mentions after the position (each count walks an index and stops at :cap),
# the position and the newest message. general has no stored members, and a newcomer to it (no
# position yet) has nothing unread: its past is not a backlog to catch up on.
_SUMMARY = """
    CASE WHEN r.id = :general THEN 0 ELSE (SELECT count(*) FROM members WHERE room = r.id) END,
    CASE WHEN rd.message_id IS NULL AND r.id = :general THEN 0 ELSE (SELECT count(*) FROM (
        SELECT 1 FROM messages WHERE room = r.id AND id > coalesce(rd.message_id, '') AND username != :username
        LIMIT :cap)) END,
    CASE WHEN rd.message_id IS NULL AND r.id = :general THEN 0 ELSE (SELECT count(*) FROM (
        SELECT 1 FROM mentions WHERE name_key = :key AND room = r.id AND message_id > coalesce(rd.message_id, '')
        LIMIT :cap)) END,
    rd.message_id,
    (SELECT max(id) FROM messages WHERE room = r.id)
"""
_ONE_ROOM = (f"SELECT {_SUMMARY} FROM (SELECT :room AS id) r"
             " LEFT JOIN reads rd ON rd.name_key = :key AND rd.room = r.id")
# Every room of the user's, in one statement (a join after a restart runs it once per user).
_MY_ROOMS = (f"SELECT r.id, r.kind, r.topic, {_SUMMARY} FROM members m JOIN rooms r ON r.id = m.room"
             " LEFT JOIN reads rd ON rd.name_key = m.name_key AND rd.room = m.room"
             " WHERE m.name_key = :key ORDER BY m.room LIMIT :limit")


def _params(key: str, username: str, **more: object) -> dict[str, object]:
    return {"key": key, "username": username, "general": GENERAL, "cap": UNREAD_CAP, **more}


def _info(room: str, kind: str, topic: str, members: int, unread: int, mentions: int, read: str | None,
          last: str | None) -> RoomInfo:
    """A RoomInfo from a room's name, kind and topic followed by its :data:`_SUMMARY` columns."""
    return RoomInfo(room, kind, topic, members, unread, mentions, read or None, last)


def state(db: sqlite3.Connection, key: str, username: str, room: str, kind: str, topic: str) -> RoomInfo:
    """One room's summary for *username*."""
    return _info(room, kind, topic, *db.execute(_ONE_ROOM, _params(key, username, room=room)).fetchone())


def rooms_of(db: sqlite3.Connection, key: str, username: str, general_only: bool = False) -> list[RoomInfo]:
    general = _shared(state(db, key, username, GENERAL, "public", ""))
    if general_only:
        return [general]
    rows = db.execute(_MY_ROOMS, _params(key, username, limit=MAX_ROOMS_LISTED)).fetchall()
    return [general, *(_info(*row) for row in rows)]


_last_general: list[RoomInfo] = []


def _shared(info: RoomInfo) -> RoomInfo:
    """The same RoomInfo object for every user whose general looks alike (every newcomer's does):
    one per user held for as long as they are connected was ~200 bytes each."""
    if _last_general and _last_general[0] == info:
        return _last_general[0]
    _last_general[:] = [info]
    return info


def store_dms(db: sqlite3.Connection, messages: list[ChatMessage]) -> None:
    """Inside the commit's transaction: the rooms and members of direct messages sent for the first time."""
    for m in messages:
        names = dm_participants(m.room)
        if names is None:
            continue
        if db.execute("INSERT OR IGNORE INTO rooms (id, kind, created_by, created_ms) VALUES (?, 'dm', ?, ?)",
                      (m.room, m.username, _now_ms())).rowcount:
            db.executemany("INSERT OR IGNORE INTO members (room, name_key, username, joined_ms) VALUES (?, ?, ?, ?)",
                           [(m.room, name_key(n), n, _now_ms()) for n in names])


def _read_from_now(db: sqlite3.Connection, key: str, room: str) -> None:
    """Joining a room: what was said before is history, not unread."""
    with db:
        db.execute("INSERT OR IGNORE INTO reads (name_key, room, message_id) SELECT ?, ?, max(id) FROM messages "
                   "WHERE room = ? HAVING max(id) IS NOT NULL", (key, room, room))


def room_op(db: sqlite3.Connection, req: RoomRequest, username: str, key: str) -> dict[str, Any]:
    room = req.room
    found = db.execute("SELECT kind, topic FROM rooms WHERE id = ?", (room,)).fetchone() if room else None
    member = room == GENERAL or (found is not None and db.execute(
        "SELECT 1 FROM members WHERE room = ? AND name_key = ?", (room, key)).fetchone() is not None)
    op = req.op
    if op == "list":
        rows = db.execute(
            "SELECT r.id, r.kind, r.topic, (SELECT count(*) FROM members WHERE room = r.id), "
            "EXISTS (SELECT 1 FROM members WHERE room = r.id AND name_key = ?) AS mine FROM rooms r "
            "WHERE r.kind = 'public' OR mine ORDER BY r.id LIMIT ?", (key, MAX_ROOMS_LISTED)).fetchall()
        rooms = [{"room": GENERAL, "kind": "public", "topic": "", "members": None, "joined": True}]
        rooms += [{"room": r[0], "kind": r[1], "topic": r[2], "members": r[3], "joined": bool(r[4])} for r in rows]
        return {"rooms": rooms}
    if op == "create":
        if found is not None:
            return _error(f"room {room} exists: /join {room}" if found[0] == "public" else f"room {room} exists")
        with db:
            db.execute("INSERT INTO rooms (id, kind, topic, created_by, created_ms) VALUES (?, ?, ?, ?, ?)",
                       (room, "private" if req.private else "public", req.topic, username, _now_ms()))
            db.execute("INSERT INTO members (room, name_key, username, joined_ms) VALUES (?, ?, ?, ?)",
                       (room, key, username, _now_ms()))
        return {"info": state(db, key, username, room, "private" if req.private else "public", req.topic)}
    if op == "join":
        invited = found is not None and db.execute("SELECT 1 FROM invites WHERE room = ? AND name_key = ?",
                                                   (room, key)).fetchone() is not None
        if found is None or found[0] == "dm" or (found[0] == "private" and not invited and not member):
            return _error(_NO_ROOM.format(room=room) if found is None or found[0] != "private"
                          else f"{room} is private: a member can invite you (/invite)")
        with db:
            db.execute("INSERT OR IGNORE INTO members (room, name_key, username, joined_ms) VALUES (?, ?, ?, ?)",
                       (room, key, username, _now_ms()))
            db.execute("DELETE FROM invites WHERE room = ? AND name_key = ?", (room, key))
        _read_from_now(db, key, room)
        return {"info": state(db, key, username, room, found[0], found[1])}
    if not member:
        return _error(_NO_ROOM.format(room=room))
    if op == "leave":
        with db:
            db.execute("DELETE FROM members WHERE room = ? AND name_key = ?", (room, key))
        return {}
    if op == "topic":
        if room == GENERAL:
            return _error("general has no topic to set")
        with db:
            db.execute("UPDATE rooms SET topic = ? WHERE id = ?", (req.topic, room))
        return {}
    if op == "invite":
        if found is None or found[0] == "dm":
            return _error(f"{room} takes no invitations")
        with db:
            db.execute("INSERT OR IGNORE INTO invites (room, name_key) VALUES (?, ?)", (room, name_key(req.username)))
        return {"username": req.username}
    if op == "members":
        if room == GENERAL:
            return _error("general is everyone: see the roster (connected.users)")
        rows = db.execute("SELECT username FROM members WHERE room = ? AND username > ? ORDER BY username LIMIT ?",
                          (room, req.username, req.limit + 1)).fetchall()
        names = [r[0] for r in rows[:req.limit]]
        return {"members": [{"username": n, "userId": user_id_for(n)} for n in names],
                "next": names[-1] if len(rows) > req.limit else None}
    return _error(f"unknown room operation {op}")
