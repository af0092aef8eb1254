"""The client against a real server that closes the connection: 1009 (too big) and 1008 (flooding).

A well-behaved client never provokes either on its own (it checks sizes against
the advertised ``maxPayloadBytes`` and paces sends to ``messagesPerMinute``), so
each test sets up the one situation where the server closes anyway, and checks
what the user gets: the right message failed, the rest delivered once, in order.
"""

from __future__ import annotations

import dataclasses

from workspace_tui.client import (
    ERR_TOO_LARGE,
    ConnectionState,
    ErrorReceived,
    HistoryReceived,
    Joined,
    MessageAcknowledged,
    MessageFailed,
    StateChanged,
)

from .support import start, started
from .test_client_server import make


async def stored_texts(url: str, tmp_path, prefix: str) -> list[str]:
    """What the server has stored, in order, as a fresh reader sees it on join."""
    reader = make(url, "reader", tmp_path, join_history=200)
    rec = await started(reader)
    try:
        hist = await rec.wait_event(HistoryReceived)
        return [m.text for m in hist.messages if m.text.startswith(prefix)]
    finally:
        await reader.close()


async def test_1009_fails_the_big_message_and_delivers_the_rest_once(tmp_path):
    # The server enforces 4 KiB but advertises 1 MB (as a proxy with a smaller limit in front of
    # it would): the client's own size check passes, and the server closes with 1009.
    server = await start(tmp_path, max_payload=4096, rate_limit=0, address_rate_limit=0)
    server.core.rules = dataclasses.replace(server.core.rules, max_payload=1_000_000)
    try:
        client = make(server.url, "hana", tmp_path)
        rec = await started(client)
        joined = await rec.wait_event(Joined)
        assert joined.limits.max_payload_bytes == 1_000_000
        before = await client.send("big test: before")
        big = await client.send("big test: " + "x" * 10_000)
        after = await client.send("big test: after")

        failed = await rec.wait_event(MessageFailed)
        assert failed.entry.client_msg_id == big.client_msg_id
        assert failed.code == ERR_TOO_LARGE and "1009" in failed.reason
        closed = await rec.wait_event(
            StateChanged, lambda e: e.state is ConnectionState.RECONNECTING and "too big" in (e.reason or "")
        )
        assert closed.reason.startswith("a frame was too big for the server")
        # It reconnects by itself; the others arrive, the big one is not retried.
        await rec.wait_for(
            lambda r: {a.client_msg_id for a in r.of(MessageAcknowledged)} >= {before.client_msg_id, after.client_msg_id}
        )
        assert client.queued == 0
        assert [e.client_msg_id for e in client.outbox()] == [big.client_msg_id]  # kept, failed, for retry/discard
        assert client.outbox()[0].failed
        await client.close()
        assert await stored_texts(server.url, tmp_path, "big test") == ["big test: before", "big test: after"]
    finally:
        await server.close()


async def test_1008_flood_close_reconnects_and_queued_messages_arrive_once(tmp_path):
    # Typing frames are limited to 5/s (burst 10); 20 refusals in a minute is flooding.
    server = await start(tmp_path, rate_limit=0, address_rate_limit=0, frame_rate=5, frame_burst=10, frame_flood=20)
    try:
        client = make(server.url, "ivan", tmp_path)
        rec = await started(client)
        await rec.wait_event(Joined)
        first = await client.send("flood test: 0")
        await rec.wait_event(MessageAcknowledged, lambda a: a.client_msg_id == first.client_msg_id)
        for _ in range(60):  # a runaway caller: nothing in the client throttles set_typing
            await client.set_typing(True)
        closed = await rec.wait_event(
            StateChanged, lambda e: e.state is ConnectionState.RECONNECTING and "flooding" in (e.reason or "")
        )
        assert closed.reason.startswith("closed for flooding")
        assert any(e.code == "rate_limited" and e.frame_type == "typing:indicator" for e in rec.of(ErrorReceived))
        # Written while disconnected or just after: queued, sent after the reconnect, once each.
        rest = [await client.send(f"flood test: {i}") for i in range(1, 6)]
        await rec.wait_for(
            lambda r: {a.client_msg_id for a in r.of(MessageAcknowledged)} >= {e.client_msg_id for e in rest}
        )
        assert not rec.of(MessageFailed)
        joins = rec.of(Joined)
        assert len(joins) >= 2  # it did reconnect
        assert client.handshakes < 10  # and did not hammer the server meanwhile
        await client.close()
        assert await stored_texts(server.url, tmp_path, "flood test") == [f"flood test: {i}" for i in range(6)]
    finally:
        await server.close()
