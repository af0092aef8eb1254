"""Order and exactly-once: what others learn about a user leaves in the order the user did it,
and a resent ``clientMsgId`` is answered with the original, never stored twice."""

from __future__ import annotations

from workspace_tui.core.effects import Broadcast, Deliver, Relay, Store
from workspace_tui.core.outcomes import Duplicate, Failed, RateLimited
from workspace_tui.protocol import ERR_RATE_LIMITED, ERR_UNAVAILABLE

from .support import (
    broadcasts,
    commit,
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
)


def _summary(effects):
    """Each broadcast as ``M:<text>``, ``P:<status>`` or ``T:<isTyping>``."""
    out = []
    for f in broadcasts(effects):
        if f["type"] == "message:new":
            out.append("M:" + f["data"]["text"])
        elif f["type"] == "presence:update":
            out.append("P:" + f["data"]["status"])
        else:
            out.append(f"T:{f['data']['isTyping']}")
    return out


# -- a user's frames in the order they sent them --------------------------------------------


def test_a_presence_update_waits_behind_a_pipelined_message():
    core = make_core()
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    say(core, ann, "first")
    set_status(core, ann, "away")
    out = core.take()
    assert [type(e) for e in out] == [Store]  # no presence broadcast, no relay yet
    [draft] = drafts(out)
    commit(core, draft)
    out = core.take()
    assert _summary(out) == ["M:first", "P:away"]
    [m_new, p] = of_type(out, Broadcast)
    assert out.index(p) > out.index(m_new)
    assert any(type(e) is Relay and e.event["t"] == "presence" for e in out[out.index(m_new):])


def test_message_presence_message_committed_together_go_out_in_that_order():
    core = make_core()
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    say(core, ann, "M1")
    set_status(core, ann, "busy")
    say(core, ann, "M2")
    out = core.take()
    assert _summary(out) == []
    [d1] = drafts(out)  # M2 is not even stored before the presence it follows has gone out
    commit(core, d1)
    out = core.take()
    assert _summary(out) == ["M:M1", "P:busy"]
    [d2] = drafts(out)
    commit(core, d2)
    assert _summary(core.take()) == ["M:M2"]


def test_pipelined_messages_with_nothing_between_are_stored_at_once_and_in_order():
    core = make_core()
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    for text in ("M1", "M2", "M3"):
        say(core, ann, text)
    out = core.take()
    assert len(drafts(out)) == 3  # nothing waits between them: the backend keeps their order
    commit(core, *drafts(out))
    assert _summary(core.take()) == ["M:M1", "M:M2", "M:M3"]


def test_a_failed_store_tells_the_sender_and_releases_what_waited():
    core = make_core()
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    say(core, ann, "M1", cmid="c-1")
    set_status(core, ann, "away")
    [draft] = drafts(core.take())
    core.stored(draft, Failed("disk full"))
    out = core.take()
    [err] = errors(out, ann)
    assert err["code"] == ERR_UNAVAILABLE and err["clientMsgId"] == "c-1" and err["frameType"] == "message:send"
    assert _summary(out) == ["P:away"]  # the presence, and no message:new
    assert ann.user.backlog is None and ann.user.pending == 0 and core.pending == 0


def test_a_failed_first_message_does_not_release_one_still_in_flight_after_it():
    core = make_core()
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    say(core, ann, "M1")
    set_status(core, ann, "away")
    say(core, ann, "M2")
    set_status(core, ann, "busy")
    [d1] = drafts(core.take())
    core.stored(d1, Failed("x"))
    out = core.take()
    assert _summary(out) == ["P:away"]  # busy waits for M2, which is only now stored
    [d2] = drafts(out)
    commit(core, d2)
    assert _summary(core.take()) == ["M:M2", "P:busy"]


def test_typing_waits_behind_a_pipelined_message_too():
    core = make_core()
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    say(core, ann, "M1")
    set_typing(core, ann, True)
    out = core.take()
    assert _summary(out) == []
    commit(core, *drafts(out))
    assert _summary(core.take()) == ["M:M1", "T:True"]


def test_one_users_pending_message_does_not_hold_back_another_user():
    core = make_core()
    ann, bob = joined(core, "ann"), joined(core, "bob")
    say(core, ann, "slow")
    set_status(core, bob, "away")
    out = core.take()
    assert presence_of(broadcasts(out), "bob") == [("away", 1)]


