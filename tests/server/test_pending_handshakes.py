"""Silent sockets: pending handshakes are capped per address and in all, so they cannot lock
an honest client out. Loopback has many addresses (127.0.0.0/8): the silent ones come from
127.0.0.2 and 127.0.0.3, the honest client from 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import subprocess
import sys
from contextlib import asynccontextmanager

from websockets.asyncio.client import connect

from .support import TIMEOUT, http_get, join, url_for


async def metric(server, name: str) -> float:
    """One sample of /metrics (the request itself is one pending handshake while it is answered)."""
    _, _, body = await http_get(server, "/metrics")
    m = re.search(rf"^{re.escape(name)} (\S+)$", body.decode(), re.M)
    return float(m.group(1)) if m else 0.0


async def wait_metric(server, name: str, value: float) -> None:
    async def poll() -> None:
        while await metric(server, name) != value:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), TIMEOUT)


@asynccontextmanager
async def silent_sockets(port: int, count: int, source: str = "127.0.0.2"):
    """*count* TCP connections that never send a byte."""
    writers: list[asyncio.StreamWriter] = []
    readers: list[asyncio.StreamReader] = []
    try:
        for _ in range(count):
            r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
            readers.append(r)
            writers.append(w)
        yield readers
    finally:
        for w in writers:
            w.transport.abort()


async def dropped(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed this connection (EOF or reset) within the timeout, without a word."""
    try:
        return await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    except ConnectionError:
        return True


async def turned_away(reader: asyncio.StreamReader) -> bool:
    """Whether the server answered this connection 503, saying when to come back, and closed it."""
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)  # everything, up to the close
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    return (lines[0] == b"HTTP/1.1 503 Service Unavailable" and b"Retry-After: 1" in lines[1:]
            and body == b"too many connections are in their handshake right now: try again in a second\n")


async def test_one_address_holds_only_its_share_of_pending_handshakes(server_factory):
    server = await server_factory(max_pending_per_address=16)
    async with silent_sockets(server.port, 40) as readers:
        await wait_metric(server, 'workspace_pending_handshakes_refused_total{limit="address"}', 24)
        assert await metric(server, "workspace_pending_handshakes") == 16 + 1  # + this /metrics request
        assert await turned_away(readers[-1])
        # another address, and the honest client, are not affected
        async with silent_sockets(server.port, 3, source="127.0.0.3"):
            c = await join(server, "alice")
            await c.say("still here")
            await c.close()
    await wait_metric(server, "workspace_pending_handshakes", 1)  # the silent ones went: given back


async def test_open_connections_are_not_pending(server):
    # more than the per-address cap, one after another; quiet (presence=none), so that
    # frames nobody reads here do not fill the clients' queues and stall their close
    clients = [await join(server, f"u{i}", presence="none") for i in range(20)]
    assert await metric(server, "workspace_pending_handshakes") == 1
    for c in clients:
        await c.close()


async def test_the_overall_cap(server_factory):
    server = await server_factory(max_pending_per_address=0, max_pending_handshakes=8)
    async with silent_sockets(server.port, 7), silent_sockets(server.port, 3, source="127.0.0.3") as late:
        assert await turned_away(late[-1]) and await turned_away(late[-2])  # the 9th and 10th, whatever their address
    # (while 8 are pending even /metrics is turned away: the cap protects the whole process)
    await wait_metric(server, "workspace_pending_handshakes", 1)
    assert await metric(server, 'workspace_pending_handshakes_refused_total{limit="overall"}') == 2


async def test_a_timed_out_handshake_gives_its_place_back(server_factory):
    server = await server_factory(max_pending_per_address=4, handshake_timeout=0.3)
    async with silent_sockets(server.port, 4) as readers:
        for r in readers:
            assert await dropped(r)  # the handshake timeout
        async with silent_sockets(server.port, 4):
            await wait_metric(server, "workspace_pending_handshakes", 5)
            assert await metric(server, 'workspace_pending_handshakes_refused_total{limit="address"}') == 0


async def test_no_address_limits_and_trust_proxy_lift_the_per_address_cap(server_factory, tmp_path):
    for i, overrides in enumerate(({"address_limits": False}, {"trust_proxy": True})):
        server = await server_factory(max_pending_per_address=4, db_path=tmp_path / f"{i}.sqlite3", **overrides)
        async with silent_sockets(server.port, 30):
            await wait_metric(server, "workspace_pending_handshakes", 31)
            assert await metric(server, 'workspace_pending_handshakes_refused_total{limit="address"}') == 0


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


async def test_1100_silent_sockets_do_not_lock_out_an_honest_client(tmp_path):
    """The issue's attack, against `workspace serve` with a common open-file limit (1024):
    without the cap the silent sockets take every descriptor and the honest join times out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "workspace_tui", "serve", "--host", "127.0.0.1", "--port", "0",
         "--db", str(tmp_path / "s.sqlite3"), "--log-level", "error"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=_low_file_limit,
        env={k: v for k, v in os.environ.items() if not k.startswith("WORKSPACE_")} | {"HOME": str(tmp_path)},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        port = int(re.search(r":(\d+)/ws", line).group(1))

        class Where:
            url = f"ws://127.0.0.1:{port}/ws"

        async with silent_sockets(port, 1100):
            ws = await connect(url_for(Where, "alice"), open_timeout=TIMEOUT)
            await asyncio.wait_for(ws.recv(), TIMEOUT)  # connected
            await ws.close()
    finally:
        proc.terminate()
        proc.wait(10)
