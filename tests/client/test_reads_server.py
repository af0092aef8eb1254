"""Read positions against a real in-process server: two connections of one user, counts on join."""

from __future__ import annotations

from workspace_tui.client import ChatClient, Joined, MessageAcknowledged, MessageReceived, ReadPositionChanged

from .support import Recorder, start, started


def make(url: str, username: str, tmp_path, window: str = "") -> ChatClient:
    # One state file per window: two windows of one user, as on two devices.
    return ChatClient(
        url, username, state_path=tmp_path / f"{username}{window}.state.sqlite3", backoff_base=0.05, backoff_cap=0.5
    )


async def bob_says(bob: ChatClient, rec: Recorder, *texts: str) -> list[str]:
    """Send *texts* as bob; the stored ids, in order."""
    ids = []
    for text in texts:
        entry = await bob.send(text)
        ack = await rec.wait_event(MessageAcknowledged, lambda e, c=entry.client_msg_id: e.client_msg_id == c)
        ids.append(ack.message.id)
    return ids


def general(joined: Joined):
    return next(r for r in joined.rooms if r.room == "general")


async def test_reading_in_one_connection_reaches_the_other_once_coalesced(tmp_path):
    server = await start(tmp_path, rate_limit=0, address_rate_limit=0)
    clients: list[ChatClient] = []
    try:
        bob = make(server.url, "bob", tmp_path)
        one = make(server.url, "alice", tmp_path, "1")
        two = make(server.url, "alice", tmp_path, "2")
        clients += [bob, one, two]
        bob_rec, one_rec, two_rec = [await started(c) for c in clients]
        for rec in (bob_rec, one_rec, two_rec):
            await rec.wait_event(Joined)
        m1, m2, m3 = await bob_says(bob, bob_rec, "one", "two", "three")
        await two_rec.wait_event(MessageReceived, lambda e: e.message.id == m3)

        assert await one.read(m1)
        assert await one.read(m2)  # within the second: coalesced with the next
        assert await one.read(m3)
        assert not await one.read(m2)  # only forward
        got = await two_rec.wait_event(ReadPositionChanged, lambda e: e.message_id == m3)
        assert got.room == "general"
        # Frames arrive in order: m2 would have come before m3. One frame for m2 and m3.
        assert [e.message_id for e in two_rec.of(ReadPositionChanged)] == [m1, m3]
        assert one.last_read == m3 and two.last_read == m3  # the other window knows it too
        assert not await two.read(m2)  # ... and does not send it back
    finally:
        for c in clients:
            await c.close()
        await server.close()


async def test_unread_and_mentions_on_connected_after_a_restart(tmp_path):
    db = tmp_path / "server.sqlite3"
    server = await start(tmp_path, rate_limit=0, address_rate_limit=0)
    port = server.port
    clients: list[ChatClient] = []
    try:
        bob = make(server.url, "bob", tmp_path)
        alice = make(server.url, "alice", tmp_path)
        other = make(server.url, "alice", tmp_path, "-other")  # sees alice's read land on the server
        clients += [bob, alice, other]
        bob_rec, alice_rec, other_rec = [await started(c) for c in clients]
        for rec in (bob_rec, alice_rec, other_rec):
            joined = await rec.wait_event(Joined)
        assert general(joined).last_read is None and general(joined).unread == 0  # never read anything
        (first,) = await bob_says(bob, bob_rec, "before")
        await alice_rec.wait_event(MessageReceived, lambda e: e.message.id == first)
        await alice.read(first)
        await other_rec.wait_event(ReadPositionChanged, lambda e: e.message_id == first)
        await alice.close()
        await other.close()
        later = await bob_says(bob, bob_rec, "after one", "hey @Alice look", "after three")
        await bob.close()
        await server.close()

        server = await start(tmp_path, port=port, db_path=db, rate_limit=0, address_rate_limit=0)
        again = make(server.url, "alice", tmp_path, "-again")
        clients.append(again)
        rec = await started(again)
        summary = general(await rec.wait_event(Joined))
        assert summary.last_read == first
        assert summary.unread == 3 and summary.mentions == 1
        assert summary.last_message_id == later[-1]
        assert again.last_read == first
    finally:
        for c in clients:
            await c.close()
        await server.close()


async def test_a_read_while_disconnected_goes_out_after_the_join(tmp_path):
    server = await start(tmp_path, rate_limit=0, address_rate_limit=0)
    clients: list[ChatClient] = []
    try:
        bob = make(server.url, "bob", tmp_path)
        other = make(server.url, "alice", tmp_path, "-other")
        clients += [bob, other]
        bob_rec, other_rec = [await started(c) for c in clients]
        await other_rec.wait_event(Joined)
        (mid,) = await bob_says(bob, bob_rec, "read me offline")
        late = make(server.url, "alice", tmp_path, "-late")
        clients.append(late)
        assert await late.read(mid)  # not started: nothing to send it on yet
        assert late.last_read == mid
        rec = await started(late)
        await rec.wait_event(Joined)
        await other_rec.wait_event(ReadPositionChanged, lambda e: e.message_id == mid)
    finally:
        for c in clients:
            await c.close()
        await server.close()
