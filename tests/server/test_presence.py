"""Presence across connections, appear offline, quiet connections, typing that never sticks."""

from __future__ import annotations

import asyncio

import pytest

from workspace_tui.protocol import user_id_for

from .support import frames_about, join, presence_entries

# An observer that offered workspace.v1 gets a tick's presence changes as one presence:batch; one
# written from the protocol document alone gets a presence:update per change. Both learn the same.
OBSERVERS = pytest.mark.parametrize("document_only", [True, False], ids=["document", "v1"])


def kind_for(document_only):
    return "presence:update" if document_only else "presence:batch"


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


@OBSERVERS
async def test_online_on_first_connection_offline_after_last(server, document_only):
    kind = kind_for(document_only)
    a = await join(server, "alice", document_only=document_only)
    b1 = await join(server, "bob")
    on = await a.presence(username="bob")
    assert on["status"] == "online" and a.presence_frame["type"] == kind
    b2 = await join(server, "bob")  # second connection: same status, new count
    two = await a.presence(username="bob")
    assert (two["status"], two["connections"]) == ("online", 2) and a.presence_frame["type"] == kind
    mine = await b1.expect("presence:update", username="bob")  # bob's other connection learns it too
    assert mine["data"]["connections"] == 2
    await b1.close()  # one of two closes: still online, one connection
    one = await a.presence(username="bob")
    assert one == {"userId": user_id_for("bob"), "username": "bob", "status": "online", "connections": 1}
    await b2.say("still here")
    assert await frames_about(a, user_id_for("bob"), 1) == [("message", "still here")]
    await b2.close()
    off = await a.presence(username="bob")
    assert off == {"userId": user_id_for("bob"), "username": "bob", "status": "offline", "connections": 0}
    assert a.presence_frame["type"] == kind
    c = await join(server, "carol")
    assert roster(c) == {"alice": ("online", 1), "carol": ("online", 1)}
    await a.close()
    await c.close()


@OBSERVERS
async def test_status_applies_to_every_connection_of_the_user(server, document_only):
    b1 = await join(server, "bob")
    b2 = await join(server, "bob")
    a = await join(server, "alice", document_only=document_only)
    await b1.send({"type": "presence:update", "status": "busy"})
    assert (await a.presence(username="bob"))["status"] == "busy"
    assert a.presence_frame["type"] == kind_for(document_only)
    # bob's own other connection: a presence:update, batched or not, as the document has it
    assert (await b2.expect("presence:update", username="bob"))["data"]["status"] == "busy"
    c = await join(server, "carol")
    assert roster(c)["bob"] == ("busy", 2)
    for x in (a, b1, b2, c):
        await x.close()


@OBSERVERS
async def test_appear_offline(server, document_only):
    a = await join(server, "alice", document_only=document_only)
    b = await join(server, "bob")
    await a.presence(username="bob", status="online")
    await b.send({"type": "presence:update", "status": "offline"})
    # exactly what a real disconnect looks like: no connection count gives bob away
    hidden = await a.presence(username="bob")
    assert (hidden["status"], hidden["connections"]) == ("offline", 0)
    c = await join(server, "carol", document_only=document_only)
    assert "bob" not in roster(c) and c.connected["connectedUsers"] == 2
    # typing while hidden is not shown; messages still go out
    await b.send({"type": "typing:indicator", "isTyping": True})
    await b.say("psst")
    assert await frames_about(c, user_id_for("bob"), 1) == [("message", "psst")]
    # a hidden user's reconnects do not reveal them
    b2 = await join(server, "bob")
    assert roster(b2).get("bob") is None
    await b2.close()
    await b.send({"type": "presence:update", "status": "online"})
    back = await c.presence(username="bob")
    assert back["status"] == "online"
    # leaving while hidden says nothing; a status survives a quick reconnect
    await b.send({"type": "presence:update", "status": "away"})
    await c.presence(username="bob", status="away")
    await b.close()
    await c.presence(username="bob", status="offline")
    b3 = await join(server, "bob")
    assert (await c.presence(username="bob"))["status"] == "away"
    for x in (a, b3, c):
        await x.close()


@OBSERVERS
async def test_quiet_connections(server_factory, document_only):
    server = await server_factory(max_connections_per_user=2)
    a = await join(server, "alice", document_only=document_only)
    q = await join(server, "oneshot", presence="none")
    assert "oneshot" not in roster(q) and q.connected["connectedUsers"] == 1
    assert q.connected["userId"] == user_id_for("oneshot")
    msg = await q.say("from a script", clientMsgId="s1")
    assert msg["data"]["username"] == "oneshot"
    # alice sees the message but never an online/offline for the quiet connection
    assert await frames_about(a, user_id_for("oneshot"), 1) == [("message", "from a script")]
    await q.close()
    c = await join(server, "carol")
    assert roster(c) == {"alice": ("online", 1), "carol": ("online", 1)}
    # carol's online, not oneshot's offline (a batch may also carry alice's own entry, from her join)
    assert [e["username"] for e in presence_entries(await a.recv()) if e["username"] != "alice"] == ["carol"]
    # a quiet connection beside a visible one does not change the visible one's presence
    o = await join(server, "oneshot")
    await a.presence(username="oneshot", status="online")
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


@OBSERVERS
async def test_typing_cleared_on_send_and_on_last_disconnect(server, document_only):
    a = await join(server, "alice", document_only=document_only)
    b = await join(server, "bob")
    bob = user_id_for("bob")
    await b.send({"type": "typing:indicator", "isTyping": True})
    await a.expect("typing:indicator")
    await b.send({"type": "message:send", "text": "done typing"})
    assert await frames_about(a, bob, 2) == [("typing", False), ("message", "done typing")]
    await b.send({"type": "typing:indicator", "isTyping": True})
    await a.expect("typing:indicator")
    await b.close()
    assert await frames_about(a, bob, 2) == [("typing", False), ("presence", "offline")]
    await a.close()


async def test_empty_roster_for_a_lone_quiet_connection(server):
    q = await join(server, "lonely", presence="none")
    assert q.connected["users"] == [] and q.connected["connectedUsers"] == 0
    await q.close()
