"""The server's disconnect line says how the connection ended: the close code the client sent,
or that it ended without a close frame."""

from __future__ import annotations

import asyncio
import logging

import pytest

from workspace_tui.client import ChatClient, Joined

from .support import TIMEOUT, join


@pytest.fixture
def server_log(caplog):
    caplog.set_level(logging.INFO, logger="workspace.server")
    return caplog


async def disconnect_line(caplog, username: str) -> str:
    """The server's disconnect line for *username*, once it is written."""
    prefix = f"disconnect {username} "

    async def written() -> str:
        while True:
            for record in caplog.records:
                if record.getMessage().startswith(prefix):
                    return record.getMessage()
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(written(), TIMEOUT)


async def test_one_shot_send_logs_its_close_code(server, server_log):
    """`workspace send`'s connection: quiet, no history, closed with 1000 as the process exits."""
    client = ChatClient(server.url, "sender", present=False, join_history=0, resume=False)
    await client.start()
    events = client.events()

    async def joined() -> None:
        async for event in events:
            if isinstance(event, Joined):
                return

    await asyncio.wait_for(joined(), TIMEOUT)
    await client.close(exiting=True)
    assert await disconnect_line(server_log, "sender") == "disconnect sender (code 1000)"


async def test_client_close_code_is_logged(server, server_log):
    alice = await join(server, "alice")
    await alice.ws.close(code=1001)
    assert await disconnect_line(server_log, "alice") == "disconnect alice (code 1001)"


async def test_connection_dropped_without_close_frame_says_so(server, server_log):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws?username=bob HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101 ")
    writer.close()  # no close frame: the TCP connection just ends
    await writer.wait_closed()
    assert await disconnect_line(server_log, "bob") == "disconnect bob (closed without a close frame)"


async def test_server_side_close_is_logged_as_the_servers(server, server_log):
    alice = await join(server, "alice")
    await server.close()  # closes every connection with 1001
    assert (await alice.closed())[0] == 1001
    assert await disconnect_line(server_log, "alice") == "disconnect alice (closed by the server with 1001)"
