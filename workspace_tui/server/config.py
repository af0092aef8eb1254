"""The server's settings: one frozen dataclass, filled by ``workspace serve`` or by tests."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from workspace_tui.core.rules import Rules
from workspace_tui.protocol import MAX_PAYLOAD_BYTES, Limits


@dataclass(frozen=True)
class ServerConfig:
    """Everything :func:`workspace_tui.server.start_server` needs.

    Zero turns a limit off where noted. Times are in seconds.
    """

    host: str = "127.0.0.1"
    port: int = 4000
    db_path: Path | str = ":memory:"
    rate_limit: int = 100  # message:send per minute per user; 0 = off
    max_connections_per_user: int = 3  # 0 = unlimited
    idle_timeout: float = 300.0  # close with 4000 after this long without a frame; 0 = off
    history: int = 100  # messages in the join ``history`` frame
    token: str | None = None
    certfile: Path | str | None = None
    keyfile: Path | str | None = None
    max_payload: int = MAX_PAYLOAD_BYTES  # bigger incoming frames are closed with 1009
    handshake_timeout: float = 10.0  # a silent socket is dropped after this long
    typing_timeout: float = 6.0
    compression: bool = False  # permessage-deflate; off so frames are encoded once for everyone
    send_buffer_limit: int = 4 * 1024 * 1024  # per connection; past it the reader is closed with 4001
    frame_rate: float = 20.0  # other frames per second per user (sustained); 0 = off
    frame_burst: int = 200  # ... and their burst
    frame_flood: int = 100  # refused non-send frames within a minute before closing with 1008
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 5.0
    backlog: int = 2048  # listen queue; the kernel caps it at net.core.somaxconn
    status_memory: float = 300.0  # a chosen status survives a reconnect within this many seconds
    broker: str | None = None  # redis://HOST:PORT/DB: several nodes serve one workspace (backends/redis.py)
    broker_node_ttl: float = 10.0  # a node whose heartbeat is this old is dead: its users go offline
    broker_max_bytes: int = 512 * 1024 * 1024  # message text kept in the Redis stream, oldest trimmed first
    broker_max_age: float = 30 * 24 * 3600.0  # ... and messages older than this are trimmed (0 = keep)
    # Data that cannot run away (the SQLite store; Redis has broker_max_bytes/age above).
    retention: float = 0.0  # seconds a message is kept in SQLite (0 = until the size cap removes it)
    max_store_bytes: int = 1024**3  # what the messages may take in the SQLite file, oldest removed first (0 = no cap)
    min_free_disk: int = 256 * 1024**2  # below this free space on the store's disk sends are refused (0 = off)
    allow_unsafe_redis: bool = False  # start even if Redis may lose acknowledged messages (AOF off, eviction)

    # Names and addresses (docs/security.md)
    auth: str = "claim"  # claim: the first key owns a name; invite: only admin-made names; open: no checks
    max_connections_per_address: int = 256  # 0 = unlimited
    claims_per_hour: int = 30  # names one address may claim per hour; 0 = unlimited
    address_rate_limit: int = 600  # message:send per minute from one address, all names; 0 = off

    # Who may connect from where (core/origins.py): browsers' Origin and every request's Host.
    allow_origins: tuple[str, ...] = ()  # scheme://host[:port] of pages that may connect; "*" = any page
    allow_hosts: tuple[str, ...] = ()  # more names the Host header may carry; "*" = any
    address_limits: bool = True  # False lifts every per-address limit (benchmarks from one address)
    trust_proxy: bool = False  # the client address is the last X-Forwarded-For hop (behind a proxy)
    max_pending_per_address: int = 16  # TCP connections still in their handshake, per address; 0 = off
    max_pending_handshakes: int = 2048  # ... and in all; over either the new connection is dropped; 0 = off

    def with_overrides(self, **overrides: Any) -> ServerConfig:
        return replace(self, **overrides)

    @property
    def limits(self) -> Limits:
        return self.rules.limits

    @property
    def rules(self) -> Rules:
        """What the chat core enforces."""
        return Rules(
            rate_limit=self.rate_limit,
            max_connections_per_user=self.max_connections_per_user,
            idle_timeout=self.idle_timeout,
            history=self.history,
            token=self.token,
            max_payload=self.max_payload,
            typing_timeout=self.typing_timeout,
            frame_rate=self.frame_rate,
            frame_burst=self.frame_burst,
            frame_flood=self.frame_flood,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            status_memory=self.status_memory,
            send_buffer_limit=self.send_buffer_limit,
            auth=self.auth,
            max_connections_per_address=self.max_connections_per_address if self.address_limits else 0,
            claims_per_hour=self.claims_per_hour if self.address_limits else 0,
            address_rate_limit=self.address_rate_limit if self.address_limits else 0,
        )
