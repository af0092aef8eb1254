"""Where messages live and how nodes share a workspace: one interface, two implementations.

:class:`~.sqlite.SQLiteBackend` is the embedded default (one node, one file);
:class:`~.redis.RedisBackend` lets several nodes serve one workspace through
Redis Streams. The server and the core see only :class:`~.base.Backend`.
"""

from __future__ import annotations

from .base import Backend, BackendEvents

__all__ = ["Backend", "BackendEvents"]
