"""Process-level faults: a server killed with SIGKILL mid-stream, a client process that exits with messages queued."""

from __future__ import annotations

import asyncio
from collections import Counter

from workspace_tui.client import ChatClient, HistoryReceived, Joined, MessageAcknowledged, MessageReceived

from .support import ServerProcess, free_port, run_cli, start, started

SENDERS = ("s1", "s2", "s3")
PER_SENDER = 100


async def test_kill9_and_restart_while_three_clients_send(tmp_path):
    srv = ServerProcess(tmp_path / "server.sqlite3", "--rate-limit", "0", "--address-rate-limit", "0")
    srv.start()
    clients = {
        name: ChatClient(srv.url, name, state_path=tmp_path / f"{name}.sqlite3", backoff_base=0.05, backoff_cap=0.3)
        for name in SENDERS
    }
    recs = {name: await started(c) for name, c in clients.items()}
    try:
        for rec in recs.values():
            await rec.wait_event(Joined)

        async def produce(name: str) -> None:
            for i in range(PER_SENDER):
                await clients[name].send(f"{name}:{i:03d}")
                await asyncio.sleep(0.005)  # a steady stream, so the kills land mid-stream

        producers = [asyncio.create_task(produce(n)) for n in SENDERS]
        for joins, acks in ((1, PER_SENDER // 4), (2, PER_SENDER // 2)):
            # Kill after the latest restart has been joined and more was acknowledged, with the rest in flight.
            await recs["s1"].wait_for(
                lambda r, j=joins, a=acks: len(r.of(Joined)) >= j and len(r.of(MessageAcknowledged)) >= a, timeout=30
            )
            srv.kill9()
            srv.start()
        await asyncio.gather(*producers)
        for name, rec in recs.items():
            await rec.wait_for(lambda r: len(r.of(MessageAcknowledged)) >= PER_SENDER, timeout=60)
            assert clients[name].queued == 0

        for name, rec in recs.items():
            # It really lived through the kills (a client still backing off may skip one restart).
            assert len(rec.of(Joined)) >= (3 if name == "s1" else 2), name
            acked = [a.message.text for a in rec.of(MessageAcknowledged)]
            assert acked == [f"{name}:{i:03d}" for i in range(PER_SENDER)], name  # once each, in order

        # Every client saw every message exactly once (live or by resume).
        for name, rec in recs.items():
            seen = [m.text for h in rec.of(HistoryReceived) if h.reason == "resume" for m in h.messages]
            seen += [e.message.text for e in rec.of(MessageReceived)]
            counts = Counter(seen)
            dupes = [t for t, c in counts.items() if c > 1]
            assert not dupes, (name, dupes[:5])
            assert set(seen) >= {f"{s}:{i:03d}" for s in SENDERS for i in range(PER_SENDER)}, name
    finally:
        for c in clients.values():
            await c.close()

    # The store: each message once, per-sender order kept.
    check = ChatClient(srv.url, "checker", state_path=tmp_path / "checker.sqlite3", join_history=1000)
    rec = await started(check)
    hist = await rec.wait_event(HistoryReceived)
    await check.close()
    srv.stop()
    texts = [m.text for m in hist.messages]
    assert len(texts) == len(SENDERS) * PER_SENDER == len(set(texts))
    for name in SENDERS:
        assert [t for t in texts if t.startswith(name + ":")] == [f"{name}:{i:03d}" for i in range(PER_SENDER)]


async def test_outbox_survives_a_client_process_restart(tmp_path):
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    r = await asyncio.to_thread(run_cli, "send", "--url", url, "--username", "henry", "--queue", "--timeout", "0.5", "queued while down")
    assert r.returncode == 0, r.stderr
    assert "kept in the outbox" in r.stderr and r.stdout == ""

    server = await start(tmp_path, port=port)
    try:
        client = ChatClient(url, "henry")  # the default state path: same user data dir as the subprocess
        rec = await started(client)
        ack = await rec.wait_event(MessageAcknowledged)
        assert ack.message.text == "queued while down" and ack.message.username == "henry"
        assert client.queued == 0
        await client.close()
    finally:
        await server.close()


async def test_a_frozen_server_is_noticed_by_protocol_pings(tmp_path):
    import os
    import signal

    from workspace_tui.client import ConnectionState, StateChanged

    srv = ServerProcess(tmp_path / "server.sqlite3")
    srv.start()
    client = ChatClient(srv.url, "pinger", state_path=tmp_path / "p.sqlite3", ping_interval=0.2, ping_timeout=0.3, backoff_base=0.05, backoff_cap=0.2)
    rec = await started(client)
    try:
        await rec.wait_event(Joined)
        assert srv.proc is not None
        os.kill(srv.proc.pid, signal.SIGSTOP)  # the TCP connection stays open; nobody answers
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        lost = await rec.wait_event(StateChanged, lambda e: e.state is ConnectionState.RECONNECTING, timeout=5)
        assert loop.time() - t0 < 3.0  # ping_interval + ping_timeout + close_timeout (1 s), plus slack
        assert lost.reason
        os.kill(srv.proc.pid, signal.SIGCONT)
        await rec.wait_for(lambda r: len(r.of(Joined)) == 2, timeout=10)
    finally:
        if srv.proc is not None:
            os.kill(srv.proc.pid, signal.SIGCONT)
        await client.close()
        srv.stop()


async def test_connections_cut_at_random_points_lose_and_duplicate_nothing(tmp_path):
    import random

    from .support import CuttingProxy

    server = await start(tmp_path, rate_limit=0, address_rate_limit=0)
    proxy = CuttingProxy(server.port)
    await proxy.start()
    n = 150
    clients = {
        name: ChatClient(proxy.url, name, state_path=tmp_path / f"{name}.sqlite3", backoff_base=0.01, backoff_cap=0.05)
        for name in SENDERS
    }
    recs = {name: await started(c) for name, c in clients.items()}
    rng = random.Random(5)
    try:
        async def produce(name: str) -> None:
            for i in range(n):
                await clients[name].send(f"{name}:{i:03d}")
                await asyncio.sleep(rng.uniform(0, 0.006))

        async def cutter() -> None:
            while not all(len(r.of(MessageAcknowledged)) >= n for r in recs.values()):
                await asyncio.sleep(rng.uniform(0.01, 0.05))
                proxy.cut()

        cutting = asyncio.create_task(cutter())
        await asyncio.gather(*(produce(s) for s in SENDERS))
        for rec in recs.values():
            await rec.wait_for(lambda r: len(r.of(MessageAcknowledged)) >= n, timeout=60)
        await cutting
        assert proxy.cuts >= 10
        everything = {f"{s}:{i:03d}" for s in SENDERS for i in range(n)}
        for name, rec in recs.items():
            assert [a.message.text for a in rec.of(MessageAcknowledged)] == [f"{name}:{i:03d}" for i in range(n)]
            seen = [m.text for h in rec.of(HistoryReceived) for m in h.messages]
            seen += [e.message.text for e in rec.of(MessageReceived)]
            assert len(seen) == len(set(seen)), name  # nothing twice
        # ...and, once the last sends have settled, nothing missed by anyone.
        for name, rec in recs.items():
            await rec.wait_for(
                lambda r: everything
                <= {m.text for h in r.of(HistoryReceived) for m in h.messages} | {e.message.text for e in r.of(MessageReceived)},
                timeout=30,
            )
    finally:
        for c in clients.values():
            await c.close()
        await proxy.close()

    check = ChatClient(server.url, "checker", state_path=tmp_path / "checker.sqlite3", join_history=1000)
    rec = await started(check)
    hist = await rec.wait_event(HistoryReceived)
    await check.close()
    await server.close()
    texts = [m.text for m in hist.messages]
    assert len(texts) == len(SENDERS) * n == len(set(texts))  # none lost, none duplicated
    for name in SENDERS:
        assert [t for t in texts if t.startswith(name + ":")] == [f"{name}:{i:03d}" for i in range(n)]
