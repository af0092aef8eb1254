"""The outbox keeps each message's room, also in a file written before rooms existed."""

from __future__ import annotations

import sqlite3

from workspace_tui.client.events import OutboxEntry
from workspace_tui.client.outbox import Outbox


def test_room_survives_reopening_and_old_files_gain_the_column(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, client_msg_id TEXT NOT NULL UNIQUE,"
        " text TEXT NOT NULL, created_at TEXT NOT NULL, failed INTEGER NOT NULL DEFAULT 0, error_code TEXT, error TEXT);"
        "INSERT INTO outbox (client_msg_id, text, created_at) VALUES ('c1', 'queued before rooms', 't');"
    )
    db.close()
    box = Outbox(path)
    box.add(OutboxEntry("c2", "to dev", "t", room="dev"))
    box.close()
    box = Outbox(path)
    assert [(e.client_msg_id, e.room) for e, _ in box.entries()] == [("c1", None), ("c2", "dev")]
    box.close()
