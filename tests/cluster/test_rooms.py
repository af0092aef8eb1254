"""Rooms and direct messages on two nodes through Redis: the same answers as one embedded node
(tests/server/test_rooms.py), whichever node each user is on."""

from __future__ import annotations

import json

from tests.server.support import join
from workspace_tui.backends import redis_scripts


async def until_pong(client) -> list[dict]:
    """Every frame *client* gets before the answer to a ping (everything queued for it before)."""
    frames = []
    await client.send({"type": "ping", "id": "end"})
    while (f := await client.recv())["type"] != "pong":
        frames.append(f)
    return frames


async def test_a_room_made_on_one_node_is_joined_on_another_and_only_its_members_get_it(node_factory):
    a, b = await node_factory(), await node_factory()
    alice, bob, carol = await join(a, "alice"), await join(b, "bob"), await join(b, "carol")
    await alice.send({"type": "room:create", "room": "dev", "topic": "backend"})
    assert (await alice.expect("room:joined"))["room"]["topic"] == "backend"
    await bob.send({"type": "room:join", "room": "dev"})
    joined = await bob.expect("room:joined")
    assert (joined["room"]["room"], joined["room"]["members"]) == ("dev", 2)
    note = await alice.expect("room:member")
    assert (note["room"], note["username"], note["joined"]) == ("dev", "bob", True)
    # two nodes create the same room: one of them is told it exists
    await carol.send({"type": "room:create", "room": "dev"})
    err = await carol.expect("error")
    assert err["code"] == "not_allowed" and "room dev exists" in err["message"]
    # per-room order: both senders interleaved, both members see one order
    for i in range(5):
        await alice.send({"type": "message:send", "room": "dev", "text": f"a{i}"})
        await bob.send({"type": "message:send", "room": "dev", "text": f"b{i}"})
    seqs = []
    for client in (alice, bob):
        got = [await client.expect("message:new") for _ in range(10)]
        assert {g["data"]["room"] for g in got} == {"dev"}
        seqs.append([g["data"]["id"] for g in got])
    assert seqs[0] == seqs[1] == sorted(seqs[0])
    await alice.send({"type": "typing:indicator", "isTyping": True, "room": "dev"})
    assert (await bob.expect("typing:indicator"))["data"]["room"] == "dev"
    await alice.say("for everyone")
    await carol.expect("message:new", text="for everyone")
    await bob.expect("message:new", text="for everyone")
    frames = await until_pong(carol)
    assert '"dev"' not in json.dumps(frames)
    # non-members: no sending, no paging; list and members from the other node
    await carol.send({"type": "message:send", "room": "dev", "text": "let me in"})
    assert "no such room dev" in (await carol.expect("error"))["message"]
    await carol.send({"type": "history:request", "room": "dev", "limit": 10})
    assert (await carol.expect("error"))["code"] == "not_allowed"
    await bob.send({"type": "history:request", "room": "dev", "limit": 50})
    page = await bob.expect("history")
    assert page["room"] == "dev" and [m["id"] for m in page["messages"]] == seqs[0]
    await carol.send({"type": "room:list"})
    listed = await carol.expect("room:list")
    assert [(r["room"], r["joined"], r["members"]) for r in listed["rooms"]] == [("general", True, None),
                                                                              ("dev", False, 2)]
    await bob.send({"type": "room:members", "room": "dev", "limit": 1})
    first = await bob.expect("room:members")
    assert [m["username"] for m in first["members"]] == ["alice"] and first["next"] == "alice"
    await bob.send({"type": "room:members", "room": "dev", "after": "alice"})
    rest = await bob.expect("room:members")
    assert [m["username"] for m in rest["members"]] == ["bob"] and rest["next"] is None
    # topic and leave reach the other node
    await bob.send({"type": "room:topic", "room": "dev", "topic": "backend and ops"})
    assert (await alice.expect("room:updated"))["topic"] == "backend and ops"
    await bob.send({"type": "room:leave", "room": "dev"})
    assert (await bob.expect("room:left"))["room"] == "dev"
    left = await alice.expect("room:member")
    assert (left["username"], left["joined"]) == ("bob", False)
    await alice.send({"type": "message:send", "room": "dev", "text": "after bob left"})
    await alice.expect("message:new", text="after bob left")
    assert "after bob left" not in json.dumps(await until_pong(bob))
    for c in (alice, bob, carol):
        await c.close()


