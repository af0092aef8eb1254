"""Fan-out under concurrency: every connection gets every message after its join, once, in id order,
and never its own typing or presence echo, while others join, type and change status meanwhile."""

from __future__ import annotations

import asyncio
import json
import random

from websockets.asyncio.client import connect

from .support import TIMEOUT, url_for


async def test_concurrent_senders_joiners_and_typists(server_factory):
    server = await server_factory(rate_limit=0, address_rate_limit=0, max_connections_per_user=0, frame_rate=0)
    rng = random.Random(7)
    received: dict[str, list[dict]] = {}
    first_ids: dict[str, str | None] = {}
    done = asyncio.Event()
    problems: list[str] = []
    total = 6 * 40

    async def member(name: str, sender: bool):
        async with connect(url_for(server, name), open_timeout=TIMEOUT) as ws:
            connected = json.loads(await ws.recv())
            assert connected["type"] == "connected"
            history = json.loads(await ws.recv())
            assert history["type"] == "history"
            first_ids[name] = history["messages"][-1]["id"] if history["messages"] else None
            got = received.setdefault(name, [])

            async def reader():
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame["type"] in ("connected", "history", "error"):
                        problems.append(f"{name} got {frame}")
                    if frame["type"] in ("typing:indicator", "presence:update") and frame["data"]["username"] == name:
                        problems.append(f"{name} got its own {frame}")
                    got.append(frame)

            task = asyncio.create_task(reader())
            if sender:
                for i in range(40):
                    kind = rng.random()
                    if kind < 0.2:
                        await ws.send(json.dumps({"type": "typing:indicator", "isTyping": True}))
                    elif kind < 0.25:
                        await ws.send(json.dumps({"type": "presence:update", "status": rng.choice(["away", "online"])}))
                    await ws.send(json.dumps({"type": "message:send", "text": f"{name}:{i}", "clientMsgId": f"{name}-{i}"}))
                    if i % 7 == 0:
                        await asyncio.sleep(0)
            await done.wait()
            task.cancel()

    tasks = [asyncio.create_task(member(f"s{i}", True)) for i in range(6)]
    for i in range(14):  # listeners joining while the senders are going
        tasks.append(asyncio.create_task(member(f"l{i}", False)))
        await asyncio.sleep(0.002)

    async def all_stored():
        while server.backend.count() < total:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(all_stored(), 20)
    all_ids = [m.id for m in server.backend.all_after("msg_0000000000000_000000")][-total:]

    async def everyone_caught_up():
        while True:
            ok = True
            for name, frames in received.items():
                ids = [f["data"]["id"] for f in frames if f["type"] == "message:new"]
                start = first_ids[name]
                expected = [i for i in all_ids if start is None or i > start]
                if ids != expected[: len(ids)] or len(ids) < len(expected):
                    ok = False
            if ok:
                return
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(everyone_caught_up(), 10)
    finally:
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert problems == []
    for name, frames in received.items():
        ids = [f["data"]["id"] for f in frames if f["type"] == "message:new"]
        start = first_ids[name]
        assert ids == [i for i in all_ids if start is None or i > start], name
        # per-sender order as sent
        for s in range(6):
            mine = [int(f["data"]["text"].split(":")[1]) for f in frames if f["type"] == "message:new" and f["data"]["username"] == f"s{s}"]
            assert mine == sorted(mine)
