"""What each slash command does in the chat: :func:`run_line` takes a submitted line.

Parsing is in tui/commands.py (pure); this module acts on the app. Answers are local
(toasts), never posted. Room ids lose a leading ``#`` and are lowercased.
"""

from __future__ import annotations

from typing import Any

from workspace_tui.client.reads import GENERAL
from workspace_tui.client.rooms import dm_room_id, valid_room_id
from workspace_tui.tui.commands import Command, Post, Unknown, help_lines, parse
from workspace_tui.tui.format import safe, safe_name


def _say(app: Any, text: str, *, title: str | None = None, warn: bool = False, timeout: float = 8) -> None:
    app.notify(text, title=title or "", severity="warning" if warn else "information", timeout=timeout, markup=False)


def room_arg(word: str) -> str:
    return word.strip().lstrip("#").lower()


async def run_line(app: Any, line: str) -> None:
    """Post *line*, or run it as a command."""
    what = parse(line)
    if isinstance(what, Post):
        await app.send_to_room(what.text)
        return
    if isinstance(what, Unknown):
        _say(app, f"Unknown command /{safe_name(what.name)} (not sent). /help lists them; //text sends /text.", warn=True)
        app.chat_input.load_text(line)  # give the line back: fix it or clear it
        app.chat_input.move_cursor(app.chat_input.document.end)
        return
    await _COMMANDS[what.name](app, what)


async def _join(app: Any, cmd: Command) -> None:
    room = room_arg(cmd.args.split(" ")[0]) if cmd.args else ""
    if not room:
        _say(app, "Usage: /join ROOM", warn=True)
        return
    if room in app.rooms.views:
        app.switch_room(room)
        return
    if not valid_room_id(room):
        _say(app, f"Not a room name: {safe_name(room)} (a-z, 0-9, - and _, at most 32)", warn=True)
        return
    app._switch_on_join = room
    if app.client is None or not await app.client.join_room(room):
        _say(app, "Not connected: try again once connected.", warn=True)


async def _leave(app: Any, cmd: Command) -> None:
    room = app.current_room
    if room == GENERAL or room.startswith("dm:"):
        _say(app, "You cannot leave general or a direct message.", warn=True)
        return
    if app.client is None or not await app.client.leave_room(room):
        _say(app, "Not connected: try again once connected.", warn=True)


async def _create(app: Any, cmd: Command) -> None:
    words = cmd.args.split(" ", 1)
    private = words[0] in ("-p", "--private")
    if private:
        words = words[1].split(" ", 1) if len(words) > 1 else [""]
    room = room_arg(words[0]) if words and words[0] else ""
    topic = words[1].strip() if len(words) > 1 else ""
    if not room or not valid_room_id(room) or room == GENERAL:
        _say(app, "Usage: /create [-p] ROOM [topic]  (ROOM: a-z, 0-9, - and _, at most 32)", warn=True)
        return
    app._switch_on_join = room
    if app.client is None or not await app.client.create_room(room, topic, private):
        _say(app, "Not connected: try again once connected.", warn=True)


async def _invite(app: Any, cmd: Command) -> None:
    name = cmd.args.split(" ")[0].lstrip("@") if cmd.args else ""
    room = app.current_room
    if not name or room == GENERAL or room.startswith("dm:"):
        _say(app, "Usage: /invite NAME, in the room to invite to (not general or a DM)", warn=True)
        return
    if app.client is None or not await app.client.invite(room, name):
        _say(app, "Not connected: try again once connected.", warn=True)
    else:
        _say(app, f"Invited {safe_name(name)} to #{room}.")


async def _topic(app: Any, cmd: Command) -> None:
    if not cmd.args:
        view = app.rooms.views.get(app.current_room)
        _say(app, f"Topic: {safe(view.topic)}" if view is not None and view.topic else "No topic. /topic TEXT sets one.")
        return
    if app.client is None or not await app.client.set_topic(app.current_room, cmd.args):
        _say(app, "Not connected: try again once connected.", warn=True)


async def _msg(app: Any, cmd: Command) -> None:
    head, _, text = cmd.args.partition(" ")
    names = [n.strip().lstrip("@") for n in head.split(",") if n.strip().lstrip("@")]
    me = (app.username or "").lower()
    names = [n for n in names if n.lower() != me]
    if not names:
        _say(app, "Usage: /msg NAME[,NAME…] [text]", warn=True)
        return
    if len(names) > 7:
        _say(app, "A direct message has at most 8 people, you included.", warn=True)
        return
    room = dm_room_id(app.username or "", names)
    view = app.rooms.ensure(room)
    if not view.others:
        view.others = tuple(names)
    view.kind = "dm"
    app.switch_room(room)
    if text.strip():
        await app.send_to_room(text.strip(), to=names)


async def _me(app: Any, cmd: Command) -> None:
    _say(app, "Usage: /me ACTION (shown as: you * ACTION)", warn=True)


async def _away(app: Any, cmd: Command) -> None:
    # The protocol has no field for a reason: it stays on this screen.
    app.away_reason = cmd.args or None
    await app.action_status("away")
    _say(app, f"You are away: {safe(cmd.args)}" if cmd.args else "You are away.")


async def _back(app: Any, cmd: Command) -> None:
    app.away_reason = None
    await app.action_status("online")


async def _who(app: Any, cmd: Command) -> None:
    members = app.roster.sorted_members()
    view = app.rooms.views.get(app.current_room)
    where = view.label if view is not None else app.current_room
    if not members:
        _say(app, f"No members known for {safe_name(where)} yet.")
        return
    lines = [f"{safe_name(mb.username)} ({mb.status})" for mb in members[:40]]
    more = f"\n… and {len(members) - 40} more" if len(members) > 40 else ""
    _say(app, ", ".join(lines) + more, title=f"In {safe_name(where)}: {len(members)}", timeout=12)


async def _rooms(app: Any, cmd: Command) -> None:
    if app.client is None or not await app.client.list_rooms():
        _say(app, "Not connected: try again once connected.", warn=True)


async def _mute(app: Any, cmd: Command) -> None:
    app.set_muted(app.current_room, True)
    _say(app, "Muted: no notifications from this room (/unmute undoes it).")


async def _unmute(app: Any, cmd: Command) -> None:
    app.set_muted(app.current_room, False)
    _say(app, "Notifications from this room are on again.")


async def _help(app: Any, cmd: Command) -> None:
    _say(app, "\n".join(help_lines()), title="Commands", timeout=20)


_COMMANDS = {
    "join": _join,
    "leave": _leave,
    "create": _create,
    "invite": _invite,
    "topic": _topic,
    "msg": _msg,
    "me": _me,
    "away": _away,
    "back": _back,
    "who": _who,
    "rooms": _rooms,
    "mute": _mute,
    "unmute": _unmute,
    "help": _help,
}
