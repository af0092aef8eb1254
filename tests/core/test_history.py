"""History in byte budgets: the join read, frames of at most ~512 KiB, resume one frame at a
time behind ``WhenDrained``, and live broadcasts held until the history went out."""

from __future__ import annotations

from workspace_tui.core.effects import Attach, Broadcast, Deliver, Read, Release, WhenDrained
from workspace_tui.core.history import RESUME_CHUNK, HistoryResult
from workspace_tui.core.encoding import encode
from workspace_tui.protocol import ERR_RATE_LIMITED, ERR_UNAVAILABLE, HISTORY_FRAME_BYTES

from .support import (
    answer,
    commit,
    connect,
    drafts,
    errors,
    frame,
    joined,
    make_core,
    message,
    of_type,
    say,
    send_frame,
)

KIB = 1024


def _messages(n, size):
    return [message("x" * size) for _ in range(n)]


def _assert_released_after_history(effects, conn):
    [(history, _)] = _history_frames(effects, conn)
    assert of_type(effects, Release) == [Release(conn)]
    assert effects.index(Release(conn)) == effects.index(history) + 1


def _history_frames(effects, conn):
    return [(e, frame(e.payload)) for e in of_type(effects, Deliver)
            if e.conn is conn and frame(e.payload)["type"] == "history"]


# -- join --------------------------------------------------------------------------------


def test_the_join_reads_the_latest_messages_up_to_the_last_message_id():
    last = message().id
    core = make_core(last_message_id=last, history=40)
    ann = connect(core, "ann")
    out = core.take()
    assert out[0] == Attach(ann, held=True)  # broadcasts are held before anything else goes out
    assert frame(out[1].payload)["type"] == "connected" and frame(out[1].payload)["lastMessageId"] == last
    [read] = of_type(out, Read)
    assert read.conn is ann
    assert (read.query.kind, read.query.limit, read.query.upto, read.query.before) == ("latest", 40, last, None)
    assert of_type(out, Release) == []  # not before the history


def test_the_history_query_parameter_overrides_the_default():
    core = make_core(last_message_id=message().id, history=40)
    connect(core, "ann", history=7)
    [read] = of_type(core.take(), Read)
    assert read.query.limit == 7


def test_an_empty_store_answers_the_join_without_a_read():
    core = make_core(last_message_id=None)
    ann = connect(core, "ann")
    out = core.take()
    assert of_type(out, Read) == []
    [(_, h)] = _history_frames(out, ann)
    assert h == {"type": "history", "reason": "join", "messages": [], "hasMore": False,
                 "room": "general"}
    _assert_released_after_history(out, ann)


def test_the_join_frame_holds_only_the_newest_messages_that_fit():
    store = _messages(8, 100 * KIB)  # 800 KiB in all
    core = make_core(last_message_id=store[-1].id)
    ann = connect(core, "ann")
    [read] = of_type(core.take(), Read)
    core.history_read(ann, read.query, HistoryResult(store, False))  # a backend that ignored max_bytes
    out = core.take()
    [(d, h)] = _history_frames(out, ann)
    n = len(h["messages"])
    assert len(d.payload) <= HISTORY_FRAME_BYTES
    assert 1 < n < len(store)
    assert [m["id"] for m in h["messages"]] == [m.id for m in store[-n:]]  # the newest, oldest first
    assert len(d.payload) + len(encode(store[-n - 1].to_wire())) > HISTORY_FRAME_BYTES - 512  # no room for one more
    assert h["hasMore"] is True and h["reason"] == "join"
    assert out[-1] == Release(ann)


def test_a_single_message_bigger_than_the_budget_goes_alone():
    small, big = message("small"), message("y" * 600 * KIB)
    core = make_core(last_message_id=big.id)
    ann = connect(core, "ann")
    [read] = of_type(core.take(), Read)
    core.history_read(ann, read.query, HistoryResult([small, big], False))
    [(d, h)] = _history_frames(core.take(), ann)
    assert [m["id"] for m in h["messages"]] == [big.id]
    assert h["hasMore"] is True  # "small" is still there, older
    assert len(d.payload) > HISTORY_FRAME_BYTES


