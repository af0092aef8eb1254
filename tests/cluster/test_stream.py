"""The Redis stream stays bounded (by bytes, by age) and history reads stop at a frame inside Redis."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from tests.server.support import join, url_for
from workspace_tui.backends import redis_scripts as keys
from workspace_tui.core.history import HistoryQuery, HistoryResult
from workspace_tui.protocol import HISTORY_FRAME_BYTES

from .conftest import until


async def _stream(redis_url: str) -> tuple[int | None, list[tuple[str, dict[str, str]]]]:
    """The byte counter and every entry of the messages stream (messages and relay entries)."""
    r = aioredis.from_url(redis_url, decode_responses=True)
    try:
        total = await r.get(keys.BYTES)
        return (int(total) if total is not None else None), await r.xrange(keys.MESSAGES)
    finally:
        await r.aclose()


def _size(entries: list[tuple[str, dict[str, str]]]) -> int:
    return sum(keys.stored_size(f) for _, f in entries)


def _texts(entries: list[tuple[str, dict[str, str]]]) -> list[str]:
    """The texts of the messages among *entries* (not the relay entries: presence, typing)."""
    return [f["t"] for _, f in entries if not keys.is_relay(f)]


async def _read(node, query: HistoryQuery) -> HistoryResult:
    """What the node's backend itself returns for *query* (before the core cuts a frame)."""
    fut: asyncio.Future[HistoryResult | Exception] = asyncio.get_running_loop().create_future()
    node.backend.read(query, fut.set_result)
    result = await asyncio.wait_for(fut, 5)
    assert isinstance(result, HistoryResult), result
    return result


async def test_the_stream_is_trimmed_by_bytes_oldest_first(node_factory, redis_server):
    limit = 20_000
    a = await node_factory(broker_max_bytes=limit, rate_limit=0, address_rate_limit=0)
    b = await node_factory(broker_max_bytes=limit, rate_limit=0, address_rate_limit=0)
    alice, bob = await join(a, "alice"), await join(b, "bob")
    texts = [f"{i:03d}" + "é" * 500 for i in range(60)]  # 1,003 bytes of UTF-8 each
    for i, text in enumerate(texts):
        last = (await (alice if i % 2 == 0 else bob).say(text))["data"]
        total, entries = await _stream(redis_server.url)
        assert total == _size(entries)  # the counter is exact: what was trimmed was subtracted
        assert total <= limit
    assert len(entries) < 20
    kept = _texts(entries)
    assert kept == texts[-len(kept):]  # the oldest went, the newest stayed
    # history on any node is what the stream still holds; a resume from before it has a gap
    late = await join(a, "carol", history=1000)
    assert [m["text"] for m in late.history["messages"]] == kept
    assert late.history["hasMore"] is False
    resumed = await join(b, "dave", since="msg_0000000000001_000000")
    assert resumed.history["gap"] is True
    assert [m["text"] for m in resumed.history["messages"]] == kept
    assert resumed.history["messages"][-1] == last

    # A stream without a counter (written by an older version) is counted once at start.
    r = aioredis.from_url(redis_server.url, decode_responses=True)
    await r.delete(keys.BYTES)
    await r.aclose()
    await node_factory(broker_max_bytes=limit, rate_limit=0, address_rate_limit=0)
    total, entries = await _stream(redis_server.url)
    assert total == _size(entries)
    await alice.say("after the count")
    total, entries = await _stream(redis_server.url)
    assert total == _size(entries) <= limit
    for c in (alice, bob, late, resumed):
        await c.close()


async def test_messages_older_than_max_age_are_trimmed_but_the_newest_stays(node_factory, redis_server):
    a = await node_factory(broker_max_age=0.5, broker_node_ttl=0.8, rate_limit=0, address_rate_limit=0)  # heartbeat every 0.2 s
    alice = await join(a, "alice")
    for i in range(5):
        await alice.say(f"old{i}")

    async def length() -> int:
        return len((await _stream(redis_server.url))[1])  # (alice's join relay is the oldest: it goes too)

    deadline = asyncio.get_running_loop().time() + 10
    while await length() > 1:
        assert asyncio.get_running_loop().time() < deadline, "not trimmed in time"
        await asyncio.sleep(0.05)
    total, entries = await _stream(redis_server.url)
    assert _texts(entries) == ["old4"] and total == _size(entries)
    late = await join(a, "bob", history=100)
    assert [m["text"] for m in late.history["messages"]] == ["old4"]
    for c in (alice, late):
        await c.close()


