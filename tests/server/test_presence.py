"""Presence across connections, appear offline, quiet connections, typing that never sticks."""

from __future__ import annotations

import asyncio

from workspace_tui.protocol import user_id_for

from .support import join


def roster(client):
    return {u["username"]: (u["status"], u["connections"]) for u in client.connected["users"]}


async def test_roster_and_limits_on_join(server_factory):
    server = await server_factory(rate_limit=42, max_connections_per_user=2, idle_timeout=120)
    a = await join(server, "alice")
    b1 = await join(server, "bob")
    b2 = await join(server, "bob")
    assert roster(b2) == {"alice": ("online", 1), "bob": ("online", 2)}
    assert b2.connected["connectedUsers"] == 2
    entry = next(u for u in b2.connected["users"] if u["username"] == "alice")
    assert entry == {"userId": user_id_for("alice"), "username": "alice", "status": "online", "connections": 1}
    assert b2.connected["limits"] == {
        "maxPayloadBytes": 1024 * 1024,
        "messagesPerMinute": 42,
        "maxConnectionsPerUser": 2,
        "idleTimeoutSeconds": 120,
    }
    for c in (a, b1, b2):
        await c.close()


async def test_online_on_first_connection_offline_after_last(server):
    a = await join(server, "alice")
    b1 = await join(server, "bob")
    on = await a.expect("presence:update")
    assert on["data"]["username"] == "bob" and on["data"]["status"] == "online"
    b2 = await join(server, "bob")  # second connection: same status, new count
    two = await a.recv()
    assert two["type"] == "presence:update" and two["data"]["status"] == "online", two
    assert two["data"]["connections"] == 2
    mine = await b1.expect("presence:update", username="bob")  # bob's other connection learns it too
    assert mine["data"]["connections"] == 2
    await b1.close()  # one of two closes: still online, one connection
    one = await a.recv()
    assert one["data"] == {"userId": user_id_for("bob"), "username": "bob", "status": "online", "connections": 1}
    await b2.say("still here")
    nxt = await a.recv()
    assert nxt["type"] == "message:new", nxt
    await b2.close()
    off = await a.expect("presence:update")
    assert off["data"] == {"userId": user_id_for("bob"), "username": "bob", "status": "offline", "connections": 0}
    c = await join(server, "carol")
    assert roster(c) == {"alice": ("online", 1), "carol": ("online", 1)}
    await a.close()
    await c.close()


async def test_status_applies_to_every_connection_of_the_user(server):
    b1 = await join(server, "bob")
    b2 = await join(server, "bob")
    a = await join(server, "alice")
    await b1.send({"type": "presence:update", "status": "busy"})
    assert (await a.expect("presence:update", username="bob"))["data"]["status"] == "busy"
    assert (await b2.expect("presence:update", username="bob"))["data"]["status"] == "busy"
    c = await join(server, "carol")
    assert roster(c)["bob"] == ("busy", 2)
    for x in (a, b1, b2, c):
        await x.close()


async def test_appear_offline(server):
    a = await join(server, "alice")
    b = await join(server, "bob")
    await a.expect("presence:update", username="bob", status="online")
    await b.send({"type": "presence:update", "status": "offline"})
    # exactly what a real disconnect looks like: no connection count gives bob away
    hidden = (await a.expect("presence:update", username="bob"))["data"]
    assert (hidden["status"], hidden["connections"]) == ("offline", 0)
    c = await join(server, "carol")
    assert "bob" not in roster(c) and c.connected["connectedUsers"] == 2
    # typing while hidden is not shown; messages still go out
    await b.send({"type": "typing:indicator", "isTyping": True})
    await b.say("psst")
    assert (await c.recv())["type"] == "message:new"
    # a hidden user's reconnects do not reveal them
    b2 = await join(server, "bob")
    assert roster(b2).get("bob") is None
    await b2.close()
    await b.send({"type": "presence:update", "status": "online"})
    back = await c.expect("presence:update", username="bob")
    assert back["data"]["status"] == "online"
    # leaving while hidden says nothing; a status survives a quick reconnect
    await b.send({"type": "presence:update", "status": "away"})
    await c.expect("presence:update", username="bob", status="away")
    await b.close()
    await c.expect("presence:update", username="bob", status="offline")
    b3 = await join(server, "bob")
    assert (await c.expect("presence:update", username="bob"))["data"]["status"] == "away"
    for x in (a, b3, c):
        await x.close()


