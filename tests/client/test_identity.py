"""Names that belong to someone, from the client's side, against the real server.

The first of our clients to use a name claims it with this device's key; another
device (a fresh data directory) is refused with one sentence saying what to run,
once, without retrying. Invites are redeemed with a new key. Messages and roster
entries say who proved their name.
"""

from __future__ import annotations

import itertools
import json

import websockets

from workspace_tui.client import ChatClient, ConnectionState, Joined, MessageReceived, StateChanged, keys

from .support import start, started


_runs = itertools.count()


def client(url: str, name: str, tmp_path, **kwargs) -> ChatClient:
    kwargs.setdefault("backoff_base", 0.05)
    kwargs.setdefault("backoff_cap", 0.2)
    return ChatClient(url, name, state_path=tmp_path / f"{name}-{next(_runs)}.sqlite3", **kwargs)


async def stopped_by(url: str, name: str, tmp_path, **kwargs) -> tuple[StateChanged, ChatClient]:
    c = client(url, name, tmp_path, **kwargs)
    rec = await started(c)
    await rec.finished(15)
    stop = [e for e in rec.of(StateChanged) if e.state is ConnectionState.STOPPED][-1]
    await c.close()
    return stop, c


def fresh_device(monkeypatch, tmp_path, label: str) -> None:
    """From here on this process is another device: an empty data directory."""
    monkeypatch.setenv("WORKSPACE_DATA_DIR", str(tmp_path / f"device-{label}"))


async def test_first_use_claims_the_name_and_a_second_device_is_told_what_to_run(tmp_path, monkeypatch):
    server = await start(tmp_path)
    try:
        url = server.url
        assert keys.load_key(url, "alice") is None
        first = client(url, "alice", tmp_path)
        rec = await started(first)
        joined = await rec.wait_event(Joined)
        assert joined.verified and joined.auth == "claim" and first.verified
        key = keys.load_key(url, "alice")
        assert key is not None and keys.is_key(key)  # made and saved before it was offered
        await first.close()

        fresh_device(monkeypatch, tmp_path, "laptop")
        stop, other = await stopped_by(url, "alice", tmp_path)
        assert stop.status_code == 401 and stop.refusal == "wrong_key"
        assert "alice is claimed on this server" in stop.reason
        assert f"workspace key show --url {url} --username alice" in stop.reason
        assert f"workspace login --import --url {url} --username alice" in stop.reason
        assert other.handshakes == 1  # a refusal that retrying cannot change: asked once
        assert other.stop_refusal == "wrong_key"

        # The key copied over (what `key show` / `login --import` do) makes it work there too.
        keys.save_key(url, "alice", key)
        again = client(url, "alice", tmp_path)
        rec = await started(again)
        assert (await rec.wait_event(Joined)).verified
        await again.close()
    finally:
        await server.close()


async def test_a_verified_connection_gets_the_stored_spelling(tmp_path):
    server = await start(tmp_path)
    try:
        first = client(server.url, "Alice", tmp_path)
        rec = await started(first)
        assert (await rec.wait_event(Joined)).username == "Alice"
        await first.close()
        # Same device, other case: the same key file, the same name, the stored spelling.
        second = client(server.url, "ALICE", tmp_path)
        rec = await started(second)
        joined = await rec.wait_event(Joined)
        assert joined.verified and joined.username == "Alice" and second.username == "Alice"
        await second.send("hi from ALICE")
        own = await rec.wait_event(MessageReceived)
        assert own.own and own.message.username == "Alice"  # our own message, recognised as ours
        await second.close()
    finally:
        await server.close()


async def test_invite_mode_asks_for_the_invite_then_redeems_it_once(tmp_path):
    from workspace_tui.backends.admin import AccountAdmin

    db = tmp_path / "server.sqlite3"
    server = await start(tmp_path, auth="invite", db_path=db)
    try:
        admin = AccountAdmin(db_path=str(db))
        invite = admin.add("alice")
        admin.close()

        stop, c = await stopped_by(server.url, "alice", tmp_path)
        assert stop.status_code == 401 and stop.refusal == "invite_required"
        assert f"workspace login --url {server.url} --username alice" in stop.reason and "invite" in stop.reason
        assert c.handshakes == 1

        stop, _ = await stopped_by(server.url, "bob", tmp_path)
        assert stop.status_code == 403 and stop.refusal == "not_member"
        assert "workspace users add bob" in stop.reason

        key = keys.new_key()
        redeem = client(server.url, "alice", tmp_path, key=key, invite=invite)
        rec = await started(redeem)
        assert (await rec.wait_event(Joined)).verified
        await redeem.close()

        stop, _ = await stopped_by(server.url, "alice", tmp_path, key=keys.new_key(), invite=invite)
        assert stop.refusal == "bad_invite" and "wrong or already used" in stop.reason

        after = client(server.url, "alice", tmp_path, key=key)  # the key alone from now on
        rec = await started(after)
        assert (await rec.wait_event(Joined)).verified
        await after.close()
    finally:
        await server.close()


async def test_wrong_keys_are_throttled_and_the_client_says_how_long_to_wait(tmp_path):
    server = await start(tmp_path)
    try:
        owner = client(server.url, "alice", tmp_path)
        rec = await started(owner)
        await rec.wait_event(Joined)
        await owner.close()
        seen = []
        for _ in range(40):  # bounded: the server throttles well before this
            stop, _ = await stopped_by(server.url, "alice", tmp_path, key=keys.new_key())
            seen.append(stop.refusal)
            if stop.refusal == "throttled":
                break
        assert seen[0] == "wrong_key" and seen[-1] == "throttled", seen
        assert stop.status_code == 429 and "too many wrong keys" in stop.reason and " s and try again" in stop.reason
    finally:
        await server.close()


async def test_messages_and_roster_say_who_proved_their_name(tmp_path):
    server = await start(tmp_path)
    try:
        alice = client(server.url, "alice", tmp_path)
        rec = await started(alice)
        await rec.wait_event(Joined)
        # mallory knows only the protocol document: no key, an unclaimed name, let in unverified.
        async with websockets.connect(server.url + "?username=mallory") as raw:
            hello = json.loads(await raw.recv())
            assert hello["type"] == "connected" and hello["verified"] is False
            mine = [u for u in hello["users"] if u["username"] == "alice"]
            assert mine and mine[0]["verified"] is True
            await rec.wait_event(StateChanged, lambda e: e.state is ConnectionState.CONNECTED)
            await raw.send(json.dumps({"type": "message:send", "text": "I am not alice"}))
            got = await rec.wait_event(MessageReceived, lambda e: e.message.username == "mallory")
            assert got.message.verified is False
        await alice.send("I am alice")
        own = await rec.wait_event(MessageReceived, lambda e: e.own)
        assert own.message.verified is True
        await alice.close()
    finally:
        await server.close()
