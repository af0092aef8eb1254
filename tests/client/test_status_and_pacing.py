"""The client's side of issue 12: our status across our own connections, a refusal said in a
few words, reconnecting now, and the rate limit announced as ``SendPaced``.

Real servers on 127.0.0.1 (port 0, SQLite in tmp_path), real clients.
"""

from __future__ import annotations

import time

from workspace_tui.client import ChatClient, ConnectionState, Joined, PresenceChanged, SendPaced, StateChanged

from .support import free_port, start, started


def make(url: str, username: str, tmp_path, name: str | None = None, **kw) -> ChatClient:
    kw.setdefault("backoff_base", 0.05)
    kw.setdefault("backoff_cap", 0.5)
    return ChatClient(url, username, state_path=tmp_path / f"{name or username}.state.sqlite3", **kw)


async def test_a_status_set_in_one_connection_reaches_the_others_client(tmp_path):
    server = await start(tmp_path)
    try:
        one = make(server.url, "alice", tmp_path, "one")
        rec1 = await started(one)
        await rec1.wait_event(Joined)
        assert one.status == "online"
        two = make(server.url, "alice", tmp_path, "two")
        rec2 = await started(two)
        await rec2.wait_event(Joined)
        await two.set_presence("busy")
        await rec1.wait_event(PresenceChanged, lambda e: e.username == "alice" and e.status == "busy")
        assert one.status == "busy"
        # a third connection starts with it, and says so in Joined
        three = make(server.url, "alice", tmp_path, "three")
        rec3 = await started(three)
        joined = await rec3.wait_event(Joined)
        assert joined.status == "busy" and three.status == "busy"
        for c in (one, two, three):
            await c.close()
    finally:
        await server.close()


async def test_quiet_clients_keep_no_status(tmp_path):
    server = await start(tmp_path)
    try:
        quiet = make(server.url, "alice", tmp_path, present=False)
        rec = await started(quiet)
        joined = await rec.wait_event(Joined)
        assert joined.status is None and quiet.status is None
        await quiet.close()
    finally:
        await server.close()


async def test_refusals_come_with_a_short_detail(tmp_path):
    port = free_port()
    client = make(f"ws://127.0.0.1:{port}/ws", "alice", tmp_path, backoff_base=20, backoff_cap=20, rng=lambda: 1.0)
    rec = await started(client)
    waiting = await rec.wait_event(StateChanged, lambda e: e.state is ConnectionState.RECONNECTING)
    assert waiting.detail == "connection refused" and str(port) in (waiting.reason or "")
    # reconnect_now() cuts the 20 s wait: the next attempt is made at once
    before = client.handshakes
    t0 = time.monotonic()
    assert client.reconnect_now()
    await rec.wait_for(lambda r: client.handshakes > before, timeout=5)
    assert time.monotonic() - t0 < 5
    await client.close()
    assert not client.reconnect_now()  # closed: nothing to do


async def test_429_detail_is_the_servers_reason(tmp_path):
    server = await start(tmp_path, max_connections_per_user=1)
    try:
        hog = make(server.url, "dave", tmp_path, "hog")
        rec_hog = await started(hog)
        await rec_hog.wait_event(Joined)
        client = make(server.url, "dave", tmp_path, backoff_cap=30, rng=lambda: 1.0)
        rec = await started(client)
        waiting = await rec.wait_event(StateChanged, lambda e: e.state is ConnectionState.RECONNECTING)
        assert waiting.status_code == 429
        assert waiting.detail.startswith("refused (HTTP 429): too many connections")
        assert "retrying in" not in waiting.detail
        await hog.close()
        assert client.reconnect_now()
        await rec.wait_event(Joined, timeout=5)  # not 30 s later
        await client.close()
    finally:
        await server.close()


async def test_paced_sends_are_announced(tmp_path):
    server = await start(tmp_path, rate_limit=2)
    try:
        client = make(server.url, "alice", tmp_path)
        rec = await started(client)
        await rec.wait_event(Joined)
        for i in range(3):
            await client.send(f"m{i}")
        paced = await rec.wait_event(SendPaced)
        assert paced.per_minute == 2 and 20 < paced.delay <= 30 and 1 <= paced.queued <= 3 and not paced.refused
        await client.close()
    finally:
        await server.close()
