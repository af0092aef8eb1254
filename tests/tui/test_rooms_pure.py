"""The pure parts of rooms in the chat: fuzzy ranking, room order and keys, slash-command
parsing, completion, and what goes into a desktop notification."""

from __future__ import annotations

from workspace_tui.client.reads import RoomSummary
from workspace_tui.client.rooms import dm_others, dm_room_id, parse_room_frame, RoomJoined, RoomMembersListed
from workspace_tui.tui.commands import Command, Post, Unknown, action_text, parse
from workspace_tui.tui.completion import complete, cycle
from workspace_tui.tui.notify import clean, methods_for, osc777, osc9, why_notify
from workspace_tui.tui.rooms import RoomView, Rooms, fuzzy_rank, fuzzy_score


def rooms() -> Rooms:
    r = Rooms("alice")
    r.reset((
        RoomSummary("general", None, 0, 0),
        RoomSummary("dev", None, 2, 0),
        RoomSummary("deep-review", None, 0, 0),
        RoomSummary("dm:alice,bob", None, 1, 1, kind="dm", with_=("bob",)),
        RoomSummary("ops", None, 0, 0, kind="private"),
    ))
    return r


def test_fuzzy_prefers_starts_and_runs():
    assert fuzzy_score("xyz", "dev") is None
    assert fuzzy_score("dv", "dev") > fuzzy_score("dv", "deep-review")
    views = rooms().ordered()
    assert [v.room for v in fuzzy_rank("dr", views)][0] == "deep-review"
    assert [v.room for v in fuzzy_rank("bo", views)] == ["dm:alice,bob"]  # a DM by the other's name
    assert [v.room for v in fuzzy_rank("#ops", views)] == ["ops"]


def test_order_step_and_next_unread():
    r = rooms()
    assert [v.label for v in r.ordered()] == ["#general", "#deep-review", "#dev", "#ops", "bob"]
    assert r.step("general", -1) == "dm:alice,bob" and r.step("dm:alice,bob", 1) == "general"
    assert r.next_unread("general") == "dm:alice,bob"  # mentions first
    r.views["dm:alice,bob"].mentions = 0
    assert r.next_unread("general") == "dev"
    for v in r.views.values():
        v.unread = v.mentions = 0
    assert r.next_unread("general") is None


def test_dm_ids():
    assert dm_room_id("Alice", ["bob", "Carol", "bob"]) == "dm:alice,bob,carol"
    assert dm_others("dm:alice,bob,carol", "alice") == ("bob", "carol")
    assert RoomView("dm:alice,bob", "dm", others=("bob",)).label == "bob"


def test_slash_parsing():
    assert parse("hello") == Post("hello")
    assert parse("//shrug") == Post("/shrug")
    assert parse("/ spaced") == Post("/ spaced")
    assert parse("/me waves") == Post("/me waves")
    assert parse("/JOIN #dev") == Command("join", "#dev")
    assert parse("/frob x") == Unknown("frob")
    assert action_text("/me waves") == "waves" and action_text("/me ") is None and action_text("me waves") is None


def test_completion_and_cycling():
    names, rooms_ = ["bob", "bea", "carol"], ["general", "dev"]
    done = complete("hi @b", 5, names, rooms_)
    assert done is not None and done.text == "hi @bea " and done.candidates == ("@bea ", "@bob ")
    again = cycle(done.text, 3, done.cursor, done)
    assert again.text == "hi @bob "
    assert complete("#d", 2, names, rooms_).text == "#dev "
    assert complete("/he", 3, names, rooms_).text == "/help "
    assert complete("say /he", 7, names, rooms_) is None  # a command only at the start
    assert complete("ca", 2, names, rooms_).text == "carol: "
    assert complete("zz", 2, names, rooms_) is None


def test_notify_rules():
    kw = dict(me="alice", room="dev", is_dm=False, highlights=["deploy"])
    assert why_notify("the deploy is done", author="bob", **kw) == "highlight"
    assert why_notify("redeployment", author="bob", **kw) is None  # a word, not a piece of one
    assert why_notify("hey @alice", author="bob", **kw) == "mention"
    assert why_notify("hey @alice", author="alice", **kw) is None  # our own
    assert why_notify("anything", author="bob", me="alice", room="dm:alice,bob", is_dm=True) == "dm"


def test_what_goes_into_an_escape_sequence_is_inert():
    evil = "a\x1b]0;owned\x07b\x9b\u202e\u200bc\nnext;line"
    assert clean(evil, 200) == "a]0;ownedbc next;line"
    seq = osc777("bob; in #dev", evil)
    assert seq.count("\x1b") == 1 and seq.count("\x07") == 1 and seq.endswith("\x07")
    assert seq.startswith("\x1b]777;notify;bob, in #dev;")  # a ; in the title cannot shift the body
    assert osc9("t", "x" * 1000).count("\x1b") == 1 and len(osc9("t", "x" * 1000)) < 300


def test_methods_from_the_environment():
    none = lambda name: None  # noqa: E731 - no notify-send on PATH
    found = lambda name: "/usr/bin/" + name  # noqa: E731
    assert methods_for({"TERM_PROGRAM": "iTerm.app"}, none) == ("osc9",)
    assert methods_for({"TERM_PROGRAM": "WezTerm"}, none) == ("osc777",)
    assert methods_for({"TERM": "foot"}, none) == ("osc777",)
    assert methods_for({"TERM_PROGRAM": "WezTerm", "TMUX": "/tmp/t"}, none) == ()  # tmux would swallow it
    assert methods_for({"TERM": "xterm-256color", "DISPLAY": ":0"}, found) == ("notify-send",)
    assert methods_for({"TERM": "xterm-256color", "DISPLAY": ":0"}, none) == ()
    assert methods_for({"WORKSPACE_NOTIFY": "osc9, bogus"}, none) == ("osc9",)


def test_room_frames_are_parsed_defensively():
    joined = parse_room_frame({"type": "room:joined", "room": {"room": "dev", "kind": "public", "topic": "t",
                                                                "members": 3, "unread": 2, "mentions": 1}})
    assert isinstance(joined, RoomJoined) and joined.room.unread == 2 and joined.room.topic == "t"
    assert parse_room_frame({"type": "room:joined", "room": "nope"}) is None
    assert parse_room_frame({"type": "room:members", "room": "dev", "members": [
        {"username": "bob", "userId": "u1", "status": "online"}, {"username": 5}, "x"], "next": None}) == \
        RoomMembersListed("dev", (parse_room_frame({"type": "room:members", "room": "dev", "members": [
            {"username": "bob", "userId": "u1", "status": "online"}]}).members[0],), None)
    assert parse_room_frame({"type": "message:new"}) is None
