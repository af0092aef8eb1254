"""Backoff against a port nobody listens on: real sockets, injected RNG."""

from __future__ import annotations

import asyncio

from workspace_tui.client import ChatClient, ConnectionState, StateChanged

from .support import free_port


async def test_backoff_delays_grow_to_the_cap_and_are_honoured(tmp_path):
    url = f"ws://127.0.0.1:{free_port()}/ws"
    client = ChatClient(
        url, "alice", state_path=tmp_path / "c.sqlite3", backoff_base=0.05, backoff_cap=0.2, rng=lambda: 1.0
    )
    loop = asyncio.get_running_loop()
    await client.start()
    seen: list[tuple[float, StateChanged]] = []
    async for event in client.events():
        if isinstance(event, StateChanged):
            seen.append((loop.time(), event))
            if sum(e.state is ConnectionState.RECONNECTING for _, e in seen) == 5:
                break
    await client.close()
    assert seen[0][1].state is ConnectionState.CONNECTING
    recon = [(t, e) for t, e in seen if e.state is ConnectionState.RECONNECTING]
    assert [e.delay for _, e in recon] == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert [e.attempt for _, e in recon] == [2, 3, 4, 5, 6]
    assert all("connection refused" in (e.reason or "") for _, e in recon)
    # each attempt waited at least its delay (the next failure comes after it)
    for (t0, e0), (t1, _) in zip(recon, recon[1:]):
        assert t1 - t0 >= e0.delay * 0.95
    assert client.handshakes == 5


async def test_full_jitter_uses_the_rng(tmp_path):
    url = f"ws://127.0.0.1:{free_port()}/ws"
    draws = iter([0.0, 0.5, 0.25, 0.0, 0.0, 0.0])
    client = ChatClient(url, "bob", state_path=tmp_path / "c.sqlite3", backoff_base=0.1, backoff_cap=1.0, rng=lambda: next(draws))
    await client.start()
    delays = []
    async for event in client.events():
        if isinstance(event, StateChanged) and event.state is ConnectionState.RECONNECTING:
            delays.append(event.delay)
            if len(delays) == 3:
                break
    await client.close()
    assert delays == [0.0, 0.5 * 0.2, 0.25 * 0.4]


async def test_queued_while_down_and_close_keeps_outbox(tmp_path):
    url = f"ws://127.0.0.1:{free_port()}/ws"
    path = tmp_path / "c.sqlite3"
    client = ChatClient(url, "carol", state_path=path, backoff_base=0.05, backoff_cap=0.05)
    await client.start()
    entry = await client.send("hello while offline")
    assert client.queued == 1
    await client.close()
    again = ChatClient(url, "carol", state_path=path, reconnect=False)
    await again.start()
    first = await anext(again.events())
    assert first.entry == entry  # replayed as MessagePending
    await again.close()


async def test_a_refused_connect_waits_at_most_the_refused_cap(tmp_path):
    """Nothing listens (a server restarting): the delays grow, but not past backoff_refused_cap, so a
    crowd is back soon after the server listens again instead of waiting out the 30 s cap."""
    url = f"ws://127.0.0.1:{free_port()}/ws"
    client = ChatClient(url, "dave", state_path=tmp_path / "c.sqlite3", backoff_base=0.05, backoff_cap=30.0,
                        backoff_refused_cap=0.15, rng=lambda: 1.0)
    await client.start()
    delays = []
    async for event in client.events():
        if isinstance(event, StateChanged) and event.state is ConnectionState.RECONNECTING:
            delays.append(event.delay)
            if len(delays) == 5:
                break
    await client.close()
    assert delays == [0.05, 0.1, 0.15, 0.15, 0.15]
    assert client.backoff.failures >= 5  # counted all the same: a failure of another kind goes on from there
