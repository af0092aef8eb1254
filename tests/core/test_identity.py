"""Identity decisions with a fake clock: claims, wrong-key delays that grow and expire, tokens."""

from __future__ import annotations

from workspace_tui.core.identity import Account, Claim, Throttle, secret_hash
from workspace_tui.core.state import Refusal, Session
from workspace_tui.protocol import SUBPROTOCOL

from .support import FakeClock, make_core

KEY = "k" * 43
OTHER = "o" * 43


def admit(core, name, key=None, address="10.0.0.1", **query):
    protocols = [SUBPROTOCOL] + ([f"key.{key}"] if key else [])
    return core.admit({"username": [name], **{k: [v] for k, v in query.items()}}, None, address, protocols)


def claimed_account(name="alice", key=KEY):
    return Account(name, name, secret_hash(key), None, 0, 0)


def test_a_free_name_with_a_key_is_a_claim_and_without_one_is_unverified():
    core = make_core()
    s = admit(core, "alice", KEY)
    decision = core.identify(s, None)
    assert isinstance(decision, Claim) and decision.expected is None
    assert decision.account.key_hash == secret_hash(KEY) and KEY not in decision.account.key_hash
    done = core.claimed(s, decision, True)
    assert isinstance(done, Session) and done.verified and done.key is None  # the key is not kept
    plain = admit(core, "bob")
    assert core.identify(plain, None) is plain and not plain.verified


def test_losing_a_claim_race_is_a_clear_409_and_frees_the_slot():
    core = make_core()
    s = admit(core, "alice", KEY)
    claim = core.identify(s, None)
    refusal = core.claimed(s, claim, False)
    assert isinstance(refusal, Refusal) and refusal.status == 409
    assert core.reservations == {} and core.address_conns == {}


def test_wrong_key_delays_grow_then_expire():
    clock = FakeClock()
    core = make_core(clock=clock)
    account = claimed_account()
    codes = []
    for _ in range(Throttle().free_tries + 1):
        s = admit(core, "alice", OTHER)
        codes.append(core.identify(s, account).code)
    assert codes == ["wrong_key"] * 4
    # The name is now waiting 1 s: another wrong key, from anywhere, is refused without a check ...
    blocked = core.identify(admit(core, "alice", OTHER, address="10.7.7.7"), account)
    assert blocked.status == 429 and blocked.retry_after == 1
    # ... but alice herself, with her key, is never kept out of her own name
    owner = admit(core, "alice", KEY, address="10.8.8.8")
    assert core.identify(owner, account) is owner and owner.verified
    clock.advance(1.0)
    assert core.identify(admit(core, "alice", OTHER, address="10.7.7.8"), account).code == "wrong_key"
    later = core.identify(admit(core, "alice", OTHER, address="10.7.7.9"), account)
    assert later.status == 429 and later.retry_after == 2  # the fifth failure: 2 s
    clock.advance(2.0)
    assert core.identify(admit(core, "alice", OTHER, address="10.7.7.10"), account).code == "wrong_key"


def test_the_delay_is_per_address_too():
    clock = FakeClock()
    core = make_core(clock=clock)
    for n in range(4):  # four names, one address: a few free tries, then the fourth failure starts a delay
        account = claimed_account(f"user{n}")
        core.identify(admit(core, f"user{n}", OTHER, address="10.9.9.9"), account)
    blocked = admit(core, "someone", KEY, address="10.9.9.9")
    assert isinstance(blocked, Refusal) and blocked.status == 429
    elsewhere = admit(core, "someone", KEY, address="10.0.0.2")
    assert isinstance(elsewhere, Session)


def test_wrong_tokens_are_throttled_per_address_after_ten_free_tries():
    clock = FakeClock()
    core = make_core(clock=clock, token="sesame")
    statuses = [core.admit({"username": ["x"], "token": ["guess"]}, None, "10.1.1.1").status for _ in range(12)]
    assert statuses == [401] * 11 + [429]
    assert core.admit({"username": ["x"], "token": ["sesame"]}, None, "10.2.2.2").__class__ is Session
    clock.advance(1.0)
    assert core.admit({"username": ["x"], "token": ["sesame"]}, None, "10.1.1.1").__class__ is Session


def test_connections_per_address_are_capped_and_given_back():
    core = make_core(max_connections_per_address=2, max_connections_per_user=0)
    a = admit(core, "a")
    admit(core, "b")
    over = admit(core, "c")
    assert isinstance(over, Refusal) and over.status == 429 and "per address" in over.reason
    core.release(a)
    assert isinstance(admit(core, "c"), Session)


def test_look_alike_spellings_share_one_per_user_cap():
    core = make_core(max_connections_per_user=2, auth="open")
    admit(core, "alice")
    admit(core, "ALICE")
    assert admit(core, "aIice").status == 429
