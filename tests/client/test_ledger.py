"""The outbox bookkeeping on its own: order, in flight, in doubt, failures (pure, no I/O)."""

from __future__ import annotations

from workspace_tui.client.events import OutboxEntry
from workspace_tui.client.ledger import Ledger


def entry(n: int) -> OutboxEntry:
    return OutboxEntry(f"c{n}", f"text {n}", f"2026-01-01T00:00:0{n}.000Z")


def test_in_flight_and_in_doubt_through_a_dropped_connection():
    book = Ledger()
    for n in range(3):
        book.add(entry(n))
    assert book.next_unsent() == entry(0)
    book.sent("c0", 10)
    book.sent("c1", 500)
    assert book.next_unsent() == entry(2)
    assert book.biggest_in_flight() == "c1"
    assert book.acknowledged("c0") == entry(0)
    assert book.in_doubt == {"c1"}
    book.connection_closed()  # c1 was sent and never answered: maybe stored
    assert book.in_flight == {} and book.in_doubt == {"c1"}
    assert book.next_unsent() == entry(1)  # goes again, in order
    assert book.queued == 2


def test_rate_limited_resends_from_the_refused_one_and_it_is_not_in_doubt():
    book = Ledger()
    for n in range(3):
        book.add(entry(n))
        book.sent(f"c{n}", 10)
    book.resend_from("c1")
    assert set(book.in_flight) == {"c0"}
    assert book.in_doubt == {"c0", "c2"}  # c1 was answered: not stored
    assert book.next_unsent() == entry(1)


def test_failed_entries_keep_their_place_until_retried_or_removed():
    book = Ledger()
    for n in range(3):
        book.add(entry(n))
    book.sent("c1", 10)
    failed = book.failed(entry(1), "too_large", "too big")
    assert failed.failed and failed.error == "too big" and book.codes == {"c1": "too_large"}
    assert "c1" not in book.in_doubt and book.queued == 2
    assert [e.client_msg_id for e in book.entries.values()] == ["c0", "c1", "c2"]
    book.pending_again(entry(1))
    assert book.codes == {} and book.queued == 3
    assert book.remove("c2") == entry(2) and book.remove("c2") is None
    assert book.load([(entry(0), None), (OutboxEntry("c9", "x", "t", True, "no"), None)]) == [
        OutboxEntry("c9", "x", "t", True, "no")
    ]
    assert book.codes == {"c9": "failed"}
