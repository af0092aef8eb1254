"""Messages: ordered ids, exactly-once sends, history/resume/paging, cleaning, error frames."""

from __future__ import annotations

import json

import pytest

from workspace_tui.protocol import ERROR_CODES, message_id_key

from .support import join, plant


async def test_ids_sort_in_acceptance_order_and_echo_client_msg_id(server_factory):
    server = await server_factory(rate_limit=0, address_rate_limit=0)
    a = await join(server, "alice")
    for i in range(50):
        await a.send({"type": "message:send", "text": f"m{i}", "clientMsgId": f"c{i}"})
    got = [(await a.expect("message:new"))["data"] for _ in range(50)]
    assert [d["text"] for d in got] == [f"m{i}" for i in range(50)]
    assert [d["clientMsgId"] for d in got] == [f"c{i}" for i in range(50)]
    ids = [d["id"] for d in got]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert all(message_id_key(i) for i in ids)
    # a message without clientMsgId carries none back
    plain = await a.say("plain")
    assert "clientMsgId" not in plain["data"]
    await a.close()


async def test_duplicate_client_msg_id_is_not_stored_or_broadcast_twice(server):
    a1 = await join(server, "alice")
    a2 = await join(server, "alice")
    b = await join(server, "bob")
    first = await a1.say("once", clientMsgId="k1")
    assert (await b.expect("message:new"))["data"] == first["data"]
    await a2.expect("message:new")
    # resend from another connection of the same user (a reconnect after a lost ack)
    await a2.send({"type": "message:send", "text": "once (edited?)", "clientMsgId": "k1"})
    reply = await a2.expect("message:new")
    assert reply["data"] == first["data"]  # the original, text included
    # nobody else sees it again: the next message bob and a1 get is a new one
    await b.say("next")
    assert (await a1.expect("message:new"))["data"]["text"] == "next"
    assert server.backend.count() == 2
    # the same clientMsgId from another user is a different message
    other = await b.say("mine", clientMsgId="k1")
    assert other["data"]["id"] != first["data"]["id"]
    for c in (a1, a2, b):
        await c.close()


async def test_duplicates_in_the_same_commit_batch(server):
    a = await join(server, "alice")
    b = await join(server, "bob")
    frame = json.dumps({"type": "message:send", "text": "burst", "clientMsgId": "same"})
    await a.ws.send(frame)
    await a.ws.send(frame)
    await a.ws.send(frame)
    echoes = [(await a.expect("message:new"))["data"] for _ in range(3)]  # one broadcast + two answers
    assert len({e["id"] for e in echoes}) == 1
    await a.say("sentinel")
    assert (await b.expect("message:new"))["data"]["text"] == "burst"
    assert (await b.expect("message:new"))["data"]["text"] == "sentinel"
    assert server.backend.count() == 2
    await a.close()
    await b.close()


async def test_dedupe_and_id_order_survive_a_restart(server_factory, tmp_path):
    db = tmp_path / "restart.sqlite3"
    s1 = await server_factory(db_path=db)
    a = await join(s1, "alice")
    before = await a.say("before", clientMsgId="r1")
    await a.close()
    await s1.close()

    s2 = await server_factory(db_path=db)
    a = await join(s2, "alice")
    assert [m["id"] for m in a.history["messages"]] == [before["data"]["id"]]
    await a.send({"type": "message:send", "text": "before", "clientMsgId": "r1"})
    again = await a.expect("message:new")
    assert again["data"] == before["data"]
    after = await a.say("after")
    assert after["data"]["id"] > before["data"]["id"]
    assert s2.backend.count() == 2
    await a.close()


async def test_ids_keep_increasing_when_the_clock_is_behind(server_factory, tmp_path):
    from workspace_tui.backends.sqlite import SQLiteBackend
    from workspace_tui.protocol import ChatMessage, make_message_id

    db = tmp_path / "future.sqlite3"
    store = SQLiteBackend(db)
    future = make_message_id(9_999_999_999_000, 5)  # a store written with a clock far ahead
    store.insert([ChatMessage(future, "u", "old", "x", "2286-11-20T17:46:39.000Z")])
    store.shut()
    server = await server_factory(db_path=db)
    a = await join(server, "alice")
    new = await a.say("now")
    assert new["data"]["id"] > future
    await a.close()


async def test_join_history_last_n_oldest_first(server_factory):
    server = await server_factory(history=5, rate_limit=0, address_rate_limit=0)
    a = await join(server, "alice")
    assert a.history == {"type": "history", "reason": "join", "messages": [], "hasMore": False,
                         "room": "general"}
    sent = [(await a.say(f"h{i}"))["data"] for i in range(8)]
    b = await join(server, "bob")
    assert b.history["reason"] == "join"
    assert b.history["messages"] == sent[-5:]
    assert b.history["hasMore"] is True
    c = await join(server, "carol", history=8)  # the query parameter overrides --history
    assert c.history["messages"] == sent and c.history["hasMore"] is False
    d = await join(server, "dave", history=0)
    assert d.history["messages"] == [] and d.history["hasMore"] is True
    for x in (a, b, c, d):
        await x.close()