async def test_a_resend_to_a_room_on_the_other_node_is_answered_not_stored_twice(node_factory):
    a, b = await node_factory(), await node_factory()
    alice = await join(a, "alice")
    await alice.send({"type": "room:create", "room": "ops"})
    await alice.expect("room:joined")
    first = await alice.say("deploy", room="ops", clientMsgId="m-1")
    await alice.close()
    again = await join(b, "alice")
    await again.send({"type": "message:send", "room": "ops", "text": "deploy", "clientMsgId": "m-1"})
    echo = await again.expect("message:new", text="deploy")
    assert echo["data"]["id"] == first["data"]["id"] and echo["data"]["room"] == "ops"
    await again.send({"type": "history:request", "room": "ops", "limit": 10})
    page = await again.expect("history")
    assert [m["id"] for m in page["messages"]] == [first["data"]["id"]]
    await again.close()


async def test_resume_from_either_node_covers_every_room_once_in_order(node_factory):
    a, b = await node_factory(), await node_factory()
    alice, bob = await join(a, "alice"), await join(b, "bob")
    await alice.send({"type": "room:create", "room": "ops", "private": True})
    await alice.expect("room:joined")
    await bob.send({"type": "room:join", "room": "ops"})
    assert "private" in (await bob.expect("error"))["message"]
    await alice.send({"type": "room:invite", "room": "ops", "username": "bob"})
    assert (await bob.expect("room:invited"))["by"] == "alice"
    await bob.send({"type": "room:join", "room": "ops"})
    await bob.expect("room:joined")
    start = await bob.say("start")
    await alice.expect("message:new", text="start")
    await alice.close()
    sent = [("ops", "@alice the pager"), ("general", "general two"), ("ops", "ops two"), ("dev", "not hers")]
    await bob.send({"type": "room:create", "room": "dev"})
    await bob.expect("room:joined")
    for room, text in sent:
        await bob.say(text, room=room)
    for node in (a, b):
        back = await join(node, "alice", since=start["data"]["id"], read_history=False)
        rooms = {r["room"]: r for r in back.connected["rooms"]}
        assert list(rooms) == ["general", "ops"]
        resumed = await back.expect("history")
        assert resumed["reason"] == "resume" and not resumed["hasMore"]
        assert [(m["room"], m["text"]) for m in resumed["messages"]] == sent[:3]
        await back.close()
    await bob.close()


async def test_a_direct_message_on_two_nodes_is_invisible_to_a_third_user(node_factory):
    a, b = await node_factory(), await node_factory()
    alice, bob, carol = await join(a, "alice"), await join(b, "bob"), await join(b, "carol")
    start = await carol.say("before")
    await alice.send({"type": "message:send", "to": ["bob"], "text": "just between us"})
    joined = await bob.expect("room:joined")
    assert joined["room"]["room"] == "dm:alice,bob" and joined["room"]["with"] == ["alice"]
    assert (await bob.expect("message:new", text="just between us"))["data"]["room"] == "dm:alice,bob"
    await alice.expect("message:new", text="just between us")
    assert "dm:" not in json.dumps(await until_pong(carol))
    for frame in ({"type": "history:request", "room": "dm:alice,bob"},
                  {"type": "message:send", "room": "dm:alice,bob", "text": "hi"},
                  {"type": "typing:indicator", "room": "dm:alice,bob", "isTyping": True},
                  {"type": "room:members", "room": "dm:alice,bob"},
                  {"type": "room:join", "room": "dm:alice,bob"}):
        await carol.send(frame)
        err = await carol.expect("error")
        assert err["code"] == "not_allowed", (frame, err)
    for node in (a, b):
        again = await join(node, "carol", since=start["data"]["id"], read_history=False)
        assert "dm:" not in json.dumps(again.connected)
        assert "just between us" not in json.dumps(await again.expect("history"))
        await again.send({"type": "room:list"})
        assert "dm:" not in json.dumps(await again.expect("room:list"))
        await again.close()
    # bob's rooms on the other node include the DM, stored with its first message
    later = await join(a, "bob")
    dm = [r for r in later.connected["rooms"] if r["room"] == "dm:alice,bob"]
    assert dm and dm[0]["kind"] == "dm" and dm[0]["members"] == 2
    await later.send({"type": "history:request", "room": "dm:alice,bob"})
    assert [m["text"] for m in (await later.expect("history"))["messages"]] == ["just between us"]
    for c in (alice, bob, carol, later):
        await c.close()


