"""Origin and Host at the handshake and the endpoints, against a real server; the client
address behind a trusted proxy."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from websockets.asyncio.client import connect

from .support import TIMEOUT, http_get, join, refused, url_for

UPGRADE = [
    "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
]


async def raw_request(port: int, path: str, *headers: str) -> tuple[int, str]:
    """Send a GET with exactly these header lines; the status and the body (or the first bytes
    of a 101)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("\r\n".join([f"GET {path} HTTP/1.1", *headers]) + "\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    status = int(head.split()[1])
    body = b""
    if status != 101:
        body = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    return status, body.decode()


async def test_a_browser_origin_is_refused_unless_allowed(server):
    status, body = await refused(url_for(server, "alice"), origin="http://127.0.0.1:8000")
    assert status == 403
    assert body.strip() == (
        "origin http://127.0.0.1:8000 is not allowed: start the server with --allow-origin http://127.0.0.1:8000"
    )
    # no Origin: our clients and scripts, unaffected
    c = await join(server, "alice")
    await c.close()


async def test_an_allowed_origin_connects_and_others_still_do_not(server_factory):
    server = await server_factory(allow_origins=("http://LOCALHOST:8000",))
    ws = await connect(url_for(server, "alice"), origin="http://localhost:8000", open_timeout=TIMEOUT)
    assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "connected"
    await ws.close()
    assert (await refused(url_for(server, "alice"), origin="http://localhost:8001"))[0] == 403
    assert (await refused(url_for(server, "alice"), origin="https://localhost:8000"))[0] == 403


async def test_any_origin_with_star(server_factory):
    server = await server_factory(allow_origins=("*",))
    ws = await connect(url_for(server, "alice"), origin="http://anywhere.example:1", open_timeout=TIMEOUT)
    assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "connected"
    await ws.close()


async def test_origin_is_checked_before_the_token(server_factory):
    server = await server_factory(token="s3cret")
    status, body = await refused(url_for(server, "alice", token="s3cret"), origin="http://127.0.0.1:8000")
    assert status == 403 and "--allow-origin" in body


@pytest.mark.parametrize("path", ["/ws?username=alice", "/healthz", "/metrics"])
async def test_a_rebound_host_name_is_refused_everywhere(server, path):
    extra = UPGRADE if path.startswith("/ws") else []
    status, body = await raw_request(server.port, path, "Host: evil.example:%d" % server.port, *extra)
    assert status == 421
    assert "host evil.example is not a name of this server" in body and "--allow-host evil.example" in body
    # the same request by a name of this server goes through
    status, _ = await raw_request(server.port, path, f"Host: localhost:{server.port}", *extra)
    assert status == (101 if extra else 200)


async def test_host_names_of_this_server(server_factory):
    import socket

    server = await server_factory(allow_hosts=("chat.internal",), allow_origins=("https://chat.example.org",))
    for host in ("127.0.0.1", "[::1]", "localhost", "app.localhost", socket.gethostname(), "chat.internal",
                 "CHAT.example.org"):
        status, body = await raw_request(server.port, "/healthz", f"Host: {host}:{server.port}")
        assert status == 200, (host, body)
    assert (await raw_request(server.port, "/healthz", "Host: chat.example.org.evil.example"))[0] == 421


async def test_a_request_needs_one_host(server):
    status, body = await raw_request(server.port, "/healthz")
    assert status == 400 and "Host" in body
    status, _ = await raw_request(server.port, "/healthz", "Host: 127.0.0.1", "Host: evil.example")
    assert status == 400


async def test_refusals_are_counted_in_metrics(server):
    await refused(url_for(server, "alice"), origin="http://127.0.0.1:8000")
    await raw_request(server.port, "/healthz", "Host: evil.example")
    _, _, body = await http_get(server, "/metrics")
    text = body.decode()
    assert 'workspace_handshake_rejections_total{status="403"} 1' in text
    assert 'workspace_handshake_rejections_total{status="421"} 1' in text


def _address_of(server, username: str) -> str:
    [peer] = [p for p in server.connections if p.conn is not None and p.conn.user.username == username]
    return peer.address


async def test_the_address_is_the_peer_unless_the_proxy_is_trusted(server_factory, caplog):
    caplog.set_level(logging.INFO, logger="workspace.server")
    forwarded = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
    plain = await server_factory()
    ws = await connect(url_for(plain, "alice"), additional_headers=forwarded, open_timeout=TIMEOUT)
    await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert _address_of(plain, "alice") == "127.0.0.1"  # a client cannot claim another address
    await ws.close()

    proxied = await server_factory(trust_proxy=True, db_path=plain.config.db_path.with_name("p.sqlite3"))
    ws = await connect(url_for(proxied, "bob"), additional_headers=forwarded, open_timeout=TIMEOUT)
    await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert _address_of(proxied, "bob") == "203.0.113.9"  # the hop the proxy added
    await ws.close()
    await refused(url_for(proxied, "bad%20name"), additional_headers={"X-Forwarded-For": "2001:db8::5"})
    assert any("refused 2001:db8::5 /ws: 400" in r.getMessage() for r in caplog.records)
    # a hop that is not an address leaves the proxy's own
    await refused(url_for(proxied, "bad%20name"), additional_headers={"X-Forwarded-For": "unknown"})
    assert any("refused 127.0.0.1 /ws: 400" in r.getMessage() for r in caplog.records)


async def test_the_chat_s_embedded_server_refuses_web_pages_too(tmp_path):
    """`workspace chat --serve`: the server in the developer's own window, the issue's worst case."""
    from client.support import TerminalProcess, free_port

    port = free_port()
    term = TerminalProcess(["chat", "--serve", "--port", str(port), "--db", str(tmp_path / "c.db"), "-u", "dev"])
    url = f"ws://127.0.0.1:{port}/ws?username=page"
    try:
        async def up() -> tuple[int, str]:
            while True:
                try:
                    status, body = await refused(url, origin="http://127.0.0.1:8000")
                    return status, body
                except OSError:
                    await asyncio.sleep(0.1)

        status, body = await asyncio.wait_for(up(), 20)
        assert status == 403 and "--allow-origin http://127.0.0.1:8000" in body
        status, _ = await raw_request(port, "/healthz", f"Host: evil.example:{port}")
        assert status == 421
        ws = await connect(url, open_timeout=TIMEOUT)  # no Origin: a client like ours
        assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "connected"
        await ws.close()
    finally:
        term.close(quit_keys=b"\x11\x11")
