"""Pure pieces of the client: backoff arithmetic and the SQLite outbox."""

from __future__ import annotations

import multiprocessing
import sqlite3

from hypothesis import given
from hypothesis import strategies as st

from workspace_tui.client.backoff import Backoff
from workspace_tui.client.events import OutboxEntry
from workspace_tui.client.outbox import LAST_MESSAGE_ID, Outbox


def test_full_jitter_doubles_to_the_cap():
    b = Backoff(0.5, 30.0, rng=lambda: 1.0)
    assert [b.next_delay() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    b.reset()
    assert b.next_delay() == 0.5


@given(st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=200))
def test_delays_stay_within_the_ceiling(draws):
    it = iter(draws)
    b = Backoff(0.5, 30.0, rng=lambda: next(it))
    for n, draw in enumerate(draws):
        ceiling = min(30.0, 0.5 * 2**n)
        assert b.next_delay() == draw * ceiling
        assert 0 <= draw * ceiling <= 30.0


def test_a_told_delay_is_about_what_the_server_said_whatever_the_failures_before():
    draws = iter([0.0, 0.5, 1.0, 0.25])
    b = Backoff(0.5, 30.0, rng=lambda: next(draws))
    b.failures = 12  # a long outage: the next plain delay could be anything up to 30 s
    assert [b.told_delay(2.0) for _ in range(3)] == [1.0, 2.0, 3.0]
    assert b.told_delay(100.0) == 30.0  # never past the cap
    assert b.failures == 16


def test_stable_threshold():
    b = Backoff(reset_after=10.0)
    assert not b.stable(9.99)
    assert b.stable(10.0)


def test_outbox_keeps_order_failures_and_resume_point(tmp_path):
    path = tmp_path / "state.sqlite3"
    box = Outbox(path)
    for i in range(5):
        box.add(OutboxEntry(f"c{i}", f"text {i}", "2026-01-01T00:00:00.000Z"))
    box.mark_failed("c2", "empty_text", "message text is empty")
    assert box.remove("c0") is True
    assert box.remove("c0") is False
    box.advance_last_message_id("msg_0000000000005_000000")
    box.advance_last_message_id("msg_0000000000003_000000")  # never goes back
    box.close()

    again = Outbox(path)  # a new process would see the same
    entries = again.entries()
    assert [e.client_msg_id for e, _ in entries] == ["c1", "c2", "c3", "c4"]
    failed = dict((e.client_msg_id, (e, code)) for e, code in entries)["c2"]
    assert failed[0].failed and failed[0].error == "message text is empty" and failed[1] == "empty_text"
    assert again.pending_count() == 3
    assert again.get(LAST_MESSAGE_ID) == "msg_0000000000005_000000"
    again.mark_pending("c2")
    assert again.pending_count() == 4
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _writer(path: str, prefix: str, n: int) -> None:
    box = Outbox(path)
    for i in range(n):
        box.add(OutboxEntry(f"{prefix}{i}", "x", "2026-01-01T00:00:00.000Z"))
    box.close()


def test_two_processes_share_one_outbox(tmp_path):
    path = str(tmp_path / "shared.sqlite3")
    Outbox(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, p, 50)) for p in ("a", "b")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    ids = [e.client_msg_id for e, _ in Outbox(path).entries()]
    assert len(ids) == 100
    # each writer's entries keep their own order
    assert [i for i in ids if i.startswith("a")] == [f"a{i}" for i in range(50)]


def test_client_msg_ids_are_uuid4_hex():
    import uuid

    from workspace_tui.client.client import new_client_msg_id

    ids = {new_client_msg_id() for _ in range(1000)}
    assert len(ids) == 1000
    for i in list(ids)[:50]:
        u = uuid.UUID(hex=i)
        assert u.version == 4 and u.hex == i and len(i) == 32


def _synchronous(box: Outbox) -> int:
    return box._db.execute("PRAGMA synchronous").fetchone()[0]


def test_adds_are_synced_and_acknowledged_removals_need_not_be(tmp_path):
    path = tmp_path / "state.sqlite3"
    box = Outbox(path)  # a new file: its schema is made without a sync of its own
    assert _synchronous(box) == 2  # FULL: add() is on disk when it returns
    for i in range(3):
        box.add(OutboxEntry(f"c{i}", f"text {i}", "2026-01-01T00:00:00.000Z"))
    box.remove_acknowledged("c0")
    assert _synchronous(box) == 2  # back to FULL for whatever comes next
    box.close()
    assert [e.client_msg_id for e, _ in Outbox(path).entries()] == ["c1", "c2"]


def _add_then_die(path: str) -> None:
    import os

    box = Outbox(path)
    box.add(OutboxEntry("kept", "x", "2026-01-01T00:00:00.000Z"))
    box.remove_acknowledged("gone")
    os._exit(0)  # no close: as a one-liner's quick exit, or a crash, leaves it


def test_an_entry_survives_a_process_that_never_closed_the_outbox(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    box = Outbox(path)
    box.add(OutboxEntry("gone", "x", "2026-01-01T00:00:00.000Z"))
    box.close()
    proc = multiprocessing.get_context("spawn").Process(target=_add_then_die, args=(path,))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    assert [e.client_msg_id for e, _ in Outbox(path).entries()] == ["kept"]


def test_an_exiting_process_leaves_the_log_for_the_next_one(tmp_path):
    path = tmp_path / "state.sqlite3"
    box = Outbox(path)
    box.add(OutboxEntry("queued", "x", "2026-01-01T00:00:00.000Z"))
    box.add(OutboxEntry("acked", "y", "2026-01-01T00:00:00.000Z"))
    box.remove_acknowledged("acked")
    box.close(checkpoint=False)  # no checkpoint: the log is still there, and still read
    assert (tmp_path / "state.sqlite3-wal").stat().st_size > 0
    again = Outbox(path)
    assert [e.client_msg_id for e, _ in again.entries()] == ["queued"]
    again.close()
