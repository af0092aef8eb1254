"""The server's closing handshake, over a raw socket: after its close frame it waits for the
client's answer before the TCP close, so what the client still sends meanwhile is read, not
answered with a reset (which can wipe the unread close frame, and its code, from the client)."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

from .support import TIMEOUT


def masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients mask every frame), small payloads only."""
    assert len(payload) < 126
    mask = os.urandom(4)
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload)."""
    head = await reader.readexactly(2)
    n = head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return head[0] & 0x0F, await reader.readexactly(n)


async def test_a_server_close_waits_for_the_clients_answer_then_ends_cleanly(server_factory):
    server = await server_factory(idle_timeout=0.3)  # the server closes with 4000 by itself
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws?username=alice HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert response.startswith(b"HTTP/1.1 101 ")

    async def until_close() -> bytes:
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 0x8:
                return payload

    close = await asyncio.wait_for(until_close(), TIMEOUT)
    assert struct.unpack("!H", close[:2])[0] == 4000
    # Still sending when the close frame arrived (a client that had not read it yet does just that).
    for _ in range(20):
        writer.write(masked(0x1, b'{"type":"ping"}'))
    writer.write(masked(0x8, close[:2]))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # the server's EOF, not a reset
    writer.close()