async def test_resume_since_gives_exactly_what_was_missed(server_factory):
    server = await server_factory(rate_limit=0, address_rate_limit=0)
    a = await join(server, "alice")
    sent = [(await a.say(f"r{i}"))["data"] for i in range(10)]
    b = await join(server, "bob", since=sent[3]["id"])
    h = b.history
    assert h["reason"] == "resume" and h["since"] == sent[3]["id"]
    assert h["messages"] == sent[4:] and h["hasMore"] is False and h["gap"] is False
    latest = await join(server, "carol", since=sent[-1]["id"])
    assert latest.history["messages"] == [] and latest.history["gap"] is False
    for x in (a, b, latest):
        await x.close()


async def test_resume_in_chunks_of_500(server_factory):
    server = await server_factory()
    msgs = plant(server, [f"b{i}" for i in range(1203)])
    first = msgs[0].id
    b = await join(server, "bob", since=first)
    frames = [b.history, await b.recv(), await b.recv()]
    assert [len(f["messages"]) for f in frames] == [500, 500, 202]
    assert [f["hasMore"] for f in frames] == [True, True, False]
    ids = [m["id"] for f in frames for m in f["messages"]]
    assert ids == [m.id for m in msgs[1:]]
    await b.sync()
    await b.close()


async def test_resume_reports_a_gap_when_the_store_no_longer_has_it(server_factory):
    server = await server_factory()
    a = await join(server, "alice")
    m = await a.say("only")
    b = await join(server, "bob", since="msg_0000000000001_000000")  # older than anything stored
    assert b.history["gap"] is True
    assert [x["id"] for x in b.history["messages"]] == [m["data"]["id"]]
    await a.close()
    await b.close()


async def test_history_request_pages_back(server_factory):
    server = await server_factory(rate_limit=0, address_rate_limit=0, history=3)
    a = await join(server, "alice")
    sent = [(await a.say(f"p{i}"))["data"] for i in range(10)]
    b = await join(server, "bob")
    assert b.history["messages"] == sent[-3:]
    await b.send({"type": "history:request", "before": sent[-3]["id"], "limit": 4})
    page = await b.expect("history")
    assert page["reason"] == "page" and page["before"] == sent[-3]["id"]
    assert page["messages"] == sent[3:7] and page["hasMore"] is True
    await b.send({"type": "history:request", "before": sent[3]["id"], "limit": 200})
    page = await b.expect("history")
    assert page["messages"] == sent[:3] and page["hasMore"] is False
    await b.send({"type": "history:request", "limit": 2})  # no before: the newest
    page = await b.expect("history")
    assert page["messages"] == sent[-2:] and page["hasMore"] is True
    for bad in ({"limit": 201}, {"limit": 0}, {"limit": "5"}, {"before": 5}):
        await b.send({"type": "history:request", **bad})
        err = await b.expect("error")
        assert err["code"] == "invalid_field" and err["frameType"] == "history:request"
    await a.close()
    await b.close()


HOSTILE = [
    ("\x1b[2J\x1b[Hclear", "clear"),
    ("copy\x1b]52;c;ZXZpbA==\x07me", "copyme"),
    ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),
    ("a\x9b31mb\x85c", "abc"),
    ("bidi\u202eevil\u2066x\u2069", "bidievilx"),
    ("line1\r\nline2\rline3", "line1\nline2\nline3"),
    ("tab\tand\nnewline\x00\x07\x7f", "tab\tand\nnewline"),
    ("[bold red]markup[/] <b>html</b> &amp;", "[bold red]markup[/] <b>html</b> &amp;"),
    ("émoji 😀 ok", "émoji 😀 ok"),
]


@pytest.mark.parametrize("raw, clean", HOSTILE)
async def test_text_is_cleaned_before_storing_and_broadcasting(server, raw, clean):
    a = await join(server, "alice")
    b = await join(server, "bob")
    await a.send({"type": "message:send", "text": raw})
    msg = await b.expect("message:new")
    assert msg["data"]["text"] == clean
    c = await join(server, "carol")
    assert c.history["messages"][-1]["text"] == clean
    for x in (a, b, c):
        await x.close()


