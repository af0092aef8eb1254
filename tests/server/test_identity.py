"""Names that belong to people, on a real server: claim, invite, open, look-alikes, wrong keys."""

from __future__ import annotations

import asyncio
import json
import secrets

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from workspace_tui.backends.admin import AccountAdmin
from workspace_tui.protocol import REFUSAL_HEADER, SUBPROTOCOL

from .support import TIMEOUT, Client, url_for


def new_key() -> str:
    return secrets.token_urlsafe(32)


def offer(key: str | None = None, invite: str | None = None) -> list[str]:
    return [SUBPROTOCOL] + ([f"key.{key}"] if key else []) + ([f"invite.{invite}"] if invite else [])


async def enter(server, name: str, key: str | None = None, invite: str | None = None) -> Client:
    protocols = offer(key, invite) if key or invite else None
    ws = await connect(url_for(server, name), subprotocols=protocols, open_timeout=TIMEOUT)
    connected = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    history = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert connected["type"] == "connected" and history["type"] == "history"
    if protocols:
        assert ws.subprotocol == SUBPROTOCOL
    return Client(ws, connected, history)


async def refusal(server, name: str, key: str | None = None, invite: str | None = None) -> tuple[int, str, str, str]:
    """(status, Workspace-Refusal code, reason, Retry-After) of a refused handshake."""
    try:
        ws = await connect(url_for(server, name), subprotocols=offer(key, invite) if key or invite else None,
                           open_timeout=TIMEOUT)
    except InvalidStatus as exc:
        r = exc.response
        return r.status_code, r.headers.get(REFUSAL_HEADER, ""), r.body.decode(), r.headers.get("Retry-After", "")
    await ws.close()
    raise AssertionError(f"{name} was let in")


async def test_the_first_key_claims_a_name_and_then_only_that_key_is_alice(server_factory):
    server = await server_factory()
    key = new_key()
    alice = await enter(server, "alice", key)
    assert alice.connected["verified"] is True and alice.connected["auth"] == "claim"
    msg = await alice.say("hello")
    assert msg["data"]["verified"] is True
    # the same key again (a second window) is alice too
    again = await enter(server, "alice", key)
    assert again.connected["verified"] is True
    # without the key, with another key, or spelled another way without it: not alice
    status, code, reason, _ = await refusal(server, "alice")
    assert (status, code) == (401, "key_required") and "workspace login --import" in reason
    status, code, reason, _ = await refusal(server, "alice", new_key())
    assert (status, code) == (401, "wrong_key")
    assert (await refusal(server, "ALICE"))[:2] == (401, "key_required")
    assert (await refusal(server, "aIice", new_key()))[:2] == (401, "wrong_key")
    # her key under another spelling is her, with her spelling
    shouted = await enter(server, "ALICE", key)
    assert shouted.connected["username"] == "alice" and shouted.connected["verified"] is True
    # the account holds a hash, never the key
    admin = AccountAdmin(str(server.config.db_path))
    account = admin.get("alice")
    admin.close()
    assert account is not None and account.key_hash and key not in account.key_hash
    for c in (alice, again, shouted):
        await c.close()


async def test_a_document_only_client_keeps_working_with_an_unclaimed_name_marked_unverified(server_factory):
    server = await server_factory()
    owner = await enter(server, "owner", new_key())
    guest = await enter(server, "guest")  # no subprotocol at all, as in the protocol document
    assert guest.connected["verified"] is False
    assert guest.ws.subprotocol is None
    joined = await owner.presence(username="guest")  # owner's client offered workspace.v1: a presence:batch
    assert "verified" not in joined and owner.presence_frame["type"] == "presence:batch"
    said = await guest.say("hi, I am probably guest")
    assert "verified" not in said["data"]
    seen = await owner.expect("message:new", text="hi, I am probably guest")
    assert "verified" not in seen["data"]
    roster = {u["username"]: u.get("verified", False) for u in guest.connected["users"]}
    assert roster == {"owner": True, "guest": False}
    await guest.close()
    await owner.close()


