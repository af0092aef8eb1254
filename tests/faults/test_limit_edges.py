"""Limits at their edges, where ``tests/server/test_limits.py`` and ``test_handshake.py`` stop.

Those cover the payload boundary at a small flag value, 100 → 101 messages,
3 → 4 connections, the idle timeout and a half-sent request. Added here: the
payload boundary at the real default (1 MiB), and handshakes that never finish
in other ways (a silent socket, a request trickled byte by byte so it never
looks idle, dozens at once) while an honest client still gets in at once.
"""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from workspace_tui.protocol import MAX_PAYLOAD_BYTES

from tests.server.support import TIMEOUT, join, url_for


async def test_the_default_payload_limit_is_exactly_1_mib(server_factory):
    server = await server_factory(rate_limit=0, address_rate_limit=0)
    ws = await connect(url_for(server, "big"), max_size=None, open_timeout=TIMEOUT)  # the echo itself is > 1 MiB
    assert json.loads(await ws.recv())["limits"]["maxPayloadBytes"] == MAX_PAYLOAD_BYTES
    await ws.recv()  # history
    head = json.dumps({"type": "message:send", "text": ""})
    exact = head[:-2] + "x" * (MAX_PAYLOAD_BYTES - len(head)) + '"}'
    assert len(exact.encode()) == MAX_PAYLOAD_BYTES
    await ws.send(exact)
    echo = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert echo["type"] == "message:new" and len(echo["data"]["text"]) == MAX_PAYLOAD_BYTES - len(head)
    await ws.send(exact[:-2] + 'x"}')  # one byte more
    try:
        async with asyncio.timeout(TIMEOUT):
            async for _ in ws:
                pass
    except Exception:  # noqa: BLE001 - closed
        pass
    assert ws.close_code == 1009
    assert server.backend.count() == 1


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _hung_up(reader: asyncio.StreamReader, within: float) -> bytes:
    return await asyncio.wait_for(reader.read(), within)  # EOF (or a reset) once the server gives up


async def test_handshakes_that_never_finish_are_dropped_and_do_not_block_others(server_factory):
    # all from 127.0.0.1, like the honest client: the per-address cap on pending handshakes is
    # raised above them so this is about the timeout (tests/server/test_pending_handshakes.py: the cap)
    server = await server_factory(handshake_timeout=0.5, max_pending_per_address=64)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    silent = [await _open(server.port) for _ in range(40)]  # connect, send nothing
    partial = [await _open(server.port) for _ in range(10)]
    for _, w in partial:
        w.write(b"GET /ws?username=stuck HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
    trickle_r, trickle_w = await _open(server.port)
    request = (b"GET /ws?username=trickle HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")

    async def trickle() -> None:
        for i in range(len(request)):  # one byte every 20 ms: active all along, never done
            trickle_w.write(request[i : i + 1])
            await asyncio.sleep(0.02)

    trickler = asyncio.create_task(trickle())
    # meanwhile an honest client gets in at once
    honest = await join(server, "honest")
    await honest.say("not blocked")
    for r, _ in silent + partial:
        assert b"101" not in await _hung_up(r, TIMEOUT)
    data = await _hung_up(trickle_r, TIMEOUT)
    elapsed = loop.time() - t0
    assert b"101" not in data
    assert not trickler.done() or trickler.exception() is None
    trickler.cancel()
    assert 0.4 < elapsed < 3.0, elapsed  # cut at the handshake timeout, not per byte
    assert not any(p.user.username in ("stuck", "trickle") for p in server.core.conns)
    await honest.sync()
    for _, w in [*silent, *partial, (trickle_r, trickle_w)]:
        w.close()
    await honest.close()
