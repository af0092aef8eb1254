"""Presence and typing travel as relay entries of the messages stream: never history, never kept
at the expense of a message, counted exactly."""

from __future__ import annotations

import asyncio
import json

from tests.server.support import join
from workspace_tui.backends import redis_scripts as keys
from workspace_tui.core.history import HistoryQuery

from .conftest import until
from .test_stream import _read, _size, _stream, _texts

STATUSES = ["away", "busy", "online"]


async def _burst(client, n: int) -> int:
    """*n* presence changes and *n* typing starts and stops: 3 * n relay entries."""
    for i in range(n):
        await client.send({"type": "presence:update", "status": STATUSES[i % 3]})
        await client.send({"type": "typing:indicator", "isTyping": True})
        await client.send({"type": "typing:indicator", "isTyping": False})
    return 3 * n


async def _relays_stored(redis_url: str, n: int) -> None:
    async def count() -> int:
        return sum(1 for _, f in (await _stream(redis_url))[1] if keys.is_relay(f))

    deadline = asyncio.get_running_loop().time() + 5
    while await count() < n:
        assert asyncio.get_running_loop().time() < deadline, "relays not stored in time"
        await asyncio.sleep(0.02)


async def _page(client, before: str, limit: int) -> dict:
    await client.send({"type": "history:request", "before": before, "limit": limit})
    return await client.expect("history")


async def _close(*clients) -> None:
    for c in clients:
        await c.sync()  # reads what is waiting: a full receive queue would hold up the close
        await c.close()


def _texts_of(frame: dict) -> list[str]:
    return [m["text"] for m in frame["messages"]]


async def test_relay_entries_never_appear_in_history(node_factory, redis_server):
    a = await node_factory(rate_limit=0, address_rate_limit=0, frame_rate=0)
    b = await node_factory(rate_limit=0, address_rate_limit=0, frame_rate=0)
    alice = await join(a, "alice")
    relays = 1  # alice's join
    texts = [f"h{i}" for i in range(10)]
    ids = []
    for text in texts:
        relays += await _burst(alice, 4)
        ids.append((await alice.say(text))["data"]["id"])
    relays += await _burst(alice, 4)  # relay entries after the newest message, too
    await _relays_stored(redis_server.url, relays)
    total, entries = await _stream(redis_server.url)
    assert _texts(entries) == texts and len(entries) == len(texts) + relays
    assert total == _size(entries)

    # the backend itself: messages only, the limit counts messages, hasMore only for messages
    got = await _read(b, HistoryQuery("latest", 10))
    assert [m.text for m in got.messages] == texts and not got.has_more
    got = await _read(b, HistoryQuery("latest", 9))
    assert [m.text for m in got.messages] == texts[1:] and got.has_more
    got = await _read(b, HistoryQuery("after", 3, after=ids[2]))
    assert [m.text for m in got.messages] == texts[3:6] and got.has_more
    assert got.oldest_id == ids[0]  # the oldest message, not the relay entry before it
    got = await _read(b, HistoryQuery("after", 7, after=ids[2]))
    assert [m.text for m in got.messages] == texts[3:] and not got.has_more

    # a node that starts now: its newest message is h9, not the relay entries after it
    c = await node_factory(rate_limit=0, address_rate_limit=0, frame_rate=0)
    assert c.backend.last_message_id == ids[-1]
    for node in (a, b, c):
        carol = await join(node, "carol", history=4)
        assert carol.connected["lastMessageId"] == ids[-1]
        assert _texts_of(carol.history) == texts[-4:] and carol.history["hasMore"] is True
        page = await _page(carol, ids[-4], 3)
        assert _texts_of(page) == texts[3:6] and page["hasMore"] is True
        page = await _page(carol, ids[3], 3)
        assert _texts_of(page) == texts[:3] and page["hasMore"] is False  # relays before h0 are no more
        await _close(carol)
        dave = await join(node, "dave", history=10)
        assert _texts_of(dave.history) == texts and dave.history["hasMore"] is False
        await _close(dave)
        erin = await join(node, "erin", since=ids[4])
        assert erin.history["reason"] == "resume"
        assert _texts_of(erin.history) == texts[5:] and erin.history["hasMore"] is False
        assert erin.history["gap"] is False
        await _close(erin)
        frank = await join(node, "frank", since=ids[-1])  # nothing after it but relay entries
        assert frank.history["messages"] == [] and frank.history["hasMore"] is False
        await _close(frank)
    await _close(alice)


async def test_trimming_counts_relay_entries_and_keeps_the_newest_message(node_factory, redis_server):
    limit = 3000
    a = await node_factory(broker_max_bytes=limit, rate_limit=0, address_rate_limit=0, frame_rate=0)
    b = await node_factory(broker_max_bytes=limit, rate_limit=0, address_rate_limit=0, frame_rate=0)
    alice = await join(a, "alice")
    bob = await join(b, "bob")
    # relay entries alone stay within the limit, counted exactly
    await _burst(alice, 20)
    await _stored(alice, a)
    total, entries = await _stream(redis_server.url)
    assert total == _size(entries) <= limit
    assert not _texts(entries)
    # a message, then enough relay entries to pass the limit: they go, one by one; the message stays
    last = (await alice.say("keep me"))["data"]
    await _burst(bob, 20)
    await _stored(bob, b)
    total, entries = await _stream(redis_server.url)
    assert total == _size(entries) <= limit
    assert keys.is_relay(entries[-1][1])
    assert _texts(entries) == ["keep me"]
    late = await join(b, "carol", history=100)
    assert [m["id"] for m in late.history["messages"]] == [last["id"]]
    assert late.connected["lastMessageId"] == last["id"]
    await _close(alice, bob, late)


