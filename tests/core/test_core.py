"""The chat core without I/O: admission, the ``connected`` frame, quiet connections and the
presence other nodes report. Timers, order and history have their own modules."""

from __future__ import annotations

import json

import pytest

from workspace_tui.core import Refusal, Session
from workspace_tui.core.effects import Attach, Broadcast, Close, Deliver, Relay, Store
from workspace_tui.protocol import CLOSE_GOING_AWAY, ERR_NOT_ALLOWED, ERR_UNAVAILABLE, user_id_for

from .support import (
    broadcasts,
    connect,
    delivered,
    drafts,
    errors,
    frame,
    joined,
    make_core,
    message,
    of_type,
    presence_of,
    say,
    set_status,
    set_typing,
    typing_of,
)


def _admit(core, authorization=None, **query):
    return core.admit({k: [str(v)] for k, v in query.items()}, authorization)


def _status(decision):
    return decision.status if isinstance(decision, Refusal) else 101


def _connected(effects, conn):
    [f] = [f for f in delivered(effects, conn) if f["type"] == "connected"]
    return f


# -- admission -----------------------------------------------------------------------------


def test_a_server_with_a_token_refuses_a_missing_or_wrong_one_with_401():
    core = make_core(token="s3cret")
    assert _status(_admit(core, username="ann")) == 401
    assert _status(_admit(core, username="ann", token="wrong")) == 401
    assert _status(_admit(core, "Bearer wrong", username="ann")) == 401
    assert _status(_admit(core, "Basic s3cret", username="ann")) == 401
    assert _status(_admit(core, username="ann", token="s3cret")) == 101
    assert _status(_admit(core, "Bearer s3cret", username="ann")) == 101
    assert _status(_admit(core, "bearer  s3cret ", username="ann")) == 101


def test_the_token_is_checked_before_anything_else():
    core = make_core(token="s3cret")
    assert _status(_admit(core, username="bad name!")) == 401
    core.shutdown()
    assert _status(_admit(core, username="ann")) == 401


@pytest.mark.parametrize("query", [
    {},
    {"username": ""},
    {"username": "bad name"},
    {"username": "x" * 33},
    {"username": "ann", "since": "42"},
    {"username": "ann", "since": "msg_1768557600000_00000"},
    {"username": "ann", "history": "abc"},
    {"username": "ann", "history": "-1"},
    {"username": "ann", "history": "1001"},
    {"username": "ann", "presence": "all"},
])
def test_a_bad_query_is_refused_with_400(query):
    decision = _admit(make_core(), **query)
    assert _status(decision) == 400 and decision.reason.startswith("bad request: ")


def test_a_good_query_is_admitted_with_what_it_asked_for():
    since = message().id
    session = _admit(make_core(), username="ann.b-1_", since=since, history="1000", presence="none")
    assert isinstance(session, Session)
    assert (session.username, session.since, session.history, session.quiet) == ("ann.b-1_", since, 1000, True)


def test_a_superscript_history_is_refused_with_400_not_an_exception():
    assert _status(_admit(make_core(), username="ann", history="²")) == 400


def test_a_since_with_non_ascii_digits_is_refused_with_400():
    since = "msg_" + "\u0661" * 13 + "_" + "\u0660" * 6
    assert _status(_admit(make_core(), username="ann", since=since)) == 400


def test_a_shutting_down_server_refuses_with_503():
    core = make_core()
    core.shutdown()
    assert _status(_admit(core, username="ann")) == 503
    assert _status(_admit(core, username="bad name")) == 400  # checked first


def test_over_the_per_user_cap_is_429_until_a_slot_is_released():
    core = make_core(max_connections_per_user=2)
    first, second = _admit(core, username="ann"), _admit(core, username="ann", presence="none")
    assert isinstance(first, Session) and isinstance(second, Session)  # quiet ones count too
    over = _admit(core, username="ann")
    assert _status(over) == 429 and "ann already has 2 open" in over.reason
    assert _status(_admit(core, username="bob")) == 101  # per user
    core.release(first)
    core.release(first)  # twice is once
    assert _status(_admit(core, username="ann")) == 101
    assert _status(_admit(core, username="ann")) == 429


def test_a_closed_connection_gives_its_slot_back():
    core = make_core(max_connections_per_user=1)
    ann = joined(core, "ann")
    assert _status(_admit(core, username="ann")) == 429
    core.gone(ann)
    assert _status(_admit(core, username="ann")) == 101


def test_refuse_over_cap_gives_the_slot_back():
    core = make_core(max_connections_per_user=1)
    session = _admit(core, username="ann")
    refusal = core.refuse_over_cap(session)  # the backend's workspace-wide count said no
    assert refusal.status == 429 and session.released
    assert _status(_admit(core, username="ann")) == 101


def test_a_zero_cap_is_unlimited():
    core = make_core(max_connections_per_user=0)
    assert all(_status(_admit(core, username="ann")) == 101 for _ in range(50))


# -- connected --------------------------------------------------------------------------


