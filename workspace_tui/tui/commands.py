"""Slash commands typed in the message input: what each one is, and parsing a line into one.

Pure. A line starting with ``/`` is a command, never posted as it stands; ``//text`` posts
``/text`` literally. An unknown command is answered locally (:class:`Unknown`).
"""

from __future__ import annotations

from typing import NamedTuple

# name -> (arguments, what it does): /help lists these, Tab completes the names.
COMMANDS: dict[str, tuple[str, str]] = {
    "join": ("ROOM", "join a room (or open it, if you are in it)"),
    "leave": ("", "leave this room (not general or a direct message)"),
    "create": ("[-p] ROOM [topic]", "create a room; -p: private (members invite others)"),
    "invite": ("NAME", "invite someone to this room"),
    "topic": ("TEXT", "set this room's topic"),
    "msg": ("NAME[,NAME…] [text]", "open a direct message; sends the text if given"),
    "me": ("action", "say what you do: shown as * you action"),
    "away": ("[reason]", "set your status to away (the reason stays on this screen)"),
    "back": ("", "set your status to online"),
    "who": ("", "list this room's members"),
    "rooms": ("", "list the rooms you can join"),
    "mute": ("", "no notifications from this room"),
    "unmute": ("", "notifications from this room again"),
    "help": ("", "list these commands"),
}

ME_PREFIX = "/me "  # how an action travels: plain text any client can read


class Post(NamedTuple):
    """Not a command: post this text."""

    text: str


class Command(NamedTuple):
    name: str
    args: str  # the rest of the line, stripped


class Unknown(NamedTuple):
    name: str


def parse(line: str) -> Post | Command | Unknown:
    """What a submitted line means."""
    if line.startswith("//"):
        return Post(line[1:])
    if not line.startswith("/") or line == "/" or line[1].isspace():
        return Post(line)
    head, _, rest = line[1:].partition(" ")
    if "\n" in head:
        head, _, more = head.partition("\n")
        rest = more + (" " + rest if rest else "")
    name = head.lower()
    if name == "me":
        return Post(ME_PREFIX + rest.strip()) if rest.strip() else Command("me", "")
    if name in COMMANDS:
        return Command(name, rest.strip())
    return Unknown(head[:40])


def action_text(text: str) -> str | None:
    """The action of a ``/me`` message (``"waves"`` for ``"/me waves"``), else ``None``."""
    if text.startswith(ME_PREFIX) and text[len(ME_PREFIX) :].strip():
        return text[len(ME_PREFIX) :].strip()
    return None


def help_lines() -> list[str]:
    lines = [f"/{name} {args}".rstrip() + f" — {what}" for name, (args, what) in COMMANDS.items()]
    lines.append("//text — post text that starts with a slash")
    return lines