def test_a_join_read_failure_sends_unavailable_and_goes_live():
    core = make_core(last_message_id=message().id)
    ann = connect(core, "ann")
    [read] = of_type(core.take(), Read)
    core.history_read(ann, read.query, OSError("disk gone"))
    out = core.take()
    [err] = errors(out, ann)
    assert err["code"] == ERR_UNAVAILABLE and err["frameType"] == "history"
    assert out[-1] == Release(ann)


def test_a_message_committed_during_the_join_read_is_broadcast_to_the_held_connection():
    last = message().id
    core = make_core(last_message_id=last)
    bob = joined(core, "bob", history=0)
    ann = connect(core, "ann")
    [read] = of_type(core.take(), Read)
    say(core, bob, "meanwhile")
    [stored] = commit(core, *drafts(core.take()))
    live = core.take()
    assert [frame(b.payload)["data"]["id"] for b in of_type(live, Broadcast)] == [stored.id]
    assert read.query.upto == last < stored.id  # the history stops before it: no repeat, no loss
    core.history_read(ann, read.query, HistoryResult([], False))
    assert core.take()[-1] == Release(ann)


def test_joins_between_two_messages_share_one_read_and_one_frame():
    store = _messages(3, 10)
    core = make_core(last_message_id=store[-1].id)
    ann = connect(core, "ann")
    [read] = of_type(core.take(), Read)
    core.history_read(ann, read.query, answer(read.query, store))
    [(first, _)] = _history_frames(core.take(), ann)
    bob = connect(core, "bob")
    out = core.take()
    assert of_type(out, Read) == []
    [(again, h)] = _history_frames(out, bob)
    assert again.payload == first.payload and len(h["messages"]) == 3
    _assert_released_after_history(out, bob)
    connect(core, "carol", history=2)  # another size: its own read
    assert len(of_type(core.take(), Read)) == 1
    say(core, ann, "new")
    commit(core, *drafts(core.take()))
    core.take()
    connect(core, "dave")  # a message later: a new read, up to it
    [read] = of_type(core.take(), Read)
    assert read.query.upto == core.last_message_id != store[-1].id


# -- resume ------------------------------------------------------------------------------


def test_a_resume_streams_frames_one_at_a_time_as_the_reader_drains():
    since = message("seen")
    store = [since, *_messages(12, 100 * KIB)]
    core = make_core(last_message_id=store[-1].id)
    ann = connect(core, "ann", since=since.id)
    out = core.take()
    assert out[0] == Attach(ann, held=True)
    [read] = of_type(out, Read)
    assert (read.query.kind, read.query.after, read.query.upto) == ("after", since.id, store[-1].id)
    assert read.query.limit == RESUME_CHUNK

    got, frames = [], 0
    while True:
        core.history_read(ann, read.query, answer(read.query, store))
        out = core.take()
        [(d, h)] = _history_frames(out, ann)
        frames += 1
        assert len(d.payload) <= HISTORY_FRAME_BYTES
        assert h["reason"] == "resume" and h["since"] == since.id and h["gap"] is False
        got += [m["id"] for m in h["messages"]]
        assert of_type(out, Read) == []  # nothing more is read before the frame is taken
        if not h["hasMore"]:
            assert out[-1] == Release(ann) and of_type(out, WhenDrained) == []
            break
        assert out[-1] == WhenDrained(ann) and of_type(out, Release) == []
        core.drained(ann)
        [read] = of_type(core.take(), Read)
        assert read.query.after == got[-1]
    assert got == [m.id for m in store[1:]]  # every message after since, once, in order
    assert frames >= 3


