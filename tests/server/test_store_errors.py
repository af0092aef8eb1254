"""When the store fails, the log says why (the real cause, never a message's text) and the client is told."""

from __future__ import annotations

import logging

from .support import join


async def test_a_full_disk_is_logged_as_such_without_the_text(server_factory, caplog):
    server = await server_factory()
    a = await join(server, "alice")
    await a.say("fine")
    db = server.backend.db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from now on
    secret = "the launch code is " + "x" * 20000
    with caplog.at_level(logging.INFO, logger="workspace"):
        await a.send({"type": "message:send", "text": secret, "clientMsgId": "full-1"})
        err = await a.expect("error")
    assert err["code"] == "unavailable" and err["clientMsgId"] == "full-1"
    lines = [r.getMessage() for r in caplog.records]
    assert any("database or disk is full" in line for line in lines), lines
    assert not any("cannot rollback" in line for line in lines), lines  # the cause, not a follow-on error
    assert not any("launch code" in line or "xxxxxxxxxx" in line for line in lines), lines
    db.execute("PRAGMA max_page_count = 1073741823")
    await a.close()
