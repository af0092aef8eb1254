"""The client's rooms against a real in-process server: room events keep ``client.rooms``
right, messages/typing/history name their room, read positions are kept per room and
reach the user's other connection, and the outbox remembers each queued message's room."""

from __future__ import annotations

from workspace_tui.client import (
    ChatClient,
    HistoryReceived,
    Joined,
    MessageAcknowledged,
    MessageReceived,
    ReadPositionChanged,
)
from workspace_tui.client.events import RoomJoined, RoomLeft, RoomMemberChanged, RoomMembersListed, RoomUpdated, TypingInRoom

from .support import start, started


def make(url: str, username: str, tmp_path, window: str = "") -> ChatClient:
    return ChatClient(
        url, username, state_path=tmp_path / f"{username}{window}.state.sqlite3", backoff_base=0.05, backoff_cap=0.5
    )


async def test_room_events_per_room_reads_typing_and_paging(tmp_path):
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
        assert await one.create_room("dev", "backend")
        await one_rec.wait_event(RoomJoined, lambda e: e.room.room == "dev")
        await two_rec.wait_event(RoomJoined, lambda e: e.room.room == "dev")  # every connection of the user
        assert one.rooms["dev"].topic == "backend" and "dev" in two.rooms
        assert await bob.join_room("dev")
        await one_rec.wait_event(RoomMemberChanged, lambda e: e.room == "dev" and e.username == "bob" and e.joined)

        entry = await bob.send("in dev", room="dev")
        assert entry.room == "dev"
        ack = await bob_rec.wait_event(MessageAcknowledged, lambda e: e.client_msg_id == entry.client_msg_id)
        got = await one_rec.wait_event(MessageReceived, lambda e: e.message.id == ack.message.id)
        assert got.room == "dev"

        await bob.set_typing(True, room="dev")
        typing = await one_rec.wait_event(TypingInRoom)
        assert typing.room == "dev" and typing.username == "bob"

        # Reading dev in one window moves dev's position in the other; general's is untouched.
        assert await one.read(ack.message.id, room="dev")
        pos = await two_rec.wait_event(ReadPositionChanged, lambda e: e.room == "dev")
        assert pos.message_id == ack.message.id
        assert two.last_read_in("dev") == ack.message.id and two.last_read_in("general") is None

        assert await one.request_history(room="dev", limit=10)
        page = await one_rec.wait_event(HistoryReceived, lambda e: e.reason == "page")
        assert page.room == "dev" and [m.text for m in page.messages] == ["in dev"]
        assert all(page.room_of(i) == "dev" for i in range(len(page.messages)))

        assert await one.request_members("dev")
        members = await one_rec.wait_event(RoomMembersListed, lambda e: e.room == "dev")
        assert {m.username for m in members.members} == {"alice", "bob"}

        assert await bob.set_topic("dev", "backend and deploys")
        await one_rec.wait_event(RoomUpdated, lambda e: e.topic == "backend and deploys")
        assert one.rooms["dev"].topic == "backend and deploys"

        assert await one.leave_room("dev")
        await two_rec.wait_event(RoomLeft, lambda e: e.room == "dev")
        assert "dev" not in two.rooms
    finally:
        for c in clients:
            await c.close()
        await server.close()


async def test_a_dm_by_names_and_the_outbox_keeps_its_room(tmp_path):
    server = await start(tmp_path, rate_limit=0, address_rate_limit=0)
    bob = make(server.url, "bob", tmp_path)
    alice = make(server.url, "alice", tmp_path)
    try:
        bob_rec, alice_rec = await started(bob), await started(alice)
        await bob_rec.wait_event(Joined)
        await alice_rec.wait_event(Joined)
        await alice.close()
        # Queued while disconnected: the room is on disk with the text.
        alice = make(server.url, "alice", tmp_path)
        entry = await alice.send("psst", to=["Bob"])
        assert entry.room == "dm:alice,bob"
        assert [e.room for e in alice.outbox()] == ["dm:alice,bob"]
        alice_rec = await started(alice)
        got = await bob_rec.wait_event(MessageReceived, lambda e: e.message.text == "psst")
        assert got.room == "dm:alice,bob"
        joined = await bob_rec.wait_event(RoomJoined, lambda e: e.room.room == "dm:alice,bob")
        assert joined.room.kind == "dm"
    finally:
        await alice.close()
        await bob.close()
        await server.close()
