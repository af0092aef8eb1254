"""Desktop notifications: when a message deserves one, and how it reaches the desktop.

Notified: mentions of our name, direct messages, and our own highlight words
(``[chat] highlight = ["deploy"]``). Never our own messages, never a muted room, never
the room on screen while the window has the focus.

How, decided once from the environment (``WORKSPACE_NOTIFY`` overrides: ``osc777``,
``osc9``, ``notify-send``, several separated by commas, or ``none``):

- OSC 777 (``ESC ] 777 ; notify ; TITLE ; BODY BEL``) in terminals known to show it:
  foot, WezTerm, Ghostty, contour, rxvt-unicode, and VTE ones (``VTE_VERSION``);
- OSC 9 (``ESC ] 9 ; BODY BEL``) in iTerm2 and ConEmu;
- neither inside tmux or screen (they swallow it unless passthrough is on: use the override);
- ``notify-send`` too, where it is on PATH and a desktop session is there (``DISPLAY`` /
  ``WAYLAND_DISPLAY`` / ``DBUS_SESSION_BUS_ADDRESS``).

Everything that goes into an escape sequence or onto notify-send's command line is
stripped of control and format characters and bounded first.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
from collections.abc import Callable, Iterable, Mapping

from workspace_tui.tui.format import mentions

TITLE_MAX = 80
BODY_MAX = 200
_OSC777_TERMS = ("wezterm", "ghostty", "contour", "foot")


def clean(text: str, limit: int) -> str:
    """*text* with no control or format character (C0, C1, DEL, bidi, zero-width), on one line, bounded."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            out.append(" " if ch in "\n\r\t\u2028\u2029" else "")
        else:
            out.append(ch)
    flat = re.sub(r"\s+", " ", "".join(out)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def osc777(title: str, body: str) -> str:
    # ";" separates the fields: one in the title would move the body.
    return f"\x1b]777;notify;{clean(title, TITLE_MAX).replace(';', ',')};{clean(body, BODY_MAX)}\x07"


def osc9(title: str, body: str) -> str:
    text = clean(f"{title}: {body}", TITLE_MAX + BODY_MAX)
    return f"\x1b]9;{text}\x07"


def methods_for(env: Mapping[str, str], which: Callable[[str], str | None] = shutil.which) -> tuple[str, ...]:
    """How notifications reach the desktop here (see the module docstring)."""
    chosen = env.get("WORKSPACE_NOTIFY", "").strip().lower()
    if chosen:
        return tuple(m for m in (p.strip() for p in chosen.split(",")) if m in ("osc777", "osc9", "notify-send"))
    out: list[str] = []
    program = env.get("TERM_PROGRAM", "").lower()
    term = env.get("TERM", "").lower()
    multiplexed = bool(env.get("TMUX")) or term.startswith(("screen", "tmux"))
    if not multiplexed:
        if program in ("iterm.app",) or env.get("ConEmuANSI") == "ON":
            out.append("osc9")
        elif (
            any(t in program for t in _OSC777_TERMS)
            or any(t in term for t in _OSC777_TERMS)
            or term.startswith("rxvt-unicode")
            or env.get("VTE_VERSION")
        ):
            out.append("osc777")
    desktop = env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("DBUS_SESSION_BUS_ADDRESS")
    if desktop and which("notify-send"):
        out.append("notify-send")
    return tuple(out)


def why_notify(
    text: str,
    *,
    me: str,
    author: str,
    room: str,
    is_dm: bool,
    highlights: Iterable[str] = (),
) -> str | None:
    """Why a message from *author* deserves a notification (``"mention"``, ``"dm"``, ``"highlight"``), else ``None``.

    The caller has already ruled out our own messages, muted rooms and the room on screen.
    """
    if not me or author.lower() == me.lower():
        return None
    if is_dm:
        return "dm"
    if mentions(text, me):
        return "mention"
    lowered = text.lower()
    for word in highlights:
        w = word.strip().lower()
        if w and re.search(rf"(?<!\w){re.escape(w)}(?!\w)", lowered):
            return "highlight"
    return None


class Notifier:
    """Sends a notification the ways :func:`methods_for` chose; ``write`` puts bytes on the terminal."""

    def __init__(self, write: Callable[[str], None], methods: tuple[str, ...]) -> None:
        self.write = write
        self.methods = methods
        self._children: list[subprocess.Popen[bytes]] = []

    def notify(self, title: str, body: str) -> None:
        for method in self.methods:
            try:
                if method == "osc777":
                    self.write(osc777(title, body))
                elif method == "osc9":
                    self.write(osc9(title, body))
                elif method == "notify-send":
                    self._notify_send(title, body)
            except OSError:
                pass  # a notification is a nicety: the chat goes on

    def _notify_send(self, title: str, body: str) -> None:
        self._children = [c for c in self._children if c.poll() is None][-8:]  # reap; bounded
        path = shutil.which("notify-send")
        if path is None:
            return
        child = subprocess.Popen(
            # "--" ends the options: a body starting with "-" stays a body.
            [path, "--app-name=workspace", "--", clean(title, TITLE_MAX), clean(body, BODY_MAX)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        self._children.append(child)
