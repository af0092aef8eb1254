"""The core's timers, on a hand-driven clock: typing expiry, idle close, keepalive, status
memory and rate-limit refill. Nothing sleeps: time passes with ``elapse`` or ``clock.advance``."""

from __future__ import annotations

import pytest

from workspace_tui.core.effects import Abort, Broadcast, Close, Ping, Store
from workspace_tui.protocol import CLOSE_IDLE, CLOSE_POLICY, ERR_RATE_LIMITED

from .support import (
    broadcasts,
    commit,
    connect,
    delivered,
    drafts,
    elapse,
    errors,
    frame,
    joined,
    make_core,
    of_type,
    presence_of,
    say,
    send_frame,
    set_status,
    set_typing,
    typing_of,
)

# -- typing -------------------------------------------------------------------------------


def test_typing_is_broadcast_to_other_users_and_expires_after_the_timeout():
    core = make_core(typing_timeout=6.0)
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    set_typing(core, ann, True)
    out = core.take()
    [b] = [e for e in of_type(out, Broadcast) if frame(e.payload)["type"] == "typing:indicator"]
    assert frame(b.payload)["data"] == {"userId": ann.user.user_id, "username": "ann", "isTyping": True,
                                        "room": "general"}
    assert b.exclude_user == ann.user.user_id  # not to the typist's own connections
    assert core.next_wake() <= core.clock.now + 6.0

    assert typing_of(broadcasts(elapse(core, 5.9)), "ann") == []
    out = elapse(core, 0.2)
    assert typing_of(broadcasts(out), "ann") == [False]
    [b] = of_type(out, Broadcast)
    assert b.exclude_user == ann.user.user_id
    assert typing_of(broadcasts(elapse(core, 60)), "ann") == []  # once


def test_a_typing_refresh_re_arms_the_timer():
    core = make_core(typing_timeout=6.0)
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    set_typing(core, ann, True)
    core.take()
    elapse(core, 4.0)
    set_typing(core, ann, True)  # refreshed: expires at 10 s, not 6 s
    assert typing_of(broadcasts(core.take()), "ann") == [True]  # every true is forwarded
    assert typing_of(broadcasts(elapse(core, 2.5)), "ann") == []  # past the first deadline
    assert typing_of(broadcasts(elapse(core, 3.0)), "ann") == []  # 9.5 s
    assert typing_of(broadcasts(elapse(core, 1.0)), "ann") == [False]  # 10.5 s


def test_typing_false_from_the_client_is_broadcast_at_once_and_not_again_at_the_deadline():
    core = make_core(typing_timeout=6.0)
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    set_typing(core, ann, True)
    set_typing(core, ann, False)
    assert typing_of(broadcasts(core.take()), "ann") == [True, False]
    assert typing_of(broadcasts(elapse(core, 10)), "ann") == []


def test_a_send_clears_typing_before_the_message_is_broadcast():
    core = make_core()
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    set_typing(core, ann, True)
    core.take()
    say(core, ann, "hi")
    out = core.take()
    [draft] = drafts(out)
    commit(core, draft)
    out += core.take()
    kinds = [
        ("typing", frame(e.payload)["data"]["isTyping"]) if frame(e.payload)["type"] == "typing:indicator"
        else frame(e.payload)["type"]
        for e in out if type(e) is Broadcast
    ]
    assert kinds == [("typing", False), "message:new"]
    assert out.index(next(e for e in out if type(e) is Store)) > 0  # the false went out before the store
    assert typing_of(broadcasts(elapse(core, 10)), "ann") == []  # nothing left to expire


def test_typing_is_cleared_before_the_offline_when_the_last_connection_closes():
    core = make_core()
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    set_typing(core, ann, True)
    core.take()
    core.gone(ann)
    frames = broadcasts(core.take())
    assert [f["type"] for f in frames] == ["typing:indicator", "presence:update"]
    assert typing_of(frames, "ann") == [False] and presence_of(frames, "ann") == [("offline", 0)]


# -- idle close ---------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_for_the_idle_timeout_is_closed_with_4000():
    core = make_core(idle_timeout=10, ping_interval=None)
    ann = joined(core, "ann")
    assert of_type(elapse(core, 9.5), Close) == []
    [close] = of_type(elapse(core, 2.0), Close)
    assert close.conn is ann and close.code == CLOSE_IDLE and "idle" in close.reason
    assert of_type(elapse(core, 30), Close) == []  # closed once
    assert core.counters.closes[CLOSE_IDLE] == 1


def test_a_frame_resets_the_idle_timer():
    core = make_core(idle_timeout=10, ping_interval=None)
    ann = joined(core, "ann")
    elapse(core, 8)
    send_frame(core, ann, {"type": "ping", "id": 1})
    assert of_type(elapse(core, 9.5), Close) == []  # 17.5 s after the open, 9.5 s after the frame
    assert [c.conn for c in of_type(elapse(core, 2.0), Close)] == [ann]


