"""What the chat does with each room event from the client: the sidebar, the roster, the lists.

Called by ``ChatApp.on_room_event_received``; kept here so app.py stays the wiring.
"""

from __future__ import annotations

from typing import Any

from workspace_tui.client.events import (
    RoomInvited,
    RoomJoined,
    RoomLeft,
    RoomMemberChanged,
    RoomMembersListed,
    RoomsListed,
    RoomUpdated,
)
from workspace_tui.client.reads import GENERAL
from workspace_tui.tui.format import safe


def apply_room_event(app: Any, event: Any) -> None:
    """Take in one Room* event (see client/rooms.py)."""
    if isinstance(event, RoomJoined):
        summary = event.room
        app.summaries[summary.room] = summary
        app.rooms.add(summary)
        if summary.room in app._members_asked:
            app._members_asked.discard(summary.room)  # members changed while we were out
        if app._switch_on_join == summary.room:
            app._switch_on_join = None
            app.switch_room(summary.room)
        elif summary.room == app.current_room and app.client is not None:
            app.run_worker(app._first_visit(summary.room), group="rooms")  # a DM on screen now exists
        app._show_rooms()
    elif isinstance(event, RoomLeft):
        app.rooms.remove(event.room)
        app.roster.forget_room(event.room)
        app._members_asked.discard(event.room)
        if app.current_room == event.room:
            app.switch_room(GENERAL)
        ml = app.lists.pop(event.room, None)
        if ml is not None:
            ml.remove()
        app._show_rooms()
    elif isinstance(event, RoomUpdated):
        view = app.rooms.views.get(event.room)
        if view is not None:
            view.topic = event.topic
            app._show_rooms()
    elif isinstance(event, RoomMemberChanged):
        from workspace_tui.protocol import user_id_for

        app.roster.room_member(event.room, user_id_for(event.username), event.username, event.joined)
    elif isinstance(event, RoomInvited):
        app.notify(f"{safe(event.by)} invited you to #{safe(event.room)}: /join {safe(event.room)}",
                    timeout=15, markup=False)
    elif isinstance(event, RoomsListed):
        lines = [
            f"#{safe(r.room)} ({r.members}){' ✓' if r.joined else ''}{'  ' + safe(r.topic) if r.topic else ''}"
            for r in event.rooms if r.kind != "dm"
        ]
        app.notify("\n".join(lines[:30]) or "No rooms.", title="Rooms (✓: you are in)", timeout=15, markup=False)
    elif isinstance(event, RoomMembersListed):
        entries = [(mb.user_id or mb.username.lower(), mb.username, mb.status, mb.verified) for mb in event.members]
        app.roster.set_room_members(event.room, entries)
        if event.next is not None and app.client is not None and len(app.roster.by_room.get(event.room, {})) < 1000:
            app.run_worker(app.client.request_members(event.room, after=event.next), group="rooms")
