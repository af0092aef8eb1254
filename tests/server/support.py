"""Helpers for server tests: real websockets clients talking JSON to a real server."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

TIMEOUT = 5.0
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Client:
    """A test client: ``send`` a dict, ``recv`` the next frame as a dict."""

    def __init__(self, ws: ClientConnection, connected: dict[str, Any], history: dict[str, Any] | None):
        self.ws = ws
        self.connected = connected
        self.history = history
        self.presence_frame: dict[str, Any] | None = None  # the frame the last presence() came in

    @property
    def user_id(self) -> str:
        return self.connected["userId"]

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def expect(self, type_: str, timeout: float = TIMEOUT, **match: Any) -> dict[str, Any]:
        """The next frame of *type_* (whose ``data`` matches *match*), skipping others."""
        async def loop() -> dict[str, Any]:
            while True:
                frame = json.loads(await self.ws.recv())
                if frame["type"] != type_:
                    continue
                data = frame.get("data", frame)
                if all(data.get(k) == v for k, v in match.items()):
                    return frame

        return await asyncio.wait_for(loop(), timeout)

    async def presence(self, timeout: float = TIMEOUT, **match: Any) -> dict[str, Any]:
        """The next presence entry (matching *match*) whichever frame carries it: a
        ``presence:update``'s data, or a user's entry in a ``presence:batch`` (workspace.v1)."""
        async def loop() -> dict[str, Any]:
            while True:
                frame = json.loads(await self.ws.recv())
                for entry in presence_entries(frame):
                    if all(entry.get(k) == v for k, v in match.items()):
                        self.presence_frame = frame
                        return entry

        return await asyncio.wait_for(loop(), timeout)

    async def closed(self, timeout: float = TIMEOUT) -> tuple[int | None, str | None]:
        """Read until the server closes; the close code and reason."""
        async def drain() -> None:
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed:
                pass

        await asyncio.wait_for(drain(), timeout)
        return self.ws.close_code, self.ws.close_reason

    async def say(self, text: str, **extra: Any) -> dict[str, Any]:
        """Send a message and return its ``message:new`` echo."""
        await self.send({"type": "message:send", "text": text, **extra})
        return await self.expect("message:new", text=text)

    async def sync(self) -> None:
        """Round-trip a ping: everything the server queued for us before it has arrived."""
        await self.send({"type": "ping", "id": "sync"})
        await self.expect("pong")

    async def close(self) -> None:
        await self.ws.close()


def url_for(server: Any, username: str | None = None, **params: Any) -> str:
    query = ({"username": username} if username is not None else {}) | {k: str(v) for k, v in params.items()}
    return server.url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


async def join(server: Any, username: str, *, read_history: bool = True, document_only: bool = False,
               **params: Any) -> Client:
    """Connect and read ``connected`` (and the ``history`` frame that follows it). Like our clients it
    offers ``workspace.v1`` (it reads history frames), unless *document_only*: then it is a client
    written from the protocol document alone, which after a reconnect gets what it missed as
    ``message:new`` instead (docs/protocol.md)."""
    kwargs = dict(_ws_kwargs(server))
    if not document_only:
        kwargs.setdefault("subprotocols", ["workspace.v1"])
    ws = await connect(url_for(server, username, **params), open_timeout=TIMEOUT, **kwargs)
    connected = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert connected["type"] == "connected", connected
    hist = None
    if read_history:
        hist = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert hist["type"] == "history", hist
    return Client(ws, connected, hist)


def _ws_kwargs(server: Any) -> dict[str, Any]:
    return getattr(server, "_test_client_kwargs", {})


async def refused(url: str, **kwargs: Any) -> tuple[int, str]:
    """The HTTP status and body of a refused handshake."""
    try:
        ws = await connect(url, open_timeout=TIMEOUT, **kwargs)
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response.body.decode()
    await ws.close()
    raise AssertionError(f"{url} was accepted")


async def http_get(server: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP/1.1 GET on the server's port."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    hdrs = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), hdrs, body


def plant(server: Any, texts: list[str], username: str = "bulk") -> list[Any]:
    """Store messages straight into a running server's SQLite backend (faster than sending them)
    and tell the server, as if another node had sent them; returns the ChatMessages."""
    backend = server.backend
    messages = [backend.new_message(username, t) for t in texts]
    backend.insert(messages)
    server.committed(messages, [None] * len(messages))
    return messages


def presence_entries(frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The presence entries a frame carries: one for ``presence:update``, a tick's for ``presence:batch``."""
    if frame["type"] == "presence:update":
        return [frame["data"]]
    if frame["type"] == "presence:batch":
        return list(frame["data"]["users"])
    return []


def about(frame: dict[str, Any], user_id: str) -> tuple[Any, ...] | None:
    """What *frame* says about *user_id*, in short, or ``None`` when it is not about them."""
    kind = frame["type"]
    if kind == "presence:batch":
        mine = [e for e in frame["data"]["users"] if e["userId"] == user_id]
        assert len(mine) <= 1, frame  # a batch has the latest state of each user, once
        return ("presence", mine[0]["status"]) if mine else None
    data = frame.get("data") or {}
    if data.get("userId") != user_id:
        return None
    if kind == "message:new":
        return ("message", data["text"])
    if kind == "presence:update":
        return ("presence", data["status"])
    if kind == "typing:indicator":
        return ("typing", data["isTyping"])
    return None


async def frames_about(client: Client, user_id: str, count: int) -> list[tuple[Any, ...]]:
    """The next *count* frames *client* gets about *user_id* (frames about anyone else skipped)."""
    seen: list[tuple[Any, ...]] = []
    while len(seen) < count:
        frame = await client.recv()
        if (short := about(frame, user_id)) is not None:
            seen.append(short)
    return seen
