"""Room names as the one-liners read them and print them (pure: no server)."""

from __future__ import annotations

import pytest

from workspace_tui.cli.roomnames import RoomNameError, dm_room, parse_room, room_label
from workspace_tui.cli.rooms import readable_room, room_rows
from workspace_tui.client import RoomSummary


def test_what_the_user_types_becomes_a_room_id():
    assert parse_room("dev", "Alice") == "dev"
    assert parse_room("#dev", "Alice") == "dev"
    assert parse_room("@Bob", "Alice") == "dm:alice,bob"
    assert parse_room("@carol,bob", "alice") == "dm:alice,bob,carol"
    assert parse_room("dm:bob,alice", "alice") == "dm:alice,bob"
    assert parse_room("dm:alice,bob", "carol") == "dm:alice,bob"  # not carol's: the server refuses it
    assert dm_room("zed", ["bob", "@amy"]) == "dm:amy,bob,zed"


@pytest.mark.parametrize("bad", ["Dev", "#", "-dev", "a" * 33, "dev ops", "@", "@alice", "@bad name", "dm:alice"])
def test_what_is_not_a_room_says_why(bad):
    with pytest.raises(RoomNameError):
        parse_room(bad, "alice")


def test_a_direct_message_has_at_most_seven_others():
    names = [f"u{i}" for i in range(7)]
    assert dm_room("alice", names).count(",") == 7
    with pytest.raises(RoomNameError, match="at most 7"):
        dm_room("alice", [*names, "u7"])


def test_labels_name_the_others_of_a_direct_message():
    assert room_label("dev", "alice") == "#dev"
    assert room_label(None, "alice") == "#general"
    assert room_label("dm:alice,bob", "Alice") == "@bob"
    assert room_label("dm:alice,bob,carol", "bob") == "@alice,carol"


def test_rows_join_counts_and_details_general_first_then_rooms_then_dms():
    summaries = {
        "general": RoomSummary("general", None, 3, 1),
        "dm:alice,bob": RoomSummary("dm:alice,bob", None, 1, 0),
        "dev": RoomSummary("dev", None, 0, 0),
    }
    listed = [
        {"room": "dev", "kind": "public", "topic": "backend\x1b[31m", "members": 2, "joined": True},
        {"room": "ops", "kind": "public", "topic": "", "members": 5, "joined": False},
        {"room": "dm:alice,bob", "kind": "dm", "members": 2, "joined": True},
    ]
    rows = room_rows("alice", summaries, listed, everything=False)
    assert [r["room"] for r in rows] == ["general", "dev", "dm:alice,bob"]
    assert rows[2]["with"] == ["bob"] and rows[2]["label"] == "@bob"
    assert [readable_room(r) for r in rows] == [
        "#general  3 unread  1 mention",
        "#dev  2 members  — backend",  # the escape sequence is gone
        "@bob  1 unread",
    ]
    everything = room_rows("alice", summaries, listed, everything=True)
    assert [r["room"] for r in everything] == ["general", "dev", "dm:alice,bob", "ops"]
    assert readable_room(everything[-1]) == "#ops  (not joined)  5 members"
