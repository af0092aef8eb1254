"""A store made by an older ``workspace serve`` opens in the new one with every message kept.

The old messages table was WITHOUT ROWID and had neither ``verified`` nor ``room``; the server
rebuilds it once as a rowid table (big messages made its key lookups read whole rows).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3

from .support import TIMEOUT
from .test_serve_command import Proc, first_frames

_OLD_SCHEMA = """
CREATE TABLE messages_old (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    username TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    client_msg_id TEXT
) WITHOUT ROWID;
INSERT INTO messages_old SELECT id, user_id, username, text, created_at, client_msg_id FROM messages;
DROP TABLE messages;
ALTER TABLE messages_old RENAME TO messages;
CREATE UNIQUE INDEX messages_client_msg_id
    ON messages (username, client_msg_id) WHERE client_msg_id IS NOT NULL;
"""

BIG = "x" * 300_000  # spills onto overflow pages


async def _send(ws, text: str, client_msg_id: str) -> dict:
    await ws.send(json.dumps({"type": "message:send", "text": text, "clientMsgId": client_msg_id}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if frame["type"] == "message:new":
            return frame["data"]


def _make_it_old(db) -> None:
    with sqlite3.connect(db) as raw:
        raw.executescript(_OLD_SCHEMA)


async def test_an_old_without_rowid_store_is_rebuilt_and_keeps_everything(tmp_path):
    db = tmp_path / "old.sqlite3"
    proc = Proc("--db", str(db))
    ws, _, _ = await first_frames(proc.url, "alice")
    for n, text in enumerate(["first", BIG, "third"]):
        await _send(ws, text, f"c{n}")
    await ws.close()
    assert proc.stop() == 0
    _make_it_old(db)
    with sqlite3.connect(db) as raw:
        assert "WITHOUT ROWID" in raw.execute("SELECT sql FROM sqlite_master WHERE name = 'messages'").fetchone()[0]

    proc = Proc("--db", str(db))
    try:
        ws, _, history = await first_frames(proc.url, "alice", subprotocols=["workspace.v1"])
        assert [m["text"] for m in history["messages"]] == ["first", BIG, "third"]
        assert all(m.get("room", "general") == "general" for m in history["messages"])
        again = await _send(ws, "third, resent", "c2")  # a resend of a message the old store holds
        assert (again["id"], again["text"]) == (history["messages"][2]["id"], "third")
        assert (await _send(ws, "fourth", "c3"))["text"] == "fourth"
        await ws.close()
    finally:
        assert proc.stop(signal.SIGINT) == 0

    with sqlite3.connect(db) as raw:
        table = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'messages'").fetchone()[0]
        indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'messages' AND type = 'index'")}
        texts = [r[0] for r in raw.execute("SELECT text FROM messages ORDER BY id")]
    assert "WITHOUT ROWID" not in table.upper()
    assert {"messages_client_msg_id", "messages_by_room"} <= indexes
    assert texts == ["first", BIG, "third", "fourth"]
