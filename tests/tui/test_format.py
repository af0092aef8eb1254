"""Pure presentation rules: wrapping, colours, typing line, mentions, sanitizing."""

from __future__ import annotations

from rich.cells import cell_len

from workspace_tui.tui.format import mentions, safe, safe_name, typing_text, user_colour
from workspace_tui.tui.widgets.message_list import wrap_line


def test_wrap_line_fits_width_and_keeps_words():
    text = "the quick brown fox jumps over the lazy dog " * 5
    lines = wrap_line(text, 20)
    assert all(cell_len(line) <= 20 for line in lines)
    assert " ".join(lines).split() == text.split()


def test_wrap_line_cuts_long_words_and_wide_characters():
    assert wrap_line("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    lines = wrap_line("日本語のテキスト" * 3, 10)
    assert all(cell_len(line) <= 10 for line in lines)
    assert "".join(lines) == "日本語のテキスト" * 3
    assert wrap_line("", 10) == [""]


def test_typing_text():
    assert typing_text([]) == ""
    assert typing_text(["alice"]) == "alice is typing…"
    assert typing_text(["alice", "bob"]) == "alice and bob are typing…"
    assert typing_text(["a", "b", "c", "d"]) == "4 people are typing…"


def test_user_colour_is_stable():
    assert user_colour("alice") == user_colour("alice")
    assert len({user_colour(n) for n in ("alice", "bob", "carol", "dave", "erin", "frank")}) > 2


def test_mentions():
    assert mentions("hey @alice, look", "alice") == [(4, 10)]
    assert mentions("Alice: hi", "alice") == [(0, 5)]
    assert mentions("malice and alice_b", "alice") == []


def test_safe_removes_escapes_and_controls():
    hostile = "a\x1b[2Jb\x1b]52;c;aGk=\x07c\x1b]8;;http://e\x1b\\d\x9b0me\u202ef\x07g\tTab"
    assert safe(hostile) == "abcdefg    Tab"


def test_safe_drops_invisible_characters_but_keeps_emoji_sequences():
    # What a hostile or older server may still pass through: the TUI cleans it again.
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "hidden")
    assert safe("zero\u200bwidth\u2060 " + hidden + "tags\u200e\ufeff") == "zerowidth tags"
    assert safe("\u3164") == "" and safe_name("ali\u200bce\u3164") == "alice"
    assert safe("Z" + "\u0301" * 40) == "Z" + "\u0301" * 4
    for emoji in ("👩‍💻", "👨‍👩‍👧", "❤️", "🏴\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f"):
        assert safe(f"hi {emoji}") == f"hi {emoji}"
