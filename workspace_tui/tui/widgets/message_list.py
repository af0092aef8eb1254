"""The conversation: a virtual list that renders only the lines on screen.

Built on Textual's Line API (``ScrollView`` + ``render_line``), so 10,000
messages cost a list of row records and a prefix sum of their heights, not
10,000 widgets. Rows are: the top line (``beginning of conversation`` or
``loading…``), date separators, messages, the "new messages" marker, and our
own pending or failed messages at the bottom.

The marker sits after the message where reading stopped: the server's read position
on join (it survives a restart), moved forward when another window or device of
ours reads further, or set here when messages arrive while the view is scrolled up.
Reaching the newest message posts :class:`MarkRead`; the app decides whether that
counts as read (the window must have the focus).

Wrapping is done here (:func:`wrap_spans`) rather than by Rich, so a row's
height can be computed without rendering it; heights are cached per width.
http(s) URLs are OSC 8 hyperlinks (``Style(link=...)``), whole even when cut.
"""

from __future__ import annotations

import re
from bisect import bisect_right, insort
from dataclasses import dataclass, field
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from workspace_tui.client.events import OutboxEntry, is_verified
from workspace_tui.protocol import ChatMessage
from workspace_tui.tui.format import date_label, links, local_time, mentions, safe, safe_name, user_colour
from workspace_tui.tui.messages import LoadOlder, MarkRead, UnseenChanged
from workspace_tui.tui.commands import action_text

NICK_WIDTH = 12
UNVERIFIED_MARK = "?"  # after a name its author did not prove (see the roster's legend)
TIME_WIDTH = 5
GUTTER = TIME_WIDTH + 1 + NICK_WIDTH + 3  # "12:34 " + nick + " │ "
MIN_TEXT_WIDTH = 10
LOAD_AT_ROWS = 2  # ask for older history when the view is this close to the top
MAX_LOADED = 20_000  # messages kept while at the bottom; older ones are paged back in on demand

# Characters that must not start a line: they stay with the character before them (kinsoku).
_NO_BREAK_BEFORE = frozenset(
    "、。，．・：；！？）］｝〕〉》」』】〙〗〟’”ー々〻ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶ…‥"
    ".,;:!?)]}%"
)


_ASCII_TOKENS = re.compile(r"\s+|\S+")


def _wide(ch: str) -> bool:
    return cell_len(ch) == 2


def _tokens(line: str) -> list[tuple[int, int, bool]]:
    """``(start, end, is_space)`` runs of ``line``: whitespace, a word, or one wide character.

    A line may break before a token. Ideographs (and the rest of the double-width
    scripts) break between any two characters, the way CJK text is set; closing
    punctuation and combining marks stay with what they follow.
    """
    if line.isascii():  # one cell per character: words and spaces are enough
        return [(m.start(), m.end(), m.group()[0].isspace()) for m in _ASCII_TOKENS.finditer(line)]
    out: list[tuple[int, int, bool]] = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        j = i + 1
        if ch.isspace():
            while j < n and line[j].isspace():
                j += 1
            out.append((i, j, True))
        elif _wide(ch):
            while j < n and (line[j] in _NO_BREAK_BEFORE or cell_len(line[j]) == 0):
                j += 1
            out.append((i, j, False))
        else:
            while j < n and not line[j].isspace() and (not _wide(line[j]) or line[j] in _NO_BREAK_BEFORE):
                j += 1
            out.append((i, j, False))
        i = j
    return out


