"""Presence, roster and typing across nodes: online on the first connection anywhere, offline after the last."""

from __future__ import annotations

from tests.server.support import join

from .conftest import until


def roster(client) -> dict[str, tuple[str, int]]:
    return {u["username"]: (u["status"], u["connections"]) for u in client.connected["users"]}


def remote_names(node) -> set[str]:
    """The users *node* knows to be online on other nodes."""
    return {name for users in node.core.presence.remote.values() for name in users}


async def test_roster_online_offline_and_counts_are_global(node_factory):
    a, b = await node_factory(), await node_factory()
    alice = await join(a, "alice")
    # Presence crosses nodes through Redis, a moment after the join: wait for it to arrive.
    await until(lambda: "alice" in remote_names(b))
    bob = await join(b, "bob")
    assert roster(bob) == {"alice": ("online", 1), "bob": ("online", 1)}
    assert bob.connected["connectedUsers"] == 2
    await alice.presence(username="bob", status="online")
    # bob's second connection, on the other node: no new "online", the count goes to 2 everywhere
    bob2 = await join(a, "bob")
    assert roster(bob2)["bob"] == ("online", 2)
    await alice.presence(username="bob", status="online", connections=2)
    # bob leaves node b but is still on node a: he stays online (count 1), not offline
    await bob.close()
    await alice.presence(username="bob", status="online", connections=1)
    await bob2.close()
    await alice.presence(username="bob", status="offline")
    await until(lambda: "bob" not in remote_names(b))
    carol = await join(b, "carol")
    assert set(roster(carol)) == {"alice", "carol"}
    await alice.close()
    await carol.presence(username="alice", status="offline")
    await carol.close()


async def test_status_and_typing_travel_between_nodes(node_factory):
    a, b = await node_factory(), await node_factory()
    alice = await join(a, "alice")
    bob = await join(b, "bob")
    await alice.send({"type": "presence:update", "status": "busy"})
    await bob.presence(username="alice", status="busy")
    assert bob.presence_frame["type"] == "presence:batch"  # a change on another node: batched here too
    # a new connection of alice on node b has her status, not a fresh "online"
    alice_b = await join(b, "alice")
    assert roster(alice_b)["alice"] == ("busy", 2)
    await alice.send({"type": "typing:indicator", "isTyping": True})
    await bob.expect("typing:indicator", username="alice", isTyping=True)
    await alice.say("done typing")
    await bob.expect("typing:indicator", username="alice", isTyping=False)
    for c in (alice, alice_b, bob):
        await c.close()


async def test_a_new_node_sees_users_already_online(node_factory):
    a = await node_factory()
    alice = await join(a, "alice")
    b = await node_factory()
    await until(lambda: "alice" in remote_names(b))
    bob = await join(b, "bob")
    assert roster(bob) == {"alice": ("online", 1), "bob": ("online", 1)}
    await alice.close()
    await bob.close()


async def test_appear_offline_reaches_the_users_own_connections_on_other_nodes(node_factory):
    a, b = await node_factory(), await node_factory()
    alice_a = await join(a, "alice")
    await until(lambda: "alice" in remote_names(b))
    alice_b = await join(b, "alice")
    bob = await join(b, "bob")
    await alice_a.send({"type": "presence:update", "status": "offline"})
    for c in (alice_b, bob):  # the same as a real disconnect, for everyone (bob: in a presence:batch)
        hidden = await c.presence(username="alice")
        assert (hidden["status"], hidden["connections"]) == ("offline", 0)
    await alice_a.send({"type": "presence:update", "status": "busy"})
    back = (await alice_b.expect("presence:update", username="alice"))["data"]
    assert (back["status"], back["connections"]) == ("busy", 2)
    await alice_b.send({"type": "presence:update", "status": "offline"})
    await alice_a.expect("presence:update", username="alice", status="offline", connections=0)
    for c in (alice_a, alice_b, bob):
        await c.close()