def test_a_resume_cuts_an_oversized_answer_and_reads_on_from_the_cut():
    since = message("seen")
    store = [since, *_messages(8, 100 * KIB)]
    core = make_core(last_message_id=store[-1].id)
    ann = connect(core, "ann", since=since.id)
    [read] = of_type(core.take(), Read)
    core.history_read(ann, read.query, HistoryResult(store[1:], False, since.id))  # all 800 KiB at once
    out = core.take()
    [(d, h)] = _history_frames(out, ann)
    n = len(h["messages"])
    assert len(d.payload) <= HISTORY_FRAME_BYTES and h["hasMore"] is True and n < 8
    assert out[-1] == WhenDrained(ann)
    core.drained(ann)
    [read] = of_type(core.take(), Read)
    assert read.query.after == store[n].id


def test_a_resume_from_before_the_oldest_stored_message_reports_a_gap():
    trimmed = message("gone")
    store = _messages(3, 10)
    core = make_core(last_message_id=store[-1].id)
    ann = connect(core, "ann", since=trimmed.id)
    [read] = of_type(core.take(), Read)
    core.history_read(ann, read.query, answer(read.query, store))
    [(_, h)] = _history_frames(core.take(), ann)
    assert h["gap"] is True and h["hasMore"] is False and len(h["messages"]) == 3


def test_a_resume_with_nothing_after_since_is_answered_without_a_read():
    last = message()
    core = make_core(last_message_id=last.id)
    ann = connect(core, "ann", since=last.id)
    out = core.take()
    assert of_type(out, Read) == []
    [(_, h)] = _history_frames(out, ann)
    assert h["messages"] == [] and h["hasMore"] is False and h["gap"] is False
    _assert_released_after_history(out, ann)


def test_a_closed_connection_stops_its_resume():
    since = message("seen")
    store = [since, *_messages(8, 100 * KIB)]
    core = make_core(last_message_id=store[-1].id)
    ann = connect(core, "ann", since=since.id)
    [read] = of_type(core.take(), Read)
    core.history_read(ann, read.query, answer(read.query, store))
    core.take()
    core.gone(ann)
    core.take()
    core.drained(ann)
    assert of_type(core.take(), Read) == []


# -- pages -------------------------------------------------------------------------------


def test_history_requests_are_served_one_at_a_time_after_the_join():
    store = _messages(5, 10)
    core = make_core(last_message_id=store[-1].id)
    ann = connect(core, "ann")
    [join] = of_type(core.take(), Read)
    send_frame(core, ann, {"type": "history:request", "before": store[3].id, "limit": 2})
    send_frame(core, ann, {"type": "history:request", "before": store[1].id, "limit": 2})
    assert of_type(core.take(), Read) == []  # the join read is still under way
    core.history_read(ann, join.query, answer(join.query, store))
    out = core.take()
    [page] = of_type(out, Read)
    assert out.index(page) > out.index(Release(ann))
    assert (page.query.kind, page.query.before, page.query.limit) == ("latest", store[3].id, 2)
    core.history_read(ann, page.query, answer(page.query, store))
    out = core.take()
    [(_, h)] = _history_frames(out, ann)
    assert h["reason"] == "page" and h["before"] == store[3].id and h["hasMore"] is True
    assert [m["id"] for m in h["messages"]] == [store[1].id, store[2].id]
    assert out[-1] == WhenDrained(ann) and of_type(out, Read) == []
    core.drained(ann)
    [page2] = of_type(core.take(), Read)
    assert page2.query.before == store[1].id


def test_too_many_queued_history_requests_are_refused():
    core = make_core(last_message_id=message().id)
    ann = connect(core, "ann")
    core.take()  # the join read stays unanswered
    for _ in range(9):
        send_frame(core, ann, {"type": "history:request"})
    [err] = errors(core.take(), ann)
    assert err["code"] == ERR_RATE_LIMITED and err["frameType"] == "history:request"