def test_a_message_from_another_node_is_broadcast_at_once():
    core = make_core()
    ann = joined(core, "ann")
    say(core, ann, "pending here")
    core.take()
    remote = message("from node b", username="carol")
    core.committed([remote], [None])
    out = core.take()
    assert _summary(out) == ["M:from node b"]
    assert core.last_message_id == remote.id


def test_committed_messages_move_last_message_id_forward():
    core = make_core()
    ann = joined(core, "ann")
    say(core, ann, "a")
    say(core, ann, "b")
    stored = commit(core, *drafts(core.take()))
    assert core.last_message_id == stored[-1].id
    assert core.counters.messages_total == 2


# -- exactly once -------------------------------------------------------------------------


def test_a_resend_while_the_first_is_in_flight_is_answered_with_it_and_not_stored_again():
    core = make_core()
    first, second, _bob = joined(core, "ann"), joined(core, "ann"), joined(core, "bob")
    say(core, first, "hello", cmid="c-1")
    [draft] = drafts(core.take())
    say(core, second, "hello", cmid="c-1")  # e.g. after a reconnect, from another connection
    assert drafts(core.take()) == []
    [stored] = commit(core, draft)
    out = core.take()
    [b] = of_type(out, Broadcast)
    assert frame(b.payload)["data"]["id"] == stored.id and frame(b.payload)["data"]["clientMsgId"] == "c-1"
    [d] = [e for e in of_type(out, Deliver) if e.conn is second]
    assert d.payload == b.payload  # the same message:new
    assert core.counters.duplicates_total == 1 and core.inflight == {}


def test_a_duplicate_outcome_answers_the_sender_with_the_original_and_broadcasts_nothing():
    core = make_core()
    ann, _bob = joined(core, "ann"), joined(core, "bob")
    say(core, ann, "hello", cmid="c-1")
    [draft] = drafts(core.take())
    original = draft.message(message().id, "2026-01-16T09:00:00.000Z")
    core.stored(draft, Duplicate(original))
    out = core.take()
    assert of_type(out, Broadcast) == []
    assert delivered(out, ann) == [{"type": "message:new", "data": original.to_wire()}]
    assert core.inflight == {} and ann.user.pending == 0


def test_a_duplicate_outcome_also_answers_resends_made_meanwhile():
    core = make_core()
    ann = joined(core, "ann")
    say(core, ann, "hello", cmid="c-1")
    say(core, ann, "hello", cmid="c-1")
    [draft] = drafts(core.take())
    core.stored(draft, Duplicate(draft.message(message().id, "2026-01-16T09:00:00.000Z")))
    out = core.take()
    assert [f["type"] for f in delivered(out, ann)] == ["message:new", "message:new"]
    assert of_type(out, Broadcast) == []


def test_a_resend_after_the_commit_goes_to_the_store_which_knows_it():
    core = make_core()
    ann = joined(core, "ann")
    say(core, ann, "hello", cmid="c-1")
    commit(core, *drafts(core.take()))
    core.take()
    say(core, ann, "hello", cmid="c-1")
    assert len(drafts(core.take())) == 1  # the in-flight table forgot it; the backend dedupes


def test_the_same_client_msg_id_from_two_users_is_two_messages():
    core = make_core()
    ann, bob = joined(core, "ann"), joined(core, "bob")
    say(core, ann, "hi", cmid="c-1")
    say(core, bob, "hi", cmid="c-1")
    assert len(drafts(core.take())) == 2


def test_a_global_rate_limit_refusal_reaches_the_sender_and_its_resends():
    core = make_core(rate_limit=0, address_rate_limit=0)
    first, second = joined(core, "ann"), joined(core, "ann")
    say(core, first, "hello", cmid="c-1")
    say(core, second, "hello", cmid="c-1")
    [draft] = drafts(core.take())
    core.stored(draft, RateLimited(1234))
    out = core.take()
    for conn in (first, second):
        [err] = errors(out, conn)
        assert err["code"] == ERR_RATE_LIMITED and err["retryAfterMs"] == 1234 and err["clientMsgId"] == "c-1"
    assert of_type(out, Broadcast) == []
