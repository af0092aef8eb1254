"""Random client frames: the server answers with error frames (or normal replies), never crashes,
never leaks internals, and a bystander sees nothing but what a valid frame would cause."""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workspace_tui.server import ServerConfig, start_server

from .support import join

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
types = st.sampled_from(
    ["message:send", "presence:update", "typing:indicator", "history:request", "ping", "nope", "", 5, None]
)
objects = st.fixed_dictionaries(
    {"type": types},
    optional={
        "text": json_values | st.text(max_size=50),
        "status": json_values | st.sampled_from(["online", "away", "busy", "offline", "ONLINE"]),
        "isTyping": json_values,
        "clientMsgId": json_values,
        "before": json_values,
        "limit": json_values,
        "id": json_values,
    },
)
raw_frames = st.one_of(
    objects.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=60),
    st.binary(max_size=60),
    st.just("[" * 5000 + "]" * 5000),
)

REPLIES = {"error", "message:new", "pong", "history"}


async def scenario(frames: list[str | bytes]) -> None:
    server = await start_server(ServerConfig(port=0, db_path=":memory:", rate_limit=0, address_rate_limit=0, frame_rate=0))
    try:
        fuzzer = await join(server, "fuzzer")
        bystander = await join(server, "bystander")
        await fuzzer.presence(username="bystander")  # a presence:batch: both offered workspace.v1
        for frame in frames:
            await fuzzer.send(frame)
        await fuzzer.send({"type": "ping", "id": "end"})
        while True:
            reply = await fuzzer.recv()
            assert reply["type"] in REPLIES | {"presence:update", "presence:batch"}, reply
            if reply["type"] == "error":
                assert "Traceback" not in reply["message"] and "Exception" not in reply["message"]
            if reply["type"] == "pong" and reply.get("id") == "end":
                break
        await bystander.send({"type": "ping", "id": "end"})
        while True:
            seen = await bystander.recv()
            assert seen["type"] in {"message:new", "presence:update", "presence:batch", "typing:indicator", "pong"}, seen
            if seen["type"] == "pong":
                break
        assert fuzzer.ws.close_code is None
    finally:
        await server.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_frames, min_size=1, max_size=15))
def test_random_frames_never_break_the_server(frames):
    asyncio.run(scenario(frames))
