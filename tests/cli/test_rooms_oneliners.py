"""The room one-liners (send --room/--to, tail --room/--all, who --room, rooms) as real
subprocesses against a real server."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from workspace_tui.client import ChatClient, FrameReceived, Joined, MessageReceived

from client.support import free_port, run_cli, start, started


async def cli(*args: str, input: str | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args, input=input, timeout=timeout)


async def member(server, name: str, tmp_path, *rooms: str):
    """*name* connected (online), in each of *rooms* (created by the first to ask, else joined)."""
    rec = await started(ChatClient(server.url, name, state_path=tmp_path / f"{name}.sqlite3"))
    await rec.wait_event(Joined)
    for room in rooms:
        await rec.client.send_object({"type": "room:create", "room": room})
        await rec.client.send_object({"type": "room:join", "room": room})
        await rec.wait_event(FrameReceived, lambda e, r=room: e.frame.get("type") == "room:joined"
                             and (e.frame.get("room") or {}).get("room") == r)
    return rec


def base(server, user: str) -> tuple[str, ...]:
    return ("--url", server.url, "-u", user)


async def test_send_to_a_room_and_tail_it_and_all(tmp_path):
    server = await start(tmp_path)
    alice = bob = None
    try:
        alice = await member(server, "alice", tmp_path, "dev", "ops")
        bob = await member(server, "bob", tmp_path, "dev")
        follow_dev = asyncio.create_task(cli("tail", *base(server, "alice"), "--room", "#dev", "--json", "--count", "2"))
        follow_all = asyncio.create_task(cli("tail", *base(server, "alice"), "--all", "--count", "4"))
        await asyncio.sleep(1.5)  # both tails are connected (a tail has no "ready" signal to wait for)
        r = await cli("send", *base(server, "bob"), "--room", "dev", "--json", "in dev")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["room"] == "dev"
        r = await cli("send", *base(server, "bob"), "in general")
        assert r.returncode == 0, r.stderr
        r = await cli("send", *base(server, "bob"), "--to", "alice", "just for alice")
        assert r.returncode == 0, r.stderr
        r = await cli("send", *base(server, "bob"), "--room", "dev", "again in dev")
        assert r.returncode == 0, r.stderr

        dev = await asyncio.wait_for(follow_dev, 30)
        assert dev.returncode == 0, dev.stderr
        lines = [json.loads(line) for line in dev.stdout.splitlines()]
        assert [(m["room"], m["text"]) for m in lines] == [("dev", "in dev"), ("dev", "again in dev")]

        every = await asyncio.wait_for(follow_all, 30)
        assert every.returncode == 0, every.stderr
        shown = [line.split("  ", 1)[1] for line in every.stdout.splitlines()]  # without the time
        assert shown == [
            "#dev  bob: in dev",
            "#general  bob: in general",
            "@bob  bob: just for alice",
            "#dev  bob: again in dev",
        ]
    finally:
        for rec in (alice, bob):
            if rec is not None:
                await rec.client.close()
        await server.close()


async def test_tail_last_of_a_room_and_rooms_with_counts(tmp_path):
    server = await start(tmp_path)
    alice = bob = None
    try:
        alice = await member(server, "alice", tmp_path, "dev")
        bob = await member(server, "bob", tmp_path, "dev")
        r = await cli("send", *base(server, "bob"), "--room", "dev", "zero")
        assert r.returncode == 0, r.stderr
        seen = await alice.wait_event(MessageReceived, lambda e: e.message.text == "zero")
        # Unread counts start at a read position: alice read "zero" (a room never read has none).
        await alice.client.send_object({"type": "read:update", "room": "dev", "messageId": seen.message.id})
        await alice.client.close()
        alice = None
        for text in ("one", "two @alice", "three"):
            r = await cli("send", *base(server, "bob"), "--room", "dev", text)
            assert r.returncode == 0, r.stderr
        r = await cli("send", *base(server, "bob"), "--to", "alice", "psst")
        assert r.returncode == 0, r.stderr

        follow = asyncio.create_task(cli("tail", *base(server, "alice"), "--room", "dev", "--last", "2", "--json",
                                         "--count", "1"))
        await asyncio.sleep(1.5)  # connected: what comes now is new (--count counts only that)
        r = await cli("send", *base(server, "bob"), "--room", "dev", "four")
        assert r.returncode == 0, r.stderr
        r = await asyncio.wait_for(follow, 30)
        assert r.returncode == 0, r.stderr
        assert [json.loads(line)["text"] for line in r.stdout.splitlines()] == ["two @alice", "three", "four"]

        r = await cli("rooms", *base(server, "alice"), "--json")
        assert r.returncode == 0, r.stderr
        rows = {row["room"]: row for row in map(json.loads, r.stdout.splitlines())}
        assert list(rows) == ["general", "dev", "dm:alice,bob"]
        assert (rows["dev"]["unread"], rows["dev"]["mentions"], rows["dev"]["kind"]) == (4, 1, "public")
        assert rows["dm:alice,bob"]["with"] == ["bob"] and rows["dm:alice,bob"]["kind"] == "dm"
        r = await cli("rooms", *base(server, "alice"))
        assert r.stdout.splitlines()[1].startswith("#dev  4 unread  1 mention"), r.stdout

        r = await cli("rooms", *base(server, "carol"))
        assert [line.split("  ")[0] for line in r.stdout.splitlines()] == ["#general"]
        r = await cli("rooms", *base(server, "carol"), "--all")
        assert r.returncode == 0, r.stderr
        labels = [line.split("  ")[:2] for line in r.stdout.splitlines()]
        assert ["#dev", "(not joined)"] in labels
        assert not [lab for lab in labels if lab[0].startswith("@")]  # nobody else's direct messages
    finally:
        for rec in (alice, bob):
            if rec is not None:
                await rec.client.close()
        await server.close()


async def test_who_in_a_room_lists_its_members_online_first(tmp_path):
    server = await start(tmp_path)
    recs = []
    try:
        recs.append(await member(server, "zed", tmp_path, "dev"))
        gone = await member(server, "amy", tmp_path, "dev")
        await gone.client.close()
        recs.append(await member(server, "bob", tmp_path))  # not in dev
        r = await cli("who", *base(server, "zed"), "--room", "dev")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["zed  online", "amy  offline"]
        r = await cli("who", *base(server, "zed"), "--room", "dev", "--json")
        assert [(m["username"], m["room"]) for m in map(json.loads, r.stdout.splitlines())] == [
            ("zed", "dev"), ("amy", "dev")]
    finally:
        for rec in recs:
            await rec.client.close()
        await server.close()


async def test_a_room_you_are_not_in_is_one_line_and_exit_4(tmp_path):
    server = await start(tmp_path)
    alice = None
    try:
        alice = await member(server, "alice", tmp_path, "secret")
        await alice.client.send_object({"type": "message:send", "room": "dm:alice,bob", "text": "hi bob"})
        await alice.wait_event(MessageReceived, lambda e: e.message.text == "hi bob")
        for args in (
            ("send", "--room", "secret", "let me in"),
            ("send", "--room", "nosuch", "anyone?"),
            ("send", "--room", "dm:alice,bob", "reading over shoulders"),
            ("tail", "--room", "secret", "--timeout", "5"),
            ("tail", "--room", "@alice", "--timeout", "5"),  # carol's DM with alice does not exist yet
            ("who", "--room", "secret"),
        ):
            r = await cli(args[0], *base(server, "carol"), *args[1:], timeout=20)
            assert r.returncode == 4, (args, r.stdout, r.stderr)
            assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == "", (args, r.stderr)
            assert "no such room" in r.stderr, (args, r.stderr)
        r = await cli("send", *base(server, "carol"), "--room", "Not A Room", "x")
        assert r.returncode == 2 and "not a room name" in r.stderr
    finally:
        if alice is not None:
            await alice.client.close()
        await server.close()


async def test_rooms_unreachable_and_refused(tmp_path):
    r = await cli("rooms", "--url", f"ws://127.0.0.1:{free_port()}/ws", "-u", "ann", "--timeout", "1")
    assert r.returncode == 3 and "unreachable" in r.stderr, r.stderr
    server = await start(tmp_path, token="tok")
    try:
        r = await cli("rooms", *base(server, "ann"), "--token", "wrong")
        assert r.returncode == 4 and "401" in r.stderr, r.stderr
    finally:
        await server.close()


async def test_send_to_makes_a_direct_message(tmp_path):
    server = await start(tmp_path)
    bob = None
    try:
        bob = await member(server, "bob", tmp_path)
        r = await cli("send", *base(server, "alice"), "--to", "bob", "--to", "carol", "--json", "hi both")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["room"] == "dm:alice,bob,carol"
        got = await bob.wait_event(MessageReceived, lambda e: e.message.text == "hi both")
        assert got.message.room == "dm:alice,bob,carol"
        r = await cli("send", *base(server, "alice"), "--to", "alice", "me")
        assert r.returncode == 2 and "yourself" in r.stderr
        r = await cli("send", *base(server, "alice"), *[f"--to=u{i}" for i in range(8)], "crowd")
        assert r.returncode == 2 and "at most 7" in r.stderr
    finally:
        if bob is not None:
            await bob.client.close()
        await server.close()


async def test_send_to_says_which_recipients_have_not_proved_their_name(tmp_path):
    server = await start(tmp_path)
    bob = None
    try:
        bob = await member(server, "bob", tmp_path)  # his key claims the name
        r = await cli("send", *base(server, "alice"), "--to", "bob", "hi bob")
        assert (r.returncode, r.stderr) == (0, ""), r.stderr
        r = await cli("send", *base(server, "alice"), "--to", "bob", "--to", "ghost", "hi both")
        assert r.returncode == 0, r.stderr
        assert "ghost has not proved the name" in r.stderr and "bob" not in r.stderr, r.stderr
    finally:
        if bob is not None:
            await bob.client.close()
        await server.close()