async def test_room_joined_and_read_positions_reach_the_users_window_on_the_other_node(node_factory):
    a, b = await node_factory(), await node_factory()
    desk, laptop = await join(a, "alice"), await join(b, "alice")
    bob = await join(b, "bob")
    await desk.send({"type": "room:create", "room": "dev"})
    await desk.expect("room:joined")
    assert (await laptop.expect("room:joined"))["room"]["room"] == "dev"
    await bob.send({"type": "room:join", "room": "dev"})
    await bob.expect("room:joined")
    said = await bob.say("look", room="dev")
    await laptop.expect("message:new", text="look")
    await desk.send({"type": "read:update", "room": "dev", "messageId": said["data"]["id"]})
    moved = await laptop.expect("read:position")
    assert (moved["room"], moved["messageId"]) == ("dev", said["data"]["id"])
    await bob.say("@alice one more", room="dev")
    await bob.say("in general")
    for c in (desk, laptop):
        await c.close()
    later = await join(a, "alice")
    rooms = {r["room"]: r for r in later.connected["rooms"]}
    assert (rooms["dev"]["lastRead"], rooms["dev"]["unread"], rooms["dev"]["mentions"]) == (said["data"]["id"], 1, 1)
    assert rooms["general"]["lastRead"] is None and rooms["dev"]["lastMessageId"] > said["data"]["id"]
    for c in (bob, later):
        await c.close()


async def test_a_quiet_room_in_a_busy_stream_pages_and_resumes_in_bounded_scans(node_factory, monkeypatch):
    monkeypatch.setattr(redis_scripts, "READ_SCAN", 3)  # every read call looks at three entries at most
    a, b = await node_factory(), await node_factory()
    alice, bob = await join(a, "alice"), await join(b, "bob")
    await alice.send({"type": "room:create", "room": "quiet"})
    await alice.expect("room:joined")
    start = await bob.say("start")
    await alice.expect("message:new", text="start")
    quiet_one = await alice.say("quiet one", room="quiet")
    noise = [await bob.say(f"noise {i}") for i in range(10)]
    await alice.say("quiet two", room="quiet")
    await alice.send({"type": "history:request", "room": "quiet", "limit": 1})
    page = await alice.expect("history")
    assert [m["text"] for m in page["messages"]] == ["quiet two"] and page["hasMore"]
    await alice.send({"type": "history:request", "room": "quiet", "before": page["messages"][0]["id"]})
    older = await alice.expect("history")
    assert [m["id"] for m in older["messages"]] == [quiet_one["data"]["id"]]
    await alice.close()
    back = await join(b, "alice", since=start["data"]["id"], read_history=False)
    got = []
    while True:
        frame = await back.expect("history")
        got += [m["text"] for m in frame["messages"]]
        if not frame["hasMore"]:
            break
    assert got == ["quiet one", *(n["data"]["text"] for n in noise), "quiet two"]
    for c in (bob, back):
        await c.close()


async def test_a_first_direct_message_is_unread_and_a_joined_rooms_past_is_not(node_factory):
    from tests.server.support import join

    a, b = await node_factory(), await node_factory()
    alice = await join(a, "alice")
    await alice.send({"type": "room:create", "room": "team"})
    await alice.expect("room:joined")
    await alice.send({"type": "message:send", "room": "team", "text": "before bob"})
    await alice.expect("message:new", text="before bob")
    await alice.send({"type": "message:send", "to": ["bob"], "text": "welcome"})
    await alice.expect("message:new", text="welcome")
    bob = await join(b, "bob")
    rooms = {r["room"]: r for r in bob.connected["rooms"]}
    assert rooms["dm:alice,bob"]["unread"] == 1 and rooms["dm:alice,bob"]["with"] == ["alice"]
    await bob.send({"type": "room:join", "room": "team"})
    joined = await bob.expect("room:joined")
    assert joined["room"]["unread"] == 0  # what was said before he joined is history
    for c in (alice, bob):
        await c.close()
