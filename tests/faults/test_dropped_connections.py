"""Dropped connections: a proxy cuts every connection at a random byte (mid-frame too) while three clients send.

The cuts are drawn from a seeded RNG (``SEED``), so a failure reproduces with
the same schedule. Same classification as the crash test: nothing lost,
duplicated or unexpected at any client or in the store, per-sender order kept.
"""

from __future__ import annotations

import asyncio

import pytest

from workspace_tui.client import ChatClient, HistoryReceived, Joined, MessageAcknowledged

from tests.client.support import started

from .support import CuttingProxy, acknowledged, classify, client_view, store_view

SENDERS = ("dan", "eve", "fay")
PER_SENDER = 200
TOTAL = len(SENDERS) * PER_SENDER


@pytest.mark.parametrize("seed", [5, 1234])
async def test_random_cuts_mid_frame_lose_and_duplicate_nothing(server_factory, tmp_path, seed):
    db = tmp_path / f"server-{seed}.sqlite3"
    server = await server_factory(db_path=db, rate_limit=0, address_rate_limit=0)
    proxy = CuttingProxy(server.port, seed=seed, max_cuts=40, budget=(32, 12_000), up_budget=(32, 3_000))
    url = await proxy.start()
    clients = {
        n: ChatClient(url, n, state_path=tmp_path / f"{n}-{seed}.outbox", backoff_base=0.02, backoff_cap=0.1)
        for n in SENDERS
    }
    recs = {n: await started(c) for n, c in clients.items()}
    sent: dict[str, list[str]] = {n: [] for n in SENDERS}
    try:
        # Everyone in the room before the first message (the proxy may cut a few handshakes first):
        # what was sent before a client first joined is not owed to it.
        for rec in recs.values():
            await rec.wait_event(HistoryReceived, timeout=30)

        async def produce(name: str) -> None:
            for i in range(PER_SENDER):
                text = f"{name}:{i:03d}"
                await clients[name].send(text)
                sent[name].append(text)
                if i % 5 == 0:
                    await asyncio.sleep(0.005)

        await asyncio.gather(*(produce(n) for n in SENDERS))
        for rec in recs.values():
            await rec.wait_for(lambda r: len(r.of(MessageAcknowledged)) >= PER_SENDER, timeout=60)
        for rec in recs.values():
            await rec.wait_for(lambda r: len(client_view(r)) >= TOTAL, timeout=30)
    finally:
        for c in clients.values():
            await c.close()
        await proxy.close()

    stats = proxy.stats
    joins = {n: len(r.of(Joined)) for n, r in recs.items()}
    for name, rec in recs.items():
        assert clients[name].queued == 0, name
        assert acknowledged(rec) == sent[name], name
    verdicts = [classify(n, sent, client_view(r)) for n, r in recs.items()]
    verdicts.append(classify("store", sent, store_view(db)))
    print(f"\nseed={seed} {stats} joins={joins}\n" + "\n".join(map(str, verdicts)))
    assert all(v.clean and v.delivered == TOTAL for v in verdicts), "\n".join(map(str, verdicts))
    # the faults really happened, in both directions and inside frames
    assert stats.cuts >= 20 and stats.mid_frame >= 10, stats
    assert stats.upstream and stats.downstream, stats