async def test_quiet_connections(server_factory):
    server = await server_factory(max_connections_per_user=2)
    a = await join(server, "alice")
    q = await join(server, "oneshot", presence="none")
    assert "oneshot" not in roster(q) and q.connected["connectedUsers"] == 1
    assert q.connected["userId"] == user_id_for("oneshot")
    msg = await q.say("from a script", clientMsgId="s1")
    assert msg["data"]["username"] == "oneshot"
    # alice sees the message but never an online/offline for the quiet connection
    assert (await a.recv())["data"]["text"] == "from a script"
    await q.close()
    c = await join(server, "carol")
    assert roster(c) == {"alice": ("online", 1), "carol": ("online", 1)}
    assert (await a.recv())["data"]["username"] == "carol"  # carol's online, not oneshot's offline
    # a quiet connection beside a visible one does not change the visible one's presence
    o = await join(server, "oneshot")
    await a.expect("presence:update", username="oneshot", status="online")
    q2 = await join(server, "oneshot", presence="none")
    await q2.close()
    await c.say("ping")
    assert (await a.recv())["type"] == "message:new"
    for x in (a, c, o):
        await x.close()


async def test_typing_is_broadcast_to_others_and_times_out(server_factory):
    server = await server_factory(typing_timeout=0.3)
    a = await join(server, "alice")
    b = await join(server, "bob")
    b2 = await join(server, "bob")
    await b.send({"type": "typing:indicator", "isTyping": True})
    t = await a.expect("typing:indicator")
    assert t["data"] == {"userId": user_id_for("bob"), "username": "bob", "isTyping": True,
                         "room": "general"}
    loop = asyncio.get_running_loop()
    start = loop.time()
    stop = await a.expect("typing:indicator")
    assert stop["data"]["isTyping"] is False
    assert loop.time() - start >= 0.2
    # bob's own other connection is not told about bob typing
    await a.say("x")
    assert (await b2.expect("message:new"))["data"]["text"] == "x"
    for x in (a, b, b2):
        await x.close()


async def test_typing_refresh_keeps_it_and_false_clears_it(server_factory):
    server = await server_factory(typing_timeout=0.5)
    a = await join(server, "alice")
    b = await join(server, "bob")
    for _ in range(4):
        await b.send({"type": "typing:indicator", "isTyping": True})
        assert (await a.expect("typing:indicator"))["data"]["isTyping"] is True
        await asyncio.sleep(0.2)
    await b.send({"type": "typing:indicator", "isTyping": False})
    assert (await a.expect("typing:indicator"))["data"]["isTyping"] is False
    await a.close()
    await b.close()


async def test_typing_cleared_on_send_and_on_last_disconnect(server):
    a = await join(server, "alice")
    b = await join(server, "bob")
    await b.send({"type": "typing:indicator", "isTyping": True})
    await a.expect("typing:indicator")
    await b.send({"type": "message:send", "text": "done typing"})
    f1, f2 = await a.recv(), await a.recv()
    assert f1["type"] == "typing:indicator" and f1["data"]["isTyping"] is False
    assert f2["type"] == "message:new"
    await b.send({"type": "typing:indicator", "isTyping": True})
    await a.expect("typing:indicator")
    await b.close()
    f1, f2 = await a.recv(), await a.recv()
    assert f1["type"] == "typing:indicator" and f1["data"]["isTyping"] is False
    assert f2["type"] == "presence:update" and f2["data"]["status"] == "offline"
    await a.close()


async def test_empty_roster_for_a_lone_quiet_connection(server):
    q = await join(server, "lonely", presence="none")
    assert q.connected["users"] == [] and q.connected["connectedUsers"] == 0
    await q.close()
