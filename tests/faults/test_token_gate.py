"""With ``--token``: every wrong or missing token gets 401 and not one byte about the workspace.

``tests/server/test_handshake.py`` checks the status codes; this reads the
whole raw HTTP exchange (headers, body, and anything after it until the server
hangs up) for a range of near-miss tokens, while a workspace with users,
messages and counts is live, and looks for any of it.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.server.support import TIMEOUT, join

TOKEN = "s3cret-Token_42"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="

NEAR_MISSES = [
    ("/ws?username=mallory", {}),
    ("/ws?username=mallory&token=", {}),
    ("/ws?username=mallory&token=s3cret-Token_4", {}),
    ("/ws?username=mallory&token=s3cret-Token_420", {}),
    ("/ws?username=mallory&token=S3CRET-TOKEN_42", {}),
    ("/ws?username=mallory&token=%20s3cret-Token_42", {}),
    ("/ws?username=mallory", {"Authorization": "Bearer"}),
    ("/ws?username=mallory", {"Authorization": "Bearer s3cret-token_42"}),
    ("/ws?username=mallory", {"Authorization": "Basic czNjcmV0LVRva2VuXzQy"}),
    ("/ws?username=mallory", {"Authorization": TOKEN}),  # the token, but not as a bearer token
    ("/ws?username=mallory&since=msg_0000000000000_000000&history=1000", {}),
    ("/ws?username=alice", {}),  # an online user's name
    ("/healthz", {}),
    ("/metrics", {}),
    ("/healthz?token=nope", {}),
]


async def raw_exchange(port: int, path: str, headers: dict[str, str]) -> bytes:
    """Send one upgrade request and read everything until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), TIMEOUT)  # until EOF
    finally:
        writer.close()


@pytest.mark.parametrize("path, headers", NEAR_MISSES)
async def test_wrong_or_missing_token_gets_401_and_nothing_else(server_factory, path, headers):
    server = await server_factory(token=TOKEN)
    alice = await join(server, "alice", token=TOKEN)
    bob = await join(server, "bob", token=TOKEN)
    await alice.say("the launch code is 0000")
    await bob.send({"type": "presence:update", "status": "busy"})
    await bob.sync()
    await alice.sync()  # alice has read everything so far

    raw = await raw_exchange(server.port, path, headers)
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, raw
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    assert status_line.split()[1] == "401", raw
    hdrs = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    assert "sec-websocket-accept" not in hdrs and "upgrade" not in hdrs
    # the body is the readable reason and nothing follows it (no WebSocket frame, no JSON)
    assert len(body) == int(hdrs["content-length"]), raw
    text = body.decode()
    assert "token" in text
    for leak in ("alice", "bob", "launch", "busy", "msg_", "user_", "connected", "users", "{", "uptime"):
        assert leak not in text.lower(), (leak, text)
    assert not any(ch.isdigit() for ch in text), text  # no counts of any kind
    # and nobody inside saw a thing: no presence for the refused "user", no roster change
    await alice.send({"type": "ping", "id": "after"})
    frame = await alice.recv()
    assert frame["type"] == "pong", frame
    await alice.close()
    await bob.close()


async def test_the_right_token_in_either_place_is_accepted(server_factory):
    server = await server_factory(token=TOKEN)
    for path, headers in ((f"/ws?username=carol&token={TOKEN}", {}), ("/ws?username=dave", {"Authorization": f"Bearer {TOKEN}"})):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert b" 101 " in head
        writer.close()
