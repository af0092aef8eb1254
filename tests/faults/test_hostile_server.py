"""Hostile text, end to end: our server cleans it; a server that does not is still harmless on screen.

``tests/server/test_messages.py`` checks the cleaning of message text and
``tests/tui/test_hostile_raw.py`` feeds the app's Messages directly. Here:

* usernames carrying escapes, bidi or markup are refused before the upgrade,
  and the 400 body does not reflect them;
* the SQLite file and every way a message reaches a client (live, join
  history, resume, page) carry only cleaned text;
* a *raw* server (a few lines of websockets, no cleaning) sends escapes, OSC 52
  / OSC 8, C1, bidi and markup in every field the TUI shows, through the real
  ``ChatClient`` into the real ``ChatApp``; the screen shows them inert.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from websockets.asyncio.server import serve

from workspace_tui.protocol import user_id_for
from workspace_tui.tui.app import ChatApp

from tests.server.support import join, refused, url_for
from tests.tui.conftest import screen_text, wait_until

from .support import store_view

FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE = [
    "clear\x1b[2J\x1b[3J\x1bcscreen",
    "clip\x1b]52;c;aGVsbG8=\x07board",
    "clip\x1b]52;p;?\x1b\\read",
    "osc8 \x1b]8;;http://evil\x1b\\text\x1b]8;;\x1b\\ end",
    "title\x1b]0;pwned\x07bar",
    "dcs\x1bP+q544e\x1b\\done",
    "c1\x9b31mred\x9b0m\x9d0;t\x9c\x85x",
    "bidi \u202eevil\u202c \u2067iso\u2069",
    "[bold red]markup[/] [@click=app.quit]quit[/] [link=http://e]link[/]",
]
CLEAN_SHOWN = ["clearscreen", "clipboard", "clipread", "osc8 text end", "titlebar", "dcsdone", "c1redx",
               "bidi evil iso", "[bold red]markup[/] [@click=app.quit]quit[/] [link=http://e]link[/]"]


@pytest.mark.parametrize(
    "name", ["\x1b[2Jevil", "ev\x1b]52;c;eA==\x07il", "\u202eevil", "[bold]evil[/]", "evil\x85", "e\nvil", "<script>"]
)
async def test_hostile_usernames_are_refused_without_reflection(server, name):
    status, body = await refused(url_for(server, quote(name, safe="")))
    assert status == 400
    assert not FORBIDDEN.search(body) and "evil" not in body and "[bold]" not in body and "<script>" not in body


async def test_every_path_to_a_client_and_the_store_carry_cleaned_text(server_factory, tmp_path):
    db = tmp_path / "hostile.sqlite3"
    server = await server_factory(db_path=db)
    mallory = await join(server, "mallory")
    watcher = await join(server, "watcher")
    first = (await mallory.say("first"))["data"]["id"]
    await watcher.expect("message:new", text="first")
    live = []
    for text in HOSTILE:
        await mallory.send({"type": "message:send", "text": text})
        live.append((await watcher.expect("message:new"))["data"]["text"])
    assert live == CLEAN_SHOWN
    # join history, resume and a page back all read the store
    joined = await join(server, "late")
    resumed = await join(server, "resumer", since=first)
    await joined.send({"type": "history:request", "limit": 50})
    page = await joined.expect("history", reason="page")
    for frame in (joined.history, resumed.history, page):
        texts = [m["text"] for m in frame["messages"] if m["text"] != "first"]
        assert texts == CLEAN_SHOWN, frame["reason"]
    stored = [t for _, t in store_view(db) if t != "first"]
    assert stored == CLEAN_SHOWN
    for c in (mallory, watcher, joined, resumed):
        await c.close()


async def test_client_msg_id_with_control_characters_is_refused_not_broadcast(server):
    # It used to be echoed raw in message:new to every user (found by this test).
    mallory = await join(server, "mallory")
    watcher = await join(server, "watcher")
    await mallory.send({"type": "message:send", "text": "hi", "clientMsgId": "\x1b]52;c;aGk=\x07\u202e"})
    err = await mallory.expect("error")
    assert err["code"] == "invalid_field" and "clientMsgId" not in err
    await mallory.send({"type": "\x1b[2J\u202e"})
    err = await mallory.expect("error")
    assert err["code"] == "unknown_type" and not FORBIDDEN.search(json.dumps(err, ensure_ascii=False))
    await mallory.say("fine", clientMsgId="c-1")
    frame = await watcher.expect("message:new")
    assert frame["data"]["text"] == "fine" and frame["data"]["clientMsgId"] == "c-1"  # the refused one never came
    await mallory.close()
    await watcher.close()


# -- a server that sends everything raw ---------------------------------------------

EVIL = "[bold red]mallory[/]\x1b[2J\u202e"
EVIL_ID = user_id_for("mallory")


def _msg(i: int, text: str) -> dict:
    return {"id": f"msg_{1736935200000 + i:013d}_000000", "userId": EVIL_ID, "username": EVIL, "text": text,
            "createdAt": "2025-01-15T09:00:00.000Z"}


async def raw_server_handler(ws) -> None:
    me = user_id_for("alice")
    await ws.send(json.dumps({
        "type": "connected", "userId": me, "username": "alice", "timestamp": "2025-01-15T09:00:00.000Z",
        "connectedUsers": 2,
        "users": [{"userId": me, "username": "alice", "status": "online", "connections": 1},
                  {"userId": EVIL_ID, "username": EVIL, "status": "busy\x1b[5m", "connections": 1}],
        "limits": {"maxPayloadBytes": 1048576, "messagesPerMinute": 100, "maxConnectionsPerUser": 3, "idleTimeoutSeconds": 300},
    }))
    await ws.send(json.dumps({"type": "history", "reason": "join", "hasMore": False,
                              "messages": [_msg(i, t) for i, t in enumerate(HOSTILE[:4])]}))
    for i, text in enumerate(HOSTILE[4:], start=4):
        await ws.send(json.dumps({"type": "message:new", "data": _msg(i, text)}))
    await ws.send(json.dumps({"type": "typing:indicator", "data": {"userId": EVIL_ID, "username": EVIL, "isTyping": True}}))
    await ws.send(json.dumps({"type": "presence:update", "data": {"userId": EVIL_ID, "username": EVIL, "status": "away"}}))
    await ws.send(json.dumps({"type": "error", "code": "x\x1b[2J", "message": "[@click=app.quit]boom[/]\x1b]52;c;eA==\x07"}))
    await ws.send("\x1b[2J not even json \x9b")
    async for _ in ws:
        pass


async def test_a_raw_server_cannot_reach_the_terminal_through_the_tui(tmp_path):
    from workspace_tui.client import ChatClient

    async with serve(raw_server_handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        app = ChatApp(
            f"ws://127.0.0.1:{port}/ws", "alice", auto_away_minutes=0, bell=False,
            client_factory=lambda url, user, token: ChatClient(url, user, token, state_path=tmp_path / "alice.outbox"),
        )
        async with app.run_test(size=(120, 34)) as pilot:
            await wait_until(pilot, lambda: app.message_list.message_count == len(HOSTILE), detail=lambda: screen_text(app))
            await wait_until(pilot, lambda: "is typing" in screen_text(app), detail=lambda: screen_text(app))
            await pilot.pause()
            shown = screen_text(app)
            for literal in CLEAN_SHOWN[:-1]:
                assert literal in shown, (literal, shown)
            assert "[@click=app.quit]quit[/]" in shown and "[link=http://e]link[/]" in shown
            assert "[bold red]mallory[/]" in shown  # the name literally, not styled
            assert not FORBIDDEN.search(shown), ascii(shown)
            assert app.is_running
