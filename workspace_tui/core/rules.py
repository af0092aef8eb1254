"""The rules the core enforces, as plain values (``workspace serve``'s flags map onto them)."""

from __future__ import annotations

from dataclasses import dataclass

from workspace_tui.protocol import MAX_PAYLOAD_BYTES, Limits


@dataclass(frozen=True, slots=True)
class Rules:
    """Zero turns a limit off where noted. Times are in seconds."""

    rate_limit: int = 100  # message:send per minute per user; 0 = off
    max_connections_per_user: int = 3  # 0 = unlimited
    idle_timeout: float = 300.0  # close with 4000 after this long without a frame; 0 = off
    history: int = 100  # messages in the join ``history`` frame, unless the client asks
    token: str | None = None  # the shared secret clients must present
    max_payload: int = MAX_PAYLOAD_BYTES  # announced in ``connected.limits``
    typing_timeout: float = 6.0
    frame_rate: float = 20.0  # other frames per second per user (sustained); 0 = off
    frame_burst: int = 200  # ... and their burst
    frame_flood: int = 100  # refused non-send frames within a minute before closing with 1008
    ping_interval: float | None = 20.0  # keepalive WebSocket pings to quiet connections
    ping_timeout: float | None = 20.0  # ... and how long an answer may take
    status_memory: float = 300.0  # a chosen status survives a reconnect within this many seconds
    send_buffer_limit: int = 4 * 1024 * 1024  # bytes waiting for one connection before 4001
    auth: str = "claim"  # who may use a name: claim (first key owns it), invite (admin-made names), open
    # Per client address (docs/security.md); 0 = off. A team behind one NAT shares an address.
    max_connections_per_address: int = 256
    claims_per_hour: int = 30  # names claimed from one address per hour
    address_rate_limit: int = 600  # message:send per minute from one address, across all names
    # workspace.v1 clients get a tick's presence changes as one presence:batch, this long after
    # the first of them (document-only clients still get one presence:update per change).
    presence_tick: float = 0.1

    @property
    def limits(self) -> Limits:
        return Limits(
            max_payload_bytes=self.max_payload,
            messages_per_minute=self.rate_limit,
            max_connections_per_user=self.max_connections_per_user,
            idle_timeout_seconds=self.idle_timeout,
        )

    @property
    def flood_threshold(self) -> int:
        """Rejected sends within a minute after which the connection is closed with 1008."""
        return max(10, self.rate_limit // 2)
