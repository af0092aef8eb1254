"""Messages across nodes: one global order, exactly once, history and resume from any node."""

from __future__ import annotations

import asyncio

from tests.server.support import join

from .conftest import until


async def test_message_reaches_every_client_on_every_node_once_in_one_order(node_factory):
    a, b, c = [await node_factory() for _ in range(3)]
    alice, bob, carol = await join(a, "alice"), await join(b, "bob"), await join(c, "carol")
    # Interleaved senders on different nodes: everyone sees the same sequence, no dupes.
    for i in range(10):
        await alice.send({"type": "message:send", "text": f"a{i}"})
        await bob.send({"type": "message:send", "text": f"b{i}"})
    seqs = []
    for client in (alice, bob, carol):
        got = []
        while len(got) < 20:
            f = await client.expect("message:new")
            got.append((f["data"]["id"], f["data"]["text"]))
        seqs.append(got)
    assert seqs[0] == seqs[1] == seqs[2]
    ids = [i for i, _ in seqs[0]]
    assert ids == sorted(ids) and len(set(ids)) == 20
    texts = [t for _, t in seqs[0]]
    assert [t for t in texts if t[0] == "a"] == [f"a{i}" for i in range(10)]  # per-sender order kept
    assert [t for t in texts if t[0] == "b"] == [f"b{i}" for i in range(10)]
    await carol.sync()
    for client in (alice, bob, carol):
        await client.close()


async def test_resend_on_another_node_is_answered_not_stored_twice(node_factory):
    a, b = await node_factory(), await node_factory()
    watcher = await join(b, "watcher")
    alice = await join(a, "alice")
    first = await alice.say("once", clientMsgId="c-1")
    await watcher.expect("message:new", text="once")
    await alice.close()
    again = await join(b, "alice")  # the client reconnected elsewhere and resends
    await again.send({"type": "message:send", "text": "once", "clientMsgId": "c-1"})
    echo = await again.expect("message:new", clientMsgId="c-1")
    assert echo["data"] == first["data"]
    await watcher.sync()
    page = await join(a, "reader", history=50)
    assert [m["text"] for m in page.history["messages"]].count("once") == 1
    for client in (watcher, again, page):
        await client.close()


async def test_history_and_resume_from_a_different_node(node_factory):
    a, b = await node_factory(), await node_factory()
    alice = await join(a, "alice")
    sent = [(await alice.say(f"m{i}"))["data"] for i in range(6)]
    # A client that saw m0..m2 on node a resumes on node b: it gets exactly m3..m5.
    resumed = await join(b, "bob", since=sent[2]["id"])
    h = resumed.history
    assert h["reason"] == "resume"
    assert [m["id"] for m in h["messages"]] == [m["id"] for m in sent[3:]]
    assert h["messages"][0] == sent[3]  # the same frame content on every node
    # join history and paging backwards on node b
    fresh = await join(b, "carol", history=3)
    assert [m["text"] for m in fresh.history["messages"]] == ["m3", "m4", "m5"]
    assert fresh.history["hasMore"] is True
    await fresh.send({"type": "history:request", "before": sent[3]["id"], "limit": 2})
    page = await fresh.expect("history")
    assert [m["text"] for m in page["messages"]] == ["m1", "m2"]
    for client in (alice, resumed, fresh):
        await client.close()


async def test_joining_during_a_burst_misses_nothing_and_sees_nothing_twice(node_factory):
    a, b = await node_factory(), await node_factory()
    alice = await join(a, "alice")
    for i in range(30):
        await alice.send({"type": "message:send", "text": f"x{i}"})
    bob = await join(b, "bob", history=1000)
    seen = [m["text"] for m in bob.history["messages"]]
    while len(seen) < 30:
        seen.append((await bob.expect("message:new"))["data"]["text"])
    assert seen == [f"x{i}" for i in range(30)]
    await bob.sync()
    await alice.expect("message:new", text="x29")
    await asyncio.gather(alice.close(), bob.close())


async def test_sends_taken_before_a_node_stops_are_stored_and_delivered(node_factory):
    a, b = await node_factory(), await node_factory()
    bob = await join(b, "bob")
    alice = await join(a, "alice")
    for i in range(5):
        await alice.send({"type": "message:send", "text": f"last{i}"})
    await alice.sync()  # the server has taken all five
    await a.close()
    code, _ = await alice.closed()
    assert code == 1001
    for i in range(5):
        await bob.expect("message:new", text=f"last{i}")
    await bob.presence(username="alice", status="offline")
    await bob.close()


async def _until_pong(client) -> list[dict]:
    """Every frame the server queued for *client* before answering a ping (the pong excluded)."""
    await client.send({"type": "ping", "id": "last"})
    frames = []
    while True:
        frame = await client.recv()
        if frame["type"] == "pong":
            return frames
        frames.append(frame)


async def test_pipelined_sends_from_two_nodes_are_acknowledged_once_in_the_global_order(node_factory):
    a, b = await node_factory(rate_limit=0, address_rate_limit=0), await node_factory(rate_limit=0, address_rate_limit=0)
    alice, bob = await join(a, "alice"), await join(b, "bob")
    watcher = await join(b, "watcher")
    n = 100

    async def burst(client, prefix: str) -> None:  # no waiting for echoes: the nodes batch them
        for i in range(n):
            await client.send({"type": "message:send", "text": f"{prefix}{i}", "clientMsgId": f"{prefix}-{i}"})

    await asyncio.gather(burst(alice, "a"), burst(bob, "b"))
    seqs = []
    for client in (alice, bob, watcher):
        got = []
        while len(got) < 2 * n:
            f = (await client.expect("message:new"))["data"]
            got.append((f["id"], f["text"], f["clientMsgId"]))
        seqs.append(got)
    assert seqs[0] == seqs[1] == seqs[2]  # the sender's acknowledgement is its place in the one order
    ids = [i for i, _, _ in seqs[0]]
    assert ids == sorted(ids) and len(set(ids)) == 2 * n
    for prefix in "ab":
        own = [(t, c) for _, t, c in seqs[0] if t[0] == prefix]
        assert own == [(f"{prefix}{i}", f"{prefix}-{i}") for i in range(n)]  # each once, in send order
    # Each node matched every one of its own entries to its draft: all resolved, none left over.
    await until(lambda: a.core.pending == 0 and b.core.pending == 0)
    assert not a.backend._sent and not b.backend._sent
    assert a.core.counters.messages_total == n and b.core.counters.messages_total == n
    assert a.core.counters.duplicates_total == 0 and b.core.counters.duplicates_total == 0
    for client in (alice, bob, watcher):  # and nothing more is on its way
        assert [f for f in await _until_pong(client) if f["type"] == "message:new"] == []
    for client in (alice, bob, watcher):
        await client.close()
