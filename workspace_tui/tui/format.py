"""Pure presentation helpers: user colours, status glyphs, times, the typing line, mentions, links.

No widgets here, so the rules are easy to unit-test. Everything that comes from
the network goes through :func:`safe` before it reaches a ``rich.text.Text``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Final

from workspace_tui.protocol import parse_timestamp, sanitize_text

# Readable on dark and light themes; no red (reserved for errors) or grey.
USER_COLOURS: Final = (
    "#e5a50a",
    "#33b3e0",
    "#2ec27e",
    "#c061cb",
    "#f66151",
    "#62a0ea",
    "#8ff0a4",
    "#ffa348",
    "#dc8add",
    "#5bc8af",
    "#f9f06b",
    "#99c1f1",
)

# An http(s) URL: RFC 3986 characters only (printable ASCII, no quotes, no angle brackets), so
# a link target can never hold a control character or an escape sequence, whatever the text.
_URL: Final = re.compile(r"(?<![\w.+\-/])https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.IGNORECASE)
_TRAILING: Final = ".,;:!?'*"  # sentence punctuation after a URL is not part of it
_CLOSERS: Final = {")": "(", "]": "["}

STATUS_GLYPHS: Final = {"online": "●", "away": "◐", "busy": "⊘", "offline": "○"}
STATUS_COLOURS: Final = {"online": "#2ec27e", "away": "#e5a50a", "busy": "#e01b24", "offline": "#8a8a8a"}
STATUS_ORDER: Final = {"online": 0, "busy": 1, "away": 2, "offline": 3}


def safe(text: str) -> str:
    """Untrusted text made inert: escape sequences, control and invisible characters removed.

    The same cleaning the server applies (``protocol.sanitize_text``), done again because a
    hostile or older server may pass anything through: zero-width and tag characters,
    fillers, loose joiners and stacked marks go, emoji ZWJ sequences stay whole. Tabs become
    spaces so cell widths are predictable.
    """
    return sanitize_text(text).replace("\t", "    ")


def safe_name(name: str) -> str:
    """A username for display: sanitized, on one line."""
    return safe(name).replace("\n", " ")


def user_colour(username: str) -> str:
    """The stable colour of a user (the same on every run and machine)."""
    digest = hashlib.blake2b(username.encode("utf-8", "replace"), digest_size=2).digest()
    return USER_COLOURS[int.from_bytes(digest, "big") % len(USER_COLOURS)]


def local_time(created_at: str) -> datetime:
    """A protocol timestamp in the local timezone (now, if unreadable)."""
    try:
        return parse_timestamp(created_at).astimezone()
    except (ValueError, TypeError):
        return datetime.now(timezone.utc).astimezone()


def date_label(day: datetime, today: datetime | None = None) -> str:
    """``Today``, ``Yesterday`` or ``Monday 16 November 2026``."""
    today = today or datetime.now().astimezone()
    delta = (today.date() - day.date()).days
    if delta == 0:
        return "Today"
    if delta == 1:
        return "Yesterday"
    return day.strftime("%A %d %B %Y")


def typing_text(names: list[str]) -> str:
    """``alice is typing…``, ``alice and bob are typing…``, ``4 people are typing…``."""
    names = [safe_name(n) for n in names]
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is typing…"
    if len(names) == 2:
        return f"{names[0]} and {names[1]} are typing…"
    if len(names) == 3:
        return f"{names[0]}, {names[1]} and {names[2]} are typing…"
    return f"{len(names)} people are typing…"


def links(text: str) -> list[tuple[int, int, str]]:
    """The http(s) URLs in (sanitized) ``text``: ``(start, end, url)`` with ``text[start:end] == url``.

    Punctuation that ends a sentence is left out, and so is a closing bracket the
    URL did not open (``(see https://x.org/a)`` links ``https://x.org/a``,
    ``https://x.org/w_(y)`` keeps its own). Other schemes (``javascript:``,
    ``file:``) are never links.
    """
    if "://" not in text:
        return []
    out: list[tuple[int, int, str]] = []
    for match in _URL.finditer(text):
        url = match.group()
        while url:
            last = url[-1]
            if last in _TRAILING or (last in _CLOSERS and url.count(_CLOSERS[last]) < url.count(last)):
                url = url[:-1]
            else:
                break
        rest = url.partition("://")[2]
        if not rest[:1].isalnum():
            continue  # "https://" alone, or no host
        out.append((match.start(), match.start() + len(url), url))
    return out


def mentions(text: str, username: str) -> list[tuple[int, int]]:
    """Spans of ``text`` that mention ``username`` (``@name`` or the bare word, any case)."""
    if not username:
        return []
    spans: list[tuple[int, int]] = []
    low, name = text.lower(), username.lower()
    start = 0
    while (i := low.find(name, start)) >= 0:
        end = i + len(name)
        before_ok = i == 0 or not (low[i - 1].isalnum() or low[i - 1] in "_.-")
        after_ok = end == len(low) or not (low[end].isalnum() or low[end] == "_")
        if before_ok and after_ok:
            begin = i - 1 if i > 0 and low[i - 1] == "@" else i
            spans.append((begin, end))
        start = end
    return spans
