"""ChatClient against a real in-process server: acks, refusals, backoff reset, rate limits, failures, resume."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from workspace_tui.client import (
    ChatClient,
    ConnectionState,
    HistoryReceived,
    Joined,
    MessageAcknowledged,
    MessageFailed,
    MessagePending,
    MessageReceived,
    StateChanged,
)

from .support import start, started


async def handshake_rejections(server, status: int, token: str | None = None) -> int:
    """The server's own count of handshakes refused with *status* (from GET /metrics)."""
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(req, timeout=5).read().decode())
    for line in text.splitlines():
        if line.startswith(f'workspace_handshake_rejections_total{{status="{status}"}}'):
            return int(float(line.split()[-1]))
    return 0


def make(url, username, tmp_path, **kw) -> ChatClient:
    kw.setdefault("backoff_base", 0.05)
    kw.setdefault("backoff_cap", 0.5)
    return ChatClient(url, username, state_path=tmp_path / f"{username}.state.sqlite3", **kw)


def state_is(state, **match):
    return lambda r: next(
        (e for e in r.of(StateChanged) if e.state is state and all(getattr(e, k) == v for k, v in match.items())),
        None,
    )


async def test_send_is_acknowledged_in_order_and_leaves_the_outbox(tmp_path):
    server = await start(tmp_path)
    try:
        client = make(server.url, "alice", tmp_path)
        rec = await started(client)
        joined = await rec.wait_event(Joined)
        assert joined.username == "alice" and joined.limits.messages_per_minute == 100
        entries = [await client.send(f"hello {i}") for i in range(5)]
        await rec.wait_for(lambda r: len(r.of(MessageAcknowledged)) == 5)
        acks = rec.of(MessageAcknowledged)
        assert [a.client_msg_id for a in acks] == [e.client_msg_id for e in entries]
        assert [a.message.text for a in acks] == [f"hello {i}" for i in range(5)]
        assert sorted(a.message.id for a in acks) == [a.message.id for a in acks]
        own = await rec.wait_for(lambda r: len(r.of(MessageReceived)) == 5 and r.of(MessageReceived))
        assert all(m.own for m in own)
        assert client.queued == 0 and client.outbox() == []
        assert len(rec.of(MessagePending)) == 5
        await client.close()
        await rec.finished()
        assert rec.events[-1] == StateChanged(ConnectionState.STOPPED, 0, None, "closed", 0, None)
    finally:
        await server.close()


async def test_bad_username_400_stops_without_retry(tmp_path):
    server = await start(tmp_path)
    try:
        client = make(server.url, "not a name!", tmp_path)
        rec = await started(client)
        stopped = await rec.wait_for(state_is(ConnectionState.STOPPED))
        assert stopped.status_code == 400 and "400" in stopped.reason
        await client.wait_stopped()
        assert client.handshakes == 1
        assert await handshake_rejections(server, 400) == 1
        assert not rec.of(StateChanged)[-1].state is ConnectionState.RECONNECTING
        await client.close()
    finally:
        await server.close()


async def test_bad_token_401_stops_without_retry(tmp_path):
    server = await start(tmp_path, token="s3cret")
    try:
        client = make(server.url, "mallory", tmp_path, token="wrong")
        rec = await started(client)
        stopped = await rec.wait_for(state_is(ConnectionState.STOPPED))
        assert stopped.status_code == 401 and "token" in stopped.reason
        assert client.handshakes == 1
        assert await handshake_rejections(server, 401, token="s3cret") == 1
        await client.close()
        good = make(server.url, "alice", tmp_path, token="s3cret")
        rec2 = await started(good)
        await rec2.wait_event(Joined)
        await good.close()
    finally:
        await server.close()


async def test_429_waits_the_cap_and_says_why(tmp_path):
    server = await start(tmp_path, max_connections_per_user=1)
    try:
        async with connect(f"{server.url}?username=dave") as hog:
            await hog.recv()
            client = make(server.url, "dave", tmp_path, backoff_cap=0.3, rng=lambda: 0.0)
            rec = await started(client)
            waiting = await rec.wait_for(state_is(ConnectionState.RECONNECTING))
            assert waiting.status_code == 429 and waiting.delay == 0.3
            assert "too many connections" in waiting.reason
        # the hog left: the next attempt gets in
        await rec.wait_event(Joined)
        await client.close()
    finally:
        await server.close()


async def test_a_busy_server_is_tried_again_when_it_says(tmp_path):
    # Two silent sockets fill the handshakes in progress: the server answers 503 with Retry-After: 1.
    server = await start(tmp_path, max_pending_per_address=0, max_pending_handshakes=2)
    silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
    try:
        # a backoff that would wait 30 s after any other failure
        client = make(server.url, "fay", tmp_path, backoff_base=30.0, backoff_cap=30.0, rng=lambda: 0.0)
        rec = await started(client)
        waiting = await rec.wait_for(state_is(ConnectionState.RECONNECTING))
        assert waiting.status_code == 503 and waiting.delay == 0.5  # half of what it said, at the least
        assert waiting.reason.startswith("the server is busy (HTTP 503: too many connections are in their handshake")
        for _, w in silent:
            w.transport.abort()
        await rec.wait_event(Joined)
        await client.close()
    finally:
        for _, w in silent:
            w.transport.abort()
        await server.close()