def wrap_spans(line: str, width: int) -> list[tuple[int, int]]:
    """Where one line breaks at ``width`` cells: ``(start, end)`` of each screen line.

    Only whitespace at a break is left out (what lies between two spans is
    whitespace or nothing), so the lines read back as the text. A word wider than
    a whole line starts a line of its own and is cut at the edge, on character
    boundaries (a double-width character is never split): a long URL fills whole
    lines and nothing is ever inserted into it.
    """
    if len(line) <= width and (line.isascii() or cell_len(line) <= width):
        return [(0, len(line))]
    width = max(1, width)
    ascii_only = line.isascii()
    spans: list[tuple[int, int]] = []
    start = end = -1  # the current screen line, once it has something on it
    col = gap = 0  # cells used on it; cells of the whitespace since its end
    for a, b, space in _tokens(line):
        if space and start >= 0:
            gap = b - a if ascii_only else cell_len(line[a:b])
            continue
        w = b - a if ascii_only else cell_len(line[a:b])  # leading whitespace (indentation) is kept, like a word
        if start >= 0 and col + gap + w <= width:
            end, col, gap = b, col + gap + w, 0
            continue
        if start >= 0:
            spans.append((start, end))
        if w <= width:
            start, end, col, gap = a, b, w, 0
            continue
        i = a  # longer than a line: cut at the edge
        if ascii_only:
            while b - i > width:
                spans.append((i, i + width))
                i += width
            start, end, col, gap = i, b, b - i, 0
            continue
        while i < b:
            j, cw = i, 0
            while j < b and (cw + cell_len(line[j]) <= width or j == i):
                cw += cell_len(line[j])
                j += 1
            if j < b:
                spans.append((i, j))
            else:
                start, end, col, gap = i, j, cw, 0
            i = j
    if start >= 0:
        spans.append((start, end))
    return spans or [(0, 0)]


def wrap_line(line: str, width: int) -> list[str]:
    """Word wrap of one line to ``width`` cells (see :func:`wrap_spans`)."""
    return [line[a:b] for a, b in wrap_spans(line, width)]


@dataclass(slots=True)
class _Entry:
    """A stored message with what rendering needs precomputed."""

    message: ChatMessage
    when: datetime
    day: int  # proleptic ordinal of the local date
    name: str
    lines: list[str]  # sanitized text split on newlines
    action: bool = False  # a /me message: its text is the action
    heights: dict[int, int] = field(default_factory=dict)  # width -> rendered lines


@dataclass(slots=True)
class _Pending:
    entry: OutboxEntry
    when: datetime
    lines: list[str]
    failed_reason: str | None = None


@dataclass(slots=True)
class _Row:
    kind: str  # "top", "sep", "msg", "marker", "pending"
    key: Any
    entry: _Entry | None = None
    pending: _Pending | None = None
    label: str = ""
    heights: dict[int, int] = field(default_factory=dict)


