"""SendGate and SeenIds: the pacing and dedupe arithmetic, with a hand-driven clock."""

from __future__ import annotations

import pytest

from workspace_tui.client.pacing import WINDOW_MAX, SeenIds, SendGate


def test_burst_then_the_refill_rate():
    g = SendGate()
    g.connected(60, now=0.0)  # burst 60, then one per second
    for _ in range(60):
        assert g.delay(0.0) == 0.0
        g.take(0.0)
    assert g.delay(0.0) == pytest.approx(1.0)
    assert g.delay(0.5) == pytest.approx(0.5)
    assert g.delay(1.0) == 0.0


def test_no_limit_never_waits():
    g = SendGate()
    g.connected(0, now=0.0)
    for _ in range(1000):
        g.take(0.0)
    assert g.delay(0.0) == 0.0


def test_bucket_is_kept_across_reconnects():
    g = SendGate()
    g.connected(10, now=0.0)
    for _ in range(10):
        g.take(0.0)
    g.connected(10, now=0.1)  # a reconnect does not hand us a fresh burst
    assert g.delay(0.1) > 5.0


def test_rate_limited_pauses_and_shrinks_the_window():
    g = SendGate()
    g.connected(120, now=0.0)
    g.rate_limited(1500, now=10.0)
    assert g.window == 1
    assert g.delay(10.0) == pytest.approx(1.5)
    assert g.delay(11.5) == 0.0  # the pause is over and 1.5 s refilled 3 tokens
    for _ in range(20):
        g.acknowledged()
    assert g.window == WINDOW_MAX


def test_flood_close_restarts_gently():
    g = SendGate()
    g.connected(100, now=0.0)
    g.flooded(now=1.0)
    assert g.window == 1 and g.delay(1.0) > 0


def test_seen_ids_are_bounded():
    s = SeenIds(maxlen=3)
    assert s.add("a") and s.add("b") and s.add("c")
    assert not s.add("b")
    assert s.add("d")  # "a" falls out
    assert "a" not in s and len(s) == 3
    assert s.add("a")
