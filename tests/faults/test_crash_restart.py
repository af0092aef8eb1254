"""Crash and restart: ``kill -9`` of the server twice while three clients each send 300 messages.

Classified like a queue checker, at every client and in the SQLite file:
lost (acknowledged, never delivered), duplicated, unexpected (never sent),
and per-sender order. All must be zero / kept.
"""

from __future__ import annotations

import asyncio

from workspace_tui.client import ChatClient, Joined, MessageAcknowledged

from tests.client.support import ServerProcess, started

from .support import acknowledged, classify, client_view, store_view

SENDERS = ("ann", "ben", "cat")
PER_SENDER = 300
TOTAL = len(SENDERS) * PER_SENDER


async def test_kill9_twice_while_three_clients_send_300_each(tmp_path):
    db = tmp_path / "server.sqlite3"
    srv = ServerProcess(db, "--rate-limit", "0", "--address-rate-limit", "0")
    srv.start()
    clients = {
        n: ChatClient(srv.url, n, state_path=tmp_path / f"{n}.outbox", backoff_base=0.05, backoff_cap=0.3)
        for n in SENDERS
    }
    recs = {n: await started(c) for n, c in clients.items()}
    sent: dict[str, list[str]] = {n: [] for n in SENDERS}
    kills: list[int] = []  # acknowledged messages (all senders) at each kill
    try:
        for rec in recs.values():
            await rec.wait_event(Joined)

        async def produce(name: str) -> None:
            for i in range(PER_SENDER):
                text = f"{name}:{i:03d}"
                await clients[name].send(text)
                sent[name].append(text)
                await asyncio.sleep(0.004)  # a steady stream, so each kill lands mid-stream

        def acks() -> int:
            return sum(len(r.of(MessageAcknowledged)) for r in recs.values())

        producers = [asyncio.create_task(produce(n)) for n in SENDERS]
        for threshold in (TOTAL // 4, TOTAL // 2):
            await recs["ann"].wait_for(lambda r, t=threshold: acks() >= t, timeout=30)
            kills.append(acks())
            srv.kill9()
            srv.start()
        await asyncio.gather(*producers)
        for name, rec in recs.items():
            await rec.wait_for(lambda r: len(r.of(MessageAcknowledged)) >= PER_SENDER, timeout=60)
            # settled: every client has delivered all TOTAL messages (or the check below says which are missing)
        for rec in recs.values():
            await rec.wait_for(lambda r: len(client_view(r)) >= TOTAL, timeout=30)
        assert all(k < TOTAL for k in kills), kills  # both kills really were mid-stream
    finally:
        for c in clients.values():
            await c.close()
        srv.stop()

    for name, rec in recs.items():
        assert clients[name].queued == 0, name
        assert acknowledged(rec) == sent[name], name  # every send acknowledged once, in order
        assert len(rec.of(Joined)) >= 2, name  # it lived through at least one restart

    verdicts = [classify(n, sent, client_view(r)) for n, r in recs.items()]
    verdicts.append(classify("store", sent, store_view(db)))
    print("\n".join(map(str, verdicts)), f"kills at acks={kills}")
    assert all(v.clean and v.delivered == TOTAL for v in verdicts), "\n".join(map(str, verdicts))
