"""Pure pieces of the server: limiter arithmetic, id clock, frame encoding."""

from __future__ import annotations

from workspace_tui.backends.sqlite import IdClock
from workspace_tui.core.limits import Limiter
from workspace_tui.server.fanout import text_frame


def test_limiter_burst_refill_sticky_and_flood():
    lim = Limiter(capacity=3, per_second=1.0, flood=4)
    assert [lim.check(0.0) for _ in range(3)] == [0, 0, 0]
    wait = lim.check(0.0)
    assert wait == 1000
    # sticky: even after a token came back, refused until the announced time
    assert lim.check(0.5) == 500
    assert lim.check(0.999) == 1
    assert lim.check(1.0) == 0  # the announced time has come: accepted
    assert not lim.flooding(1.0)
    for t in (1.0, 1.1, 1.2):
        assert lim.check(t) > 0
    assert lim.flooding(1.2)  # 6 refusals > 4 within the window
    assert not lim.flooding(100.0)  # they age out
    assert lim.idle(100.0)


def test_id_clock_is_monotonic_and_continues_after_a_stored_id():
    clock = IdClock("msg_9999999999999_000007")
    a, _ = clock.next()
    b, _ = clock.next()
    assert a == "msg_9999999999999_000008" and b == "msg_9999999999999_000009"
    fresh = IdClock(None)
    ids = [fresh.next()[0] for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == 5000


def test_text_frame_lengths():
    for n, header in ((0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)):
        frame = text_frame(b"x" * n)
        assert frame[0] == 0x81 and len(frame) == n + header


def test_an_offline_presence_frame_never_carries_a_connection_count():
    from workspace_tui.protocol import presence_frame

    assert presence_frame("u1", "bob", "offline", 2)["data"]["connections"] == 0
    assert presence_frame("u1", "bob", "away", 2)["data"]["connections"] == 2
    assert "connections" not in presence_frame("u1", "bob", "offline")["data"]
