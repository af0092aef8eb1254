"""Rooms and direct messages on a real server: who gets what, and who can never learn of it."""

from __future__ import annotations

import json

from .support import join


async def room_frame(client, kind: str, **match):
    return await client.expect(kind, **match)


async def test_a_room_is_created_joined_and_only_its_members_get_its_messages(server_factory):
    server = await server_factory()
    alice, bob, carol = await join(server, "alice"), await join(server, "bob"), await join(server, "carol")
    await alice.send({"type": "room:create", "room": "dev", "topic": "backend"})
    joined = await alice.expect("room:joined")
    assert joined["room"]["room"] == "dev" and joined["room"]["topic"] == "backend" and joined["room"]["kind"] == "public"
    await bob.send({"type": "room:join", "room": "dev"})
    await bob.expect("room:joined")
    note = await alice.expect("room:member")
    assert (note["room"], note["username"], note["joined"]) == ("dev", "bob", True)
    await alice.send({"type": "message:send", "room": "dev", "text": "dev only"})
    got = await bob.expect("message:new", text="dev only")
    assert got["data"]["room"] == "dev"
    await alice.send({"type": "typing:indicator", "isTyping": True, "room": "dev"})
    typing = await bob.expect("typing:indicator")
    assert typing["data"]["room"] == "dev"
    await alice.say("for everyone")
    # carol, not in dev, got general's message and nothing of dev (a ping round trip orders it)
    frames = []
    await carol.send({"type": "ping", "id": "end"})
    while (f := await carol.recv())["type"] != "pong":
        frames.append(f)
    texts = [f["data"]["text"] for f in frames if f["type"] == "message:new"]
    assert texts == ["for everyone"]
    assert not [f for f in frames if f["type"] == "typing:indicator" and f["data"].get("room") == "dev"]
    await carol.send({"type": "message:send", "room": "dev", "text": "let me in"})
    err = await carol.expect("error")
    assert err["code"] == "not_allowed" and "no such room dev" in err["message"]
    # paging dev: members only
    await bob.send({"type": "history:request", "room": "dev", "limit": 10})
    page = await bob.expect("history")
    assert page["room"] == "dev" and [m["text"] for m in page["messages"]] == ["dev only"]
    await carol.send({"type": "history:request", "room": "dev", "limit": 10})
    assert (await carol.expect("error"))["code"] == "not_allowed"
    # list, members, topic, leave
    await carol.send({"type": "room:list"})
    listed = await carol.expect("room:list")
    assert {r["room"]: r["joined"] for r in listed["rooms"]} == {"general": True, "dev": False}
    await alice.send({"type": "room:members", "room": "dev"})
    members = await alice.expect("room:members")
    assert [m["username"] for m in members["members"]] == ["alice", "bob"] and members["next"] is None
    assert {m["status"] for m in members["members"]} == {"online"}
    await bob.send({"type": "room:topic", "room": "dev", "topic": "backend and ops"})
    assert (await alice.expect("room:updated"))["topic"] == "backend and ops"
    await bob.send({"type": "room:leave", "room": "dev"})
    assert (await bob.expect("room:left"))["room"] == "dev"
    assert (await alice.expect("room:member", ))["joined"] is False
    for c in (alice, bob, carol):
        await c.close()


async def test_rooms_survive_a_restart_with_unread_counts_and_resume_covers_every_room(server_factory, tmp_path):
    db = tmp_path / "rooms.sqlite3"
    server = await server_factory(db_path=db)
    alice, bob = await join(server, "alice"), await join(server, "bob")
    await alice.send({"type": "room:create", "room": "ops"})
    await alice.expect("room:joined")
    await bob.send({"type": "room:join", "room": "ops"})
    await bob.expect("room:joined")
    first = await bob.say("general one")
    await alice.send({"type": "read:update", "room": "ops", "messageId": first["data"]["id"]})
    await alice.sync()
    await alice.close()
    await bob.send({"type": "message:send", "room": "ops", "text": "@alice the pager"})
    await bob.expect("message:new", text="@alice the pager")
    await bob.say("general two")
    await bob.close()
    await server.close()
    server = await server_factory(db_path=db)
    back = await join(server, "alice", since=first["data"]["id"], read_history=False)
    rooms = {r["room"]: r for r in back.connected["rooms"]}
    assert set(rooms) == {"general", "ops"} and back.connected["rooms"][0]["room"] == "general"
    assert (rooms["ops"]["unread"], rooms["ops"]["mentions"]) == (1, 1)
    resumed = await back.expect("history")
    assert resumed["reason"] == "resume"
    assert [(m["room"], m["text"]) for m in resumed["messages"]] == [("ops", "@alice the pager"),
                                                                      ("general", "general two")]
    await back.close()


