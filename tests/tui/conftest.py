"""Fixtures for the TUI tests: a real in-process server, real clients, a screen reader.

No mocks: the app under test connects to ``start_server`` on 127.0.0.1 port 0
with its SQLite store in ``tmp_path``; other users are real ``ChatClient``s.
Waiting is done by polling a condition with a deadline, never by a fixed sleep.
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from workspace_tui.client import ChatClient
from workspace_tui.server import ServerConfig, start_server
from workspace_tui.tui.app import ChatApp


class Harness:
    """Starts and restarts one server (same port, same store) and makes clients."""

    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        self.db = tmp_path / "server.sqlite3"
        self.overrides = overrides
        self.server: Any = None
        self.port = 0
        self.clients: list[ChatClient] = []

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        self.server = await start_server(ServerConfig(host="127.0.0.1", port=self.port, db_path=self.db, **self.overrides))
        self.port = self.server.port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None

    def client_factory(self, url: str, username: str, token: str | None, **identity: Any) -> ChatClient:
        # A short backoff cap keeps the reconnect tests quick. identity: key=, invite= (redeeming one).
        return ChatClient(url, username, token, backoff_base=0.1, backoff_cap=0.5, **identity)

    async def client(self, username: str) -> ChatClient:
        client = self.client_factory(f"ws://127.0.0.1:{self.port}/ws", username, None)
        await client.start()
        self.clients.append(client)
        return client

    def app(self, username: str | None = "alice", **kwargs: Any) -> ChatApp:
        kwargs.setdefault("auto_away_minutes", 0)
        kwargs.setdefault("bell", False)
        return ChatApp(f"ws://127.0.0.1:{self.port}/ws", username, client_factory=self.client_factory, **kwargs)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, rate_limit=0, address_rate_limit=0, history=50)
    await h.start()
    yield h
    for client in h.clients:
        await client.close()
    await h.stop()


async def delivered(client: ChatClient, timeout: float = 15.0) -> None:
    """Wait until the server has acknowledged everything *client* sent (its outbox is empty).

    Seed history through this before an app joins, so what the app gets on join
    does not depend on how fast the seeder's sends land.
    """
    import asyncio

    deadline = time.monotonic() + timeout
    while client.outbox():
        if time.monotonic() > deadline:
            raise AssertionError(f"{client.username}: {len(client.outbox())} message(s) still unacknowledged")
        await asyncio.sleep(0.02)


async def wait_until(
    pilot: Any, condition: Callable[[], Any], timeout: float = 10.0, what: str = "", detail: Callable[[], Any] | None = None
) -> Any:
    """Let the app run until ``condition()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"; {detail()!r}" if detail is not None else ""
            raise AssertionError(f"timed out waiting for {what or condition}{extra}")
        await pilot.pause(0.02)


def screen_text(app: ChatApp) -> str:
    """What the terminal shows right now, as plain text (the same render as a screenshot)."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def screen_with(app: ChatApp, *needles: str) -> str | None:
    """The screen's text when every needle is on it, else ``None`` (for ``wait_until``)."""
    text = screen_text(app)
    return text if all(n in text for n in needles) else None


def events_of(client: ChatClient) -> list[Any]:
    """Start collecting a client's events in the background; returns the live list."""
    import asyncio

    seen: list[Any] = []

    async def collect() -> None:
        async for event in client.events():
            seen.append(event)

    task = asyncio.get_running_loop().create_task(collect())
    seen_task = getattr(client, "_tui_test_tasks", [])
    seen_task.append(task)
    client._tui_test_tasks = seen_task  # type: ignore[attr-defined]
    return seen
