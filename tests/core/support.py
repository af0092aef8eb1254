"""A harness for the chat core: a hand-driven clock, fake connections and a fake backend.

No sockets, no event loop, no sleeping: a test tells the core what happened,
takes the effects it decided and plays the backend itself (answering ``Read``
with :func:`answer`, ``Store`` with :func:`commit`).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from workspace_tui.core import ChatCore, Conn, Rules, Session
from workspace_tui.core.effects import Broadcast, Deliver, Effect, Read, Store
from workspace_tui.core.history import HistoryQuery, HistoryResult, estimate
from workspace_tui.core.state import Draft
from workspace_tui.protocol import ChatMessage, iso_timestamp, make_message_id, user_id_for

V1 = ("workspace.v1",)  # the subprotocol our clients offer (presence:batch, rooms, history frames)
T0 = 1000.0  # the fake monotonic clock starts here (never 0: the core treats 0 as "not yet")
WALL0 = 1_768_557_600_000  # 2026-01-16T10:00:00.000Z


class FakeClock:
    """The core's clock, moved by hand."""

    def __init__(self, now: float = T0, wall: int = WALL0) -> None:
        self.now = now
        self.wall = wall

    def monotonic(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += int(seconds * 1000)


def make_core(last_message_id: str | None = None, clock: FakeClock | None = None, **rules: Any) -> ChatCore:
    return ChatCore(Rules(**rules), clock or FakeClock(), last_message_id)


def elapse(core: ChatCore, seconds: float) -> list[Effect]:
    """Let *seconds* pass the way the server's timer does: tick at every ``next_wake`` on the way."""
    clock = core.clock
    assert isinstance(clock, FakeClock)
    end = clock.now + seconds
    out: list[Effect] = []
    while True:
        wake = core.next_wake()
        if wake > end:
            break
        clock.now = max(clock.now, wake)
        core.tick()
        out += core.take()
    clock.now = end
    return out


# -- connections -----------------------------------------------------------------


def connect(core: ChatCore, name: str, *, protocols: tuple[str, ...] = (), **query: Any) -> Conn:
    """Admit and open a connection of *name* (its join ``Read``, if any, is left unanswered);
    ``protocols=V1`` for one of our clients, else one written from the protocol document alone."""
    session = core.admit({"username": [name], **{k: [str(v)] for k, v in query.items()}}, None, protocols=protocols)
    assert isinstance(session, Session), session
    conn = Conn(session, link=name)
    core.open(conn)
    return conn


def joined(core: ChatCore, name: str, *, protocols: tuple[str, ...] = (), **query: Any) -> Conn:
    """A connection that has had its (empty) join history, with the effects taken."""
    conn = connect(core, name, protocols=protocols, **query)
    for e in core.take():
        if type(e) is Read:
            core.history_read(e.conn, e.query, HistoryResult([], False))
    core.take()
    return conn


def frame(payload: bytes | list[bytes]) -> dict[str, Any]:
    return json.loads(b"".join(payload) if isinstance(payload, list) else payload)


def send_frame(core: ChatCore, conn: Conn, obj: dict[str, Any]) -> None:
    core.receive(conn, json.dumps(obj))


def say(core: ChatCore, conn: Conn, text: str, cmid: str | None = None) -> None:
    obj: dict[str, Any] = {"type": "message:send", "text": text}
    if cmid is not None:
        obj["clientMsgId"] = cmid
    send_frame(core, conn, obj)


def set_typing(core: ChatCore, conn: Conn, is_typing: bool) -> None:
    send_frame(core, conn, {"type": "typing:indicator", "isTyping": is_typing})


def set_status(core: ChatCore, conn: Conn, status: str) -> None:
    send_frame(core, conn, {"type": "presence:update", "status": status})


# -- reading effects -----------------------------------------------------------------


def of_type(effects: list[Effect], kind: type) -> list[Any]:
    return [e for e in effects if type(e) is kind]


def broadcasts(effects: list[Effect]) -> list[dict[str, Any]]:
    """The decoded frames of every ``Broadcast``, in order."""
    return [frame(e.payload) for e in of_type(effects, Broadcast)]


def delivered(effects: list[Effect], conn: Conn) -> list[dict[str, Any]]:
    """The decoded frames ``Deliver``-ed to *conn*, in order."""
    return [frame(e.payload) for e in of_type(effects, Deliver) if e.conn is conn]


def errors(effects: list[Effect], conn: Conn) -> list[dict[str, Any]]:
    return [f for f in delivered(effects, conn) if f["type"] == "error"]


def drafts(effects: list[Effect]) -> list[Draft]:
    return [e.draft for e in of_type(effects, Store)]


def typing_of(frames: list[dict[str, Any]], username: str) -> list[bool]:
    return [
        f["data"]["isTyping"]
        for f in frames if f["type"] == "typing:indicator" and f["data"]["username"] == username
    ]


def presence_of(frames: list[dict[str, Any]], username: str) -> list[tuple[str, int]]:
    return [
        (f["data"]["status"], f["data"]["connections"])
        for f in frames if f["type"] == "presence:update" and f["data"]["username"] == username
    ]


# -- the backend -----------------------------------------------------------------------

_ids = itertools.count(1)


def message(text: str = "hello", username: str = "zed", ms: int | None = None) -> ChatMessage:
    """A stored message with a fresh id (ids sort in the order they were made)."""
    ms = WALL0 + next(_ids) if ms is None else ms
    return ChatMessage(make_message_id(ms, 0), user_id_for(username), username, text, iso_timestamp(ms))


def commit(core: ChatCore, *pending: Draft) -> list[ChatMessage]:
    """Store *pending* as the backend would, in one batch, and report them committed."""
    stored = [d.message(m.id, m.created_at) for d, m in ((d, message()) for d in pending)]
    core.committed(stored, list(pending))
    return stored


def answer(query: HistoryQuery, store: list[ChatMessage]) -> HistoryResult:
    """What a backend reads for *query* from *store* (oldest first), size estimate included."""
    if query.kind == "after":
        match = [m for m in store if m.id > (query.after or "") and (query.upto is None or m.id <= query.upto)]
        picked: list[ChatMessage] = []
        size = 0
        for m in match:
            if len(picked) >= query.limit or (picked and size > query.max_bytes):
                break
            picked.append(m)
            size += estimate(m.text)
        return HistoryResult(picked, len(picked) < len(match), store[0].id if store else None)
    match = [m for m in store if (query.before is None or m.id < query.before)
             and (query.upto is None or m.id <= query.upto)]
    picked = []
    size = 0
    for m in reversed(match):
        if len(picked) >= query.limit or (picked and size > query.max_bytes):
            break
        picked.append(m)
        size += estimate(m.text)
    picked.reverse()
    return HistoryResult(picked, len(picked) < len(match))
