"""The SQLite store cannot run away: age and size limits remove old messages in the background,
resume reports what was removed as a gap, and a free-disk floor refuses sends before the disk fills."""

from __future__ import annotations

import asyncio
import json
import os
import time

from tests.server.support import http_get, join
from workspace_tui.backends.sqlite import SQLiteBackend
from workspace_tui.backends.sqlite_upkeep import free_disk
from workspace_tui.protocol import ChatMessage, iso_timestamp, make_message_id, user_id_for

DAY_MS = 86_400_000


async def until(predicate, timeout: float = 10.0) -> None:
    """Wait until *predicate()* holds (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def _plant_old(path, days_ago: float, count: int) -> list[ChatMessage]:
    """*count* messages written *days_ago* days ago, straight into the store at *path*."""
    store = SQLiteBackend(path)
    start = time.time_ns() // 1_000_000 - int(days_ago * DAY_MS)
    msgs = [ChatMessage(make_message_id(start + i, 0), user_id_for("old"), "old", f"old {i}",
                        iso_timestamp(start + i)) for i in range(count)]
    store.insert(msgs)
    store.shut()
    return msgs


async def _health(server) -> dict:
    status, _, body = await http_get(server, "/healthz")
    assert status == 200
    return json.loads(body)


async def test_retention_removes_old_messages_and_a_resume_from_one_reports_the_gap(server_factory, tmp_path):
    db = tmp_path / "server.sqlite3"
    old = _plant_old(db, days_ago=3, count=1200)  # many removal steps
    server = await server_factory(db_path=db, retention=2 * 86400.0, rate_limit=0, address_rate_limit=0)
    alice = await join(server, "alice")
    fresh = [(await alice.say(f"new {i}"))["data"] for i in range(3)]
    await until(lambda: server.backend.count() == 3)
    assert server.backend.upkeep.removed == len(old)

    resumed = await join(server, "bob", since=old[500].id)  # an id that was removed
    assert resumed.history["gap"] is True
    assert resumed.history["messages"] == fresh
    caught_up = await join(server, "carol", since=fresh[0]["id"])  # still kept: nothing missed
    assert caught_up.history["gap"] is False
    assert caught_up.history["messages"] == fresh[1:]
    for c in (alice, resumed, caught_up):
        await c.close()


async def test_retention_keeps_the_newest_message_even_when_it_is_old(server_factory, tmp_path):
    db = tmp_path / "server.sqlite3"
    old = _plant_old(db, days_ago=10, count=5)
    server = await server_factory(db_path=db, retention=86400.0)
    await until(lambda: server.backend.upkeep.removed == 4)
    assert server.backend.count() == 1
    late = await join(server, "alice")
    assert [m["id"] for m in late.history["messages"]] == [old[-1].id]  # ids go on from it after a restart
    await late.close()


async def test_the_file_stays_near_the_size_cap_while_messages_keep_coming(server_factory, tmp_path):
    cap = 1024 * 1024
    db = tmp_path / "server.sqlite3"
    server = await server_factory(db_path=db, max_store_bytes=cap, rate_limit=0, address_rate_limit=0, frame_rate=0)
    alice = await join(server, "alice")
    text = "x" * 400  # (a text over ~1,000 bytes also takes an overflow page of its own)
    sent = 5000  # about 2 MB of text through a 1 MiB cap
    peak = 0
    for start in range(0, sent, 100):
        for i in range(start, start + 100):
            await alice.send({"type": "message:send", "text": f"{i:05d} {text}", "clientMsgId": f"c{i}"})
        for _ in range(100):
            await alice.expect("message:new")
        peak = max(peak, os.path.getsize(db))
    upkeep = server.backend.upkeep
    await until(lambda: not upkeep._shrinking)
    kept = server.backend.count()
    assert kept < sent / 2  # most went
    assert cap * 0.8 < upkeep.used <= cap  # about a cap's worth stayed, not much less
    assert peak <= cap * 1.25 + 64 * 1024, peak  # free pages were reused rather than the file grown
    health = await _health(server)
    assert health["store_bytes"] == server.backend.upkeep.used and health["status"] == "ok"

    texts = [m.text[:5] for m in server.backend.all_after(make_message_id(0, 0))]
    assert texts == [f"{i:05d}" for i in range(sent - kept, sent)]  # the newest stayed, in order
    late = await join(server, "bob", history=1000)
    assert late.history["messages"][-1]["text"][:5] == f"{sent - 1:05d}"
    resumed = await join(server, "carol", since=make_message_id(1, 0))
    assert resumed.history["gap"] is True
    for c in (alice, late, resumed):
        await c.close()


async def test_below_the_free_disk_floor_sends_are_refused_until_there_is_room_again(server_factory, tmp_path):
    free = free_disk(str(tmp_path))
    assert free is not None
    server = await server_factory(min_free_disk=free + 1024**3)  # a real statvfs says: too little
    upkeep = server.backend.upkeep
    alice = await join(server, "alice")
    await alice.send({"type": "message:send", "text": "too soon", "clientMsgId": "m1"})
    err = await alice.expect("error", clientMsgId="m1")
    assert err["code"] == "unavailable"
    health = await _health(server)
    assert health["status"] == "degraded" and health["disk_low"] is True and health["disk_free"] > 0
    assert server.backend.count() == 0

    upkeep.min_free_disk = 1024 * 1024  # room again (as if files were deleted)
    upkeep.disk_every = 0  # and look at the next tick rather than in five seconds
    await until(lambda: server.core.store_up, timeout=upkeep.tick_every + 5)
    sent = await alice.say("too soon", clientMsgId="m1")
    assert sent["data"]["clientMsgId"] == "m1"
    health = await _health(server)
    assert health["status"] == "ok" and "disk_low" not in health
    await alice.close()


async def test_an_in_memory_store_has_no_disk_floor(server_factory):
    server = await server_factory(db_path=":memory:", min_free_disk=1 << 60)
    alice = await join(server, "alice")
    await alice.say("fine")
    assert "disk_free" not in await _health(server)
    await alice.close()