def test_connected_carries_the_roster_limits_and_last_message_id():
    last = message().id
    core = make_core(last_message_id=last, rate_limit=7, max_connections_per_user=2, idle_timeout=30)
    joined(core, "bob")
    ann = connect(core, "ann")
    out = core.take()
    c = _connected(out, ann)
    assert c["userId"] == user_id_for("ann") and c["username"] == "ann"
    assert c["timestamp"] == "2026-01-16T10:00:00.000Z"
    assert c["connectedUsers"] == 2
    assert sorted((u["username"], u["status"], u["connections"]) for u in c["users"]) == [
        ("ann", "online", 1), ("bob", "online", 1)]
    assert c["limits"] == {"maxPayloadBytes": 1024 * 1024, "messagesPerMinute": 7,
                           "maxConnectionsPerUser": 2, "idleTimeoutSeconds": 30}
    assert c["lastMessageId"] == last
    assert out[:2] == [Attach(ann, held=True), of_type(out, Deliver)[0]]


def test_the_first_connection_of_a_user_is_announced_to_others_and_later_ones_with_the_count():
    core = make_core()
    joined(core, "bob")
    ann1 = connect(core, "ann")
    [b] = [e for e in core.take() if type(e) is Broadcast]
    assert presence_of([frame(b.payload)], "ann") == [("online", 1)] and b.exclude_user == user_id_for("ann")
    ann2 = connect(core, "ann")
    [b] = [e for e in core.take() if type(e) is Broadcast]
    assert presence_of([frame(b.payload)], "ann") == [("online", 2)] and b.exclude_conn is ann2
    core.gone(ann2)
    assert presence_of(broadcasts(core.take()), "ann") == [("online", 1)]
    core.gone(ann1)
    assert presence_of(broadcasts(core.take()), "ann") == [("offline", 0)]


def test_a_presence_update_goes_to_everyone_but_the_connection_that_set_it():
    core = make_core()
    ann1, _ann2 = joined(core, "ann"), joined(core, "ann")
    set_status(core, ann1, "busy")
    [b] = of_type(core.take(), Broadcast)
    assert presence_of([frame(b.payload)], "ann") == [("busy", 2)]
    assert b.exclude_conn is ann1 and b.exclude_user is None  # ann's other connection learns it


def test_appearing_offline_looks_like_a_disconnect_and_hides_typing():
    core = make_core()
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    set_typing(core, ann, True)
    core.take()
    set_status(core, ann, "offline")
    frames = broadcasts(core.take())
    assert typing_of(frames, "ann") == [False] and presence_of(frames, "ann") == [("offline", 0)]
    set_typing(core, ann, True)
    assert typing_of(broadcasts(core.take()), "ann") == []
    say(core, ann, "still here")
    assert len(drafts(core.take())) == 1  # messages still go out


def test_an_unknown_frame_is_answered_with_an_error_and_the_connection_stays():
    core = make_core()
    ann = joined(core, "ann")
    core.receive(ann, "not json")
    core.receive(ann, json.dumps({"type": "nope"}))
    core.receive(ann, b"\x00binary")
    out = core.take()
    assert [e["code"] for e in errors(out, ann)] == ["invalid_json", "unknown_type", "binary_frame"]
    assert of_type(out, Close) == []


def test_an_app_ping_is_answered_with_a_pong():
    core = make_core()
    ann = joined(core, "ann")
    core.receive(ann, json.dumps({"type": "ping", "id": 42}))
    assert delivered(core.take(), ann) == [{"type": "pong", "id": 42, "timestamp": "2026-01-16T10:00:00.000Z"}]


def test_sends_are_refused_while_the_store_is_down_or_the_server_shuts_down():
    core = make_core()
    ann = joined(core, "ann")
    core.store_available(False)
    say(core, ann, "a", cmid="c-1")
    out = core.take()
    assert of_type(out, Store) == [] and [(e["code"], e["clientMsgId"]) for e in errors(out, ann)] == [
        (ERR_UNAVAILABLE, "c-1")]
    core.store_available(True)
    core.shutdown()
    say(core, ann, "b")
    assert [e["code"] for e in errors(core.take(), ann)] == [ERR_UNAVAILABLE]


def test_close_all_closes_every_connection_with_1001_and_announces_no_offline():
    core = make_core()
    ann, bob = joined(core, "ann"), joined(core, "bob")
    core.shutdown()
    core.close_all()
    assert sorted((c.conn.link, c.code) for c in of_type(core.take(), Close)) == [
        (ann.link, CLOSE_GOING_AWAY), (bob.link, CLOSE_GOING_AWAY)]
    core.gone(ann)
    assert broadcasts(core.take()) == []


# -- quiet connections ------------------------------------------------------------------------


