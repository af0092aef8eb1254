"""A burst of joins against a real server: connections that offered workspace.v1 get it as a few
presence:batch frames (bounded per tick), document-only ones as one presence:update per join."""

from __future__ import annotations

import asyncio
import json
import time

from workspace_tui.core.presence import Presence
from workspace_tui.core.rules import Rules

from .support import TIMEOUT, Client, join


async def crowd(server, names: list[str]) -> list[Client]:
    """Workspace.v1 connections of *names*, opened all at once (as in a reconnect storm)."""
    return list(await asyncio.gather(*(join(server, n, read_history=False) for n in names)))


async def presence_until(client: Client, done, timeout: float = 15.0) -> list[dict]:
    """Every presence frame *client* gets (others skipped) until ``done(frames)``."""
    frames: list[dict] = []

    async def loop() -> None:
        while not done(frames):
            frame = json.loads(await client.ws.recv())
            if frame["type"] in ("presence:update", "presence:batch"):
                frames.append(frame)

    await asyncio.wait_for(loop(), timeout)
    return frames


def online_in(frames: list[dict]) -> set[str]:
    out: set[str] = set()
    for f in frames:
        entries = f["data"]["users"] if f["type"] == "presence:batch" else [f["data"]]
        out |= {e["username"] for e in entries if e["status"] == "online"}
    return out


async def test_a_burst_of_joins_is_a_few_batches_for_ours_and_one_update_each_for_the_document(server_factory):
    server = await server_factory(address_limits=False, rate_limit=0)
    ours = await join(server, "ours")
    doc = await join(server, "doc", document_only=True)
    names = [f"u{i:02}" for i in range(60)]
    start = time.monotonic()
    others = await crowd(server, names)
    v1_frames = await presence_until(ours, lambda fs: online_in(fs) >= set(names))
    elapsed = time.monotonic() - start
    doc_frames = await presence_until(doc, lambda fs: online_in(fs) >= set(names))
    assert {f["type"] for f in v1_frames} == {"presence:batch"}
    # one batch per tick at most, however many joined in it (each user listed once per batch)
    assert len(v1_frames) <= elapsed / Rules().presence_tick + 2, (len(v1_frames), elapsed)
    for f in v1_frames:
        listed = [e["userId"] for e in f["data"]["users"]]
        assert len(listed) == len(set(listed)), f
    # the document's clients: exactly one presence:update per join, as the protocol document has it
    about_crowd = [f for f in doc_frames if f["data"]["username"] in names]
    assert {f["type"] for f in doc_frames} == {"presence:update"} and len(about_crowd) == len(names)
    for c in others:
        await c.close()
    await ours.close()
    await doc.close()


async def test_more_changes_than_the_cap_say_so_and_the_roster_pages_them(server_factory, monkeypatch):
    monkeypatch.setattr(Presence, "ROSTER_CAP", 5)
    server = await server_factory(address_limits=False, rate_limit=0, frame_rate=0)
    ours = await join(server, "ours")
    names = [f"u{i:02}" for i in range(30)]
    others = await crowd(server, names)
    frames = await presence_until(ours, lambda fs: any(f["data"].get("complete") is False for f in fs))
    big = next(f for f in frames if f["data"].get("complete") is False)
    assert big["data"]["users"] == [] and big["data"]["connectedUsers"] >= 6
    for f in frames:
        assert len(f["data"]["users"]) <= 5  # bounded, however many joined
    # the roster, paged (what the client reads again when it needs it)
    seen: set[str] = set()
    after = ""
    for _ in range(10):
        await ours.send({"type": "room:members", "room": "general", "after": after, "limit": 10})
        page = await ours.expect("room:members", timeout=TIMEOUT)
        seen |= {m["username"] for m in page["members"]}
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == {"ours", *names}
    for c in others:
        await c.close()
    await ours.close()
