"""Fuzzing the server over a real socket, beyond ``tests/server/test_fuzz.py``.

Adds what that test does not send: fragmented messages (valid and not), lone
surrogates, hostile escapes, deep nesting and strings up to the payload limit;
and it is exact where that one is loose: with ``parse_client_frame`` as the
oracle, the fuzzer gets one ``error`` per bad frame and the bystander sees
exactly one ``message:new`` per valid send, with the cleaned text, and nothing
else but the fuzzer's legitimate presence/typing. Invalid UTF-8 in a text
frame and oversize fragmented messages end the connection (RFC 6455 says so):
tested one by one with the close codes and a bystander that does not notice.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workspace_tui import protocol as p
from workspace_tui.server import ServerConfig, start_server

from tests.server.support import join

from .test_protocol_fuzz import EXAMPLES, LEAKS, objects, texts

PAYLOAD = 64 * 1024
END = "-- end of fuzz --"


def fragments(raw: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    return [raw[a:b] for a, b in zip(points, points[1:])] or [raw]




def _utf8(s: str) -> str:
    """A real client cannot put a lone surrogate in a text frame (that is invalid UTF-8: see the 1007 tests)."""
    return s.encode("utf-8", "replace").decode("utf-8")


whole = st.one_of(
    objects.map(json.dumps),
    objects.map(lambda o: _utf8(json.dumps(o, ensure_ascii=False))),
    texts.map(_utf8),
    st.binary(max_size=40),
    st.integers(1, PAYLOAD // 2 - 64).map(lambda n: '{"type":"message:send","text":' + "[" * n + "]" * n + "}"),
    st.integers(1, PAYLOAD - 100).map(lambda n: json.dumps({"type": "message:send", "text": "é" * (n // 2)}, ensure_ascii=False)),
    st.sampled_from(['{"type":"message:send","text":"a\\ud800b"}', '{"type":"message:send","text":"\\u001b]52;c;eA==\\u0007x"}',
                     '{"type":"message:send","text":"\\u202eevil"}', '{"type":"history:request","limit":200}']),
)
# A frame as sent: whole, or fragmented into several WebSocket frames.
frames = st.one_of(
    whole,
    st.tuples(whole.filter(lambda f: isinstance(f, str) and len(f) > 1), st.lists(st.integers(0, 10**6), min_size=1, max_size=5))
    .map(lambda t: ("frag", fragments(*t))),
)


def oracle(frame) -> p.ClientFrame | p.FrameError:
    raw = "".join(frame[1]) if isinstance(frame, tuple) else frame
    try:
        return p.parse_client_frame(raw)
    except p.FrameError as exc:
        return exc


async def scenario(sent: list) -> None:
    server = await start_server(ServerConfig(port=0, db_path=":memory:", rate_limit=0, address_rate_limit=0, frame_rate=0, max_payload=PAYLOAD))
    try:
        fuzzer = await join(server, "fuzzer")
        bystander = await join(server, "bystander")
        await fuzzer.presence(username="bystander")  # in a presence:batch: both offered workspace.v1
        for frame in sent:
            if isinstance(frame, tuple):
                await fuzzer.ws.send(frame[1])
            else:
                await fuzzer.send(frame)
        # The end marker is a valid send: message:new frames keep their order, and every error
        # (sent at once) precedes it. A pong is no barrier: it may overtake message:new frames
        # that wait for their batched commit.
        await fuzzer.send({"type": "message:send", "text": END, "clientMsgId": "end"})
        expected = [oracle(f) for f in sent]
        errors, echoes, late = [], [], []
        while True:
            reply = await fuzzer.recv()
            kind = reply["type"]
            assert kind in {"error", "message:new", "pong", "history", "presence:update", "presence:batch",
                            "typing:indicator"}, reply
            if kind == "error":
                errors.append(reply)
                assert not any(leak in reply["message"] for leak in LEAKS), reply
            elif kind == "message:new":
                if reply["data"].get("clientMsgId") == "end":
                    break
                echoes.append(reply["data"]["text"])
        await fuzzer.send({"type": "ping", "id": "end"})
        while (reply := await fuzzer.recv())["type"] != "pong":
            late.append(reply["type"])
        assert set(late) <= {"history"}, late  # only history pages (read from the store) may still come
        assert [e["code"] for e in errors] == [x.code for x in expected if isinstance(x, p.FrameError)]
        valid_texts = [x.text for x in expected if isinstance(x, p.SendMessage)]
        assert echoes == valid_texts
        seen = []
        while True:
            frame = await bystander.recv()
            assert frame["type"] in {"message:new", "presence:update", "presence:batch", "typing:indicator"}, frame
            data = frame["data"]
            if frame["type"] == "presence:batch":  # the fuzzer's presence, and the two joins at first
                assert {e["username"] for e in data["users"]} <= {"fuzzer", "bystander"}, frame
                assert all(e["status"] in p.STATUSES for e in data["users"]), frame
                continue
            assert data["username"] == "fuzzer"
            if frame["type"] == "message:new":
                if data["text"] == END:
                    break
                seen.append(data["text"])
            elif frame["type"] == "presence:update":
                assert data["status"] in p.STATUSES
        assert seen == valid_texts
        await bystander.send({"type": "ping", "id": "end"})
        assert (await bystander.recv())["type"] == "pong"  # nothing else was queued for the bystander
        assert fuzzer.ws.close_code is None and bystander.ws.close_code is None
        assert server.backend.count() == len(valid_texts) + 1
    finally:
        await server.close()


@settings(max_examples=max(20, EXAMPLES // 3), derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(frames, min_size=1, max_size=12))
def test_fuzzed_frames_get_exact_errors_and_the_bystander_sees_only_valid_sends(sent):
    asyncio.run(scenario(sent))


# -- frames that must end the connection ----------------------------------------------


async def _ending(server_factory, send) -> tuple[int | None, str | None]:
    server = await server_factory(max_payload=PAYLOAD, rate_limit=0, address_rate_limit=0)
    fuzzer = await join(server, "fuzzer")
    bystander = await join(server, "bystander")
    await fuzzer.presence(username="bystander")
    await send(fuzzer.ws)
    code, reason = await fuzzer.closed()
    # the bystander sees the fuzzer leave (offline), then carries on as before
    await bystander.presence(username="fuzzer", status="offline")
    echo = await bystander.say("still here")
    assert echo["data"]["username"] == "bystander"
    assert server.backend.count() == 1
    await bystander.close()
    return code, reason


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xfe", b'{"type":"message:send","text":"\xc3"}', b'{"type":"message:send","text":"\xed\xa0\x80"}'],
    ids=["garbage", "truncated-sequence", "encoded-surrogate"],
)
async def test_invalid_utf8_in_a_text_frame_closes_with_1007(server_factory, payload):
    code, _ = await _ending(server_factory, lambda ws: ws.send(payload, text=True))
    assert code == 1007


async def test_invalid_utf8_split_across_fragments_closes_with_1007(server_factory):
    raw = '{"type":"message:send","text":"日本"}'.encode()
    split = raw.index("本".encode()) + 1  # inside a multi-byte character: fine when joined ...

    async def send(ws):
        await ws.send([raw[:split], b"\xff" + raw[split + 1 :]], text=True)  # ... but this one is broken

    code, _ = await _ending(server_factory, send)
    assert code == 1007


async def test_a_character_split_across_fragments_is_fine(server_factory):
    server = await server_factory(max_payload=PAYLOAD)
    a = await join(server, "alice")
    raw = '{"type":"message:send","text":"日本語"}'.encode()
    cut = raw.index("本".encode()) + 1
    await a.ws.send([raw[:cut], raw[cut:]], text=True)
    assert (await a.expect("message:new"))["data"]["text"] == "日本語"
    await a.close()


async def test_a_fragmented_message_over_the_limit_closes_with_1009(server_factory):
    piece = "x" * (PAYLOAD // 4)

    async def send(ws):
        await ws.send(['{"type":"message:send","text":"', piece, piece, piece, piece, '"}'])

    code, _ = await _ending(server_factory, send)
    assert code == 1009


async def test_an_endless_fragmented_message_is_cut_at_the_limit(server_factory):
    async def endless():
        yield '{"type":"message:send","text":"'
        for _ in range(10_000):  # would be 10 MB; the server must stop it at 64 KiB
            yield "y" * 1024
            await asyncio.sleep(0)

    async def send(ws):
        try:
            await ws.send(endless())
        except Exception:  # noqa: BLE001 - the server closed the connection under us
            pass

    code, _ = await _ending(server_factory, send)
    assert code == 1009