async def test_every_error_code_and_the_connection_stays_open(server_factory):
    server = await server_factory(rate_limit=1)
    a = await join(server, "alice")
    q = await join(server, "quiet", presence="none")
    cases = [
        (a, "{not json", "invalid_json", {}),
        (a, "[1, 2]", "invalid_json", {}),
        (a, b"\x00binary", "binary_frame", {}),
        (a, {"type": "nope"}, "unknown_type", {"frameType": "nope"}),
        (a, {"text": "no type"}, "invalid_field", {}),
        (a, {"type": "message:send"}, "invalid_field", {"frameType": "message:send"}),
        (a, {"type": "message:send", "text": 5, "clientMsgId": "x1"}, "invalid_field", {"clientMsgId": "x1"}),
        (a, {"type": "message:send", "text": "t", "clientMsgId": "x" * 65}, "invalid_field", {}),
        (a, {"type": "message:send", "text": "t", "clientMsgId": 7}, "invalid_field", {}),
        (a, {"type": "typing:indicator", "isTyping": "yes"}, "invalid_field", {"frameType": "typing:indicator"}),
        (a, {"type": "presence:update", "status": "sleeping"}, "invalid_status", {"frameType": "presence:update"}),
        (a, {"type": "message:send", "text": " \x1b[0m\r\n ", "clientMsgId": "e1"}, "empty_text", {"clientMsgId": "e1"}),
        (q, {"type": "typing:indicator", "isTyping": True}, "not_allowed", {"frameType": "typing:indicator"}),
        (q, {"type": "presence:update", "status": "away"}, "not_allowed", {"frameType": "presence:update"}),
    ]
    seen = set()
    for client, frame, code, fields in cases:
        await client.send(frame)
        err = await client.expect("error")
        assert err["code"] == code, (frame, err)
        assert isinstance(err["message"], str) and err["message"]
        for k, v in fields.items():
            assert err[k] == v
        assert "Traceback" not in err["message"]
        seen.add(code)
    await a.say("ok", clientMsgId="m1")
    await a.send({"type": "message:send", "text": "too soon", "clientMsgId": "m2"})
    err = await a.expect("error")
    assert err["code"] == "rate_limited" and err["clientMsgId"] == "m2" and err["retryAfterMs"] > 0
    seen.add("rate_limited")
    assert seen == set(ERROR_CODES) - {"unavailable"}
    # unknown fields are ignored
    await q.send({"type": "message:send", "text": "quiet hello", "extra": {"x": 1}})
    assert (await q.expect("message:new", text="quiet hello"))["data"]["username"] == "quiet"
    await a.send({"type": "ping", "id": 42})
    pong = await a.expect("pong")
    assert pong["id"] == 42
    await a.close()
    await q.close()


async def test_compression_flag(server_factory):
    server = await server_factory(compression=True)
    a = await join(server, "alice")  # the websockets client offers permessage-deflate
    assert a.ws.protocol.extensions, "deflate was negotiated"
    b = await join(server, "bob")
    sent = await a.say("squeeze " * 100)
    assert (await b.expect("message:new"))["data"] == sent["data"]
    await a.close()
    await b.close()


async def test_store_failure_is_an_unavailable_error_not_a_silent_drop(server_factory, tmp_path):
    import sqlite3

    server = await server_factory()
    a = await join(server, "alice")
    b = await join(server, "bob")
    await a.say("fine")
    await b.expect("message:new")
    server.backend.db.close()  # the disk went away
    await a.send({"type": "message:send", "text": "lost?", "clientMsgId": "u1"})
    err = await a.expect("error")
    assert err["code"] == "unavailable" and err["clientMsgId"] == "u1"
    await a.send({"type": "message:send", "text": "lost too?"})
    err = await a.expect("error")
    assert err["code"] == "unavailable"
    await a.send({"type": "history:request", "limit": 5})
    assert (await a.expect("error"))["code"] == "unavailable"
    await b.send({"type": "ping"})
    assert (await b.recv())["type"] == "pong"  # nothing was broadcast
    server.backend.db = sqlite3.connect(":memory:")  # let close() finish cleanly
    await a.close()
    await b.close()


async def test_connected_tells_the_newest_message_id(server_factory, tmp_path):
    from workspace_tui.protocol import Connected, parse_server_frame

    db = tmp_path / "last.sqlite3"
    server = await server_factory(db_path=db)
    a = await join(server, "alice")
    assert a.connected["lastMessageId"] is None
    m = await a.say("newest")
    b = await join(server, "bob", history=0)
    assert b.connected["lastMessageId"] == m["data"]["id"]
    parsed = parse_server_frame(json.dumps(b.connected))
    assert isinstance(parsed, Connected) and parsed.last_message_id == m["data"]["id"]
    await a.close()
    await b.close()
    await server.close()
    again = await server_factory(db_path=db)
    c = await join(again, "carol")
    assert c.connected["lastMessageId"] == m["data"]["id"]
    await c.close()


async def test_a_fragmented_message_is_assembled(server):
    """A message split over several WebSocket frames (continuations) arrives whole."""
    a = await join(server, "alice")
    frame = json.dumps({"type": "message:send", "text": "in three parts"})
    await a.ws.send(iter([frame[:10], frame[10:20], frame[20:]]))
    assert (await a.expect("message:new"))["data"]["text"] == "in three parts"
    await a.close()
