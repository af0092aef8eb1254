"""The checker itself: it must see loss, duplication, strangers and disorder when they are there."""

from __future__ import annotations

from .support import classify

SENT = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2"]}


def test_a_clean_run_is_clean():
    seen = [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2"), ("a", "a3")]
    v = classify("x", SENT, seen)
    assert v.clean and v.delivered == 5


def test_each_fault_is_classified():
    seen = [("a", "a1"), ("a", "a3"), ("a", "a2"), ("b", "b1"), ("b", "b1"), ("z", "z9")]
    v = classify("x", SENT, seen)
    assert v.lost == ["b:b2"]
    assert v.duplicated == ["b:b1"]
    assert v.unexpected == ["z:z9"]
    assert v.out_of_order == ["a"]
    assert not v.clean