def test_a_websocket_ping_from_the_client_resets_the_idle_timer():
    core = make_core(idle_timeout=10, ping_interval=None)
    ann = joined(core, "ann")
    elapse(core, 8)
    core.heard(ann)
    assert of_type(elapse(core, 9.5), Close) == []
    assert [c.conn for c in of_type(elapse(core, 2.0), Close)] == [ann]


def test_pongs_to_our_keepalive_pings_do_not_count_as_activity():
    core = make_core(idle_timeout=10, ping_interval=None)
    ann = joined(core, "ann")
    out = []
    for _ in range(4):
        out += elapse(core, 3)
        core.pong(ann)
    assert [c.conn for c in of_type(out, Close)] == [ann]


def test_idle_timeout_zero_never_closes():
    core = make_core(idle_timeout=0, ping_interval=None)
    joined(core, "ann")
    assert of_type(elapse(core, 100_000), Close) == []


# -- keepalive ----------------------------------------------------------------------------


def _keepalive_core():
    return make_core(idle_timeout=0, ping_interval=20, ping_timeout=20)


def test_after_ping_interval_of_silence_the_core_pings():
    core = _keepalive_core()
    ann = joined(core, "ann")
    assert of_type(elapse(core, 19.5), Ping) == []
    assert of_type(elapse(core, 6), Ping) == [Ping(ann)]


def test_no_pong_within_ping_timeout_aborts_the_connection():
    core = _keepalive_core()
    ann = joined(core, "ann")
    assert of_type(elapse(core, 20.5), Ping) == [Ping(ann)]  # at 20 s
    assert of_type(elapse(core, 19), Abort) == []  # 19.5 s after the ping
    out = elapse(core, 6.5)
    assert of_type(out, Abort) == [Abort(ann)]
    assert of_type(out, Close) == []  # no close handshake with a dead peer
    assert of_type(elapse(core, 100), Abort) == []  # once
    assert core.counters.closes[1011] == 1


def test_a_pong_in_time_keeps_the_connection():
    core = _keepalive_core()
    ann = joined(core, "ann")
    assert of_type(elapse(core, 26), Ping) == [Ping(ann)]
    elapse(core, 10)
    core.pong(ann)
    assert of_type(elapse(core, 40), Abort) == []


def test_a_frame_after_the_ping_counts_as_an_answer():
    core = _keepalive_core()
    ann = joined(core, "ann")
    elapse(core, 26)
    send_frame(core, ann, {"type": "ping"})
    assert of_type(elapse(core, 30), Abort) == []


def test_a_chatty_connection_is_never_pinged():
    core = _keepalive_core()
    ann = joined(core, "ann")
    out = []
    for _ in range(10):
        out += elapse(core, 10)
        send_frame(core, ann, {"type": "ping"})
    assert of_type(out, Ping) == []


# -- status memory ------------------------------------------------------------------------


def _roster(effects, conn):
    [connected] = [f for f in delivered(effects, conn) if f["type"] == "connected"]
    return {u["username"]: u["status"] for u in connected["users"]}


def _away_then_gone(core):
    ann = joined(core, "ann")
    set_status(core, ann, "away")
    core.gone(ann)
    core.take()


def test_a_status_survives_a_reconnect_within_status_memory():
    core = make_core(status_memory=300)
    joined(core, "bob")
    _away_then_gone(core)
    core.clock.advance(299)
    ann = connect(core, "ann")
    out = core.take()
    assert _roster(out, ann)["ann"] == "away"
    assert presence_of(broadcasts(out), "ann") == [("away", 1)]  # what the others see


def test_a_status_is_forgotten_after_status_memory():
    core = make_core(status_memory=300)
    joined(core, "bob")
    _away_then_gone(core)
    elapse(core, 301)  # the periodic prune runs on the way
    ann = connect(core, "ann")
    out = core.take()
    assert _roster(out, ann)["ann"] == "online"
    assert presence_of(broadcasts(out), "ann") == [("online", 1)]


def test_a_status_is_forgotten_after_status_memory_even_without_a_tick():
    core = make_core(status_memory=300)
    _away_then_gone(core)
    core.clock.advance(301)
    ann = connect(core, "ann")
    assert _roster(core.take(), ann)["ann"] == "online"


def test_appear_offline_is_remembered_across_a_reconnect():
    core = make_core(status_memory=300)
    joined(core, "bob")
    ann = joined(core, "ann")
    set_status(core, ann, "offline")
    core.gone(ann)
    core.take()
    core.clock.advance(60)
    ann = connect(core, "ann")
    out = core.take()
    assert presence_of(broadcasts(out), "ann") == []  # still hidden: nobody is told
    assert "ann" not in _roster(out, ann)


# -- rate limit refill ----------------------------------------------------------------------