async def test_backoff_resets_only_after_a_stable_connection(tmp_path):
    server = await start(tmp_path)
    port = server.port
    client = make(server.url, "erin", tmp_path, backoff_base=0.1, backoff_cap=5.0, backoff_reset_after=0.3, rng=lambda: 1.0)
    rec = await started(client)
    await rec.wait_event(Joined)
    # Stay up longer than reset_after, then lose the server: the first delay is the base.
    await asyncio.sleep(0.4)
    await server.close()
    first = await rec.wait_for(state_is(ConnectionState.RECONNECTING))
    assert first.delay == pytest.approx(0.1)
    await rec.wait_for(lambda r: len(r.of(StateChanged)) and [e.delay for e in r.of(StateChanged) if e.state is ConnectionState.RECONNECTING][:3] == [0.1, 0.2, 0.4])
    server = await start(tmp_path, port=port)
    try:
        await rec.wait_for(lambda r: len(r.of(Joined)) == 2)
        # A short-lived connection does not earn a reset: delays keep growing.
        n = len([e for e in rec.of(StateChanged) if e.state is ConnectionState.RECONNECTING])
        await server.close()
        nxt = await rec.wait_for(
            lambda r: ([e for e in r.of(StateChanged) if e.state is ConnectionState.RECONNECTING][n:] or [None])[0]
        )
        assert nxt.delay >= 0.8
        server = await start(tmp_path, port=port)
        await rec.wait_for(lambda r: len(r.of(Joined)) == 3, timeout=20)
    finally:
        await client.close()
        await server.close()


async def _burn_rate_limit(url: str, username: str, n: int) -> None:
    async with connect(f"{url}?username={username}&presence=none&history=0") as ws:
        await ws.recv()
        for i in range(n):
            await ws.send(json.dumps({"type": "message:send", "text": f"burn {i}"}))
        got = 0
        while got < n:
            frame = json.loads(await ws.recv())
            if frame["type"] in ("message:new", "error"):
                got += 1


async def test_rate_limited_sends_wait_and_arrive_once_in_order(tmp_path):
    server = await start(tmp_path, rate_limit=120)  # burst 120, then one every 0.5 s
    try:
        await _burn_rate_limit(server.url, "frank", 120)
        client = make(server.url, "frank", tmp_path)
        rec = await started(client)
        sent = [await client.send(f"after burn {i}") for i in range(4)]
        await rec.wait_for(lambda r: len(r.of(MessageAcknowledged)) == 4, timeout=20)
        assert any(getattr(e, "code", None) == "rate_limited" for e in rec.events)
        assert [a.client_msg_id for a in rec.of(MessageAcknowledged)] == [e.client_msg_id for e in sent]
        assert not rec.of(MessageFailed)
        await client.close()
        # Exactly once in the store, in order.
        watcher = make(server.url, "watcher", tmp_path, join_history=200)
        wrec = await started(watcher)
        hist = await wrec.wait_event(HistoryReceived)
        texts = [m.text for m in hist.messages if m.text.startswith("after burn")]
        assert texts == [f"after burn {i}" for i in range(4)]
        await watcher.close()
    finally:
        await server.close()


async def test_permanent_rejections_fail_and_stay_until_retried_or_discarded(tmp_path):
    server = await start(tmp_path, max_payload=2000)
    try:
        path = tmp_path / "gina.state.sqlite3"
        client = make(server.url, "gina", tmp_path)
        rec = await started(client)
        await rec.wait_event(Joined)
        big = await client.send("x" * 5000)
        empty = await client.send("\x1b[31m\u202e")  # nothing left after cleaning
        ok = await client.send("fine")
        fails = await rec.wait_for(lambda r: len(r.of(MessageFailed)) == 2 and r.of(MessageFailed))
        assert {f.entry.client_msg_id: f.code for f in fails} == {big.client_msg_id: "too_large", empty.client_msg_id: "empty_text"}
        await rec.wait_event(MessageAcknowledged, lambda a: a.client_msg_id == ok.client_msg_id)
        # The server's own verdict is honoured too (skip our pre-check to provoke it).
        client._check = lambda entry: None  # type: ignore[method-assign]
        sneaky = await client.send("   ")
        srv = await rec.wait_event(MessageFailed, lambda f: f.entry.client_msg_id == sneaky.client_msg_id)
        assert srv.code == "empty_text" and srv.reason
        assert client.queued == 0 and len(client.outbox()) == 3
        await client.close()

        # Failed entries survive a restart and are not retried by themselves.
        again = ChatClient(server.url, "gina", state_path=path, backoff_base=0.05)
        rec2 = await started(again)
        await rec2.wait_event(Joined)
        assert {f.entry.client_msg_id for f in rec2.of(MessageFailed)} == {big.client_msg_id, empty.client_msg_id, sneaky.client_msg_id}
        assert await again.discard(big.client_msg_id)
        assert await again.retry(empty.client_msg_id) is False  # still empty: fails again at once
        assert len(again.outbox()) == 2
        await again.close()
    finally:
        await server.close()


