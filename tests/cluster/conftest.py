"""Fixtures for multi-node tests: a real ``redis-server`` on a free port, nodes started in-process.

Without ``redis-server`` or the ``redis`` package these tests are skipped, unless
``WORKSPACE_REQUIRE_REDIS=1`` (CI sets it): then they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from client.support import free_port

REQUIRED = os.environ.get("WORKSPACE_REQUIRE_REDIS") == "1"


def _missing() -> str | None:
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        return "redis-server is not installed"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis package is not installed (pip install -e '.[test]')"
    return None


class RedisProcess:
    """A real redis-server in *dir* (append-only, so a restart keeps the data)."""

    def __init__(self, dir: Path) -> None:
        self.dir = dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--save", "", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path):
    reason = _missing()
    if reason:
        if REQUIRED:
            pytest.fail(f"WORKSPACE_REQUIRE_REDIS=1 but {reason}")
        pytest.skip(reason)
    rp = RedisProcess(tmp_path)
    rp.start()
    yield rp
    rp.stop()


@pytest.fixture
async def node_factory(redis_server: RedisProcess):
    """``await node_factory(**overrides)``: a node of the workspace on port 0; all closed after the test."""
    from workspace_tui.server import ServerConfig, start_server

    started = []

    async def factory(**overrides):
        overrides.setdefault("host", "127.0.0.1")
        overrides.setdefault("port", 0)
        overrides.setdefault("broker", redis_server.url)
        overrides.setdefault("broker_node_ttl", 2.0)
        srv = await start_server(ServerConfig(**overrides))
        started.append(srv)
        return srv

    yield factory
    for srv in reversed(started):
        await srv.close()


async def until(predicate, timeout: float = 5.0, interval: float = 0.02) -> None:
    """Wait until *predicate()* is true (a deadline, not a sleep): fail after *timeout*."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
