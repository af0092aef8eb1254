"""``workspace who`` as a real subprocess against a real server."""

from __future__ import annotations

import asyncio
import json
import subprocess

from workspace_tui.client import ChatClient, Joined, PresenceChanged

from client.support import run_cli, start, started


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args)


async def test_who_lists_the_roster_without_joining_it(tmp_path):
    server = await start(tmp_path)
    clients = []
    try:
        alice = await started(ChatClient(server.url, "alice", state_path=tmp_path / "a1.sqlite3"))
        await alice.wait_event(Joined)
        alice2 = await started(ChatClient(server.url, "alice", state_path=tmp_path / "a2.sqlite3"))
        await alice2.wait_event(Joined)
        bob = await started(ChatClient(server.url, "bob", state_path=tmp_path / "b.sqlite3"))
        await bob.wait_event(Joined)
        clients = [alice, alice2, bob]
        await bob.client.set_presence("busy")
        await alice.wait_event(PresenceChanged, lambda e: e.username == "bob" and e.status == "busy")

        r = await cli("who", "--url", server.url, "-u", "carol", "--json")
        assert r.returncode == 0, r.stderr
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        assert [(u["username"], u["status"], u["connections"]) for u in rows] == [
            ("alice", "online", 2),
            ("bob", "busy", 1),
        ]
        r = await cli("who", "--url", server.url, "-u", "carol")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["alice  online  (2 connections)", "bob  busy"]
        # carol asked quietly: nobody saw her come and go
        assert not [e for e in alice.events if isinstance(e, PresenceChanged) and e.username == "carol"]
    finally:
        for rec in clients:
            await rec.client.close()
        await server.close()


async def test_who_exit_codes(tmp_path):
    server = await start(tmp_path, token="s3cret")
    try:
        r = await cli("who", "--url", server.url, "-u", "carol", "--token", "wrong")
        assert r.returncode == 4, r.stderr
        assert "token" in r.stderr.lower(), r.stderr
        r = await cli("who", "--url", server.url, "-u", "carol", "--token", "s3cret")
        assert (r.returncode, r.stdout) == (0, ""), r.stderr
        port = server.port
    finally:
        await server.close()
    r = await cli("who", "--url", f"ws://127.0.0.1:{port}/ws", "-u", "carol", "--timeout", "1")
    assert r.returncode == 3 and "unreachable" in r.stderr, r.stderr
    r = await cli("who", "--url", "ws://127.0.0.1:1/ws", "-u", "bad name")
    assert r.returncode == 2
