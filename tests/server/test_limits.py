"""Each limit at small values: payload (1009), rate limit and flood (1008), idle (4000), slow consumer (4001)."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from .support import TIMEOUT, join, plant, url_for


async def test_payload_limit_exactly_at_the_boundary(server_factory):
    server = await server_factory(max_payload=1024)
    a = await join(server, "alice")
    assert a.connected["limits"]["maxPayloadBytes"] == 1024
    head = json.dumps({"type": "message:send", "text": ""})
    exact = head[:-2] + "x" * (1024 - len(head)) + '"}'
    assert len(exact.encode()) == 1024
    await a.send(exact)
    assert len((await a.expect("message:new"))["data"]["text"]) == 1024 - len(head)
    over = head[:-2] + "x" * (1025 - len(head)) + '"}'
    await a.send(over)
    code, _ = await a.closed()
    assert code == 1009


async def test_rate_limit_burst_then_rejected_with_retry_after(server_factory):
    server = await server_factory(rate_limit=100)
    a = await join(server, "alice")
    assert a.connected["limits"]["messagesPerMinute"] == 100
    for i in range(100):
        await a.send({"type": "message:send", "text": f"n{i}", "clientMsgId": f"n{i}"})
    for i in range(100):
        assert (await a.expect("message:new"))["data"]["clientMsgId"] == f"n{i}"
    await a.send({"type": "message:send", "text": "101st", "clientMsgId": "n100"})
    err = await a.expect("error")
    assert err["code"] == "rate_limited" and err["clientMsgId"] == "n100" and err["frameType"] == "message:send"
    assert 0 < err["retryAfterMs"] <= 600  # one token comes back every 600 ms
    assert server.backend.count() == 100
    await a.close()


async def test_rate_limit_is_sticky_and_per_user_across_connections(server_factory):
    server = await server_factory(rate_limit=3)
    a1 = await join(server, "alice")
    a2 = await join(server, "alice")
    b = await join(server, "bob")
    await a1.say("1")
    await a2.say("2")
    await a1.say("3")
    # pipelined: every send after the first refusal is refused until retryAfterMs has passed
    for i in range(3):
        await a2.send({"type": "message:send", "text": f"x{i}", "clientMsgId": f"x{i}"})
    errs = [await a2.expect("error") for _ in range(3)]
    assert [e["clientMsgId"] for e in errs] == ["x0", "x1", "x2"]
    assert all(e["code"] == "rate_limited" for e in errs)
    # the later refusals announce the same deadline, not a fresh one
    assert errs[0]["retryAfterMs"] >= errs[1]["retryAfterMs"] >= errs[2]["retryAfterMs"] > 0
    # bob has his own bucket
    await b.say("bob is fine")
    for c in (a1, a2, b):
        await c.close()


async def test_flooding_past_the_rate_limit_closes_with_1008(server_factory):
    server = await server_factory(rate_limit=2)  # flood threshold: max(10, 1) refusals in a minute
    a = await join(server, "alice")
    b = await join(server, "bob")
    for i in range(30):
        await a.send({"type": "message:send", "text": f"f{i}"})
    code, reason = await a.closed()
    assert code == 1008 and "flood" in reason
    assert server.backend.count() == 2
    await b.sync()  # others are unaffected
    await b.close()


async def test_frame_flood_is_capped_separately(server_factory):
    server = await server_factory(frame_rate=5, frame_burst=10, frame_flood=20)
    a = await join(server, "alice")
    for _ in range(12):
        await a.send({"type": "typing:indicator", "isTyping": True})
    err = await a.expect("error")
    assert err["code"] == "rate_limited" and err["frameType"] == "typing:indicator" and err["retryAfterMs"] > 0
    for _ in range(40):
        await a.send({"type": "ping"})
    code, _ = await a.closed()
    assert code == 1008


async def test_idle_connections_are_closed_with_4000(server_factory):
    server = await server_factory(idle_timeout=0.3)
    a = await join(server, "alice")
    assert a.connected["limits"]["idleTimeoutSeconds"] == 0.3
    code, reason = await a.closed()
    assert code == 4000 and "idle" in reason


async def test_app_pings_keep_a_connection_alive(server_factory):
    server = await server_factory(idle_timeout=0.4)
    a = await join(server, "alice")
    idle = await join(server, "idle")
    idle_closed = asyncio.create_task(idle.closed())
    for _ in range(8):  # 1.2 s, three idle timeouts
        await asyncio.sleep(0.15)
        await a.send({"type": "ping"})
        await a.expect("pong")
    assert (await idle_closed)[0] == 4000
    assert a.ws.close_code is None
    await a.close()


async def test_slow_consumer_is_closed_with_4001_and_others_keep_going(server_factory):
    server = await server_factory(rate_limit=0, address_rate_limit=0, send_buffer_limit=256 * 1024)
    # max_queue=1: the client stops reading from the socket once one frame waits unread
    slow = await connect(url_for(server, "slow"), max_queue=1, open_timeout=TIMEOUT)
    fast = await join(server, "fast")
    sender = await join(server, "sender")
    got = {"fast": 0, "sender": 0}

    async def drain(name, client):
        async for raw in client.ws:
            if '"message:new"' in raw:
                got[name] += 1

    readers = [asyncio.create_task(drain("fast", fast)), asyncio.create_task(drain("sender", sender))]
    text = "y" * 16000
    sent = 0
    async with asyncio.timeout(20):
        while not server.core.counters.closes.get(4001):  # ~16 KB each until the slow reader is cut off
            await sender.send({"type": "message:send", "text": f"{sent} {text}"})
            sent += 1
            if sent % 20 == 0:
                await asyncio.sleep(0)
        await fast.send({"type": "message:send", "text": "last"})
        sent += 1
        while got["fast"] < sent or got["sender"] < sent:
            await asyncio.sleep(0.01)
    assert server.core.counters.closes[4001] == 1  # only the slow one
    assert fast.ws.close_code is None and sender.ws.close_code is None
    # the slow client, once it reads again, sees a clear close code ...
    last_seen = None
    try:
        async with asyncio.timeout(10):
            async for raw in slow:
                frame = json.loads(raw)
                if frame["type"] == "message:new":
                    last_seen = frame["data"]["id"]
    except Exception:
        pass
    assert slow.close_code == 4001
    # ... and resuming from the last message it saw gives it exactly what it missed
    assert last_seen is not None
    back = await join(server, "slow", since=last_seen)
    missed = list(back.history["messages"])
    while back.history["hasMore"]:
        back.history = await back.recv()
        missed += back.history["messages"]
    everything = [m.id for m in server.backend.all_after("msg_0000000000000_000000")]
    assert [m["id"] for m in missed] == everything[everything.index(last_seen) + 1 :]
    assert missed and any(m["text"] == "last" for m in missed)
    await back.close()
    for t in readers:
        t.cancel()
    await fast.close()
    await sender.close()


async def test_a_big_resume_is_not_mistaken_for_a_slow_consumer(server_factory):
    server = await server_factory(send_buffer_limit=64 * 1024)
    msgs = plant(server, [f"{i} " + "z" * 1000 for i in range(1500)])  # ~1.5 MB
    c = await join(server, "reader", since=msgs[0].id)
    n = len(c.history["messages"])
    while c.history["hasMore"]:
        c.history = await c.recv()
        n += len(c.history["messages"])
    assert n == 1499
    await c.sync()
    assert c.ws.close_code is None
    await c.close()


async def test_keepalive_pings_drop_dead_peers_and_keep_live_ones(server_factory):
    server = await server_factory(idle_timeout=0, ping_interval=0.1, ping_timeout=0.2)
    live = await join(server, "live")  # the websockets client answers pings by itself
    # a peer that completes the handshake and then never reads or answers anything
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws?username=dead HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert b" 101 " in head

    async def gone():
        while any(p.user.username == "dead" for p in server.core.conns):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(gone(), TIMEOUT)
    assert server.core.counters.closes[1011] == 1
    await live.sync()
    assert live.ws.close_code is None
    writer.close()
    await live.close()


async def test_client_protocol_pings_count_as_activity(server_factory):
    server = await server_factory(idle_timeout=0.4)
    ws = await connect(url_for(server, "pinger"), ping_interval=0.1, open_timeout=TIMEOUT)
    silent = await join(server, "silent")
    assert (await silent.closed())[0] == 4000  # > 0.4 s have passed
    await asyncio.sleep(0.3)
    assert ws.close_code is None
    await ws.close()
