"""Redis keeps what the server acknowledged: messages survive ``kill -9`` of redis-server with the
append-only file on, a resend after the restart is not stored twice, and the server refuses to
start against a Redis that could lose them (unless told to, which /healthz then shows)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys

from tests.server.support import http_get, join

from .conftest import until


async def test_acknowledged_messages_survive_kill_9_of_redis_and_a_resend_is_not_stored_twice(
        node_factory, redis_server):
    a, b = await node_factory(rate_limit=0, address_rate_limit=0), await node_factory(rate_limit=0, address_rate_limit=0)
    alice, bob = await join(a, "alice"), await join(b, "bob")
    for i in range(20):
        await alice.send({"type": "message:send", "text": f"m{i}", "clientMsgId": f"c{i}"})
    acked = [(await alice.expect("message:new", clientMsgId=f"c{i}"))["data"] for i in range(20)]
    await bob.expect("message:new", text="m19")

    redis_server.kill()  # SIGKILL: nothing is flushed on the way out
    await until(lambda: not a.core.store_up and not b.core.store_up, timeout=10)
    redis_server.start()  # the same folder, so the same append-only file
    await until(lambda: a.core.store_up and b.core.store_up, timeout=15)

    late = await join(b, "carol", history=100)
    assert late.history["messages"] == acked  # every acknowledged message is still there

    # The client did not see its acknowledgement and sends c5 again: it is answered with the
    # original, to alice only; bob's next message is the one after it.
    await alice.send({"type": "message:send", "text": "m5", "clientMsgId": "c5"})
    assert (await alice.expect("message:new", clientMsgId="c5"))["data"] == acked[5]
    after = await alice.say("after", clientMsgId="c-after")
    assert (await bob.expect("message:new"))["data"] == after["data"]
    again = await join(a, "dave", history=100)
    assert again.history["messages"] == [*acked, after["data"]]
    for c in (alice, bob, late, again):
        await c.close()


class ServeProcess:
    """``workspace serve --broker URL ...`` as a real process."""

    def __init__(self, redis_url: str, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKSPACE_")}
        self.p = subprocess.Popen(
            [sys.executable, "-m", "workspace_tui", "serve", "--port", "0", "--broker", redis_url,
             "--log-level", "warning", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )

    async def refused(self) -> tuple[int, str]:
        """The exit code and stderr of a server that did not start."""
        out, err = await asyncio.wait_for(asyncio.to_thread(self.p.communicate), 20)
        assert "listening" not in out, out
        return self.p.returncode, err

    async def started(self) -> int:
        """The port of a server that did start."""
        assert self.p.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.p.stdout.readline), 20)
        m = re.search(r"ws://127\.0\.0\.1:(\d+)/ws", line)
        assert m, (line, self.p.stderr.read() if self.p.poll() is not None else "")
        return int(m[1])

    def stop(self) -> str:
        """Stop it; its stderr."""
        if self.p.poll() is None:
            self.p.terminate()
        _, err = self.p.communicate(timeout=15)
        return err


class _Port:
    def __init__(self, port: int) -> None:
        self.port = port


async def _health(port: int) -> dict:
    status, _, body = await http_get(_Port(port), "/healthz")
    assert status == 200
    return json.loads(body)


async def test_a_redis_without_appendonly_is_refused_with_what_to_set(redis_factory):
    unsafe = redis_factory(safe=False)  # redis-server's defaults: appendonly no
    code, err = await ServeProcess(unsafe.url).refused()
    assert code == 1
    assert f"the broker {unsafe.url} may lose messages it acknowledged" in err
    assert "appendonly is 'no', needs yes" in err
    assert "  appendonly yes\n" in err  # the redis.conf line
    assert f"redis-cli -u {unsafe.url} CONFIG SET appendonly yes" in err
    assert "--allow-unsafe-redis" in err
    assert "appendfsync" not in err and "maxmemory-policy" not in err  # only what is wrong

    proc = ServeProcess(unsafe.url, "--allow-unsafe-redis")
    try:
        health = await _health(await proc.started())
        assert health["status"] == "ok" and health["broker"] == "up"
        assert health["broker_unsafe"] == "unsafe Redis settings: appendonly=no: acknowledged messages may be lost"
    finally:
        err = proc.stop()
    assert "unsafe Redis settings: appendonly=no" in err  # the warning in the log


async def test_eviction_and_a_lazy_fsync_are_refused_too(redis_factory):
    from workspace_tui.server import ServerConfig, start_server

    risky = redis_factory(extra=("--appendfsync", "no", "--maxmemory-policy", "allkeys-lru"))
    try:
        await start_server(ServerConfig(host="127.0.0.1", port=0, broker=risky.url))
    except OSError as exc:
        text = str(exc)
    else:
        raise AssertionError("the server started")
    assert "appendfsync is 'no', needs everysec or always" in text
    assert "maxmemory-policy is 'allkeys-lru', needs noeviction" in text
    assert "appendonly is" not in text  # (that one is fine)


async def test_a_redis_that_hides_config_needs_the_override(redis_factory):
    managed = redis_factory(extra=("--rename-command", "CONFIG", ""))  # as managed services do
    code, err = await ServeProcess(managed.url).refused()
    assert code == 1
    assert "CONFIG GET is disabled or renamed" in err and "--allow-unsafe-redis" in err
    proc = ServeProcess(managed.url, "--allow-unsafe-redis")
    try:
        health = await _health(await proc.started())
        assert health["broker_unsafe"].startswith("Redis settings unchecked")
    finally:
        proc.stop()
