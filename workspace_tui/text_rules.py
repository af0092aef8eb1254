"""Invisible characters and stacked marks: what chat text may not carry.

Pure (``re`` and ``unicodedata`` only). :func:`drop_invisible` is one step of
``protocol.sanitize_text``; it runs after escape sequences and controls are gone.

What is dropped, and why (``docs/protocol.md``, "Text the server cleans"):

* Unicode's *Default_Ignorable_Code_Point* characters, the ones Unicode itself says
  to render as nothing: soft hyphen U+00AD, combining grapheme joiner U+034F, the
  Arabic letter mark U+061C, the Hangul fillers U+115F, U+1160, U+3164, U+FFA0, the
  Khmer inherent vowels U+17B4-17B5, the Mongolian vowel separator U+180E, zero-width
  space U+200B, LRM/RLM U+200E-200F, word joiner and invisible operators U+2060-2064,
  the deprecated format controls U+206A-206F, BOM/ZWNBSP U+FEFF, shorthand format
  controls U+1BCA0-1BCA3, musical format controls U+1D173-1D17A, the tag block
  U+E0000-E007F (used to hide text inside a message) and the reserved ignorable
  ranges (U+2065, U+FFF0-FFF8, U+E0080-E0FFF) so that what Unicode assigns there later
  is dropped too. Also the interlinear annotation controls U+FFF9-FFFB (invisible
  anchors).
* Kept where they do something visible:
  - ZWJ U+200D and ZWNJ U+200C between two visible characters (👩‍💻 is one emoji,
    Persian ``می‌خواهم`` and Indic conjuncts keep their shape); dropped at an end,
    next to whitespace, or doubled;
  - one variation selector (U+FE00-FE0F, U+E0100-E01EF, the Mongolian U+180B-180D and
    U+180F) right after a base character (❤️, CJK ideograph variants); others are
    dropped: a selector has no base to select for, and a run of them after one emoji
    is a known way to smuggle hidden bytes;
  - tag characters only inside the three flags Unicode recommends (England,
    Scotland, Wales: 🏴 + tags + CANCEL TAG).
* Line and paragraph separators U+2028/U+2029 become LF (like CR): a pasted text
  keeps its lines, and a terminal sees an ordinary newline.
* At most :data:`MAX_MARKS` combining marks per base character ("Zalgo" text stacks
  dozens that spill over the lines around it).

The braille blank U+2800 is kept (braille art needs its empty cells) but counts as
blank: :func:`is_blank` text, a joiner or a selector next to it, is invisible.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

# Real text needs at most about four marks on one character: fully pointed Hebrew with
# cantillation (dagesh, vowel, two accents), Vietnamese needs two, Indic vowel signs with
# nasalisation two or three. Zalgo text uses tens. Stacked Tibetan Sanskrit can need more and
# loses the extra marks: the price of a cap that keeps every line readable.
MAX_MARKS: Final = 4

ZWNJ: Final = "\u200c"
ZWJ: Final = "\u200d"
_JOINERS: Final = ZWNJ + ZWJ
_SELECTORS: Final = "\ufe00-\ufe0f\U000e0100-\U000e01ef\u180b-\u180d\u180f"
_BLANKS: Final = "\\s\u2800"  # whitespace, and the braille blank that looks like it

# Dropped wherever they are (the Default_Ignorable_Code_Point set minus the joiners, selectors and
# tags handled below, plus the interlinear annotation controls U+FFF9-FFFB).
_DROP_CHARS: Final = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200e\u200f\u2060-\u206f\u3164\ufeff\uffa0"
    "\ufff0-\ufffb\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0080-\U000e00ff\U000e01f0-\U000e0fff"
)
_TAG_CHARS: Final = "\U000e0000-\U000e007f"
_TAG_FLAGS: Final = ("gbeng", "gbsct", "gbwls")  # the recommended subdivision flags


class _Rules:
    """The compiled patterns (built on first use: listing the marks takes ~10 ms)."""

    def __init__(self) -> None:
        bmp, astral = _marks(0x300, 0x10000), _marks(0x10000, 0x20000)
        # One mark. The supplementary-plane marks only get looked up for a character in their
        # span, so emoji and plain text stay on the fast BMP table.
        span = f"{astral[0]}-{astral[-1]}"
        one = f"(?:[{bmp}]|(?=[{span}])[{astral}])"
        self.suspect = re.compile(f"[\u2028\u2029{_JOINERS}{_SELECTORS}{_TAG_CHARS}{_DROP_CHARS}]")
        self.drop = re.compile(f"[{_DROP_CHARS}]+")
        flags = "|".join("".join(chr(0xE0000 + ord(c)) for c in name) for name in _TAG_FLAGS)
        self.tags = re.compile(f"(?P<flag>\U0001f3f4(?:{flags})\U000e007f)|[{_TAG_CHARS}]+")
        # A selector not right after a base: at the start, after a blank, a mark, a joiner or
        # another selector (so one emoji cannot carry a run of them). Each pattern that starts
        # with a look-behind looks ahead first, so it costs little where there is no selector.
        self.loose_selector = re.compile(
            f"(?=[{_SELECTORS}])(?:^|(?<=[{_BLANKS}{bmp}{_JOINERS}{_SELECTORS}])|(?<={one}))[{_SELECTORS}]+"
        )
        self.doubled_joiner = re.compile(f"[{_JOINERS}]+(?=[{_JOINERS}])")  # the last one stays
        # A joiner at either end of the text or next to a blank.
        self.loose_joiner = re.compile(f"(?=[{_JOINERS}])(?:(?<![^{_BLANKS}]).|.(?![^{_BLANKS}]))")
        # More than MAX_MARKS marks in a row (a joiner between two does not end the run): the
        # first MAX_MARKS stay.
        joiner = f"[{_JOINERS}]?"
        self.stack = re.compile(f"((?:{one}{joiner}){{{MAX_MARKS - 1}}}{one})(?:{joiner}{one})+")
        # The same run with any character of the marks' span standing for a mark: one table
        # lookup per character, so text without such runs is passed over quickly.
        rough = f"[{bmp}{span}]"
        self.maybe_stack = re.compile(f"{rough}(?:{joiner}{rough}){{{MAX_MARKS}}}")


@lru_cache(maxsize=1)
def _rules() -> _Rules:
    return _Rules()


def _marks(start: int, stop: int) -> str:
    """The combining marks (Mn, Mc, Me) in ``start..stop-1`` as a regex class body, selectors left out.

    From this Python's Unicode tables. Past U+1FFFF the only marks are the variation
    selectors supplement, which are selectors.
    """
    ranges: list[list[int]] = []
    for cp in range(start, stop):
        if unicodedata.category(chr(cp))[0] == "M" and not (0xFE00 <= cp <= 0xFE0F or 0x180B <= cp <= 0x180F):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


def drop_invisible(text: str) -> str:
    """*text* without invisible characters and with at most :data:`MAX_MARKS` marks per character.

    Idempotent. ASCII text is returned as is.
    """
    if text.isascii():
        return text
    rules = _rules()
    if rules.suspect.search(text):
        if "\u2028" in text or "\u2029" in text:
            text = text.replace("\u2028", "\n").replace("\u2029", "\n")
        text = rules.drop.sub("", text)
        text = rules.tags.sub(lambda m: m.group("flag") or "", text)
        text = rules.loose_selector.sub("", text)
        text = rules.doubled_joiner.sub("", text)
        text = rules.loose_joiner.sub("", text)
    if rules.maybe_stack.search(text):
        text = rules.stack.sub(r"\1", text)
    return text


def is_blank(text: str) -> bool:
    """Nothing visible: only whitespace and braille blanks (once :func:`drop_invisible` has run)."""
    return not text.replace("\u2800", "").strip()
