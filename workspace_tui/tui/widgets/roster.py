"""The roster: who is here, with a glyph and colour per status.

Online users first, then busy, away and offline, each group by name. You are
marked, and a user connected more than once shows the count (``×2``). The
header says how many are here (not offline) and splits them by status:
``4 here · 2● 1⊘ 1◐``.

On a server that checks names (``--auth claim`` or ``invite``), a user who did not
prove theirs is in italics with a dim ``?``, and a last line says what that means.

With rooms it shows the current room's members (:meth:`Roster.show_room`): for general
everyone online, as before; for another room its members, those offline included.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from workspace_tui.client.events import is_verified
from workspace_tui.protocol import RosterEntry
from workspace_tui.tui.format import STATUS_COLOURS, STATUS_GLYPHS, STATUS_ORDER, safe_name, user_colour


@dataclass(slots=True)
class _Member:
    user_id: str
    username: str
    status: str
    connections: int = 1
    verified: bool = False


UNVERIFIED_MARK = "?"
LEGEND_UNVERIFIED = "? = name not proved"  # fits the roster's 22 columns
LEGEND_OPEN = "names are not checked"


class Roster(Static):
    """The list of users and their statuses, updated live from presence frames."""

    DEFAULT_CSS = """
    Roster {
        width: 24;
        height: 1fr;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.me: str | None = None  # our user id
        self.members: dict[str, _Member] = {}
        self.stale = False  # disconnected: showing the last known roster
        self.auth: str | None = None  # the server's --auth mode, once joined
        self.room = "general"
        self.by_room: dict[str, dict[str, _Member]] = {"general": self.members}

    def set_auth(self, auth: str | None) -> None:
        """The server's mode: names are marked only where the server checks them."""
        self.auth = auth
        self.tooltip = {
            "claim": "A name in italics with ? was not proved: anyone could be using it.",
            "invite": "A name in italics with ? was not proved: anyone could be using it.",
            "open": "This server does not check names: anyone can use any name.",
        }.get(auth or "")

    @property
    def marks_unverified(self) -> bool:
        return self.auth in ("claim", "invite")

    def reset(self, me: str, users: tuple[RosterEntry, ...]) -> None:
        """A fresh roster from a ``connected`` frame."""
        self.me = me
        general = {u.user_id: _Member(u.user_id, u.username, u.status, u.connections, is_verified(u)) for u in users}
        self.by_room["general"] = general
        if self.room == "general":
            self.members = general
        self._redraw()

    def show_room(self, room: str) -> None:
        """Show *room*'s members (none known yet: an empty list until :meth:`set_room_members`)."""
        self.room = room
        self.members = self.by_room.setdefault(room, {})
        self._redraw()

    def set_room_members(self, room: str, entries: list[tuple[str, str, str, bool]], replace: bool = False) -> None:
        """Members of *room* from ``room:members``: (user id, name, status, verified) each; a page adds to the last."""
        online = self.by_room.get("general", {})
        members = {} if replace else self.by_room.get(room, {})
        for user_id, name, status, verified in entries:
            known = online.get(user_id)  # presence we follow live wins over the page's snapshot
            proved = verified or (known is not None and known.verified)
            members[user_id] = _Member(user_id, name, known.status if known else status, 1, proved)
        self.by_room[room] = members
        if self.room == room:
            self.members = members
            self._redraw()

    def room_member(self, room: str, user_id: str, username: str, joined: bool) -> None:
        """*username* joined or left *room* (``room:member``)."""
        members = self.by_room.get(room)
        if members is None:
            return  # not paged yet: the first page will have them
        if joined:
            known = self.by_room.get("general", {}).get(user_id)
            members[user_id] = _Member(
                user_id, username, known.status if known else "offline", 1, known is not None and known.verified
            )
        else:
            members.pop(user_id, None)
        if self.room == room:
            self._redraw()

    def forget_room(self, room: str) -> None:
        if room != "general":
            self.by_room.pop(room, None)

    def update_user(
        self, user_id: str, username: str, status: str, connections: int | None = None, verified: bool | None = None
    ) -> None:
        """``verified``: from a presence frame (missing there is ``False``); ``None`` keeps what we know."""
        for room, members in self.by_room.items():
            if room != "general" and user_id in members:
                members[user_id].status = status  # members of a room stay listed when they go offline
        online = self.by_room["general"]
        member = online.get(user_id)
        if member is None:
            member = online[user_id] = _Member(user_id, username, status, connections or 1)
        member.username, member.status = username, status
        if verified is not None:
            member.verified = verified
        if connections is not None:
            member.connections = connections
        if status == "offline" and (connections == 0 or connections is None) and user_id != self.me:
            # Gone: a user who left has no connections; keep only those who chose "offline".
            if connections == 0:
                del online[user_id]
        self._redraw()

    def set_stale(self, stale: bool) -> None:
        if stale != self.stale:
            self.stale = stale
            self.set_class(stale, "-stale")
            self._redraw()

    def header(self) -> Text:
        """The first line: how many are here (not offline), then a count per status."""
        members = self.members.values()
        here = sum(1 for m in members if m.status != "offline")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{here} here", Style(bold=True))
        if self.stale:
            text.append(" (last known)", Style(dim=True, italic=True))
        elif members:
            text.append(" ·", Style(dim=True))
            for status in STATUS_ORDER:  # online, busy, away, offline
                count = sum(1 for m in members if m.status == status)
                if count:
                    text.append(f" {count}", Style(dim=True))
                    text.append(STATUS_GLYPHS.get(status, "?"), Style(color=STATUS_COLOURS.get(status)))
        return text

    def status_of(self, user_id: str) -> str | None:
        member = self.members.get(user_id)
        return member.status if member else None

    def sorted_members(self) -> list[_Member]:
        return sorted(
            self.members.values(),
            key=lambda m: (STATUS_ORDER.get(m.status, 9), m.username.lower()),
        )

    def unverified(self, member: _Member) -> bool:
        """Whether *member* is shown as not having proved the name."""
        return self.marks_unverified and not member.verified

    def _redraw(self) -> None:
        members = self.sorted_members()
        text = self.header()
        marked = False
        for m in members:
            text.append("\n")
            glyph = STATUS_GLYPHS.get(m.status, "?")
            text.append(glyph + " ", Style(color=STATUS_COLOURS.get(m.status)))
            name = safe_name(m.username)  # appended as plain text: a name is never markup
            unproved = self.unverified(m)
            marked = marked or unproved
            text.append(
                name,
                Style(color=user_colour(m.username), bold=m.user_id == self.me, dim=m.status == "offline", italic=unproved or None),
            )
            if unproved:
                text.append(UNVERIFIED_MARK, Style(dim=True))
            if m.connections > 1:
                text.append(f" ×{m.connections}", Style(dim=True))
            if m.user_id == self.me:
                text.append(" (you)", Style(dim=True))
        if marked:
            text.append("\n" + LEGEND_UNVERIFIED, Style(dim=True, italic=True))
        elif self.auth == "open" and members:
            text.append("\n" + LEGEND_OPEN, Style(dim=True, italic=True))
        self.update(text)
