"""Helpers for fault tests: a queue-checker style ledger, a store reader, a cutting TCP proxy, RSS.

The servers, clients and event recorders themselves come from ``tests/client/support.py``.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workspace_tui.client import HistoryReceived, MessageAcknowledged, MessageReceived

from tests.client.support import Recorder

# -- classification -------------------------------------------------------------


@dataclass
class Verdict:
    """What one observer (a client or the store) saw, classified against what was sent."""

    observer: str
    delivered: int = 0
    lost: list[str] = field(default_factory=list)  # acknowledged (or sent), never seen here
    duplicated: list[str] = field(default_factory=list)  # seen more than once
    unexpected: list[str] = field(default_factory=list)  # seen, never sent
    out_of_order: list[str] = field(default_factory=list)  # senders whose messages arrived out of order

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.out_of_order)

    def __str__(self) -> str:
        return (
            f"{self.observer}: delivered={self.delivered} lost={len(self.lost)} dup={len(self.duplicated)} "
            f"unexpected={len(self.unexpected)} out_of_order={self.out_of_order} "
            f"e.g. lost={self.lost[:3]} dup={self.duplicated[:3]} unexpected={self.unexpected[:3]}"
        )


def classify(observer: str, sent: dict[str, list[str]], seen: Iterable[tuple[str, str]]) -> Verdict:
    """Classify *seen* ``(username, text)`` pairs, in arrival order, against *sent* texts per sender.

    Texts are unique per message, so a message stored or broadcast twice under
    two ids shows up as a duplicate even though a client dedupes by id.
    """
    seen = list(seen)
    verdict = Verdict(observer, delivered=len(seen))
    expected = {(u, t) for u, texts in sent.items() for t in texts}
    counts = Counter(seen)
    verdict.duplicated = sorted(f"{u}:{t}" for (u, t), n in counts.items() if n > 1)
    verdict.unexpected = sorted(f"{u}:{t}" for (u, t) in counts if (u, t) not in expected)
    verdict.lost = sorted(f"{u}:{t}" for (u, t) in expected if (u, t) not in counts)
    for user, texts in sent.items():
        order = {t: i for i, t in enumerate(texts)}
        got = [order[t] for u, t in seen if u == user and t in order]
        if got != sorted(got):
            verdict.out_of_order.append(user)
    return verdict


def client_view(rec: Recorder) -> list[tuple[str, str]]:
    """Every message a client delivered to its consumer (join/resume history and live), in order."""
    out: list[tuple[str, str]] = []
    for e in rec.events:
        if isinstance(e, HistoryReceived) and e.reason != "page":
            out += [(m.username, m.text) for m in e.messages]
        elif isinstance(e, MessageReceived):
            out.append((e.message.username, e.message.text))
    return out


def acknowledged(rec: Recorder) -> list[str]:
    """Texts of the client's own messages the server acknowledged, in acknowledgement order."""
    return [e.message.text for e in rec.of(MessageAcknowledged)]


def store_view(db: Path) -> list[tuple[str, str]]:
    """``(username, text)`` of every stored message in id order, read straight from the SQLite file."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [(u, t) for u, t in con.execute("SELECT username, text FROM messages ORDER BY id")]
    finally:
        con.close()


# -- a proxy that cuts connections ------------------------------------------------


@dataclass
class CutStats:
    connections: int = 0
    cuts: int = 0
    mid_frame: int = 0  # cuts that forwarded only part of a read (very likely inside a frame)
    upstream: int = 0  # cuts while forwarding client -> server
    downstream: int = 0  # cuts while forwarding server -> client
    bytes_forwarded: int = 0


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 that cuts each connection after a random number of bytes.

    Each accepted connection draws, from a seeded RNG, a byte budget for each
    direction; when a read would cross it, the proxy forwards only the bytes up
    to the budget (usually the middle of a WebSocket frame) and aborts both
    sides (RST). After *max_cuts* cuts it forwards cleanly, so a test ends.
    """

    def __init__(
        self,
        target_port: int,
        *,
        seed: int,
        max_cuts: int,
        budget: tuple[int, int] = (64, 16_384),
        up_budget: tuple[int, int] | None = None,
    ) -> None:
        self.target_port = target_port
        self.rng = random.Random(seed)
        self.max_cuts = max_cuts
        self.budget = budget  # bytes server -> client before a cut
        self.up_budget = up_budget or budget  # bytes client -> server (clients send less: cut sooner)
        self.stats = CutStats()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        """Listen (on the same port again after :meth:`outage`); the URL clients should use."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{self.port}/ws"

    async def outage(self) -> None:
        """The network goes away: every connection is reset and new ones are refused until :meth:`start`."""
        await self.close()
        self._server = None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _draw(self, bounds: tuple[int, int]) -> int | None:
        if self.stats.cuts >= self.max_cuts:
            return None
        return self.rng.randint(*bounds)

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            c_writer.transport.abort()
            return
        self._writers |= {c_writer, s_writer}
        cut = asyncio.Event()

        def kill() -> None:  # RST both sides
            cut.set()
            c_writer.transport.abort()
            s_writer.transport.abort()

        up = asyncio.create_task(self._pipe(c_reader, s_writer, self._draw(self.up_budget), kill, cut, "upstream"))
        down = asyncio.create_task(self._pipe(s_reader, c_writer, self._draw(self.budget), kill, cut, "downstream"))
        self._tasks |= {up, down}
        try:
            await asyncio.gather(up, down, return_exceptions=True)
        finally:
            kill()
            self._writers -= {c_writer, s_writer}
            self._tasks -= {up, down}

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        budget: int | None,
        kill: Callable[[], None],
        cut: asyncio.Event,
        direction: str,
    ) -> None:
        try:
            while not cut.is_set():
                data = await reader.read(65536)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                if budget is not None and len(data) >= budget and self.stats.cuts < self.max_cuts:
                    head = data[:budget]
                    writer.write(head)
                    self.stats.bytes_forwarded += len(head)
                    self.stats.cuts += 1
                    self.stats.mid_frame += len(head) < len(data)
                    setattr(self.stats, direction, getattr(self.stats, direction) + 1)
                    await asyncio.sleep(0.001)  # let the partial write reach the socket first
                    kill()
                    return
                if budget is not None:
                    budget -= len(data)
                writer.write(data)
                self.stats.bytes_forwarded += len(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return


# -- memory -----------------------------------------------------------------------


def rss_kb(pid: int | str = "self") -> int:
    """Resident set size of a process in KiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")
