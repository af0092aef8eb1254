"""The chat's rooms as the sidebar and the switcher see them: order, names, unread, mentions, mute.

Pure (no Textual): the app feeds it what the client says and asks it what to show.
"""

from __future__ import annotations

from dataclasses import dataclass

from workspace_tui.client.reads import GENERAL, RoomSummary
from workspace_tui.client.rooms import dm_others


@dataclass
class RoomView:
    """One room or DM in the sidebar."""

    room: str
    kind: str = "public"
    topic: str = ""
    unread: int = 0
    mentions: int = 0
    others: tuple[str, ...] = ()  # a DM's other participants, as the server spells them
    muted: bool = False

    @property
    def is_dm(self) -> bool:
        return self.kind == "dm" or self.room.startswith("dm:")

    @property
    def label(self) -> str:
        """How the room is shown: ``#dev``, ``# general``, or the DM's other names."""
        if self.is_dm:
            return ", ".join(self.others) or self.room
        return f"#{self.room}"


class Rooms:
    """Every room we are in, general first, then named rooms, then DMs (each group by name)."""

    def __init__(self, me: str = "") -> None:
        self.me = me
        self.views: dict[str, RoomView] = {GENERAL: RoomView(GENERAL)}
        self.muted: set[str] = set()

    def reset(self, summaries: tuple[RoomSummary, ...]) -> None:
        """A fresh list from ``connected.rooms`` (general is always there)."""
        old = self.views
        self.views = {GENERAL: old.get(GENERAL) or RoomView(GENERAL)}
        for summary in summaries:
            self.add(summary)

    def add(self, summary: RoomSummary) -> RoomView:
        view = self.views.get(summary.room) or RoomView(summary.room)
        view.kind = summary.kind
        view.topic = summary.topic
        view.unread, view.mentions = summary.unread, summary.mentions
        view.others = summary.with_ or dm_others(summary.room, self.me)
        view.muted = summary.room in self.muted
        self.views[summary.room] = view
        return view

    def ensure(self, room: str) -> RoomView:
        """The view of *room*, made up when a message arrives before its room:joined."""
        view = self.views.get(room)
        if view is None:
            kind = "dm" if room.startswith("dm:") else "public"
            view = self.views[room] = RoomView(room, kind, others=dm_others(room, self.me), muted=room in self.muted)
        return view

    def remove(self, room: str) -> None:
        if room != GENERAL:
            self.views.pop(room, None)

    def set_muted(self, room: str, muted: bool) -> None:
        (self.muted.add if muted else self.muted.discard)(room)
        if room in self.views:
            self.views[room].muted = muted

    def ordered(self) -> list[RoomView]:
        def key(v: RoomView) -> tuple[int, str]:
            return (0 if v.room == GENERAL else 2 if v.is_dm else 1, v.label.lower())

        return sorted(self.views.values(), key=key)

    def step(self, current: str, by: int) -> str:
        """The room *by* places after *current* in the sidebar's order (wrapping)."""
        order = [v.room for v in self.ordered()]
        if current not in order:
            return order[0]
        return order[(order.index(current) + by) % len(order)]

    def next_unread(self, current: str) -> str | None:
        """The next room below *current* with unread messages (mentions first), wrapping; ``None``: none."""
        order = self.ordered()
        if not order:
            return None
        start = next((i for i, v in enumerate(order) if v.room == current), -1)
        rotated = order[start + 1 :] + order[: start + 1]
        for want_mentions in (True, False):
            for view in rotated:
                if view.room != current and (view.mentions if want_mentions else view.unread):
                    return view.room
        return None


def fuzzy_score(query: str, text: str) -> int | None:
    """How well *query* matches *text* as a subsequence (higher is better); ``None``: no match.

    Case-insensitive. Consecutive letters and a match at the start or after ``-``, ``_``,
    ``,`` or a space score more, so ``dv`` finds ``dev`` before ``deep-review``.
    """
    q, t = query.lower().lstrip("#@"), text.lower()
    if not q:
        return 0
    score, pos, run = 0, 0, 0
    for ch in q:
        found = t.find(ch, pos)
        if found < 0:
            return None
        run = run + 1 if found == pos and pos else 1
        score += run * 2
        if found == 0 or t[found - 1] in "-_, #":
            score += 3
        pos = found + 1
    return score * 100 - len(t)


def fuzzy_rank(query: str, views: list[RoomView]) -> list[RoomView]:
    """The rooms matching *query*, best first (ties in the sidebar's order)."""
    scored = []
    for i, view in enumerate(views):
        best = max((s for s in (fuzzy_score(query, view.label), fuzzy_score(query, view.room)) if s is not None), default=None)
        if best is not None:
            scored.append((-best, i, view))
    return [view for _s, _i, view in sorted(scored, key=lambda row: (row[0], row[1]))]
