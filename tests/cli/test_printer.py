"""What the one-liners print is inert even when a server sends hostile text raw."""

from __future__ import annotations

import json

from workspace_tui.cli.oneliners import _Printer
from workspace_tui.protocol import ChatMessage

HOSTILE = "a\x1b]52;c;aGk=\x07b\x9b31mc\u202ed\x1b[2Je\r\nf\x00"


def msg(text: str, username: str = "eve\u202e") -> ChatMessage:
    return ChatMessage("msg_0000000000001_000000", "user_x", username, text, "2026-01-16T10:00:00.000Z")


def test_readable_output_is_inert(capsys):
    _Printer(as_json=False).message(msg(HOSTILE))
    out = capsys.readouterr().out
    assert out.endswith("eve: abcde\n" + " " * len("00:00  eve: ") + "f\n")
    assert not any(ch in out for ch in "\x1b\x9b\u202e\x07\x00\r")


def test_json_output_is_inert(capsys):
    p = _Printer(as_json=True)
    p.message(msg(HOSTILE))
    p.event("typing:indicator", {"userId": "u", "username": "m\x9b1m", "isTyping": True}, "")
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[0])["text"] == "abcde\nf"
    assert json.loads(lines[0])["username"] == "eve"
    assert json.loads(lines[1]) == {"type": "typing:indicator", "userId": "u", "username": "m", "isTyping": True}
    assert "\u202e" not in lines[0] and "\x9b" not in lines[1]
