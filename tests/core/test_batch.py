"""Presence per tick: connections that offered workspace.v1 get one ``presence:batch`` per tick,
bounded, in order with the messages of the users in it; document-only connections keep getting
one ``presence:update`` per change, exactly as the protocol document has it."""

from __future__ import annotations

from typing import Any

from workspace_tui.core.effects import Broadcast, Deliver, Post, Store

from .support import V1, commit, connect, drafts, elapse, frame, joined, make_core, of_type, say, set_status

TICK = 0.1  # Rules.presence_tick's default


def batches(effects: list[Any]) -> list[Broadcast]:
    return [e for e in of_type(effects, Broadcast) if frame(e.payload)["type"] == "presence:batch"]


def updates(effects: list[Any]) -> list[Broadcast]:
    return [e for e in of_type(effects, Broadcast) if frame(e.payload)["type"] == "presence:update"]


def listed(b: Broadcast) -> dict[str, tuple[str, int]]:
    return {u["username"]: (u["status"], u["connections"]) for u in frame(b.payload)["data"]["users"]}


def settled(core, *names: str, protocols=V1):
    """Connections of *names*, joined, with their own tick's batch gone out and taken."""
    conns = [joined(core, n, protocols=protocols) for n in names]
    elapse(core, TICK)
    return conns


def test_many_joins_in_a_tick_are_one_frame_for_every_v1_connection():
    core = make_core()
    settled(core, "w1", "w2", "w3")
    for i in range(50):
        joined(core, f"u{i}", protocols=V1)
    assert batches(core.take()) == []  # nothing yet: the tick is not over
    out = elapse(core, TICK)
    [b] = of_type(out, Broadcast)  # one frame, encoded once, for everyone
    assert b.document_only is None and b.exclude_user is None  # no document-only connection to keep it from
    assert listed(b) == {f"u{i}": ("online", 1) for i in range(50)}
    assert frame(b.payload)["data"]["connectedUsers"] == 53 and "complete" not in frame(b.payload)["data"]
    assert elapse(core, 10 * TICK) == []  # and nothing more


def test_a_batch_lists_at_most_the_roster_cap_then_says_it_is_incomplete():
    core = make_core()
    core.presence.ROSTER_CAP = 5
    settled(core, "watcher")
    for i in range(5):
        joined(core, f"u{i}", protocols=V1)
    [b] = batches(elapse(core, TICK))
    assert len(listed(b)) == 5  # at the cap: listed
    for i in range(5, 11):
        joined(core, f"u{i}", protocols=V1)
    [b] = batches(elapse(core, TICK))
    assert frame(b.payload) == {"type": "presence:batch",
                                "data": {"users": [], "complete": False, "connectedUsers": 12}}


def test_each_user_once_with_their_latest_state_and_a_come_and_go_said_gone():
    core = make_core()
    (watcher,) = settled(core, "watcher")
    ann = joined(core, "ann", protocols=V1)
    set_status(core, ann, "away")
    set_status(core, ann, "busy")
    ghost = joined(core, "ghost", protocols=V1)  # offline before the tick, offline after it
    core.gone(ghost)
    core.take()
    [b] = batches(elapse(core, TICK))
    # ghost too: a connection that joined between ghost's arrival and departure had ghost in its roster
    assert listed(b) == {"ann": ("busy", 1), "ghost": ("offline", 0)}
    assert frame(b.payload)["data"]["connectedUsers"] == 2


def test_a_client_that_joined_mid_tick_learns_that_someone_in_its_roster_left():
    core = make_core()
    settled(core, "watcher")
    dave = joined(core, "dave", protocols=V1)
    alice = connect(core, "alice", protocols=V1)  # same tick: dave is in alice's connected roster
    [hello] = [f for e in core.take() if type(e) is Deliver and e.conn is alice
               and (f := frame(e.payload))["type"] == "connected"]
    assert "dave" in [u["username"] for u in hello["users"]]
    core.gone(dave)
    core.take()
    [b] = batches(elapse(core, TICK))
    assert listed(b)["dave"] == ("offline", 0)


def test_document_only_connections_still_get_each_change_as_a_presence_update():
    core = make_core()
    doc = joined(core, "doc")  # no workspace.v1: the protocol document's frames only
    settled(core, "ours")
    core.take()
    ann = connect(core, "ann", protocols=V1)
    set_status(core, ann, "away")
    out = core.take()
    ups = updates(out)
    assert [(frame(u.payload)["data"]["status"], u.document_only) for u in ups] == [("online", True), ("away", True)]
    assert ups[0].exclude_user == ann.user.user_id  # as without batches
    # ann (workspace.v1) is outside the second's audience; her own change comes back to her alone
    assert not ann.session.document_only
    assert [(p.conn, frame(p.payload)["data"]["status"]) for p in of_type(out, Post)
            if frame(p.payload)["type"] == "presence:update"] == [(ann, "away")]
    [b] = batches(elapse(core, TICK))
    assert b.document_only is False and listed(b) == {"ann": ("away", 1)}  # only to the v1 connections
    assert doc.session.document_only


