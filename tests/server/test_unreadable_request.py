"""A request that is not valid HTTP gets an HTTP answer saying what was wrong, then the close
(websockets' parser answers only some of these itself), and the refusal is logged like others."""

from __future__ import annotations

import asyncio
import logging

import pytest

from .support import TIMEOUT, join

# Bytes a client could send instead of a WebSocket handshake; the status, and words the body says.
UNREADABLE = [
    pytest.param(b"GET /ws?username=a b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "percent-encoded",
                 id="space-in-url"),
    pytest.param(b"HELLO\r\n\r\n", 400, "request line", id="garbage"),
    pytest.param("GET /ws?username=été HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(), 400, "non-ASCII",
                 id="non-ascii-url"),
    pytest.param(b"GET /ws HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "header", id="bad-header-name"),
    pytest.param(b"GET /ws HTTP/1.1\nHost: 127.0.0.1\n\n", 400, "CRLF", id="bare-newlines"),
    # websockets (>= 17) answers these two itself: its answer stands, and is logged too
    pytest.param(b"GET /ws?" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, "expected no more than", id="long-request-line"),
    pytest.param(b"GET /ws HTTP/1.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", 431, "expected no more than", id="long-header"),
]


async def exchange(port: int, request: bytes, limit: int = 64 * 1024) -> bytes:
    """Send *request* on a fresh TCP connection; what comes back until the server closes (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()

        async def read_all() -> bytes:
            got = b""
            while len(got) < limit:
                chunk = await reader.read(limit - len(got))
                if not chunk:
                    break
                got += chunk
            return got

        return await asyncio.wait_for(read_all(), TIMEOUT)
    finally:
        writer.close()


@pytest.mark.parametrize("request_bytes, status, words", UNREADABLE)
async def test_unreadable_request_is_answered_then_closed(server, caplog, request_bytes, status, words):
    caplog.set_level(logging.INFO, logger="workspace.server")
    raw = await exchange(server.port, request_bytes)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    assert status_line.split()[1] == str(status), raw
    assert "content-type: text/plain; charset=utf-8" in (h.lower() for h in header_lines)
    assert words in body.decode(), body
    assert len(body) < 300  # a short sentence, not the request echoed back
    assert server.handshake_rejections[status] == 1
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused 127.0.0.1")]
    assert len(refusals) == 1 and f": {status} " in refusals[0], refusals


async def test_unreadable_request_echoes_nothing_it_carried(server, caplog):
    """The client's bytes may hold a token: neither the answer nor the log repeats them."""
    caplog.set_level(logging.INFO, logger="workspace.server")
    raw = await exchange(server.port, b"GET /ws?token=s3cret&username=a b HTTP/1.1\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400 ") and b"s3cret" not in raw
    assert not any("s3cret" in r.getMessage() for r in caplog.records)


async def test_server_serves_on_after_unreadable_requests(server):
    for param in UNREADABLE:
        await exchange(server.port, param.values[0])
    alice = await join(server, "alice")
    await alice.say("still here")
    await alice.close()
