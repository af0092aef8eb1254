"""One user's frames reach everyone else in the order that user sent them.

A ``message:new`` goes out only once its batched commit is done, while
presence and typing need no commit. Even so, a ``presence:update`` or
``typing:indicator`` pipelined right after a ``message:send`` (sent without
waiting for the echo) must not overtake that message on its way to the other
users: whatever the server broadcasts about one user leaves in the order the
user sent it.

Checked through the protocol only: alice pipelines her frames, and bob (and
carol) must see the frames about alice (``message:new`` from her,
``presence:update`` and ``typing:indicator`` about her) in exactly that order.
The server also sends ``isTyping: false`` when a typing user sends a message,
before that ``message:new`` (docs/protocol.md), so the expected sequences
include it wherever alice was typing.
"""

from __future__ import annotations

from typing import Any

from .support import frames_about, join


async def test_presence_does_not_overtake_the_message_sent_before_it(server_factory):
    server = await server_factory(rate_limit=0, address_rate_limit=0)
    b = await join(server, "bob")
    a = await join(server, "alice")
    await b.presence(username="alice", status="online")  # now nothing about alice is pending for bob
    for i in range(5):  # a few times: the first may be committed before the presence arrives
        status = "away" if i % 2 == 0 else "online"
        await a.send({"type": "message:send", "text": f"before {status} {i}"})
        await a.send({"type": "presence:update", "status": status})  # pipelined: no wait for the echo
        got = await frames_about(b, a.user_id, 2)
        assert got == [("message", f"before {status} {i}"), ("presence", status)], f"round {i}: bob saw {got}"
    await a.close()
    await b.close()


async def test_typing_does_not_overtake_the_message_sent_before_it(server_factory):
    server = await server_factory(rate_limit=0, address_rate_limit=0)
    b = await join(server, "bob")
    a = await join(server, "alice")
    await b.presence(username="alice", status="online")  # now nothing about alice is pending for bob
    # alice is not typing: the message, then her typing
    await a.send({"type": "message:send", "text": "not typing yet"})
    await a.send({"type": "typing:indicator", "isTyping": True})
    got = await frames_about(b, a.user_id, 2)
    assert got == [("message", "not typing yet"), ("typing", True)], f"bob saw {got}"
    # alice is typing now (bob saw it): sending clears it before the message:new, then she types again
    for i in range(5):
        await a.send({"type": "message:send", "text": f"while typing {i}"})
        await a.send({"type": "typing:indicator", "isTyping": True})
        got = await frames_about(b, a.user_id, 3)
        assert got == [("typing", False), ("message", f"while typing {i}"), ("typing", True)], (
            f"round {i}: bob saw {got}"
        )
    await a.close()
    await b.close()


def expected_broadcasts(sent: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What others must see about the sender of *sent* (a user who is online and not typing at first)."""
    out: list[tuple[Any, ...]] = []
    typing = False
    for frame in sent:
        kind = frame["type"]
        if kind == "message:send":
            if typing:  # a message clears the typist's indicator, before its message:new
                out.append(("typing", False))
                typing = False
            out.append(("message", frame["text"]))
        elif kind == "presence:update":
            out.append(("presence", frame["status"]))
        elif kind == "typing:indicator":
            out.append(("typing", frame["isTyping"]))
            typing = frame["isTyping"]
    return out


async def test_a_mixed_pipelined_sequence_arrives_in_send_order(server_factory):
    server = await server_factory(rate_limit=0, address_rate_limit=0)
    b = await join(server, "bob")
    c = await join(server, "carol")
    a = await join(server, "alice")
    for w in (b, c):  # then nothing about alice is pending for them
        await w.presence(username="alice", status="online")
    sent: list[dict[str, Any]] = []
    for r in range(20):
        sent += [
            {"type": "message:send", "text": f"m{r}.1"},
            {"type": "presence:update", "status": "away"},
            {"type": "message:send", "text": f"m{r}.2"},
            {"type": "presence:update", "status": "busy"},
            {"type": "message:send", "text": f"m{r}.3"},
            {"type": "typing:indicator", "isTyping": True},
        ]
    sent.append({"type": "message:send", "text": "end"})  # the last frame about alice: no wait needed after it
    # 60 presence/typing frames: within the default burst of other frames (200)
    for frame in sent:
        await a.send(frame)  # all pipelined, no wait for any echo
    await a.expect("message:new", text="end")  # alice reads her echoes too, so closing her is not held up
    want = expected_broadcasts(sent)
    assert want[-2:] == [("typing", False), ("message", "end")]
    seen = {w.connected["username"]: await frames_about(w, a.user_id, len(want)) for w in (b, c)}
    for name, got in seen.items():
        if got != want:
            first = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
            raise AssertionError(
                f"{name} saw alice's frames out of order; first difference at #{first}: "
                f"got {got[first:first + 6]}, want {want[first:first + 6]}"
            )
    for x in (a, b, c):
        await x.close()