def test_a_quiet_connection_is_never_announced_nor_in_the_roster():
    core = make_core()
    bob = joined(core, "bob")
    tool = connect(core, "ann", presence="none")
    out = core.take()
    assert broadcasts(out) == [] and of_type(out, Relay) == []
    c = _connected(out, tool)
    assert c["connectedUsers"] == 1 and [u["username"] for u in c["users"]] == ["bob"]
    later = connect(core, "carol")
    assert "ann" not in [u["username"] for u in _connected(core.take(), later)["users"]]
    core.gone(tool)
    assert broadcasts(core.take()) == []
    assert bob.user.username in core.presence.users and "ann" not in core.presence.users


def test_a_quiet_connection_may_not_set_presence_or_typing():
    core = make_core()
    tool = joined(core, "ann", presence="none")
    set_status(core, tool, "away")
    set_typing(core, tool, True)
    out = core.take()
    assert [(e["code"], e["frameType"]) for e in errors(out, tool)] == [
        (ERR_NOT_ALLOWED, "presence:update"), (ERR_NOT_ALLOWED, "typing:indicator")]
    assert broadcasts(out) == []


def test_a_quiet_connection_can_send_messages():
    core = make_core()
    tool = joined(core, "ann", presence="none")
    say(core, tool, "from a script")
    assert [d.text for d in drafts(core.take())] == ["from a script"]


def test_a_quiet_connection_beside_a_visible_one_changes_nothing():
    core = make_core()
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    tool = joined(core, "ann", presence="none")
    core.gone(tool)
    assert broadcasts(core.take()) == []
    assert core.presence.aggregate("ann") == ("online", 1) and ann.user.quiet == 0


# -- other nodes -------------------------------------------------------------------------------


def test_remote_presence_is_broadcast_as_the_users_global_state():
    core = make_core()
    joined(core, "bob")
    carol = user_id_for("carol")
    core.remote_presence("node-b", "carol", carol, "away", 2)
    out = core.take()
    [b] = of_type(out, Broadcast)
    assert presence_of([frame(b.payload)], "carol") == [("away", 2)] and b.exclude_user is None
    core.remote_presence("node-b", "carol", carol, "away", 2)  # nothing changed: nothing said
    assert core.take() == []
    late = connect(core, "dave")
    users = {u["username"]: (u["status"], u["connections"]) for u in _connected(core.take(), late)["users"]}
    assert users["carol"] == ("away", 2)


def test_connections_here_and_on_another_node_add_up():
    core = make_core()
    ann = joined(core, "ann")
    core.remote_presence("node-b", "ann", ann.user.user_id, "online", 1, exclude_user=True)
    [b] = of_type(core.take(), Broadcast)
    assert presence_of([frame(b.payload)], "ann") == [("online", 2)] and b.exclude_user == ann.user.user_id
    core.gone(ann)
    assert presence_of(broadcasts(core.take()), "ann") == [("online", 1)]  # still on node b


def test_a_status_set_on_another_node_is_the_users_status_here_too():
    core = make_core()
    ann = joined(core, "ann")
    core.remote_presence("node-b", "ann", ann.user.user_id, "busy", 1)
    assert ann.user.status == "busy"
    assert presence_of(broadcasts(core.take()), "ann") == [("busy", 2)]


def test_a_node_gone_clears_typing_and_takes_its_users_offline():
    core = make_core()
    joined(core, "bob")
    carol = user_id_for("carol")
    core.remote_presence("node-b", "carol", carol, "online", 1)
    core.remote_typing("carol", carol, True)
    core.take()
    core.node_gone("node-b")
    frames = broadcasts(core.take())
    assert [f["type"] for f in frames] == ["typing:indicator", "presence:update"]
    assert typing_of(frames, "carol") == [False] and presence_of(frames, "carol") == [("offline", 0)]
    assert core.presence.remote == {} and core.presence.connected_users == 1


def test_node_users_replaces_what_a_node_reported():
    core = make_core()
    core.remote_presence("node-b", "carol", user_id_for("carol"), "online", 1)
    core.take()
    core.node_users("node-b", {"dave": (user_id_for("dave"), "away", 1)})
    frames = broadcasts(core.take())
    assert presence_of(frames, "carol") == [("offline", 0)] and presence_of(frames, "dave") == [("away", 1)]


def test_a_user_appearing_offline_on_another_node_stays_hidden_when_connecting_here():
    core = make_core()
    joined(core, "bob")
    core.remote_presence("node-b", "ann", user_id_for("ann"), "offline", 1)
    core.take()
    ann = connect(core, "ann")
    out = core.take()
    assert ann.user.status == "offline"
    assert presence_of(broadcasts(out), "ann") == []


def test_local_users_lists_visible_capable_users_for_the_other_nodes():
    core = make_core()
    joined(core, "ann")
    joined(core, "ann")
    joined(core, "tool", presence="none")
    assert core.local_users() == {"ann": (user_id_for("ann"), "online", 2, False)}


def test_a_slow_reader_is_closed_with_4001_once():
    core = make_core()
    ann = joined(core, "ann")
    core.slow(ann)
    core.slow(ann)
    assert [(c.conn, c.code) for c in of_type(core.take(), Close)] == [(ann, 4001)]
