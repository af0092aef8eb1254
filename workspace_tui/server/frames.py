"""What each client frame does: sends (dedupe, rate limit, batched commit), typing, presence, paging.

:class:`FramesMixin` is part of :class:`~workspace_tui.server.app.Server`.
Everything here is synchronous and runs on the event loop, so the order of
calls is the order clients see.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from workspace_tui.protocol import (
    CLOSE_POLICY,
    ERR_NOT_ALLOWED,
    ERR_RATE_LIMITED,
    ERR_UNAVAILABLE,
    FrameError,
    Ping,
    RequestHistory,
    SendMessage,
    SetTyping,
    UpdatePresence,
    error_frame,
    history_frame,
    message_new_frame,
    parse_client_frame,
    pong_frame,
    presence_frame,
    typing_frame,
)

from .hub import Peer
from .limits import Limiter
from .presence import UserState

log = logging.getLogger("workspace.server")


class FramesMixin:
    """Handlers for client frames."""

    def _reject(self, peer: Peer, frame: dict[str, Any]) -> None:
        self.metrics.rejections[frame["code"]] += 1
        self.hub.send(peer, frame)

    def _frame_allowed(self, peer: Peer, frame_type: str | None, client_msg_id: str | None = None) -> bool:
        cfg = self.config
        if not cfg.frame_rate:
            return True
        name = peer.user.username
        lim = self.frame_limiters.get(name)
        if lim is None:
            lim = self.frame_limiters[name] = Limiter(cfg.frame_burst, cfg.frame_rate, cfg.frame_flood)
        wait = lim.check()
        if not wait:
            return True
        self._reject(
            peer,
            error_frame(
                ERR_RATE_LIMITED,
                f"too many frames: at most {cfg.frame_rate:g} per second (burst {cfg.frame_burst})",
                client_msg_id=client_msg_id,
                frame_type=frame_type,
                retry_after_ms=wait,
            ),
        )
        if lim.flooding():
            self._close(peer, CLOSE_POLICY, "flooding: too many frames")
        return False

    def _on_frame(self, peer: Peer, raw: str | bytes) -> None:
        try:
            req = parse_client_frame(raw)
        except FrameError as exc:
            if self._frame_allowed(peer, exc.frame_type, exc.client_msg_id):
                self._reject(peer, exc.frame())
            return
        kind = type(req)
        if kind is SendMessage:
            self._on_send(peer, req)  # type: ignore[arg-type]
            return
        if kind is SetTyping:
            if self._frame_allowed(peer, "typing:indicator"):
                self._on_typing(peer, req.is_typing)  # type: ignore[union-attr]
        elif kind is UpdatePresence:
            if self._frame_allowed(peer, "presence:update"):
                self._on_presence(peer, req.status)  # type: ignore[union-attr]
        elif kind is Ping:
            if self._frame_allowed(peer, "ping"):
                self.hub.send(peer, pong_frame(req.id))  # type: ignore[union-attr]
        elif kind is RequestHistory:
            if self._frame_allowed(peer, "history:request"):
                self._on_history(peer, req)  # type: ignore[arg-type]

    def _on_send(self, peer: Peer, req: SendMessage) -> None:
        cfg = self.config
        u = peer.user
        cmid = req.client_msg_id
        if cmid is not None:
            inflight = self._inflight.get((u.username, cmid))
            try:
                original = inflight or self.store.by_client_msg_id(u.username, cmid)
            except Exception as exc:  # the store is broken: say so, the client will retry
                log.error("store lookup failed: %s", exc)
                self._reject(
                    peer,
                    error_frame(
                        ERR_UNAVAILABLE, "the store is unavailable; send it again later",
                        client_msg_id=cmid, frame_type="message:send",
                    ),
                )
                return
            if original is not None:  # a resend: answer this connection only, store nothing
                if self._frame_allowed(peer, "message:send", cmid):
                    self.metrics.duplicates_total += 1
                    if inflight is not None:
                        self._dup_waiters.append((peer, original))  # answered once it is committed
                    else:
                        self.hub.send(peer, message_new_frame(original))
                return
        if cfg.rate_limit:
            lim = self.send_limiters.get(u.username)
            if lim is None:
                lim = self.send_limiters[u.username] = Limiter(
                    cfg.rate_limit, cfg.rate_limit / 60.0, cfg.flood_threshold
                )
            wait = lim.check()
            if wait:
                self._reject(
                    peer,
                    error_frame(
                        ERR_RATE_LIMITED,
                        f"rate limit: at most {cfg.rate_limit} messages per minute",
                        client_msg_id=cmid,
                        frame_type="message:send",
                        retry_after_ms=wait,
                    ),
                )
                if lim.flooding():
                    self._close(peer, CLOSE_POLICY, "flooding: too many messages past the rate limit")
                return
        if self._closing:
            self._reject(
                peer,
                error_frame(ERR_UNAVAILABLE, "server is shutting down", client_msg_id=cmid, frame_type="message:send"),
            )
            return
        if u.typing:
            self._clear_typing(u)
        message = self.store.new_message(u.user_id, u.username, req.text, cmid)
        self._batch.append((message, peer))
        if cmid is not None:
            self._inflight[(u.username, cmid)] = message
        if not self._commit_scheduled:
            self._commit_scheduled = True
            asyncio.get_running_loop().call_soon(self._commit)

    def _commit(self) -> None:
        """Store everything queued this iteration in one transaction, then broadcast it."""
        self._commit_scheduled = False
        batch, self._batch = self._batch, []
        waiters, self._dup_waiters = self._dup_waiters, []
        if not batch:
            return
        messages = [m for m, _ in batch]
        try:
            self.store.commit(messages)
        except Exception as exc:
            log.error("could not store %d message(s): %s", len(messages), exc)
            for m, peer in batch:
                if m.client_msg_id is not None:
                    self._inflight.pop((m.username, m.client_msg_id), None)
            # The senders and whoever resent the same clientMsgId meanwhile: all may send again.
            for peer, m in [(peer, m) for m, peer in batch] + list(waiters):
                self._reject(
                    peer,
                    error_frame(
                        ERR_UNAVAILABLE,
                        "the message could not be stored; send it again",
                        client_msg_id=m.client_msg_id,
                        frame_type="message:send",
                    ),
                )
            return
        for m in messages:
            if m.client_msg_id is not None:
                self._inflight.pop((m.username, m.client_msg_id), None)
        self.metrics.messages_total += len(messages)
        self.last_message_id = messages[-1].id
        self.hub.publish_many([message_new_frame(m) for m in messages])
        for peer, m in waiters:
            self.hub.send(peer, message_new_frame(m))
        self.hub.flush()  # committed: deliver now rather than one loop iteration later

    def _not_allowed(self, peer: Peer, frame_type: str) -> None:
        self._reject(
            peer,
            error_frame(
                ERR_NOT_ALLOWED,
                "a quiet connection (presence=none) cannot set presence or typing",
                frame_type=frame_type,
            ),
        )

    def _on_typing(self, peer: Peer, is_typing: bool) -> None:
        if peer.quiet:
            self._not_allowed(peer, "typing:indicator")
            return
        u = peer.user
        if not u.visible:
            return  # appearing offline: typing is not shown
        if is_typing:
            if u.typing_timer is not None:
                u.typing_timer.cancel()
            loop = asyncio.get_running_loop()
            u.typing_timer = loop.call_later(self.config.typing_timeout, self._typing_expired, u)
            u.typing = True
            self.hub.publish(typing_frame(u.user_id, u.username, True), exclude_user=u.user_id, lazy=True)
        elif u.typing:
            self._clear_typing(u)

    def _clear_typing(self, u: UserState) -> None:
        if u.typing_timer is not None:
            u.typing_timer.cancel()
            u.typing_timer = None
        if u.typing:
            u.typing = False
            self.hub.publish(typing_frame(u.user_id, u.username, False), exclude_user=u.user_id, lazy=True)

    def _typing_expired(self, u: UserState) -> None:
        u.typing_timer = None
        if u.typing:
            self._clear_typing(u)

    def _on_presence(self, peer: Peer, status: str) -> None:
        if peer.quiet:
            self._not_allowed(peer, "presence:update")
            return
        u = peer.user
        was_visible = u.visible
        if status == "offline" and u.typing:
            self._clear_typing(u)
        u.status = status
        self.presence.refresh(u)
        frame = presence_frame(u.user_id, u.username, status, len(u.peers))
        if was_visible or u.visible:
            self.hub.publish(frame, exclude_peer=peer, lazy=True)
        else:  # hidden before and after: only the user's own other connections learn it
            for other in u.peers:
                if other is not peer:
                    self.hub.send(other, frame)

    def _on_history(self, peer: Peer, req: RequestHistory) -> None:
        try:
            messages, has_more = self.store.latest(req.limit, req.before)
        except Exception as exc:
            log.error("history read failed: %s", exc)
            self._reject(
                peer, error_frame(ERR_UNAVAILABLE, "history is unavailable right now", frame_type="history:request")
            )
            return
        self.hub.send(peer, history_frame(messages, reason="page", has_more=has_more, before=req.before))