async def _stored(client, node) -> None:
    """What *client* did so far is in Redis (the node's send queue, relays included, is empty)."""
    await client.sync()
    await until(lambda: not node.backend._sendq and not node.backend._sending)


async def _relays_stored_after(redis_url: str, n: int) -> None:
    """At least *n* relay entries after the newest message."""
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        _, entries = await _stream(redis_url)
        after = 0
        for _, f in reversed(entries):
            if not keys.is_relay(f):
                break
            after += 1
        if after >= n:
            return
        assert asyncio.get_running_loop().time() < deadline, "relays not stored in time"
        await asyncio.sleep(0.02)


async def test_age_trimming_keeps_the_newest_message_and_removes_the_relays_after_it(node_factory, redis_server):
    a = await node_factory(broker_max_age=0.5, broker_node_ttl=0.8, rate_limit=0, address_rate_limit=0, frame_rate=0)
    alice = await join(a, "alice")
    for i in range(3):
        await alice.say(f"old{i}")
    await _burst(alice, 5)
    await _relays_stored_after(redis_server.url, 15)
    deadline = asyncio.get_running_loop().time() + 10
    while len((await _stream(redis_server.url))[1]) > 1:
        assert asyncio.get_running_loop().time() < deadline, "not trimmed in time"
        await asyncio.sleep(0.05)
    total, entries = await _stream(redis_server.url)
    assert _texts(entries) == ["old2"] and total == _size(entries)
    late = await join(a, "bob", history=100)
    assert [m["text"] for m in late.history["messages"]] == ["old2"]
    await _close(alice, late)


class _Recorder:
    """BackendEvents that write down what they are told."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def committed(self, messages, drafts) -> None:
        self.calls += [("message", m.text) for m in messages]

    def remote_presence(self, node, username, user_id, status, count, exclude_user, verified=False) -> None:
        self.calls.append(("presence", username, status))

    def remote_typing(self, username, user_id, is_typing) -> None:
        self.calls.append(("typing", username, is_typing))

    def node_users(self, node, users) -> None:
        self.calls.append(("hello", node, {n: st for n, (_, st, *_) in users.items()}))

    def node_gone(self, node) -> None:
        self.calls.append(("bye", node))


def _message(text: str) -> dict[str, str]:
    return {"u": "u1", "n": "alice", "t": text, "c": "", "o": "other:1"}


def _presence(node: str, status: str) -> dict[str, str]:
    return {"k": "presence", "j": json.dumps({"t": "presence", "node": node, "user": "alice", "user_id": "u1",
                                             "status": status, "count": 1, "xu": False})}


def _node_event(node: str, kind: str, **extra) -> dict[str, str]:
    return {"j": json.dumps({"node": node, "t": kind, **extra})}


def test_the_reader_applies_node_events_and_relays_in_id_order():
    from workspace_tui.backends.redis import RedisBackend

    backend = RedisBackend("redis://127.0.0.1:1/0")
    rec = backend._events = _Recorder()
    hello = _node_event("x", "hello", users={"alice": {"user_id": "u1", "status": "away", "count": 1}})
    backend._on_reply([
        [keys.MESSAGES, [("1000-0", _message("m1")), ("1002-0", _presence("x", "busy")), ("1003-0", _message("m2"))]],
        [keys.EVENTS, [("1001-0", hello), ("1004-0", _node_event("x", "bye"))]],
    ], count=100)
    assert rec.calls == [("message", "m1"), ("hello", "x", {"alice": "away"}), ("presence", "alice", "busy"),
                         ("message", "m2"), ("bye", "x")]
    assert backend._cursor == "1003-0" and backend._events_cursor == "1004-0"

    # A reply cut at the count may stop short of older entries of its stream: nothing after its
    # end is handled yet (the cursors stay, the next XREAD returns it again).
    rec.calls.clear()
    backend._on_reply([
        [keys.MESSAGES, [("2000-0", _message("m3")), ("2001-0", _message("m4"))]],
        [keys.EVENTS, [("2000-5", hello), ("2002-0", _node_event("x", "bye"))]],
    ], count=2)
    assert rec.calls == [("message", "m3"), ("hello", "x", {"alice": "away"}), ("message", "m4")]
    assert backend._cursor == "2001-0" and backend._events_cursor == "2000-5"
    # ... and our own node's relays are skipped
    rec.calls.clear()
    backend._on_reply([[keys.MESSAGES, [("3000-0", _presence(backend.node, "away"))]]], count=2)
    assert rec.calls == [] and backend._cursor == "3000-0"