def test_a_document_only_server_broadcasts_exactly_as_before():
    core = make_core()
    joined(core, "doc1")
    joined(core, "doc2")
    out = core.take() + elapse(core, 10 * TICK)
    assert batches(out) == []
    for u in updates(out):
        assert u.document_only is None  # to everyone: the fan-out's fast path


def test_the_users_own_connections_get_their_own_changes_as_presence_updates_as_before():
    core = make_core()
    settled(core, "watcher")
    ann1 = joined(core, "ann", protocols=V1)
    elapse(core, TICK)
    ann2 = connect(core, "ann", protocols=V1)  # another of ann's: her first learns the new count
    posts = [e for e in of_type(core.take(), Post) if frame(e.payload)["type"] == "presence:update"]
    assert [(p.conn, frame(p.payload)["data"]["connections"]) for p in posts] == [(ann1, 2)]
    set_status(core, ann2, "busy")  # to her other connection, and back to the one that set it
    posts = [e for e in of_type(core.take(), Post) if frame(e.payload)["type"] == "presence:update"]
    assert sorted((p.conn is ann2, frame(p.payload)["data"]["status"]) for p in posts) == [(False, "busy"), (True, "busy")]
    [b] = batches(elapse(core, TICK))
    assert listed(b) == {"ann": ("busy", 2)}  # the others: her state once; her own clients skip their entry


def test_a_presence_change_waits_for_the_message_sent_before_it():
    core = make_core(rate_limit=0, address_rate_limit=0)
    settled(core, "watcher")
    (ann,) = settled(core, "ann")
    say(core, ann, "before away")
    [draft] = drafts(core.take())
    set_status(core, ann, "away")  # waits behind the message in ann's backlog
    assert batches(core.take() + elapse(core, 5 * TICK)) == []  # the tick passes: still nothing about ann
    commit(core, draft)
    out = core.take()
    kinds = [frame(e.payload)["type"] for e in of_type(out, Broadcast)]
    assert kinds[0] == "message:new" and "presence:batch" not in kinds  # the message first
    [b] = batches(elapse(core, TICK))
    assert listed(b) == {"ann": ("away", 1)}


def test_a_message_does_not_overtake_the_presence_change_made_before_it():
    core = make_core(rate_limit=0, address_rate_limit=0)
    settled(core, "watcher")
    (ann,) = settled(core, "ann")
    set_status(core, ann, "away")  # collected for this tick's batch
    say(core, ann, "after away")
    out = core.take()
    [draft] = drafts(out)
    commit(core, draft)
    out += core.take()
    kinds = [frame(e.payload)["type"] for e in of_type(out, Broadcast)]
    assert kinds == ["presence:batch", "message:new"]  # the batch went out early, before the message
    assert listed(of_type(out, Broadcast)[0]) == {"ann": ("away", 1)}
    assert batches(elapse(core, TICK)) == []


def test_a_message_later_in_the_backlog_does_not_overtake_a_change_released_before_it():
    core = make_core(rate_limit=0, address_rate_limit=0)
    settled(core, "watcher")
    (ann,) = settled(core, "ann")
    say(core, ann, "m1")
    [d1] = drafts(core.take())
    set_status(core, ann, "away")
    say(core, ann, "m2")  # stored only once the away has gone out
    assert of_type(core.take(), Store) == []
    commit(core, d1)
    out = core.take()
    [d2] = drafts(out)
    commit(core, d2)
    out += core.take()
    # (what the v1 connections get: the document-only frames go to nobody here)
    seq = [frame(e.payload) for e in of_type(out, Broadcast) if e.document_only is not True]
    got = [(f["type"], f["data"].get("text") or listed_users(f)) for f in seq]
    assert got == [("message:new", "m1"), ("presence:batch", {"ann": "away"}), ("message:new", "m2")]


def listed_users(f: dict[str, Any]) -> dict[str, str]:
    return {u["username"]: u["status"] for u in f["data"]["users"]}


def test_changes_from_other_nodes_go_into_the_same_batch():
    core = make_core()
    settled(core, "watcher")
    core.remote_presence("node-b", "carol", "user_carol", "away", 2)
    joined(core, "dave", protocols=V1)
    core.take()
    [b] = batches(elapse(core, TICK))
    assert listed(b) == {"carol": ("away", 2), "dave": ("online", 1)}
    core.node_gone("node-b")
    [b] = batches(core.take() + elapse(core, TICK))
    assert listed(b) == {"carol": ("offline", 0)}