class MessageList(ScrollView, can_focus=True):
    """The scrollable, virtual list of messages."""

    DEFAULT_CSS = """
    MessageList {
        overflow-x: hidden;
        overflow-y: scroll;
    }
    """

    COMPONENT_CLASSES = {
        "message-list--time",
        "message-list--separator",
        "message-list--marker",
        "message-list--pending",
        "message-list--failed",
        "message-list--mention",
        "message-list--top",
    }

    def __init__(self, username: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.username = username
        self.room = "general"  # the room (or dm: id) this list shows; its messages to the app say so
        self.mark_unverified = False  # the server checks names: mark those not proved
        self.has_more = False
        self.loading_older = False
        self.unseen = 0
        self.unseen_mentions = 0  # of the unseen, those that name us
        self._entries: list[_Entry] = []
        self._ids: set[str] = set()
        self._pending: dict[str, _Pending] = {}
        self._read_from: str | None = None  # the marker sits after this id (None: no marker)
        self._marker_before: str | None = None  # the first message below the marker, once placed
        self._scroll_to_marker = False  # on join: start where reading stopped, not at the bottom
        self._read_posted: str | None = None  # the newest id last reported with MarkRead
        self._rows: list[_Row] = []
        self._cum: list[int] = []  # cumulative heights of self._rows
        self._tail: list[_Row] = []  # pending rows, always last
        self._tail_cum: list[int] = []
        self._width = 0
        self._strips: LRUCache[tuple[Any, int], list[Strip]] = LRUCache(4096)
        self._dirty_full = True
        self._scheduled = False
        self._stick = True
        self.max_loaded = MAX_LOADED
        self.failed_hint = "F8 retry · F9 discard"  # the app sets it from the current keys
        self.now: Callable[[], datetime] = lambda: datetime.now().astimezone()  # tests move the clock

    # -- public API (called by the app) ------------------------------------

    @property
    def message_count(self) -> int:
        return len(self._entries)

    @property
    def oldest_id(self) -> str | None:
        return self._entries[0].message.id if self._entries else None

    @property
    def pending_ids(self) -> list[str]:
        return list(self._pending)

    def failed_ids(self) -> list[str]:
        return [cmid for cmid, p in self._pending.items() if p.failed_reason is not None]

    def failed_entries(self) -> list[tuple[OutboxEntry, str]]:
        """Our failed messages with their reasons, oldest first (as shown at the bottom)."""
        rows = [(p.entry, p.failed_reason) for p in self._pending.values() if p.failed_reason is not None]
        return sorted(rows, key=lambda row: row[0].created_at)  # type: ignore[return-value]

    @property
    def newest_id(self) -> str | None:
        return self._entries[-1].message.id if self._entries else None

    @property
    def marker_after(self) -> str | None:
        """The id the "new messages" marker follows, while it is shown."""
        return self._read_from if self._marker_before is not None else None

    def at_newest(self) -> bool:
        """The view is at the bottom: the newest message is in view."""
        return self.is_mounted and not self._scheduled and self._at_bottom()

    def set_read_position(self, message_id: str | None, unread: int = 0, mentions: int = 0) -> None:
        """Where reading stopped, per the server on join: the marker goes after *message_id*.

        With more unread than fits on screen the view opens at the marker. ``unread`` and
        ``mentions`` (the server's counts) are what the status bar shows until the bottom is reached.
        """
        self._note_position()
        self._read_from = message_id if unread else None
        self._marker_before = None
        self._scroll_to_marker = bool(unread)
        self._dirty_full = True
        self._schedule()
        if unread != self.unseen or mentions != self.unseen_mentions:
            self.unseen, self.unseen_mentions = unread, mentions
            self.post_message(UnseenChanged(unread, mentions, self.room))

    def read_elsewhere(self, message_id: str) -> None:
        """Another window or device of ours read up to *message_id*: the marker moves past it."""
        if self._read_from is not None and message_id > self._read_from:
            self._note_position()
            self._read_from = message_id
            self._dirty_full = True
            self._schedule()
        if self.unseen:
            after = 0  # messages of others still after what was read
            for entry in reversed(self._entries):
                if entry.message.id <= message_id or after >= self.unseen:
                    break
                after += entry.message.username != self.username
            if after < self.unseen:
                self.unseen = after
                self.unseen_mentions = min(self.unseen_mentions, after)
                self.post_message(UnseenChanged(self.unseen, self.unseen_mentions, self.room))

    def has_message(self, message_id: str) -> bool:
        return message_id in self._ids

    def add_messages(self, messages: list[ChatMessage] | tuple[ChatMessage, ...], *, live: bool = False) -> int:
        """Add messages (any order, duplicates ignored). Returns how many were new.

        ``live`` messages arriving while scrolled up count as unseen.
        """
        self._note_position()
        added = 0
        for message in messages:
            if message.id in self._ids:
                continue
            entry = self._make_entry(message)
            self._ids.add(message.id)
            if not self._entries or message.id > self._entries[-1].message.id:
                if live and not self._stick and message.username != self.username:
                    if self._marker_before is None and (self._read_from is None or not self._dirty_full):
                        self._read_from = self._entries[-1].message.id if self._entries else None
                        self._marker_before = message.id
                        self._append_row(_Row("marker", "marker"))
                    self.unseen += 1
                    if self.username and mentions(message.text, self.username):
                        self.unseen_mentions += 1
                self._entries.append(entry)
                self._append_message_row(entry)
            else:
                insort(self._entries, entry, key=lambda e: e.message.id)
                self._dirty_full = True
            added += 1
        if added:
            self._schedule()
            if live and not self._stick:
                self.post_message(UnseenChanged(self.unseen, self.unseen_mentions, self.room))
        return added

    def add_history(
        self, messages: tuple[ChatMessage, ...], *, has_more: bool, page: bool, live: bool = False
    ) -> None:
        """A history frame: join/resume (``page`` False) or an older page.

        ``live``: messages missed while disconnected (resume) count as unseen.
        """
        if page:
            self.loading_older = False
            self.has_more = has_more
            self._dirty_full = True
        elif not self._entries:
            self.has_more = has_more
        if len(messages) > 1 and not live:
            self._dirty_full = True  # one rebuild beats many appends
        self.add_messages(messages, live=live)
        self._dirty_full = True
        self._schedule()

    def set_pending(self, entry: OutboxEntry, failed_reason: str | None = None) -> None:
        self._note_position()
        lines = safe(entry.text).split("\n")
        self._pending[entry.client_msg_id] = _Pending(entry, local_time(entry.created_at), lines, failed_reason)
        self._stick = True  # sending takes you to the bottom
        self._clear_marker()
        self._rebuild_tail()
        self._schedule()

    def acknowledge(self, client_msg_id: str, message: ChatMessage) -> None:
        self._note_position()
        if self._pending.pop(client_msg_id, None) is not None:
            self._rebuild_tail()
        self.add_messages([message])
        self._schedule()

    def mark_retrying(self, client_msg_id: str) -> None:
        pending = self._pending.get(client_msg_id)
        if pending is not None and pending.failed_reason is not None:
            self._note_position()
            pending.failed_reason = None
            self._rebuild_tail()
            self._schedule()

    def discard(self, client_msg_id: str) -> None:
        if self._pending.pop(client_msg_id, None) is not None:
            self._note_position()
            self._rebuild_tail()
            self._schedule()

    def on_mount(self) -> None:
        self._schedule_midnight()

    def _schedule_midnight(self) -> None:
        now = self.now()
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        # A second past midnight, and never a busy loop if the clock is odd.
        self.set_timer(max(1.0, (midnight - now).total_seconds() + 1.0), self._midnight)

    def _midnight(self) -> None:
        self.refresh_dates()
        self._schedule_midnight()

    def refresh_dates(self) -> None:
        """Relabel the date separators ("Today" becomes "Yesterday"); called just after midnight."""
        self._note_position()
        self._dirty_full = True
        self._schedule()

    def set_username(self, username: str) -> None:
        if username != self.username:
            self.username = username
            self._strips.clear()
            self.refresh()

    def set_mark_unverified(self, mark: bool) -> None:
        """Mark names that were not proved (italic, then a dim ``?``): only where the server checks names."""
        if mark != self.mark_unverified:
            self.mark_unverified = mark
            self._strips.clear()
            self.refresh()

    def jump_to_bottom(self) -> None:
        self._stick = True
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        self._reached_bottom()

    def rendered_text(self) -> str:
        """Every row's text as shown (for tests and debugging): what a user could read."""
        width = self._text_width()
        out: list[str] = []
        for row in self._rows + self._tail:
            for strip in self._row_strips(row, width + GUTTER):
                out.append(strip.text.rstrip())
        return "\n".join(out)

    def rendered_tail(self, rows: int = 30) -> str:
        """The text of the last ``rows`` rows (cheap even with a long history)."""
        width = self._text_width() + GUTTER
        out: list[str] = []
        for row in (self._rows + self._tail)[-rows:]:
            for strip in self._row_strips(row, width):
                out.append(strip.text.rstrip())
        return "\n".join(out)

    # -- rows --------------------------------------------------------------

    def _make_entry(self, message: ChatMessage) -> _Entry:
        when = local_time(message.created_at)
        action = action_text(message.text)  # "/me waves": shown as "alice * waves"
        text = message.text if action is None else action
        return _Entry(message, when, when.toordinal(), safe_name(message.username), safe(text).split("\n"), action is not None)

    def _append_row(self, row: _Row) -> None:
        if self._dirty_full:
            return  # a full rebuild is coming anyway
        self._rows.append(row)
        h = self._height(row, self._width)
        self._cum.append((self._cum[-1] if self._cum else 0) + h)

    def _append_message_row(self, entry: _Entry) -> None:
        if self._dirty_full:
            return
        if not self._rows:
            self._dirty_full = True  # the first message: build the top row as well
            return
        last_day = None
        for row in reversed(self._rows):
            if row.kind == "msg":
                last_day = row.entry.day  # type: ignore[union-attr]
                break
        if last_day != entry.day:
            label = date_label(entry.when, self.now())
            self._append_row(_Row("sep", ("sep", entry.day, label), label=label))
        self._append_row(_Row("msg", entry.message.id, entry=entry))

    def _rebuild_rows(self) -> None:
        rows: list[_Row] = []
        if self._entries:
            if self.loading_older:
                rows.append(_Row("top", ("top", "loading"), label="loading older messages…"))
            elif self.has_more:
                rows.append(_Row("top", ("top", "more"), label="scroll up for older messages"))
            else:
                rows.append(_Row("top", ("top", "start"), label="beginning of the conversation"))
        last_day = None
        now = self.now()
        read_from, self._marker_before = self._read_from, None
        for entry in self._entries:
            if (
                read_from is not None
                and self._marker_before is None
                and entry.message.id > read_from
                and entry.message.username != self.username
            ):
                self._marker_before = entry.message.id
                rows.append(_Row("marker", "marker"))
            if entry.day != last_day:
                label = date_label(entry.when, now)
                rows.append(_Row("sep", ("sep", entry.day, label), label=label))
                last_day = entry.day
            rows.append(_Row("msg", entry.message.id, entry=entry))
        if self._marker_before is None and self._entries:
            self._read_from = None  # everything after it was read (or is ours): no marker to come back
        self._rows = rows
        width = self._width
        self._cum = list(accumulate(self._height(r, width) for r in rows))
        self._dirty_full = False

    def _rebuild_tail(self) -> None:
        ordered = sorted(self._pending.items(), key=lambda item: item[1].entry.created_at)
        self._tail = [_Row("pending", ("p", cmid, p.failed_reason), pending=p) for cmid, p in ordered]
        self._tail_cum = list(accumulate(self._height(r, self._width) for r in self._tail))

    def _clear_marker(self) -> None:
        self._scroll_to_marker = False
        if self._marker_before is not None or self._read_from is not None:
            self._marker_before = self._read_from = None
            self._dirty_full = True

    # -- layout ------------------------------------------------------------

    def _text_width(self) -> int:
        return max(MIN_TEXT_WIDTH, self._width - GUTTER)

    def _height(self, row: _Row, width: int) -> int:
        if row.kind in ("top", "sep", "marker"):
            return 1
        cache = row.entry.heights if row.entry is not None else row.heights
        h = cache.get(width)
        if h is None:
            tw = max(MIN_TEXT_WIDTH, width - GUTTER)
            lines = row.entry.lines if row.entry else row.pending.lines  # type: ignore[union-attr]
            h = 0
            for line in lines:
                h += 1 if len(line) <= tw and line.isascii() else len(wrap_line(line, tw))
            if row.pending and row.pending.failed_reason is not None:
                h += 1
            if len(cache) > 2:
                cache.clear()
            cache[width] = h
        return h

    @property
    def total_height(self) -> int:
        return (self._cum[-1] if self._cum else 0) + (self._tail_cum[-1] if self._tail_cum else 0)

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.call_later(self._apply)

    def _note_position(self) -> None:
        """Before a change: follow the bottom if the view is there.

        Only scrolling (:meth:`watch_scroll_y`) lets go of the bottom: a terminal
        made smaller leaves the offset short of the new bottom without the user
        having moved, and must not stop the list following new messages.
        """
        if not self._scheduled:
            self._stick = self._stick or self._at_bottom()

    def _at_bottom(self) -> bool:
        return not self.is_mounted or self.scroll_offset.y >= self.max_scroll_y - 1 or self.max_scroll_y <= 0

    def _apply(self) -> None:
        self._scheduled = False
        if not self.is_mounted:
            return
        if self._stick and len(self._entries) > self.max_loaded:
            self._trim()
        old_total = self.total_height
        anchor = next((r.key for r in self._rows if r.kind == "msg"), None)
        anchor_before = self._offset_of_key(anchor) if anchor is not None else 0
        if self._dirty_full:
            self._rebuild_rows()
            self._rebuild_tail()
        new_total = self.total_height
        self.virtual_size = Size(self._width, new_total)
        if self._scroll_to_marker and self._entries:
            self._scroll_to_marker = False
            top = self._offset_of_key("marker") if self._marker_before is not None else new_total
            if new_total - top > self.scrollable_content_region.height:
                self._stick = False  # more unread than fits: open where reading stopped
                self.scroll_to(y=max(0, top - 1), animate=False, immediate=True)
                anchor = None
        if self._stick:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        elif anchor is not None and new_total != old_total:
            # Older messages were prepended: keep the same lines in view.
            shift = self._offset_of_key(anchor) - anchor_before
            if shift:
                self.scroll_to(y=self.scroll_offset.y + shift, animate=False, immediate=True)
        self.refresh()
        self.call_after_refresh(self._check_edges)

    def _trim(self) -> None:
        """Forget the oldest messages (memory stays bounded); scrolling up fetches them again."""
        drop = len(self._entries) - self.max_loaded
        for entry in self._entries[:drop]:
            self._ids.discard(entry.message.id)
        del self._entries[:drop]
        self.has_more = True
        self._dirty_full = True

    def _offset_of_key(self, key: Any) -> int:
        for i, row in enumerate(self._rows):
            if row.key == key:
                return self._cum[i - 1] if i else 0
        return 0

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        if width != self._width:
            self._width = width
            self._dirty_full = True
        self._schedule()  # any new size: back to the bottom if the list was following it

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def on_key(self, event: events.Key) -> None:
        """Typing while the list has the focus (after a click) goes to the message input, not nowhere."""
        if not event.is_printable or not event.character:
            return
        target = next(iter(self.screen.query("ChatInput")), None)
        if target is None:
            return
        event.stop()
        event.prevent_default()
        target.focus()
        target.post_message(events.Key(event.key, event.character))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self._scheduled:  # a pending change keeps what was decided before it
            self._stick = self._at_bottom()
        self._check_edges()

    def _check_edges(self) -> None:
        if not self.is_mounted:
            return
        if self._at_bottom():
            self._reached_bottom()
        if (
            self.has_more
            and not self.loading_older
            and self._entries
            and self.scroll_offset.y <= LOAD_AT_ROWS
        ):
            self._note_position()  # at the top: the rebuild must not jump to the bottom
            self.loading_older = True
            self._dirty_full = True
            self._schedule()
            self.post_message(LoadOlder(self.oldest_id, self.room))

    def _reached_bottom(self) -> None:
        if self.unseen or self.unseen_mentions:
            self.unseen = self.unseen_mentions = 0
            self.post_message(UnseenChanged(0, 0, self.room))
        newest = self.newest_id
        if newest is not None and newest != self._read_posted:
            self._read_posted = newest
            self.post_message(MarkRead(newest, self.room))

    # -- rendering ---------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        vy = self.scroll_offset.y + y
        rows, cum = self._rows, self._cum
        base = cum[-1] if cum else 0
        if vy >= base:
            rows, cum, vy = self._tail, self._tail_cum, vy - base
        i = bisect_right(cum, vy)
        if i >= len(rows):
            return Strip.blank(width, self.rich_style)
        start = cum[i - 1] if i else 0
        strips = self._row_strips(rows[i], width)
        line = vy - start
        if line >= len(strips):
            return Strip.blank(width, self.rich_style)
        return strips[line].apply_offsets(0, self.scroll_offset.y + y)

    def _row_strips(self, row: _Row, width: int) -> list[Strip]:
        key = (row.key, width)
        strips = self._strips.get(key)
        if strips is None:
            base = self.rich_style
            texts = self._row_texts(row, width)
            strips = []
            for text in texts:
                # Text.render leaves unstyled runs bare; the row's own style goes underneath.
                row_style = text.style if isinstance(text.style, Style) else base
                segments = list(text.render(self.app.console))
                strips.append(Strip(segments).apply_style(row_style).crop_extend(0, width, base).simplify())
            self._strips[key] = strips
        return strips

    def _row_texts(self, row: _Row, width: int) -> list[Text]:
        base = self.rich_style
        if row.kind in ("top", "sep", "marker"):
            comp = {"top": "message-list--top", "sep": "message-list--separator", "marker": "message-list--marker"}
            style = base + self.get_component_rich_style(comp[row.kind])
            label = "new messages" if row.kind == "marker" else row.label
            label = f" {label} "
            pad = max(0, width - cell_len(label))
            left = pad // 2
            return [Text("─" * left + label + "─" * (pad - left), style=style, no_wrap=True, end="")]
        tw = max(MIN_TEXT_WIDTH, width - GUTTER)
        time_style = base + self.get_component_rich_style("message-list--time")
        if row.entry is not None:
            entry = row.entry
            name, when, lines = entry.name, entry.when, entry.lines
            text_style = base
            bar = "*" if entry.action else "│"
            bar_style = time_style
            if entry.action:
                text_style = base + Style(italic=True)
            mine = entry.message.username == self.username
            unproved = self.mark_unverified and not is_verified(entry.message)
        else:
            pending = row.pending
            assert pending is not None
            name, when, lines = safe_name(self.username), pending.when, pending.lines
            failed = pending.failed_reason is not None
            comp = "message-list--failed" if failed else "message-list--pending"
            text_style = base + self.get_component_rich_style(comp)
            bar = "✗" if failed else "…"
            bar_style = text_style
            mine = True
            unproved = False
        mention_style = self.get_component_rich_style("message-list--mention")
        out: list[Text] = []
        first = True
        highlight = not mine and bool(self.username)
        for raw in lines:
            marks: list[tuple[int, int, Style]] = []
            if highlight:
                marks += [(a, b, mention_style) for a, b in mentions(raw, self.username)]
            # One style per URL: every piece of a cut URL opens the whole URL (and shares its OSC 8 id).
            marks += [(a, b, Style(link=url, underline=True)) for a, b, url in links(raw)]
            for start, end in wrap_spans(raw, tw):
                piece = raw[start:end]
                t = Text(no_wrap=True, end="", style=base)
                if first:
                    room = NICK_WIDTH - len(UNVERIFIED_MARK) if unproved else NICK_WIDTH
                    shown = name if cell_len(name) <= room else name[: room - 1] + "…"
                    t.append(when.strftime("%H:%M") + " ", time_style)
                    t.append(" " * (room - cell_len(shown)))
                    t.append(shown, Style(color=user_colour(name), bold=True, italic=unproved or None))
                    if unproved:
                        t.append(UNVERIFIED_MARK, Style(dim=True))
                    first = False
                else:
                    t.append(" " * (TIME_WIDTH + 1 + NICK_WIDTH))
                t.append(f" {bar} ", bar_style)
                body = Text(piece, style=text_style, no_wrap=True, end="")
                for a, b, style in marks:
                    if a < end and b > start:
                        body.stylize(style, max(a, start) - start, min(b, end) - start)
                t.append_text(body)
                out.append(t)
        if row.pending is not None and row.pending.failed_reason is not None:
            reason = safe_name(row.pending.failed_reason)
            t = Text(" " * GUTTER, no_wrap=True, end="", style=base)
            # The keys first: a long reason is cut at the right edge, the way out must not be.
            t.append(f"not sent ({self.failed_hint}): {reason}", text_style)
            out.append(t)
        return out