def test_sends_past_the_rate_limit_are_refused_until_the_refill():
    core = make_core(rate_limit=3)
    ann = joined(core, "ann")
    for i in range(3):
        say(core, ann, f"m{i}")
    assert len(drafts(core.take())) == 3
    say(core, ann, "m3", cmid="c-3")
    out = core.take()
    assert drafts(out) == []
    [err] = errors(out, ann)
    assert err["code"] == ERR_RATE_LIMITED and err["frameType"] == "message:send" and err["clientMsgId"] == "c-3"
    wait_ms = err["retryAfterMs"]
    assert 19_000 < wait_ms <= 20_001  # one token back every 60/3 s

    core.clock.advance(wait_ms / 2000)  # half way: still refused (sticky), with what is left to wait
    say(core, ann, "early")
    [err] = errors(core.take(), ann)
    assert 9_000 < err["retryAfterMs"] <= 10_001

    core.clock.advance(wait_ms / 2000)
    say(core, ann, "m4")
    out = core.take()
    assert len(drafts(out)) == 1 and errors(out, ann) == []


@pytest.mark.parametrize("rate_limit", [25, 75, 150])
def test_a_retry_after_exactly_retry_after_ms_is_accepted(rate_limit):
    core = make_core(rate_limit=rate_limit)
    ann = joined(core, "ann")
    for i in range(rate_limit):
        say(core, ann, f"m{i}")
    core.take()
    say(core, ann, "over")
    [err] = errors(core.take(), ann)
    core.clock.advance(err["retryAfterMs"] / 1000)
    say(core, ann, "again")
    out = core.take()
    assert errors(out, ann) == [] and len(drafts(out)) == 1


def test_the_rate_limit_is_per_user_across_connections():
    core = make_core(rate_limit=3)
    ann1, ann2, bob = joined(core, "ann"), joined(core, "ann"), joined(core, "bob")
    for conn in (ann1, ann2, ann1):
        say(core, conn, "x")
    core.take()
    say(core, ann2, "over")
    say(core, bob, "fine")
    out = core.take()
    assert [e["code"] for e in errors(out, ann2)] == [ERR_RATE_LIMITED]
    assert [d.user.username for d in drafts(out)] == ["bob"]


def test_flooding_past_the_rate_limit_closes_with_1008():
    core = make_core(rate_limit=3)
    assert core.rules.flood_threshold == 10
    ann = joined(core, "ann")
    for i in range(3):
        say(core, ann, f"m{i}")
    core.take()
    for i in range(10):
        say(core, ann, f"over{i}")
    out = core.take()
    assert len(errors(out, ann)) == 10 and of_type(out, Close) == []
    say(core, ann, "one too many")
    out = core.take()
    assert len(errors(out, ann)) == 1
    assert [(c.conn, c.code) for c in of_type(out, Close)] == [(ann, CLOSE_POLICY)]
    say(core, ann, "after the close")
    assert core.take() == []  # a closing connection is not listened to


def test_refusals_older_than_a_minute_do_not_count_towards_flooding():
    core = make_core(rate_limit=3)
    ann = joined(core, "ann")
    for i in range(3):
        say(core, ann, f"m{i}")
    for i in range(10):
        say(core, ann, f"over{i}")
    core.take()
    core.clock.advance(61)
    for i in range(3):
        say(core, ann, f"n{i}")
    for i in range(5):
        say(core, ann, f"over-again{i}")
    assert of_type(core.take(), Close) == []


def test_reconnecting_does_not_reset_the_rate_limit():
    core = make_core(rate_limit=3)
    ann = joined(core, "ann")
    for i in range(3):
        say(core, ann, f"m{i}")
    commit(core, *drafts(core.take()))
    core.gone(ann)
    core.take()
    elapse(core, 31)  # past a prune: the bucket is not full yet (1.55 tokens), so it is kept
    ann = joined(core, "ann")
    say(core, ann, "one token back")
    say(core, ann, "not two")
    out = core.take()
    assert len(drafts(out)) == 1 and [e["code"] for e in errors(out, ann)] == [ERR_RATE_LIMITED]


def test_other_frames_have_their_own_limit_and_flooding_them_closes_with_1008():
    core = make_core(frame_rate=1, frame_burst=2, frame_flood=3)
    ann = joined(core, "ann")
    for _ in range(2):
        set_typing(core, ann, True)
    out = core.take()
    assert errors(out, ann) == []
    for _ in range(3):
        set_typing(core, ann, True)
    out = core.take()
    assert [(e["code"], e["frameType"]) for e in errors(out, ann)] == [(ERR_RATE_LIMITED, "typing:indicator")] * 3
    assert of_type(out, Close) == []
    say(core, ann, "sends are limited apart")
    assert len(drafts(core.take())) == 1
    send_frame(core, ann, {"type": "ping"})
    out = core.take()
    assert [(c.conn, c.code) for c in of_type(out, Close)] == [(ann, CLOSE_POLICY)]