async def test_history_reads_stop_at_one_frame_inside_redis(node_factory):
    a = await node_factory(rate_limit=0, address_rate_limit=0)
    b = await node_factory(rate_limit=0, address_rate_limit=0)
    alice = await join(a, "alice")
    small = [f"s{i}:" + "y" * 100_000 for i in range(8)]
    big = [f"b{i}:" + "z" * 300_000 for i in range(4)]
    sent = [(await alice.say(text))["data"] for text in small + big]

    # The backend itself never returns more than a frame's worth: 1000 asked, one of 300 KB fits.
    got = await _read(b, HistoryQuery("latest", 1000))
    assert [m.text for m in got.messages] == big[-1:] and got.has_more
    ids = [m.id for m in (await _read(b, HistoryQuery("latest", 1000, before=got.messages[0].id))).messages]
    assert len(ids) == 1
    # ... and paging on through the 100 KB ones: five fit in a frame
    older = await _read(b, HistoryQuery("latest", 1000, before=sent[len(small)]["id"]))
    assert [m.text for m in older.messages] == small[3:] and older.has_more

    # A join asking for 1000 gets one frame of at most 512 KiB (here: one 300 KB message).
    ws = await connect(url_for(b, "bob", history=1000), max_size=None)
    assert json.loads(await ws.recv())["type"] == "connected"
    raw = await ws.recv()
    frame = json.loads(raw)
    assert frame["reason"] == "join" and frame["hasMore"] is True
    assert [m["text"] for m in frame["messages"]] == big[-1:]
    # paging backwards past the big ones: frames within the limit, everything once, in order
    seen = [m["text"] for m in frame["messages"]]
    before = frame["messages"][0]["id"]
    while True:
        await ws.send(json.dumps({"type": "history:request", "before": before, "limit": 100}))
        while True:
            raw = await asyncio.wait_for(ws.recv(), 5)
            page = json.loads(raw)
            if page["type"] == "history":
                break
        assert len(raw.encode()) <= HISTORY_FRAME_BYTES or len(page["messages"]) == 1
        seen[:0] = [m["text"] for m in page["messages"]]
        if not page["hasMore"]:
            break
        before = page["messages"][0]["id"]
    assert seen == small + big
    await ws.close()

    # A resume from the start streams every message in frames of at most 512 KiB.
    ws = await connect(url_for(a, "carol", since="msg_0000000000001_000000"), max_size=None)
    assert json.loads(await ws.recv())["type"] == "connected"
    texts: list[str] = []
    while True:
        raw = await asyncio.wait_for(ws.recv(), 5)
        part = json.loads(raw)
        assert part["reason"] == "resume"
        assert len(raw.encode()) <= HISTORY_FRAME_BYTES or len(part["messages"]) == 1
        texts += [m["text"] for m in part["messages"]]
        if not part["hasMore"]:
            break
    assert texts == small + big
    await ws.close()
    await alice.close()


@pytest.mark.parametrize("size_flag, age_var", [
    (("--max-store-bytes", "1MiB"), ("WORKSPACE_RETENTION", "0")),
    (("--broker-max-mb", "1"), ("WORKSPACE_BROKER_MAX_AGE_DAYS", "0")),  # the older spellings
])
async def test_serve_maps_the_trimming_flags_and_environment(redis_server, tmp_path, size_flag, age_var):
    """``--max-store-bytes`` and ``WORKSPACE_RETENTION`` (or their old names) reach the running node."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKSPACE_")}
    env["WORKSPACE_DATA_DIR"] = str(tmp_path)
    env[age_var[0]] = age_var[1]  # keep: only the byte limit trims
    proc = subprocess.Popen(
        [sys.executable, "-m", "workspace_tui", "serve", "--port", "0", "--broker", redis_server.url,
         *size_flag, "--rate-limit", "0", "--address-rate-limit", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)
        m = re.search(rb"(ws://\S+/ws) \(store: ", line)
        assert m, line
        ws = await connect(m[1].decode() + "?username=alice", max_size=None)
        await ws.recv()
        await ws.recv()
        for i in range(6):  # 6 x 300 KB: more than 1 MiB
            text = f"{i}" + "m" * 300_000
            await ws.send(json.dumps({"type": "message:send", "text": text}))
            while json.loads(await asyncio.wait_for(ws.recv(), 5)).get("type") != "message:new":
                pass
        total, entries = await _stream(redis_server.url)
        assert total == _size(entries) <= 1024 * 1024
        assert [t[0] for t in _texts(entries)] == ["3", "4", "5"]
        await ws.close()
    finally:
        proc.terminate()
        proc.wait(10)


async def test_own_sends_trimmed_before_the_node_read_them_are_still_acknowledged(node_factory):
    """A node whose reader lags behind a trim still answers each of its sends, once, in order."""
    a = await node_factory(broker_max_bytes=3000, rate_limit=0, address_rate_limit=0)  # room for about two messages
    alice, bob = await join(a, "alice"), await join(a, "bob")
    read_back = []
    xread = a.backend._reader.xread

    async def lagging(*args, **kw):  # fault injection: the reader falls 0.3 s behind
        await asyncio.sleep(0.3)
        resp = await xread(*args, **kw)
        read_back.extend(e[0] for stream, entries in resp or () if stream == keys.MESSAGES for e in entries)
        return resp

    a.backend._reader.xread = lagging
    for i in range(10):
        await alice.send({"type": "message:send", "text": f"{i}" + "q" * 1000, "clientMsgId": f"c{i}"})
    for c in (alice, bob):
        got = [(await c.expect("message:new", timeout=10))["data"] for _ in range(10)]
        assert [m["clientMsgId"] for m in got] == [f"c{i}" for i in range(10)]
        assert [m["id"] for m in got] == sorted(m["id"] for m in got)
    assert len(read_back) < 10  # most were trimmed before the reader got to them
    await until(lambda: a.core.pending == 0)
    assert a.core.counters.messages_total == 10 and not a.backend._sent
    for c in (alice, bob):
        assert [f for f in await _frames_until_pong(c) if f["type"] == "message:new"] == []
        await c.close()


async def _frames_until_pong(client) -> list[dict]:
    await client.send({"type": "ping", "id": "last"})
    frames = []
    while (frame := await client.recv())["type"] != "pong":
        frames.append(frame)
    return frames


def test_the_scripts_module_is_pure():
    import subprocess

    code = "import sys, workspace_tui.backends.redis_scripts; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert not {"redis", "asyncio", "socket", "websockets"} & {m.partition(".")[0] for m in loaded}
