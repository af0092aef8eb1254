"""Read positions across nodes: a read on one node moves the user's windows on another, and counts
and the document-only replay come from Redis."""

from __future__ import annotations

import asyncio

from tests.server.support import join


async def test_a_read_on_one_node_moves_the_users_window_on_another(node_factory):
    a, b = await node_factory(), await node_factory()
    bob = await join(a, "bob")
    said = await bob.say("ship it")
    desk, laptop = await join(a, "alice"), await join(b, "alice")
    await desk.send({"type": "read:update", "room": "general", "messageId": said["data"]["id"]})
    moved = await laptop.expect("read:position")
    assert moved["messageId"] == said["data"]["id"]
    await bob.say("@alice one more thing")
    await bob.say("and another")
    for c in (desk, laptop):
        await c.close()
    later = await join(b, "alice")
    summary = later.connected["rooms"][0]
    assert (summary["lastRead"], summary["unread"], summary["mentions"]) == (said["data"]["id"], 2, 1)
    for c in (bob, later):
        await c.close()


async def test_a_document_only_client_gets_what_it_missed_from_another_node(node_factory):
    a, b = await node_factory(), await node_factory()
    reader = await join(a, "reader", document_only=True)
    bob = await join(b, "bob")
    await bob.say("seen live")
    await reader.expect("message:new", text="seen live")
    await reader.close()
    while any(c.user.username == "reader" for c in a.core.conns):
        await asyncio.sleep(0.01)  # node a has seen it go (and stored where it stopped)
    missed = [await bob.say(f"missed {i}") for i in range(2)]
    back = await join(b, "reader", document_only=True, read_history=False)
    got = [await back.expect("message:new") for _ in range(2)]
    assert [g["data"]["text"] for g in got] == [m["data"]["text"] for m in missed]
    for c in (bob, back):
        await c.close()
