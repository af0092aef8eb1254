"""Sizes (``2GB``, ``500MiB``) and ages (``30d``, ``12h``) on the command line, as Click types."""

from __future__ import annotations

import re
from typing import Any

import click

_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NUMBER = r"\s*(\d+(?:\.\d+)?)\s*"


def parse_size(text: str) -> int:
    """Bytes in *text*: a number with an optional unit (KB/MB/GB are powers of 1000,
    K/M/G and KiB/MiB/GiB of 1024). ``ValueError`` with a readable message otherwise."""
    m = re.fullmatch(_NUMBER + r"([A-Za-z]*)\s*", text)
    unit = m[2].lower() if m else ""
    if not m or unit not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size: write it like 500MB, 2GB or 1GiB (0 turns it off)")
    return int(float(m[1]) * _SIZE_UNITS[unit])


def parse_age(text: str) -> float:
    """Seconds in *text*: ``0``, or a number with one of s, m, h, d, w."""
    m = re.fullmatch(_NUMBER + r"([A-Za-z]*)\s*", text)
    unit = m[2].lower() if m else ""
    if m and unit == "" and float(m[1]) == 0:
        return 0.0
    if not m or unit not in _AGE_UNITS:
        raise ValueError(f"{text!r} is not an age: write it like 30d, 12h, 90m or 2w (0 keeps forever)")
    return float(m[1]) * _AGE_UNITS[unit]


class Size(click.ParamType):
    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Age(click.ParamType):
    name = "age"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_age(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)

