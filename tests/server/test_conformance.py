"""A client that knows only the seed document works unchanged: every field of every frame it shows."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from workspace_tui.protocol import user_id_for

from .support import ISO_RE, TIMEOUT

SEED_TYPES = {"connected", "message:new", "presence:update", "typing:indicator"}


class SeedClient:
    """The document's client: ``?username=`` only, JSON in and out, ignores unknown types."""

    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def open(cls, server, username):
        return cls(await connect(f"{server.url}?username={username}"))

    async def next(self, type_=None):
        async def loop():
            while True:
                msg = json.loads(await self.ws.recv())
                if msg["type"] not in SEED_TYPES:  # the document's client logs and ignores these
                    continue
                if type_ is None or msg["type"] == type_:
                    return msg

        return await asyncio.wait_for(loop(), TIMEOUT)

    async def send(self, obj):
        await self.ws.send(json.dumps(obj))


def check_connected(msg, username, online):
    assert msg["type"] == "connected"
    assert msg["username"] == username
    assert isinstance(msg["userId"], str) and msg["userId"] == user_id_for(username)
    assert isinstance(msg["timestamp"], str) and ISO_RE.match(msg["timestamp"])
    assert isinstance(msg["connectedUsers"], int) and not isinstance(msg["connectedUsers"], bool)
    assert msg["connectedUsers"] == online


async def test_seed_client_every_frame(server):
    alice = await SeedClient.open(server, "john_doe")
    first = json.loads(await asyncio.wait_for(alice.ws.recv(), TIMEOUT))  # sent immediately, first
    check_connected(first, "john_doe", 1)

    bob = await SeedClient.open(server, "jane")
    check_connected(await bob.next(), "jane", 2)
    # (online presence for jane reaches john_doe: a presence:update in the document's shape)
    joined = await alice.next("presence:update")
    assert joined["data"]["userId"] == user_id_for("jane")
    assert joined["data"]["username"] == "jane"
    assert joined["data"]["status"] == "online"

    # message:send -> message:new to everyone, sender included
    await alice.send({"type": "message:send", "text": "Hello everyone!"})
    for who in (alice, bob):
        msg = await who.next("message:new")
        data = msg["data"]
        assert set(data) >= {"id", "userId", "username", "text", "createdAt"}
        assert isinstance(data["id"], str) and data["id"].startswith("msg_")
        assert data["userId"] == first["userId"]
        assert data["username"] == "john_doe"
        assert data["text"] == "Hello everyone!"
        assert ISO_RE.match(data["createdAt"])

    # presence:update -> every other user; each status of the document
    for status in ("away", "busy", "online", "offline"):
        await alice.send({"type": "presence:update", "status": status})
        msg = await bob.next("presence:update")
        assert msg["data"]["userId"] == first["userId"]
        assert msg["data"]["username"] == "john_doe"
        assert msg["data"]["status"] == status
    await alice.send({"type": "presence:update", "status": "online"})
    assert (await bob.next("presence:update"))["data"]["status"] == "online"

    # typing:indicator -> every other user
    for flag in (True, False):
        await bob.send({"type": "typing:indicator", "isTyping": flag})
        msg = await alice.next("typing:indicator")
        assert msg["data"] == {"userId": user_id_for("jane"), "username": "jane", "isTyping": flag,
                               "room": "general"}

    # The sender of presence/typing does not get its own frame back ("all other users"):
    # the next seed frame bob sees is a message, not his typing echo.
    await alice.send({"type": "message:send", "text": "after"})
    assert (await bob.next())["type"] == "message:new"

    await alice.ws.close()
    offline = await bob.next("presence:update")
    assert offline["data"]["status"] == "offline" and offline["data"]["username"] == "john_doe"
    await bob.ws.close()


async def test_user_id_is_stable_across_connections_and_reconnects(server):
    a1 = await SeedClient.open(server, "stable")
    c1 = await a1.next("connected")
    await a1.ws.close()
    a2 = await SeedClient.open(server, "stable")
    a3 = await SeedClient.open(server, "stable")
    c2, c3 = await a2.next("connected"), await a3.next("connected")
    assert c1["userId"] == c2["userId"] == c3["userId"]
    await a2.send({"type": "message:send", "text": "x"})
    assert (await a3.next("message:new"))["data"]["userId"] == c1["userId"]
    await a2.ws.close()
    await a3.ws.close()
