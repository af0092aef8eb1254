"""Test helpers: real servers (in-process and as a subprocess), raw sockets, event waits."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workspace_tui.client import ChatClient, ClientEvent

URL_RE = re.compile(r"ws://[\w.\-]+:(\d+)/ws")


def free_port() -> int:
    """A TCP port nothing listens on right now (for unreachable servers and fixed restarts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start(tmp_path: Path, **overrides: Any):
    """An in-process server on a free port with a SQLite file in *tmp_path*."""
    from workspace_tui.server import ServerConfig, start_server

    overrides.setdefault("port", 0)
    overrides.setdefault("db_path", tmp_path / "server.sqlite3")
    return await start_server(ServerConfig(host="127.0.0.1", **overrides))


class Recorder:
    """Consumes a client's events in the background so tests can wait on them."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.events: list[ClientEvent] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for event in self.client.events():
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def finished(self, timeout: float = 10.0) -> None:
        """Wait until the client's event stream has ended (after close or a fatal stop)."""
        await asyncio.wait_for(asyncio.shield(self._task), timeout)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, predicate: Callable[[Recorder], Any], timeout: float = 15.0) -> Any:
        async def waiter() -> Any:
            async with self._changed:
                while True:
                    result = predicate(self)
                    if result:
                        return result
                    if self._task.done():
                        raise AssertionError(f"client stopped; events: {self.events[-5:]}")
                    await self._changed.wait()

        return await asyncio.wait_for(waiter(), timeout)

    async def wait_event(self, kind: type, check: Callable[[Any], bool] = lambda e: True, timeout: float = 15.0) -> Any:
        def pred(r: Recorder) -> Any:
            for e in r.events:
                if isinstance(e, kind) and check(e):
                    return e
            return None

        return await self.wait_for(pred, timeout)


async def started(client: ChatClient) -> Recorder:
    await client.start()
    return Recorder(client)


class ServerProcess:
    """``python -m workspace_tui serve`` in a subprocess, killable with SIGKILL and restartable on its port."""

    def __init__(self, db: Path, *args: str) -> None:
        self.db = db
        self.args = list(args)
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20.0) -> str:
        cmd = [sys.executable, "-m", "workspace_tui", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--db", str(self.db), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = URL_RE.search(line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"no URL in the server's first line: {line!r}")
        self.port = int(m.group(1))
        return self.url

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_cli(*args: str, input: str | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """``python -m workspace_tui ARGS`` as a real subprocess (inherits the test's data dirs)."""
    return subprocess.run(
        [sys.executable, "-m", "workspace_tui", *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


class CuttingProxy:
    """A TCP proxy in front of a server that can cut every connection through it, mid-frame or not."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.cuts = 0
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(4096):
                    # Forward in two pieces so a cut can land between them: mid-frame.
                    half = len(data) // 2
                    dst.write(data[:half])
                    await asyncio.sleep(0)
                    dst.write(data[half:])
                    await dst.drain()
            except (OSError, RuntimeError):
                pass
            finally:
                for w in pair:
                    w.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._pairs.discard(pair)

    def cut(self) -> int:
        """Abort every connection now (RST, no close frame); returns how many were cut."""
        n = 0
        for pair in list(self._pairs):
            for w in pair:
                w.transport.abort()
            n += 1
        self.cuts += n
        return n

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class TerminalProcess:
    """``python -m workspace_tui ARGS`` on a pseudo-terminal of its own, as a person's terminal
    would run it: what it draws is collected in the background; :meth:`write` types."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, size: tuple[int, int] = (100, 30)) -> None:
        import fcntl
        import pty
        import struct
        import termios
        import threading

        master, slave = pty.openpty()
        columns, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workspace_tui", *args],
            stdin=slave, stdout=slave, stderr=slave, close_fds=True, start_new_session=True,
            env={**os.environ, "TERM": "xterm-256color", **(env or {})},
        )
        os.close(slave)
        self.master = master
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:  # the app must always be able to write its screen
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self._chunks.append(data)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def output(self) -> str:
        """Everything it wrote so far, escape codes and all."""
        return b"".join(self._chunks).decode(errors="replace")

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self, quit_keys: bytes = b"") -> None:
        try:
            if quit_keys and self.proc.poll() is None:
                self.write(quit_keys)
            if self.wait(10) is None:
                self.proc.kill()
                self.proc.wait()
        finally:
            self._reader.join(timeout=2)
            os.close(self.master)
