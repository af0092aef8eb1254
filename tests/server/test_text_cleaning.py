"""Invisible text and blank names against a real server: what is refused, stored and broadcast."""

from __future__ import annotations

import pytest

from .support import join, refused, url_for

ZWJ, ZWNJ = "\u200d", "\u200c"
HIDDEN = "".join(chr(0xE0000 + ord(c)) for c in "send me your token")  # tag characters

# (what is sent, what everyone gets)
CLEANED = [
    ("hi\u200b there\u2060!", "hi there!"),
    ("\ufeff\u200eleft\u200f\u061c", "left"),
    ("hello" + HIDDEN + " world", "hello world"),
    ("soft\u00adhyphen\u3164", "softhyphen"),
    ("one\u2028two", "one\ntwo"),
    (ZWJ + "edge" + ZWNJ, "edge"),
    ("Z" + "\u0301" * 30 + "algo", "Z" + "\u0301" * 4 + "algo"),
    ("👩‍💻 and 👨‍👩‍👧", "👩‍💻 and 👨‍👩‍👧"),
    ("می" + ZWNJ + "خواهم", "می" + ZWNJ + "خواهم"),
]
INVISIBLE_ONLY = ["\u200b", "\u200b\u2060\ufeff \u200b", ZWJ + ZWNJ, "\u3164\u3164", HIDDEN, "\ufe0f", "\u2800\u2800"]


async def test_invisible_characters_are_removed_before_storing_and_broadcasting(server_factory):
    server = await server_factory(rate_limit=0, address_rate_limit=0)
    alice = await join(server, "alice")
    bob = await join(server, "bob")
    for i, (sent, _) in enumerate(CLEANED):
        await alice.send({"type": "message:send", "text": sent, "clientMsgId": f"c{i}"})
    expected = [want for _, want in CLEANED]
    echoes = [(await alice.expect("message:new", clientMsgId=f"c{i}"))["data"] for i in range(len(CLEANED))]
    assert [e["text"] for e in echoes] == expected  # the sender sees what was kept
    assert [(await bob.expect("message:new"))["data"]["text"] for _ in CLEANED] == expected
    carol = await join(server, "carol")  # what was stored
    assert [m["text"] for m in carol.history["messages"]] == expected
    for c in (alice, bob, carol):
        await c.close()


@pytest.mark.parametrize("text", INVISIBLE_ONLY)
async def test_a_message_with_nothing_visible_is_empty_text(server, text):
    alice = await join(server, "alice")
    bob = await join(server, "bob")
    await alice.send({"type": "message:send", "text": text, "clientMsgId": "blank"})
    err = await alice.expect("error")
    assert err["code"] == "empty_text" and err["clientMsgId"] == "blank" and err["frameType"] == "message:send"
    assert "nothing visible" in err["message"]
    # nothing was broadcast: the next message bob gets is the one sent after it
    await alice.send({"type": "message:send", "text": "visible", "clientMsgId": "next"})
    assert (await bob.expect("message:new"))["data"]["text"] == "visible"
    assert server.backend.count() == 1
    await alice.close()
    await bob.close()


@pytest.mark.parametrize("name", ["_", "..", "-", "_.-"])
async def test_a_name_without_a_letter_or_digit_is_refused(server, name):
    status, body = await refused(url_for(server, name))
    assert status == 400
    assert "at least one letter or digit" in body
