"""Frames to bytes: compact JSON, UTF-8, encoded once however many receive it."""

from __future__ import annotations

import json
from typing import Any

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def encode(frame: dict[str, Any]) -> bytes:
    """The JSON text of a frame, as compact UTF-8 bytes."""
    return _encode(frame).encode()