async def test_a_claim_closes_the_names_unverified_connections(server_factory):
    server = await server_factory()
    squatter = await enter(server, "bob")
    bob = await enter(server, "bob", new_key())
    assert bob.connected["verified"] is True
    code, reason = await squatter.closed()
    assert code == 1008 and "claimed" in reason
    assert (await refusal(server, "bob"))[:2] == (401, "key_required")
    await bob.close()


async def test_names_are_one_name_whatever_their_case(server_factory):
    server = await server_factory(auth="open")
    first = await enter(server, "carol")
    status, code, reason, _ = await refusal(server, "CAROL")
    assert (status, code) == (409, "name_taken") and "carol is online" in reason
    assert (await refusal(server, "caro1"))[:2] == (409, "name_taken")  # 1 looks like l
    await first.close()
    await first.ws.wait_closed()
    for _ in range(100):  # the server sees the close a moment after the client
        if not server.core.conns:
            break
        await asyncio.sleep(0.01)
    later = await enter(server, "CAROL")  # nobody online has it now
    assert later.connected["username"] == "CAROL"
    await later.close()


async def test_wrong_keys_are_throttled_per_name_with_growing_delays(server_factory):
    server = await server_factory()
    await (await enter(server, "dave", new_key())).close()
    codes = [(await refusal(server, "dave", new_key()))[:2] for _ in range(4)]
    assert codes[:3] == [(401, "wrong_key")] * 3  # a few free tries
    assert codes[3] == (401, "wrong_key")  # the fourth is decided, and starts the delay
    status, code, reason, retry = await refusal(server, "dave", new_key())
    assert (status, code) == (429, "throttled") and int(retry) >= 1 and "try again in" in reason


async def test_invite_mode_lets_in_only_names_an_admin_made(server_factory, tmp_path):
    db = tmp_path / "server.sqlite3"
    server = await server_factory(auth="invite", db_path=db)
    assert (await refusal(server, "erin", new_key()))[:2] == (403, "not_member")
    assert (await refusal(server, "erin"))[:2] == (403, "not_member")
    admin = AccountAdmin(str(db))
    invite = admin.add("erin")  # while the server runs
    assert (await refusal(server, "erin"))[:2] == (401, "invite_required")
    assert (await refusal(server, "erin", new_key(), new_key()))[:2] == (401, "bad_invite")
    key = new_key()
    erin = await enter(server, "erin", key, invite)
    assert erin.connected["verified"] is True and erin.connected["auth"] == "invite"
    await erin.close()
    assert (await refusal(server, "erin", new_key(), invite))[:2] == (401, "bad_invite")  # used once only
    await (await enter(server, "erin", key)).close()
    # reset: the old key no longer works, a new invite does
    fresh = admin.reset("erin")
    assert (await refusal(server, "erin", key))[:2] == (401, "invite_required")
    await (await enter(server, "erin", new_key(), fresh)).close()
    admin.remove("erin")
    assert (await refusal(server, "erin", key))[:2] == (403, "not_member")
    admin.close()


async def test_open_mode_checks_nothing_and_verifies_nobody(server_factory):
    server = await server_factory(auth="open")
    a = await enter(server, "frank", new_key())
    b = await enter(server, "frank", new_key())
    assert a.connected["verified"] is False and b.connected["verified"] is False
    assert a.connected["auth"] == "open"
    await a.close()
    await b.close()


async def test_names_claimed_per_address_are_limited(server_factory):
    server = await server_factory(claims_per_hour=3)
    for name in ("g1", "g2", "g3"):
        await (await enter(server, name, new_key())).close()
    status, code, reason, retry = await refusal(server, "g4", new_key())
    assert (status, code) == (429, "throttled") and "per hour" in reason and int(retry) > 0
    await (await enter(server, "g4")).close()  # unverified use of a free name is not a claim
