"""Slow reader: one client stops reading while the others chat at full speed.

What ``tests/server/test_limits.py`` already shows (4001, resume) is taken
further here: the same chat runs twice, without and with a reader that has
stopped, and the others' latency is compared; the server's buffer for the
stopped reader is sampled and must stay near the configured limit (it would
otherwise grow with everything sent); the process RSS is reported.
"""

from __future__ import annotations

import asyncio
import json
import statistics

from websockets.asyncio.client import connect

from workspace_tui.protocol import CLOSE_SLOW_CONSUMER

from tests.server.support import TIMEOUT, join, url_for

from .support import rss_kb

LIMIT = 128 * 1024
FLOOD = 1500  # messages of ~8 KB from the flooder per phase: ~12 MB fanned out to every reader
PROBES = 40


async def chat_phase(server, tag: str) -> tuple[list[float], int]:
    """A flooder sends FLOOD big messages while a prober times PROBES small ones to a listener.

    Returns the probe latencies (seconds) and how many messages the listener got.
    """
    flooder = await join(server, f"flood{tag}")
    prober = await join(server, f"probe{tag}")
    listener = await join(server, f"listen{tag}")
    loop = asyncio.get_running_loop()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    got = 0
    probe_seen = asyncio.Event()

    async def drain(c) -> None:
        async for _ in c.ws:
            pass

    async def listen() -> None:
        nonlocal got
        async for raw in listener.ws:
            frame = json.loads(raw)
            if frame["type"] != "message:new":
                continue
            got += 1
            text = frame["data"]["text"]
            if text in sent_at:
                latencies.append(loop.time() - sent_at[text])
                probe_seen.set()

    tasks = [asyncio.create_task(drain(flooder)), asyncio.create_task(drain(prober)), asyncio.create_task(listen())]

    async def flood() -> None:
        body = "f" * 8000
        for i in range(FLOOD):
            await flooder.send({"type": "message:send", "text": f"{tag}{i} {body}"})
            if i % 25 == 0:
                await asyncio.sleep(0)

    async def probe() -> None:
        for i in range(PROBES):
            text = f"probe {tag} {i}"
            probe_seen.clear()
            sent_at[text] = loop.time()
            await prober.send({"type": "message:send", "text": text})
            await asyncio.wait_for(probe_seen.wait(), 10)
            await asyncio.sleep(0.01)

    await asyncio.gather(flood(), probe())
    async with asyncio.timeout(30):
        while got < FLOOD + PROBES:
            await asyncio.sleep(0.01)
    for t in tasks:
        t.cancel()
    for c in (flooder, prober, listener):
        await c.close()
    return latencies, got


async def test_a_stopped_reader_does_not_slow_the_others_and_resumes_everything(server_factory):
    server = await server_factory(rate_limit=0, address_rate_limit=0, send_buffer_limit=LIMIT, max_payload=64 * 1024)
    baseline, got = await chat_phase(server, "a")
    assert got == FLOOD + PROBES

    # the stopped reader: max_queue=1 makes websockets stop reading the socket once one frame waits unread
    slow = await connect(url_for(server, "slow"), max_queue=1, max_size=None, open_timeout=TIMEOUT)
    slow_peer = next(p.link for p in server.core.conns if p.user.username == "slow")
    peak = 0
    rss: list[int] = [rss_kb()]

    async def sample() -> None:
        nonlocal peak
        for n in range(10**9):
            if not slow_peer.transport.is_closing():
                peak = max(peak, slow_peer.transport.get_write_buffer_size())
            if n % 10 == 0:
                rss.append(rss_kb())
            await asyncio.sleep(0.002)

    sampler = asyncio.create_task(sample())
    rss0 = rss[0]
    loaded, got = await chat_phase(server, "b")
    sampler.cancel()
    assert got == FLOOD + PROBES

    b50, l50 = statistics.median(baseline), statistics.median(loaded)
    b90, l90 = sorted(baseline)[int(0.9 * PROBES)], sorted(loaded)[int(0.9 * PROBES)]
    print(
        f"\nlatency p50 {b50 * 1000:.1f} -> {l50 * 1000:.1f} ms, p90 {b90 * 1000:.1f} -> {l90 * 1000:.1f} ms; "
        f"slow buffer peak {peak} B (limit {LIMIT}); RSS {rss0} -> max {max(rss)} KiB"
    )
    # Loose on purpose: the same traffic, with a stopped reader, is not markedly slower for the others.
    assert l50 <= max(3 * b50, b50 + 0.05), (baseline, loaded)
    # The server held at most about the limit for the stopped reader (plus one flush), not the ~12 MB sent.
    assert server.core.counters.closes.get(CLOSE_SLOW_CONSUMER) == 1
    assert peak <= LIMIT + 256 * 1024, peak
    assert max(rss) - rss0 < 64 * 1024, (rss0, max(rss))

    # The stopped reader reads again: it sees a clear close code, and resuming from the last
    # message it saw gives it exactly what it missed.
    last_seen = None
    try:
        async with asyncio.timeout(10):
            async for raw in slow:
                frame = json.loads(raw)
                if frame["type"] == "message:new":
                    last_seen = frame["data"]["id"]
    except Exception:  # noqa: BLE001 - the connection ends with the 4001 close
        pass
    assert slow.close_code == CLOSE_SLOW_CONSUMER and slow.close_reason
    assert last_seen is not None
    back = await connect(url_for(server, "slow", since=last_seen), max_size=None, open_timeout=TIMEOUT)
    assert json.loads(await back.recv())["type"] == "connected"
    missed: list[str] = []
    while True:
        hist = json.loads(await asyncio.wait_for(back.recv(), TIMEOUT))
        assert hist["type"] == "history" and hist["reason"] == "resume" and not hist["gap"]
        missed += [m["id"] for m in hist["messages"]]
        if not hist["hasMore"]:
            break
    everything = [m.id for m in server.backend.all_after(last_seen)]
    assert missed == everything and len(missed) > 0
    print(f"slow reader missed {len(missed)} messages, all resumed")
    await back.close()
