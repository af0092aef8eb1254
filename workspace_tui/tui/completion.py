"""Tab completion in the message input: names (``@ali``, ``ali``), rooms (``#de``), commands (``/jo``).

Pure: given the text and the cursor, the replacement. Repeated Tab cycles through the candidates.
"""

from __future__ import annotations

from typing import NamedTuple

from workspace_tui.tui.commands import COMMANDS


class Completion(NamedTuple):
    text: str  # the whole new text
    cursor: int  # where the cursor goes (an offset into ``text``)
    candidates: tuple[str, ...]
    index: int


def _word_start(text: str, cursor: int) -> int:
    start = cursor
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return start


def candidates_for(word: str, at_line_start: bool, names: list[str], rooms: list[str]) -> list[str]:
    """What *word* (the partial word at the cursor) may become, sorted."""
    if word.startswith("/") and at_line_start:
        return [f"/{c} " for c in sorted(COMMANDS) if c.startswith(word[1:].lower())]
    if word.startswith("#"):
        return [f"#{r} " for r in sorted(rooms) if r.lower().startswith(word[1:].lower())]
    prefix, bare = ("@", word[1:]) if word.startswith("@") else ("", word)
    if not bare and not prefix:
        return []
    # At the start of a line a bare name is an address: "bob: ".
    suffix = ": " if at_line_start and not prefix else " "
    return [f"{prefix}{n}{suffix}" for n in sorted(names, key=str.lower) if n.lower().startswith(bare.lower())]


def complete(text: str, cursor: int, names: list[str], rooms: list[str]) -> Completion | None:
    """The first completion of the word before *cursor*, or ``None`` when nothing fits."""
    start = _word_start(text, cursor)
    word = text[start:cursor]
    found = candidates_for(word, start == 0, names, rooms)
    if not found:
        return None
    return _apply(text, start, cursor, tuple(found), 0)


def cycle(text: str, start: int, cursor: int, previous: Completion) -> Completion:
    """The next candidate in place of the one Tab put at ``text[start:cursor]``."""
    index = (previous.index + 1) % len(previous.candidates)
    return _apply(text, start, cursor, previous.candidates, index)


def _apply(text: str, start: int, end: int, found: tuple[str, ...], index: int) -> Completion:
    new = text[:start] + found[index] + text[end:]
    return Completion(new, start + len(found[index]), found, index)
