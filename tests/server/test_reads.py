"""Read positions kept by the server: other windows follow, connected says what is unread, and a
client written from the protocol document alone loses nothing across an idle close."""

from __future__ import annotations

import asyncio

from .support import join


def general(client) -> dict:
    rooms = {r["room"]: r for r in client.connected["rooms"]}
    return rooms["general"]


async def test_reading_in_one_window_moves_the_others_and_nobody_elses(server_factory):
    server = await server_factory()
    bob = await join(server, "bob")
    said = await bob.say("release is out")
    desk, laptop, carol = await join(server, "alice"), await join(server, "alice"), await join(server, "carol")
    await desk.send({"type": "read:update", "room": "general", "messageId": said["data"]["id"]})
    moved = await laptop.expect("read:position")
    assert moved == {"type": "read:position", "room": "general", "messageId": said["data"]["id"]}
    await carol.sync()
    await desk.sync()
    # nothing about alice's reading reached carol or desk itself (a ping round trip orders it)
    for c in (desk, laptop, carol, bob):
        await c.close()


async def test_connected_counts_unread_and_mentions_after_the_position_and_it_survives_a_restart(server_factory,
                                                                                                    tmp_path):
    db = tmp_path / "reads.sqlite3"
    server = await server_factory(db_path=db)
    alice = await join(server, "alice")
    assert general(alice) | {"members": 0} == {"room": "general", "kind": "public", "topic": "", "members": 0,
                                               "lastRead": None, "unread": 0, "mentions": 0, "lastMessageId": None}
    bob = await join(server, "bob")
    first = await bob.say("morning")
    await alice.expect("message:new", text="morning")
    await alice.send({"type": "read:update", "room": "general", "messageId": first["data"]["id"]})
    await alice.sync()
    await alice.close()
    await bob.say("@alice can you review?")
    await bob.say("also @ALICE the deploy")  # any case
    await bob.say("and lunch, @alicexyz?")  # someone else
    last = await bob.say("@bob note to self")
    await bob.close()
    await server.close()
    server = await server_factory(db_path=db)
    again = await join(server, "alice")
    summary = general(again)
    assert (summary["lastRead"], summary["unread"], summary["mentions"], summary["lastMessageId"]) == (
        first["data"]["id"], 4, 2, last["data"]["id"])
    await again.close()


async def test_positions_only_move_forward_and_must_name_a_message(server_factory):
    server = await server_factory()
    bob = await join(server, "bob")
    one, two = await bob.say("one"), await bob.say("two")
    desk, laptop = await join(server, "alice"), await join(server, "alice")
    await desk.send({"type": "read:update", "room": "general", "messageId": two["data"]["id"]})
    assert (await laptop.expect("read:position"))["messageId"] == two["data"]["id"]
    await desk.send({"type": "read:update", "room": "general", "messageId": one["data"]["id"]})  # older: ignored
    await desk.send({"type": "read:update", "room": "general", "messageId": "msg_9999999999999_000000"})
    error = await desk.expect("error")
    assert error["code"] == "invalid_field" and error["frameType"] == "read:update"
    await desk.send({"type": "read:update", "room": "random", "messageId": two["data"]["id"]})
    assert (await desk.expect("error"))["code"] == "not_allowed"  # no such room (or not hers)
    await desk.send({"type": "read:update", "messageId": two["data"]["id"]})  # same: nothing to tell
    await laptop.sync()
    frames = []
    await laptop.send({"type": "ping", "id": "last"})
    while (f := await laptop.recv())["type"] != "pong":
        frames.append(f)
    assert [f for f in frames if f["type"] == "read:position"] == []
    for c in (bob, desk, laptop):
        await c.close()


async def test_a_document_only_client_gets_what_it_missed_across_an_idle_close(server_factory):
    server = await server_factory(idle_timeout=0.5)
    reader = await join(server, "reader", document_only=True)
    assert reader.ws.subprotocol is None
    bob = await join(server, "bob")
    await bob.say("before the close")
    await bob.close()
    await reader.expect("message:new", text="before the close")
    code, _ = await reader.closed(timeout=5)  # it sends nothing: the idle close, as the seed document says
    assert code == 4000
    while any(c.user.username == "reader" for c in server.core.conns):
        await asyncio.sleep(0.01)  # the server has seen it go
    bob = await join(server, "bob")  # (a fresh one: the first was idle too)
    missed = [await bob.say(f"while away {i}") for i in range(3)]
    back = await join(server, "reader", document_only=True, read_history=False)
    got = [await back.expect("message:new") for _ in range(3)]
    assert [g["data"]["id"] for g in got] == [m["data"]["id"] for m in missed]  # in order, nothing before
    live = await bob.say("live again")
    assert (await back.expect("message:new"))["data"]["id"] == live["data"]["id"]
    await back.close()
    await bob.close()
