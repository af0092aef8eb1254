"""Housekeeping on server-wide timers: keepalive pings, idle timeouts, forgetting idle limiters.

One task each for all connections: a task per connection costs several KiB.
"""

from __future__ import annotations

import asyncio
import logging
import time

from workspace_tui.protocol import CLOSE_IDLE

log = logging.getLogger("workspace.server")


class HousekeepingMixin:
    """Keepalive and idle sweeps; part of :class:`~workspace_tui.server.app.Server`."""

    async def _keepalive(self) -> None:
        """WebSocket pings for every connection from one task; peers that stop answering are dropped."""
        interval = self.config.ping_interval or 20.0
        timeout = self.config.ping_timeout
        tick = max(0.02, min(interval, timeout or interval) / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for peer in list(self.hub.peers):
                if peer.closing:
                    continue
                ws = peer.ws
                sent = peer.ping_sent_at
                heard = max(peer.last_seen, ws.pong_at, ws.ping_at)
                if sent and heard < sent:  # waiting for the pong
                    if timeout and now - sent > timeout:  # dead: no close handshake to wait for
                        peer.closing = True
                        self.metrics.closes[1011] += 1
                        log.info("dropping %s: keepalive ping timeout", peer.user.username)
                        ws.transport.abort()
                    continue
                if now - max(sent, heard) >= interval:
                    peer.ping_sent_at = now
                    try:
                        ws.protocol.send_ping(b"ka")
                        ws.send_data()
                    except Exception:
                        pass

    async def _sweep(self) -> None:
        """Idle timeouts and forgetting idle limiters, on one timer for all connections."""
        idle = self.config.idle_timeout
        interval = min(5.0, max(0.05, idle / 10)) if idle else 5.0
        loop = asyncio.get_running_loop()
        last_prune = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            if idle:
                for peer in list(self.hub.peers):
                    if not peer.closing and now - max(peer.last_seen, peer.ws.ping_at) > idle:
                        self._close(peer, CLOSE_IDLE, f"idle timeout: nothing received for {idle:g} s")
            mono = time.monotonic()
            if mono - last_prune > 30:
                last_prune = mono
                for limiters in (self.send_limiters, self.frame_limiters):
                    for name in [n for n, lim in limiters.items() if n not in self.presence.users and lim.idle(mono)]:
                        del limiters[name]
                self.presence.prune()


