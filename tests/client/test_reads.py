"""Read positions on the client, pure: the frames about them and when ours is reported."""

from __future__ import annotations

from workspace_tui.client.reads import (
    UNREAD_CAP,
    ReadPositionChanged,
    ReadReporter,
    RoomSummary,
    parse_read_position,
    parse_rooms,
)
from workspace_tui.protocol import make_message_id

M1, M2, M3 = (make_message_id(1_700_000_000_000 + i, 0) for i in (1, 2, 3))


def test_rooms_of_connected():
    frame = {
        "type": "connected",
        "rooms": [
            {"room": "general", "lastRead": M1, "unread": 3, "mentions": 1, "lastMessageId": M3},
            {"room": "dev", "lastRead": None, "unread": 0, "mentions": 0, "lastMessageId": None},
        ],
    }
    assert parse_rooms(frame) == (
        RoomSummary("general", M1, 3, 1, M3),
        RoomSummary("dev", None, 0, 0, None),
    )


def test_rooms_from_an_older_server_or_garbage():
    assert parse_rooms({"type": "connected"}) == ()
    assert parse_rooms({"rooms": "general"}) == ()
    assert parse_rooms(None) == ()
    # Bad entries are skipped, bad fields read as nothing (never a crash, never a huge count).
    got = parse_rooms({"rooms": [7, {"room": ""}, {"room": "general", "lastRead": "x", "unread": 10**9, "mentions": True}]})
    assert got == (RoomSummary("general", None, UNREAD_CAP, 0, None),)


def test_read_position_frame():
    assert parse_read_position({"type": "read:position", "room": "general", "messageId": M2}) == ReadPositionChanged(
        "general", M2
    )
    assert parse_read_position({"type": "read:position", "room": "general", "messageId": "nope"}) is None
    assert parse_read_position({"type": "read:position", "messageId": M2}) is None
    assert parse_read_position({"type": "pong"}) is None


def test_reporter_only_forward():
    r = ReadReporter()
    r.learned(M2)
    assert not r.read(M1) and not r.read(M2)
    assert r.take(0.0) is None
    assert r.read(M3)
    assert r.take(0.0) == M3


def test_reporter_at_most_one_a_second_newest_wins():
    r = ReadReporter(interval=1.0)
    assert r.read(M1)
    assert r.take(10.0) == M1
    r.sent(M1, True)
    r.read(M2)
    r.read(M3)
    assert r.take(10.5) is None and r.wait(10.5) == 0.5
    assert r.take(11.0) == M3  # one frame for both
    r.sent(M3, True)
    assert r.take(20.0) is None  # nothing new


def test_reporter_unsent_goes_after_the_next_join():
    r = ReadReporter()
    r.read(M2)
    assert r.take(0.0) == M2
    r.sent(M2, False)
    assert r.wanted == M2
    r.learned(M1)  # the server's (older) position, from connected
    assert r.take(5.0) == M2


def test_reporter_drops_what_another_device_already_read():
    r = ReadReporter()
    r.read(M2)
    r.learned(M3)  # read:position from another window
    assert r.wanted is None and r.take(0.0) is None


def test_reporter_an_older_read_while_one_waits_is_no_news():
    r = ReadReporter()
    r.read(M1)
    assert r.take(0.0) == M1
    r.sent(M1, True)
    assert r.read(M3)
    assert not r.read(M2)
    assert r.take(1.0) == M3
