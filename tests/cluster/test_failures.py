"""A node killed with SIGKILL, and Redis going away and coming back."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys

from websockets.asyncio.client import connect

from tests.server.support import http_get, join

from .conftest import until


async def _spawn_node(redis_url: str, ttl: float) -> tuple[subprocess.Popen[bytes], str]:
    """``workspace serve --broker`` as a real process; its URL from the startup line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKSPACE_")}
    env["WORKSPACE_DATA_DIR"] = os.environ.get("WORKSPACE_DATA_DIR", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "workspace_tui", "serve", "--port", "0", "--broker", redis_url,
         "--broker-ttl", str(ttl), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)
    m = re.search(rb"(ws://\S+/ws) \(store: (\S+)\)", line)
    assert m, line
    assert m[2].decode() == redis_url  # the startup line names the broker as the store
    return proc, m[1].decode()


async def test_killed_node_users_go_offline_everywhere(node_factory, redis_server):
    a = await node_factory(broker_node_ttl=2.0)
    alice = await join(a, "alice")
    proc, url = await _spawn_node(redis_server.url, ttl=2.0)
    try:
        ws = await connect(url + "?username=bob")
        assert json.loads(await ws.recv())["type"] == "connected"
        await alice.presence(username="bob", status="online")
        await alice.send({"type": "message:send", "text": "hi bob"})
        await alice.expect("message:new", text="hi bob")
        start = asyncio.get_running_loop().time()
        os.kill(proc.pid, signal.SIGKILL)  # no cleanup code runs on node b
        await alice.presence(timeout=15, username="bob", status="offline")
        assert asyncio.get_running_loop().time() - start < 15
        carol = await join(a, "carol")
        assert "bob" not in {u["username"] for u in carol.connected["users"]}
        await carol.close()
        ws.transport.abort()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    await alice.close()


async def _health(node) -> dict:
    status, _, body = await http_get(node, "/healthz")
    assert status == 200
    return json.loads(body)


async def test_redis_down_keeps_clients_refuses_sends_and_recovers(node_factory, redis_server):
    a, b = await node_factory(), await node_factory()
    alice, bob = await join(a, "alice"), await join(b, "bob")
    await alice.say("before")
    await bob.expect("message:new", text="before")
    assert (await _health(a))["broker"] == "up"

    redis_server.stop()
    await until(lambda: not a.core.store_up, timeout=5)
    health = await _health(a)
    assert health["status"] == "degraded" and health["broker"] == "down"
    await alice.send({"type": "message:send", "text": "during", "clientMsgId": "d-1"})
    err = await alice.expect("error", clientMsgId="d-1")
    assert err["code"] == "unavailable"
    await alice.sync()  # still connected
    await bob.sync()

    redis_server.start()  # same port, same append-only file
    await until(lambda: a.core.store_up and b.core.store_up, timeout=10)
    assert (await _health(a))["status"] == "ok"
    # the client's outbox resends; now it goes through and reaches the other node
    await alice.send({"type": "message:send", "text": "during", "clientMsgId": "d-1"})
    await bob.expect("message:new", timeout=10, text="during")
    late = await join(b, "carol", history=10)
    assert [m["text"] for m in late.history["messages"]] == ["before", "during"]
    assert {u["username"] for u in late.connected["users"]} >= {"alice", "bob"}
    for c in (alice, bob, late):
        await c.close()