async def test_resume_with_since_has_no_gaps_and_no_repeats(tmp_path):
    server = await start(tmp_path)
    port = server.port
    reader = make(server.url, "reader", tmp_path, join_history=0, backoff_base=1.0, backoff_cap=1.0, rng=lambda: 1.0)
    writer = make(server.url, "writer", tmp_path, backoff_base=0.02, backoff_cap=0.05)
    rrec = await started(reader)
    wrec = await started(writer)
    try:
        await rrec.wait_event(Joined)
        await wrec.wait_event(Joined)
        for i in range(3):
            await writer.send(f"m{i}")
        await rrec.wait_for(lambda r: len(r.of(MessageReceived)) == 3)
        await server.close()
        server = await start(tmp_path, port=port)
        # The writer is back well before the reader's 1 s delay ends.
        await wrec.wait_for(lambda r: len(r.of(Joined)) == 2)
        for i in range(3, 8):
            await writer.send(f"m{i}")
        await wrec.wait_for(lambda r: len(r.of(MessageAcknowledged)) == 8)
        joined = await rrec.wait_for(lambda r: len(r.of(Joined)) == 2 and r.of(Joined)[1])
        assert joined.resumed
        for i in range(8, 10):
            await writer.send(f"m{i}")
        await rrec.wait_for(lambda r: sum(len(h.messages) for h in r.of(HistoryReceived)) + len(r.of(MessageReceived)) >= 10)
        got = []
        for e in rrec.events:
            if isinstance(e, HistoryReceived):
                got += [m.text for m in e.messages]
            elif isinstance(e, MessageReceived):
                got.append(e.message.text)
        assert got == [f"m{i}" for i in range(10)]
        assert [h.reason for h in rrec.of(HistoryReceived)] == ["join", "resume"]
        assert reader.last_message_id == rrec.of(MessageReceived)[-1].message.id
    finally:
        await reader.close()
        await writer.close()
        await server.close()


async def test_app_ping_keeps_an_idle_connection_open(tmp_path):
    server = await start(tmp_path, idle_timeout=0.6)
    try:
        client = make(server.url, "ivy", tmp_path)
        rec = await started(client)
        await rec.wait_event(Joined)
        assert client.limits.idle_timeout_seconds == 0.6
        # Three idle timeouts of silence from the user: the heartbeat must keep us in.
        await asyncio.sleep(2.0)
        assert client.state is ConnectionState.CONNECTED
        assert len(rec.of(Joined)) == 1 and not [e for e in rec.of(StateChanged) if e.state is ConnectionState.RECONNECTING]
        await client.close()
    finally:
        await server.close()


async def test_presence_is_reapplied_after_reconnect(tmp_path):
    from workspace_tui.client import PresenceChanged

    server = await start(tmp_path)
    port = server.port
    jack = make(server.url, "jack", tmp_path)
    jrec = await started(jack)
    await jrec.wait_event(Joined)
    await jack.set_presence("busy")
    await server.close()
    server = await start(tmp_path, port=port)
    watcher = make(server.url, "kim", tmp_path)
    wrec = await started(watcher)
    try:
        await jrec.wait_for(lambda r: len(r.of(Joined)) == 2)
        await wrec.wait_event(PresenceChanged, lambda e: e.username == "jack" and e.status == "busy")
    finally:
        await jack.close()
        await watcher.close()
        await server.close()


async def test_two_processes_of_one_user_share_the_outbox_without_duplicates(tmp_path):
    server = await start(tmp_path)
    try:
        path = tmp_path / "shared.sqlite3"
        offline = ChatClient(server.url.replace(str(server.port), "1"), "lena", state_path=path, reconnect=False)
        queued = [await offline.send(f"queued {i}") for i in range(20)]
        await offline.close()
        a = ChatClient(server.url, "lena", state_path=path)
        b = ChatClient(server.url, "lena", state_path=path)
        ra, rb = await started(a), await started(b)
        # Both deliver the same queue; the server's clientMsgId dedupe keeps one copy.
        await ra.wait_for(lambda r: len(r.of(MessageAcknowledged)) == 20)
        await rb.wait_for(lambda r: len(r.of(MessageAcknowledged)) == 20)
        for rec in (ra, rb):
            assert [x.client_msg_id for x in rec.of(MessageAcknowledged)] == [q.client_msg_id for q in queued]
            received = [e.message.text for e in rec.of(MessageReceived)] + [
                m.text for h in rec.of(HistoryReceived) for m in h.messages
            ]
            assert sorted(received) == sorted(set(received))
        await a.close()
        await b.close()
        watcher = make(server.url, "watcher", tmp_path, join_history=100)
        wrec = await started(watcher)
        hist = await wrec.wait_event(HistoryReceived)
        assert [m.text for m in hist.messages] == [f"queued {i}" for i in range(20)]
        await watcher.close()
    finally:
        await server.close()
