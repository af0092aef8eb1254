"""The chat core: every rule of the chat, decided without I/O (see :mod:`.chat`)."""

from __future__ import annotations

from .chat import ChatCore, Clock, Counters
from .rules import Rules
from .state import Conn, Draft, Refusal, Session

__all__ = ["ChatCore", "Clock", "Conn", "Counters", "Draft", "Refusal", "Rules", "Session"]
