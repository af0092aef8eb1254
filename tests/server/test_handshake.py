"""Refusals before the upgrade: 404, 400, 401, 429; the handshake timeout; /healthz and /metrics."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from .support import TIMEOUT, http_get, join, refused, url_for


async def test_wrong_path_is_404(server):
    status, body = await refused(server.url.replace("/ws", "/chat") + "?username=bob")
    assert status == 404 and "/ws" in body
    status, _ = await refused(server.url + "/x?username=bob")
    assert status == 404


@pytest.mark.parametrize(
    "query, needle",
    [
        ("", "username is required"),
        ("username=", "username is required"),
        ("username=" + "a" * 33, "at most 32"),
        ("username=bad%20name", "letters, digits"),
        ("username=%C3%A9t%C3%A9", "letters, digits"),
        ("username=ok&since=nope", "since"),
        ("username=ok&history=-1", "history"),
        ("username=ok&history=1001", "history"),
        ("username=ok&presence=loud", "presence"),
    ],
)
async def test_bad_request_is_400_with_reason(server, query, needle):
    status, body = await refused(f"{server.url}?{query}")
    assert status == 400
    assert needle in body


async def test_valid_usernames(server):
    for name in ("a", "A" * 32, "john_doe", "x.y-z_1"):
        c = await join(server, name)
        assert c.connected["username"] == name
        await c.close()


async def test_token_required(server_factory):
    server = await server_factory(token="s3cret")
    assert (await refused(url_for(server, "bob")))[0] == 401
    assert (await refused(url_for(server, "bob", token="wrong")))[0] == 401
    status, body = await refused(url_for(server, "bob"), additional_headers={"Authorization": "Bearer nope"})
    assert status == 401 and "token" in body
    # the token check comes before anything else: even a bad username gets 401, not 400
    assert (await refused(f"{server.url}?username=bad%20name"))[0] == 401
    # nothing about the workspace leaks to an unauthenticated HTTP client either
    assert (await http_get(server, "/healthz"))[0] == 401
    ok = await join(server, "bob", token="s3cret")
    ok2 = await connect(url_for(server, "bob"), additional_headers={"Authorization": "Bearer s3cret"})
    assert json.loads(await ok2.recv())["type"] == "connected"
    status, _, body = await http_get(server, "/healthz", {"Authorization": "Bearer s3cret"})
    assert status == 200 and json.loads(body)["connections"] == 2
    await ok.close()
    await ok2.close()


async def test_connection_cap_429_and_release(server_factory):
    server = await server_factory(max_connections_per_user=3)
    clients = [await join(server, "bob") for _ in range(3)]
    status, body = await refused(url_for(server, "bob"))
    assert status == 429 and "3" in body
    # quiet connections count toward the cap too
    assert (await refused(url_for(server, "bob", presence="none")))[0] == 429
    # others are not affected
    other = await join(server, "alice")
    await clients[0].close()
    # the slot comes back once the connection is gone
    async def reconnect():
        while True:
            try:
                return await join(server, "bob")
            except InvalidStatus:
                await asyncio.sleep(0.01)

    again = await asyncio.wait_for(reconnect(), TIMEOUT)
    for c in [*clients[1:], other, again]:
        await c.close()


async def test_connection_cap_is_race_free(server_factory):
    server = await server_factory(max_connections_per_user=3)

    async def attempt():
        try:
            return await connect(url_for(server, "racer"), open_timeout=TIMEOUT)
        except InvalidStatus as exc:
            return exc.response.status_code

    results = await asyncio.gather(*(attempt() for _ in range(12)))
    accepted = [r for r in results if not isinstance(r, int)]
    assert len(accepted) == 3
    assert sorted(r for r in results if isinstance(r, int)) == [429] * 9
    for ws in accepted:
        await ws.close()
    assert server.core.reservations.get("racer", 0) == 0 or await _released(server, "racer")


async def _released(server, name):
    for _ in range(200):
        if not server.core.reservations.get(name):
            return True
        await asyncio.sleep(0.01)
    return False


async def test_refused_handshakes_do_not_leak_slots(server_factory):
    server = await server_factory(max_connections_per_user=1)
    # a plain HTTP GET on /ws (no upgrade) is refused by websockets after our checks passed
    status, _, _ = await http_get(server, "/ws?username=leak")
    assert status in (400, 426)
    c = await join(server, "leak")
    await c.close()


async def test_handshake_timeout(server_factory):
    server = await server_factory(handshake_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /ws?username=slow HTTP/1.1\r\nHost: x\r\n")  # never finishes the request
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), TIMEOUT)  # EOF: the server gave up
    assert b"101" not in data
    writer.close()


async def test_healthz_and_metrics(server):
    a = await join(server, "alice")
    b = await join(server, "bob")
    await a.say("hi")
    await a.send("not json")
    await a.expect("error")
    await refused(url_for(server, "bad%20name"))
    status, headers, body = await http_get(server, "/healthz")
    assert status == 200 and headers["content-type"].startswith("application/json")
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["users"] == 2 and health["connections"] == 2
    assert isinstance(health["uptime"], (int, float)) and health["uptime"] >= 0
    status, headers, body = await http_get(server, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    assert "workspace_connections 2" in text
    assert "workspace_messages_total 1" in text
    assert 'workspace_rejections_total{code="invalid_json"} 1' in text
    assert 'workspace_handshake_rejections_total{status="400"} 1' in text
    deliveries = int(next(line.split()[1] for line in text.splitlines() if line.startswith("workspace_deliveries_total")))
    assert deliveries >= 2
    assert "hi" not in text
    await a.close()
    await b.close()


async def test_logs_connects_disconnects_and_refusals_never_text(server, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="workspace.server")
    a = await join(server, "alice")
    await a.say("the secret launch code is 0000")
    await refused(url_for(server, "bad%20name"))
    await a.close()

    async def disconnected():
        while not any("disconnect alice" in r.getMessage() for r in caplog.records):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(disconnected(), TIMEOUT)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("workspace.server")]
    assert any(m.startswith("connect alice") for m in messages)
    assert any("refused" in m and "400" in m for m in messages)
    assert not any("launch code" in m for m in messages)
