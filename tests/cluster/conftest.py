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


# What the server checks at start (backends/redis_safety.py): an append-only file flushed every
# second, and no eviction (the last two are Redis's defaults, the first is not).
SAFE_ARGS = ("--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction")


class RedisProcess:
    """A real redis-server in *dir*: append-only, so a restart (even after ``kill -9``) keeps
    the data; with ``safe=False``, Redis's own defaults (no append-only file)."""

    def __init__(self, dir: Path, *, safe: bool = True, extra: tuple[str, ...] = ()) -> None:
        self.dir = dir
        self.safe = safe
        self.extra = extra
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             *(SAFE_ARGS if self.safe else ()), "--save", "", "--daemonize", "no", "--loglevel", "warning",
             *self.extra],
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

    def kill(self) -> None:
        """``kill -9``: Redis gets no chance to write or flush anything."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _need_redis() -> None:
    reason = _missing()
    if reason:
        if REQUIRED:
            pytest.fail(f"WORKSPACE_REQUIRE_REDIS=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture
def redis_server(tmp_path: Path):
    _need_redis()
    rp = RedisProcess(tmp_path)
    rp.start()
    yield rp
    rp.stop()


@pytest.fixture
def redis_factory(tmp_path: Path):
    """``redis_factory(safe=False, extra=(...))``: another running redis-server, stopped after the
    test; ``safe=False`` is Redis as it comes (no append-only file)."""
    _need_redis()
    started: list[RedisProcess] = []

    def factory(*, safe: bool = True, extra: tuple[str, ...] = ()) -> RedisProcess:
        folder = tmp_path / f"redis-{len(started)}"
        folder.mkdir()
        rp = RedisProcess(folder, safe=safe, extra=extra)
        rp.start()
        started.append(rp)
        return rp

    yield factory
    for rp in started:
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
