"""Counters for ``/metrics`` (Prometheus text format) and ``/healthz``."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workspace_tui.core.chat import Counters


def render_metrics(
    counters: Counters,
    *,
    handshake_rejections: Counter[int],
    connections: int,
    users: int,
    deliveries: int,
    uptime: float,
    stored: int | None = None,
    pending: int = 0,
    pending_refused: Counter[str] | None = None,
) -> str:
    """The Prometheus text of the server's counters and gauges."""
    lines = [
        "# HELP workspace_connections Open WebSocket connections.",
        "# TYPE workspace_connections gauge",
        f"workspace_connections {connections}",
        "# HELP workspace_users_online Distinct users visible online.",
        "# TYPE workspace_users_online gauge",
        f"workspace_users_online {users}",
        "# HELP workspace_connections_total Connections accepted since start.",
        "# TYPE workspace_connections_total counter",
        f"workspace_connections_total {counters.connections_total}",
        "# HELP workspace_messages_total Messages accepted and stored since start.",
        "# TYPE workspace_messages_total counter",
        f"workspace_messages_total {counters.messages_total}",
        "# HELP workspace_duplicate_sends_total Resent messages answered from the store (exactly-once).",
        "# TYPE workspace_duplicate_sends_total counter",
        f"workspace_duplicate_sends_total {counters.duplicates_total}",
        "# HELP workspace_deliveries_total Frames queued to connections by broadcasts.",
        "# TYPE workspace_deliveries_total counter",
        f"workspace_deliveries_total {deliveries}",
        "# HELP workspace_rejections_total Client frames rejected with an error frame, by code.",
        "# TYPE workspace_rejections_total counter",
    ]
    lines += [f'workspace_rejections_total{{code="{c}"}} {n}' for c, n in sorted(counters.rejections.items())]
    lines += [
        "# HELP workspace_handshake_rejections_total Connections refused at the handshake, by HTTP status.",
        "# TYPE workspace_handshake_rejections_total counter",
    ]
    lines += [
        f'workspace_handshake_rejections_total{{status="{s}"}} {n}' for s, n in sorted(handshake_rejections.items())
    ]
    lines += [
        "# HELP workspace_server_closes_total Connections closed by the server, by close code.",
        "# TYPE workspace_server_closes_total counter",
    ]
    lines += [f'workspace_server_closes_total{{code="{c}"}} {n}' for c, n in sorted(counters.closes.items())]
    lines += [
        "# HELP workspace_pending_handshakes TCP connections that have not finished their handshake.",
        "# TYPE workspace_pending_handshakes gauge",
        f"workspace_pending_handshakes {pending}",
        "# HELP workspace_pending_handshakes_refused_total New connections dropped at once: too many pending "
        "handshakes, per address or in all.",
        "# TYPE workspace_pending_handshakes_refused_total counter",
    ]
    lines += [
        f'workspace_pending_handshakes_refused_total{{limit="{k}"}} {n}'
        for k, n in sorted((pending_refused or Counter()).items())
    ]
    if stored is not None:
        lines += [
            "# HELP workspace_stored_messages Messages in the store.",
            "# TYPE workspace_stored_messages gauge",
            f"workspace_stored_messages {stored}",
        ]
    lines += [
        "# HELP workspace_uptime_seconds Seconds since the server started.",
        "# TYPE workspace_uptime_seconds gauge",
        f"workspace_uptime_seconds {uptime:.3f}",
    ]
    return "\n".join(lines) + "\n"
