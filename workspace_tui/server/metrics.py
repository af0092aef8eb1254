"""Counters for ``/metrics`` (Prometheus text format) and ``/healthz``."""

from __future__ import annotations

import time
from collections import Counter


class Metrics:
    """Plain counters; the hub counts deliveries itself (hot path)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.connections_total = 0
        self.messages_total = 0
        self.duplicates_total = 0
        self.rejections: Counter[str] = Counter()  # error code -> count
        self.handshake_rejections: Counter[int] = Counter()  # HTTP status -> count
        self.closes: Counter[int] = Counter()  # close code we initiated -> count

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started

    def render(self, *, connections: int, users: int, deliveries: int, stored: int | None = None) -> str:
        lines = [
            "# HELP workspace_connections Open WebSocket connections.",
            "# TYPE workspace_connections gauge",
            f"workspace_connections {connections}",
            "# HELP workspace_users_online Distinct users visible online.",
            "# TYPE workspace_users_online gauge",
            f"workspace_users_online {users}",
            "# HELP workspace_connections_total Connections accepted since start.",
            "# TYPE workspace_connections_total counter",
            f"workspace_connections_total {self.connections_total}",
            "# HELP workspace_messages_total Messages accepted and stored since start.",
            "# TYPE workspace_messages_total counter",
            f"workspace_messages_total {self.messages_total}",
            "# HELP workspace_duplicate_sends_total Resent messages answered from the store (exactly-once).",
            "# TYPE workspace_duplicate_sends_total counter",
            f"workspace_duplicate_sends_total {self.duplicates_total}",
            "# HELP workspace_deliveries_total Frames queued to connections by broadcasts.",
            "# TYPE workspace_deliveries_total counter",
            f"workspace_deliveries_total {deliveries}",
            "# HELP workspace_rejections_total Client frames rejected with an error frame, by code.",
            "# TYPE workspace_rejections_total counter",
        ]
        lines += [f'workspace_rejections_total{{code="{c}"}} {n}' for c, n in sorted(self.rejections.items())]
        lines += [
            "# HELP workspace_handshake_rejections_total Connections refused at the handshake, by HTTP status.",
            "# TYPE workspace_handshake_rejections_total counter",
        ]
        lines += [
            f'workspace_handshake_rejections_total{{status="{s}"}} {n}'
            for s, n in sorted(self.handshake_rejections.items())
        ]
        lines += [
            "# HELP workspace_server_closes_total Connections closed by the server, by close code.",
            "# TYPE workspace_server_closes_total counter",
        ]
        lines += [f'workspace_server_closes_total{{code="{c}"}} {n}' for c, n in sorted(self.closes.items())]
        if stored is not None:
            lines += [
                "# HELP workspace_stored_messages Messages in the store.",
                "# TYPE workspace_stored_messages gauge",
                f"workspace_stored_messages {stored}",
            ]
        lines += [
            "# HELP workspace_uptime_seconds Seconds since the server started.",
            "# TYPE workspace_uptime_seconds gauge",
            f"workspace_uptime_seconds {self.uptime:.3f}",
        ]
        return "\n".join(lines) + "\n"
