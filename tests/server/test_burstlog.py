"""The connect/disconnect log: a line per event while they are few, one count in a storm (fake clock)."""

from __future__ import annotations

import logging

from workspace_tui.server.burstlog import BurstLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(caplog, burst: int = 3, window: float = 10.0):
    clock = Clock()
    later: list[tuple[float, object]] = []
    logger = logging.getLogger("workspace.test.burstlog")
    caplog.set_level(logging.INFO, logger=logger.name)
    return BurstLog(logger, burst=burst, window=window, clock=clock, later=lambda d, fn: later.append((d, fn))), clock, later


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_few_events_are_each_logged(caplog):
    log, clock, later = make(caplog)
    log.info("connects", "connect %s", "alice")
    log.info("disconnects", "disconnect %s", "alice")
    assert lines(caplog) == ["connect alice", "disconnect alice"]
    assert later == []


def test_a_storm_is_counted_and_summed_up_once_at_the_end_of_the_window(caplog):
    log, clock, later = make(caplog, burst=3)
    for i in range(10):
        log.info("connects", "connect u%d", i)
    for i in range(4):
        log.info("disconnects", "disconnect u%d", i)
    assert lines(caplog) == ["connect u0", "connect u1", "connect u2"]
    assert len(later) == 1 and later[0][0] == 10.0  # one summary, due when the window ends
    clock.now += 10
    later[0][1]()
    assert lines(caplog)[-1] == "busy: 7 connects, 4 disconnects not logged one by one in the last 10 s"


def test_a_new_window_logs_again_after_the_summary(caplog):
    log, clock, later = make(caplog, burst=1)
    log.info("connects", "connect a")
    log.info("connects", "connect b")  # left out
    clock.now += 11  # the timer has not fired yet: the next event writes the summary first
    log.info("connects", "connect c")
    assert lines(caplog) == ["connect a", "busy: 1 connects not logged one by one in the last 10 s", "connect c"]
    later[0][1]()  # the late timer finds nothing left to say
    assert len(lines(caplog)) == 3


def test_nothing_is_counted_when_info_is_off(caplog):
    log, clock, later = make(caplog, burst=0)
    caplog.set_level(logging.WARNING, logger="workspace.test.burstlog")
    log.info("connects", "connect a")
    assert later == [] and not log.left_out
