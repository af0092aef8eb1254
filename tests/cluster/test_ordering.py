"""A user's frames reach the users of another node in the order the user sent them."""

from __future__ import annotations

from tests.server.support import frames_about, join

from .conftest import until
from .test_presence import remote_names


async def alice_and_bob_on_two_nodes(node_factory):
    """alice on one node, bob on another, each known to the other node (and nothing about alice
    pending for bob: he was there before she came)."""
    a, b = await node_factory(rate_limit=0, address_rate_limit=0), await node_factory(rate_limit=0, address_rate_limit=0)
    bob = await join(b, "bob")
    await until(lambda: "bob" in remote_names(a))
    alice = await join(a, "alice")
    await bob.presence(username="alice", status="online")
    return alice, bob


async def test_message_then_presence_and_typing_arrive_in_order_on_the_other_node(node_factory):
    alice, bob = await alice_and_bob_on_two_nodes(node_factory)
    sent: list[tuple[str, object]] = []
    for i in range(10):
        # pipelined: nothing waits for the echo of the message before the next frame
        await alice.send({"type": "message:send", "text": f"m{i}"})
        status = "away" if i % 2 == 0 else "busy"
        await alice.send({"type": "presence:update", "status": status})
        await alice.send({"type": "typing:indicator", "isTyping": True})
        sent += [("message", f"m{i}"), ("presence", status), ("typing", True)]
        if i < 9:  # the next message clears typing first
            sent.append(("typing", False))
    await alice.send({"type": "message:send", "text": "end"})
    sent += [("typing", False), ("message", "end")]
    seen = await frames_about(bob, alice.user_id, len(sent))
    assert seen == sent, "\n".join(map(str, seen))
    await alice.close()
    await bob.close()


async def test_typing_after_a_message_reaches_the_other_node_after_the_message(node_factory):
    alice, bob = await alice_and_bob_on_two_nodes(node_factory)
    sent: list[tuple[str, object]] = []
    for i in range(20):
        if i:
            sent.append(("typing", False))  # the message clears the typing before it
        await alice.send({"type": "message:send", "text": f"t{i}"})
        await alice.send({"type": "typing:indicator", "isTyping": True})
        sent += [("message", f"t{i}"), ("typing", True)]
    seen = await frames_about(bob, alice.user_id, len(sent))
    assert seen == sent, "\n".join(map(str, seen))
    await alice.sync()  # (reads her echoes: a full receive queue would hold up her close)
    await alice.close()
    await bob.close()