async def test_a_direct_message_is_invisible_to_everyone_else_whatever_they_try(server_factory):
    server = await server_factory()
    alice, bob, carol = await join(server, "alice"), await join(server, "bob"), await join(server, "carol")
    start = await carol.say("before")
    await alice.send({"type": "message:send", "to": ["bob"], "text": "just between us"})
    joined = await bob.expect("room:joined")
    assert joined["room"]["room"] == "dm:alice,bob" and joined["room"]["with"] == ["alice"]
    dm = await bob.expect("message:new", text="just between us")
    assert dm["data"]["room"] == "dm:alice,bob"
    await alice.expect("message:new", text="just between us")
    frames = []
    await carol.send({"type": "ping", "id": "end"})
    while (f := await carol.recv())["type"] != "pong":
        frames.append(f)
    assert "just between us" not in json.dumps(frames) and "dm:" not in json.dumps(frames)
    # carol names the room: paging, sending, typing, reading, members — the same answer as for no room
    for frame in ({"type": "history:request", "room": "dm:alice,bob"},
                  {"type": "message:send", "room": "dm:alice,bob", "text": "hi"},
                  {"type": "typing:indicator", "room": "dm:alice,bob", "isTyping": True},
                  {"type": "room:members", "room": "dm:alice,bob"},
                  {"type": "room:join", "room": "dm:alice,bob"}):
        await carol.send(frame)
        err = await carol.expect("error")
        assert err["code"] == "not_allowed", (frame, err)
    # resume and a fresh connection: nothing of it
    again = await join(server, "carol", since=start["data"]["id"], read_history=False)
    assert "dm:" not in json.dumps(again.connected)
    resumed = await again.expect("history")
    assert "just between us" not in json.dumps(resumed)
    await carol.send({"type": "room:list"})
    assert "dm:" not in json.dumps(await carol.expect("room:list"))
    for c in (alice, bob, carol, again):
        await c.close()


async def test_a_document_only_client_sees_general_only(server_factory):
    server = await server_factory()
    alice, bob = await join(server, "alice"), await join(server, "bob")
    plain = await join(server, "plain", document_only=True)
    assert [r["room"] for r in plain.connected["rooms"]] == ["general"]
    await alice.send({"type": "room:create", "room": "dev"})
    await alice.expect("room:joined")
    await alice.send({"type": "message:send", "room": "dev", "text": "dev talk"})
    await alice.expect("message:new", text="dev talk")
    await alice.send({"type": "message:send", "to": ["bob"], "text": "psst"})
    await bob.expect("message:new", text="psst")
    await alice.send({"type": "presence:update", "status": "busy"})
    said = await alice.say("general talk")
    frames = []
    while True:
        f = await plain.recv()
        frames.append(f)
        if f["type"] == "message:new" and f["data"]["id"] == said["data"]["id"]:
            break
    texts = [f["data"]["text"] for f in frames if f["type"] == "message:new"]
    assert texts == ["general talk"]
    assert any(f["type"] == "presence:update" and f["data"]["status"] == "busy" for f in frames)
    await plain.send({"type": "room:create", "room": "mine"})
    assert (await plain.expect("error"))["code"] == "not_allowed"
    for c in (alice, bob, plain):
        await c.close()


async def test_connected_lists_a_bounded_roster_and_the_rest_is_paged(server_factory):
    server = await server_factory()
    server.core.presence.ROSTER_CAP = 3  # (200 by default; the same code path with fewer users)
    people = [await join(server, f"user{i}") for i in range(5)]
    late = await join(server, "late")
    assert late.connected["usersComplete"] is False and len(late.connected["users"]) == 3
    assert late.connected["connectedUsers"] == 6
    names, after = [], ""
    while after is not None:
        await late.send({"type": "room:members", "room": "general", "after": after, "limit": 2})
        page = await late.expect("room:members")
        names += [m["username"] for m in page["members"]]
        assert all(m["status"] == "online" for m in page["members"])
        after = page["next"]
    assert names == sorted(["late", *(f"user{i}" for i in range(5))])
    small = await server_factory(db_path=server.config.db_path.with_name("small.sqlite3"))
    one = await join(small, "one")
    assert "usersComplete" not in one.connected
    for c in (*people, late, one):
        await c.close()


async def test_a_first_direct_message_is_unread_and_a_joined_rooms_past_is_not(server_factory):
    server = await server_factory()
    alice = await join(server, "alice")
    await alice.send({"type": "room:create", "room": "team"})
    await alice.expect("room:joined")
    await alice.send({"type": "message:send", "room": "team", "text": "before bob"})
    await alice.expect("message:new", text="before bob")
    await alice.send({"type": "message:send", "to": ["bob"], "text": "welcome"})
    await alice.expect("message:new", text="welcome")
    bob = await join(server, "bob")
    rooms = {r["room"]: r for r in bob.connected["rooms"]}
    assert rooms["dm:alice,bob"]["unread"] == 1 and rooms["dm:alice,bob"]["with"] == ["alice"]
    await bob.send({"type": "room:join", "room": "team"})
    assert (await bob.expect("room:joined"))["room"]["unread"] == 0
    for c in (alice, bob):
        await c.close()


async def test_a_direct_message_to_a_look_alike_spelling_reaches_the_name_live(server_factory):
    server = await server_factory()
    alice, bob = await join(server, "alice"), await join(server, "bob")
    await alice.send({"type": "typing:indicator", "room": "dm:alice,bob", "isTyping": True})  # no message yet
    await alice.send({"type": "message:send", "to": ["B0B"], "text": "hi, however you spell it"})
    frames = []
    while not frames or frames[-1]["type"] != "message:new":
        frames.append(await bob.recv())
    kinds = [f["type"] for f in frames if f["type"] not in ("presence:update", "presence:batch")]
    assert kinds == ["room:joined", "message:new"]  # typing in a direct message nobody wrote in yet: nothing
    assert frames[-1]["data"]["room"] == "dm:alice,bob" and frames[-1]["data"]["text"] == "hi, however you spell it"
    for c in (alice, bob):
        await c.close()
