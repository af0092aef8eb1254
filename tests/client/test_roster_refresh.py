"""presence:batch in the client: the same PresenceChanged events as presence:update, and a
roster read again (debounced, bounded) when a batch was too big to list."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from workspace_tui.client import ChatClient, Joined, PresenceChanged
from workspace_tui.client.roster import MAX_USERS, MAX_WAIT, QUIET, RosterRefresh, RosterRefreshed
from workspace_tui.core.presence import Presence
from workspace_tui.protocol import PresenceBatch, RosterEntry, parse_server_frame, user_id_for

from .support import Recorder, start

# -- the pure part -------------------------------------------------------------------


def entry(name: str, status: str = "online") -> RosterEntry:
    return RosterEntry(user_id_for(name), name, status)


def change(name: str, status: str, connections: int) -> PresenceChanged:
    return PresenceChanged(user_id_for(name), name, status, connections)


def test_a_batch_parses_into_the_presence_changes_of_its_users():
    raw = json.dumps({"type": "presence:batch", "data": {"users": [
        {"userId": "user_a", "username": "ann", "status": "away", "connections": 2},
        {"userId": "user_b", "username": "bob", "status": "offline", "connections": 0, "verified": True},
    ], "connectedUsers": 7}})
    assert parse_server_frame(raw) == PresenceBatch(
        (PresenceChanged("user_a", "ann", "away", 2), PresenceChanged("user_b", "bob", "offline", 0, True)), 7, True)
    incomplete = json.dumps({"type": "presence:batch", "data": {"users": [], "complete": False, "connectedUsers": 900}})
    assert parse_server_frame(incomplete) == PresenceBatch((), 900, False)


def test_the_re_read_waits_for_a_quiet_moment_but_not_forever():
    r = RosterRefresh()
    assert r.due() is None
    r.incomplete(10.0)
    assert r.due() == 10.0 + QUIET
    for t in range(1, 50):  # a storm: an incomplete batch every 100 ms
        r.incomplete(10.0 + t / 10)
    assert r.due() == 10.0 + MAX_WAIT  # ... still read within MAX_WAIT of the first


def test_one_re_read_at_a_time_and_pages_up_to_the_bound():
    r = RosterRefresh()
    r.incomplete(0.0)
    assert r.start() == "" and r.running and r.waiting
    r.incomplete(0.1)  # during the re-read: wanted again afterwards, not now
    assert r.due() is None
    page = [entry(f"u{i:03}") for i in range(100)]
    assert r.page(page, "u099") == "u099" and r.waiting
    done = r.page([entry(f"u{i:03}") for i in range(100, 200)], "u199")
    assert isinstance(done, RosterRefreshed) and len(done.users) == MAX_USERS and done.complete is False
    assert not r.running and r.due() == 0.1 + QUIET  # the incomplete batch seen meanwhile


def test_presence_during_a_re_read_is_newer_than_the_pages_before_it():
    r = RosterRefresh()
    r.incomplete(0.0)
    r.start()
    assert r.page([entry("ann"), entry("bob")], "bob") == "bob"
    r.presence(change("ann", "offline", 0))  # after page one: ann left
    r.presence(change("zed", "busy", 1))  # beyond the pages read so far
    done = r.page([entry("cat"), entry("zed")], None)
    assert isinstance(done, RosterRefreshed) and done.complete
    assert {(e.username, e.status) for e in done.users} == {("bob", "online"), ("cat", "online"), ("zed", "online")}


# -- against a real server ---------------------------------------------------------------


async def _burst(server, names: list[str]) -> list:
    """Raw workspace.v1 connections of *names*, opened all at once."""
    async def one(name: str):
        ws = await connect(f"{server.url}?username={name}", subprotocols=["workspace.v1"], open_timeout=10)
        await ws.recv()  # connected
        return ws

    return list(await asyncio.gather(*(one(n) for n in names)))


async def test_a_client_turns_batches_into_presence_events(tmp_path):
    server = await start(tmp_path, rate_limit=0, address_limits=False)
    client = ChatClient(server.url, "alice", None)
    await client.start()
    rec = Recorder(client)
    try:
        await rec.wait_event(Joined)
        others = await _burst(server, [f"p{i}" for i in range(30)])
        await rec.wait_for(lambda r: {e.username for e in r.of(PresenceChanged) if e.status == "online"}
                           >= {f"p{i}" for i in range(30)})
        assert all(e.username != "alice" for e in rec.of(PresenceChanged))  # our own entry is skipped
        assert rec.of(RosterRefreshed) == []  # everything was listed: nothing to read again
        for ws in others:
            await ws.close()
        await rec.wait_for(lambda r: {e.username for e in r.of(PresenceChanged) if e.status == "offline"}
                           >= {f"p{i}" for i in range(30)})
    finally:
        await client.close()
        await server.close()


async def test_a_batch_too_big_to_list_makes_the_client_read_the_roster_again(tmp_path, monkeypatch):
    monkeypatch.setattr(Presence, "ROSTER_CAP", 5)
    server = await start(tmp_path, rate_limit=0, address_limits=False, frame_rate=0)
    client = ChatClient(server.url, "alice", None)
    client.follow_roster = True  # as the chat does
    await client.start()
    rec = Recorder(client)
    try:
        await rec.wait_event(Joined)
        names = {f"p{i:02}" for i in range(12)}
        others = await _burst(server, sorted(names))
        done = await rec.wait_event(RosterRefreshed, lambda e: {u.username for u in e.users} >= names)
        assert {u.username for u in done.users} == names | {"alice"} and done.complete
        assert len(rec.of(RosterRefreshed)) == 1  # one burst, one re-read
        for ws in others:
            await ws.close()
        gone = await rec.wait_event(RosterRefreshed, lambda e: len(e.users) == 1, timeout=15)
        assert [u.username for u in gone.users] == ["alice"]
    finally:
        await client.close()
        await server.close()
