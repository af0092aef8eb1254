"""The chat app: layout, keys, and the one worker that talks to the client.

``ChatApp._pump_events`` is the only place that reads from the network: it
turns each :mod:`workspace_tui.client.events` event into a Message from
:mod:`workspace_tui.tui.messages`. Handlers below update the widgets and call
the client for what the user asks (send, presence, typing, older pages).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Static, TextArea

from workspace_tui.client.events import (
    ClientEvent,
    ConnectionState,
    ErrorReceived,
    FrameReceived,
    HistoryReceived,
    Joined,
    MessageAcknowledged,
    MessageFailed,
    MessagePending,
    MessageReceived,
    PresenceChanged,
    ReadPositionChanged,
    RoomInvited,
    RoomJoined,
    RoomLeft,
    RoomMemberChanged,
    RoomMembersListed,
    RoomsListed,
    RoomUpdated,
    RosterRefreshed,
    SendPaced,
    StateChanged,
    TypingChanged,
    TypingInRoom,
    is_verified,
)
from workspace_tui.client.reads import GENERAL, RoomSummary
from workspace_tui.tui.notify import Notifier, methods_for, why_notify
from workspace_tui.tui.rooms import Rooms
from workspace_tui.tui.widgets.sidebar import Sidebar
from workspace_tui.paths import input_history_path
from workspace_tui.tui import messages as m
from workspace_tui.tui import remembered
from workspace_tui.tui.format import mentions, safe
from workspace_tui.tui.keys import KEY_IDS
from workspace_tui.tui.screens.failed import FailedScreen
from workspace_tui.tui.screens.help import HelpScreen
from workspace_tui.tui.screens.join import JoinScreen
from workspace_tui.tui.widgets.chat_input import ChatInput
from workspace_tui.tui.widgets.key_footer import KeyFooter
from workspace_tui.tui.widgets.message_list import MessageList
from workspace_tui.tui.widgets.roster import Roster
from workspace_tui.tui.widgets.status_bar import StatusBar
from workspace_tui.tui.widgets.typing_line import TypingLine

TYPING_REFRESH = 3.0  # resend "typing" at most this often while editing
TYPING_IDLE = 4.0  # "stopped typing" after this long without an edit
HISTORY_PAGE = 100
ROSTER_MIN_COLUMNS = 100  # narrower terminals hide the roster until roster.toggle (F7) shows it


def message_for(event: ClientEvent) -> m.Message | None:
    """The app Message for one client event."""
    if isinstance(event, MessageReceived):
        return m.ChatMessageReceived(event.message, event.own)
    if isinstance(event, TypingChanged):
        return m.TypingUpdated(event.user_id, event.username, event.is_typing)
    if isinstance(event, PresenceChanged):
        return m.PresenceUpdated(event.user_id, event.username, event.status, event.connections, is_verified(event))
    if isinstance(event, RosterRefreshed):
        return m.RosterReloaded(event.users)
    if isinstance(event, StateChanged):
        return m.ConnectionChanged(
            event.state,
            event.attempt,
            event.delay,
            event.reason,
            event.queued,
            event.detail,
            event.status_code,
            event.refusal,
        )
    if isinstance(event, Joined):
        return m.ChatJoined(
            event.user_id,
            event.username,
            event.users,
            event.limits,
            event.resumed,
            event.status,
            event.verified,
            event.auth,
            getattr(event, "rooms", ()),
        )
    if isinstance(event, ReadPositionChanged):
        return m.ReadElsewhere(event.room, event.message_id)
    if isinstance(event, HistoryReceived):
        return m.HistoryLoaded(
            event.messages, event.reason, event.has_more, event.gap,
            getattr(event, "room", GENERAL), getattr(event, "rooms", ()),
        )
    if isinstance(event, TypingInRoom):
        return m.TypingInRoomUpdated(event.user_id, event.username, event.is_typing, event.room)
    if isinstance(event, (RoomJoined, RoomLeft, RoomUpdated, RoomMemberChanged, RoomInvited, RoomsListed, RoomMembersListed)):
        return m.RoomEventReceived(event)
    if isinstance(event, MessagePending):
        return m.OwnMessagePending(event.entry)
    if isinstance(event, MessageAcknowledged):
        return m.OwnMessageAcknowledged(event.client_msg_id, event.message)
    if isinstance(event, MessageFailed):
        return m.OwnMessageFailed(event.entry, event.code, event.reason)
    if isinstance(event, ErrorReceived):
        return m.ServerErrorReceived(event.code, event.message, event.client_msg_id, event.retry_after_ms)
    if isinstance(event, SendPaced):
        return m.SendingPaced(event.delay, event.per_minute, event.queued, event.refused)
    if isinstance(event, FrameReceived) and event.frame.get("type") == "message:new":
        names = (event.frame.get("data") or {}).get("unverifiedRecipients")
        if isinstance(names, list) and names:
            return m.UnverifiedRecipients([str(n)[:32] for n in names[:8]])
    return None


def _binding(binding_id: str, action: str, description: str, **kwargs: Any) -> Binding:
    """A remappable binding: its default key and tooltip come from :data:`~workspace_tui.tui.keys.KEY_IDS`."""
    key, tooltip = KEY_IDS[binding_id]
    return Binding(key, action, description, id=binding_id, tooltip=tooltip, **kwargs)


def _default_client_factory(url: str, username: str, token: str | None, **identity: Any) -> Any:
    """A client; ``identity`` (``key=``, ``invite=``) only when redeeming an invite."""
    from workspace_tui.client import ChatClient

    return ChatClient(url, username, token, **identity)


class ChatApp(App[None]):
    """``workspace chat``: messages, roster, typing line, status bar, input."""

    CSS_PATH = "chat.tcss"
    TITLE = "workspace"
    # Classes on each screen by terminal width: chat.tcss hides the roster on "-narrow" ones.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (ROSTER_MIN_COLUMNS, "-wide")]

    # Every binding has an id: users remap them in the config file ([chat.keys], see tui/keys.py).
    BINDINGS = [
        _binding("help", "help", "Help"),
        _binding("status.online", "status('online')", "Online"),
        _binding("status.away", "status('away')", "Away"),
        _binding("status.busy", "status('busy')", "Busy"),
        _binding("status.offline", "status('offline')", "Offline"),
        _binding("message.failed", "failed_messages", "Failed"),
        _binding("message.retry", "retry_failed", "Retry"),
        _binding("message.discard", "discard_failed", "Discard"),
        _binding("messages.page_up", "scroll_messages(-1)", "Page up", show=False, priority=True),
        _binding("messages.page_down", "scroll_messages(1)", "Page down", show=False, priority=True),
        _binding("messages.bottom", "jump_to_bottom", "Latest", show=False),
        # priority: the message input's own F7 (select all) gives way
        _binding("roster.toggle", "toggle_roster", "Roster", priority=True),
        # not in the footer: the status bar shows it next to the reason, while there is one
        _binding("connection.reconnect", "reconnect_now", "Reconnect", show=False),
        # priority: the input's own Ctrl+K (delete to the end of the line) and F6 give way
        _binding("rooms.switcher", "switcher", "Rooms", priority=True),
        _binding("rooms.next", "next_room(1)", "Next room", show=False, priority=True),
        _binding("rooms.previous", "next_room(-1)", "Previous room", show=False, priority=True),
        _binding("rooms.next_unread", "next_unread", "Next unread", show=False, priority=True),
        _binding("sidebar.toggle", "toggle_sidebar", "Sidebar", show=False, priority=True),
    ]

    def __init__(
        self,
        url: str,
        username: str | None = None,
        token: str | None = None,
        *,
        default_username: str | None = None,
        bell: bool = True,
        auto_away_minutes: float = 10.0,
        serve: Callable[[], Awaitable[Any]] | None = None,
        client_factory: Callable[[str, str, str | None], Any] | None = None,
        connect: bool = True,
        keymap: dict[str, str] | None = None,
        highlight: list[str] | tuple[str, ...] = (),
        notify_methods: tuple[str, ...] | None = None,
    ) -> None:
        """``serve``: an async factory (``partial(start_server, config)``) for a server
        to host in-process before joining; it must return an object with ``url``
        and ``async close()``.

        ``connect=False`` builds the screen without a client (snapshot tests feed
        it Messages directly).

        ``keymap``: binding id -> key, checked with :func:`~workspace_tui.tui.keys.check_keymap`.

        ``highlight``: words that notify like a mention (``[chat] highlight``). ``notify_methods``:
        how desktop notifications go out (default: from the environment, see tui/notify.py).
        """
        super().__init__()
        if keymap:
            self.set_keymap(keymap)
            # A key the user chose wins over the message input's own use of it (ctrl+a, ctrl+e, f6...):
            # check_keymap has already refused the keys needed for typing.
            for key, bindings in self._bindings.key_to_bindings.items():
                self._bindings.key_to_bindings[key] = [
                    replace(b, priority=True) if b.id in keymap else b for b in bindings
                ]
        self.url = url
        self.username = username
        self.token = token
        self.default_username = default_username
        self.bell_on_mention = bell
        self.auto_away_seconds = max(0.0, auto_away_minutes * 60)
        self.serve_config = serve
        self.client_factory = client_factory or _default_client_factory
        self.connect = connect
        self.client: Any = None
        self.server: Any = None
        self.user_id: str | None = None
        self.status = "online"
        self.auto_away_from: str | None = None  # the status auto-away replaced, while it is active
        self.last_activity = time.monotonic()
        self.mention_count = 0
        self._typing_sent = False
        self._typing_last = 0.0
        self._typing_timer: Any = None
        self._open_batch: list[tuple[Any, bool]] | None = None  # see ChatMessagesReceived
        self._theme_restored = False  # from compose on, a theme change is the user's pick: remembered
        self._history_path: Path | None = None  # this server and user's input history, once joined
        self._told_cannot_remember = False
        self._rate_toast_at = 0.0  # when we last said that sends are paced (once per burst, not per refusal)
        self._unsaved_key: str | None = None  # offered with an invite: saved once the server accepted it
        self.highlight = [w for w in highlight if isinstance(w, str) and w.strip()][:100]
        import os

        self.notifier = Notifier(self._write_terminal, methods_for(os.environ) if notify_methods is None else notify_methods)
        self.rooms = Rooms(username or "")
        self.current_room = GENERAL
        self.lists: dict[str, MessageList] = {}
        self.summaries: dict[str, RoomSummary] = {}  # the server's last word on each room (connected, room:joined)
        self._switch_on_join: str | None = None  # /join or /create: open the room once the server says we are in
        self._members_asked: set[str] = set()
        self.away_reason: str | None = None
        self.notified: list[tuple[str, str]] = []  # (title, body) of every desktop notification, newest last

    def get_driver_class(self) -> Any:
        """Textual's driver; on Linux and macOS one that reads ESC CR (Alt+Enter in tmux) as Alt+Enter."""
        driver_class = super().get_driver_class()
        if driver_class.__module__ == "textual.drivers.linux_driver":
            from workspace_tui.tui.driver import chat_driver_class

            driver_class = chat_driver_class(driver_class)
        return driver_class

    # -- layout --------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # The theme you picked last time, before the first paint (no flash of the default one).
        saved = remembered.load_theme()
        if saved and saved in self.available_themes and saved != self.theme:
            self.theme = saved
        self._theme_restored = True
        # Widgets are kept by reference: network messages keep arriving while a
        # modal screen (help, command palette) is on top, where a query would miss.
        self.lists[GENERAL] = MessageList(self.username or "", id="messages")
        self.typing_line = TypingLine(id="typing")
        self.chat_input = ChatInput(id="input")
        self.chat_input.completer = self._complete
        self.roster = Roster(id="roster")
        self.sidebar = Sidebar(id="sidebar")
        self.room_title = Static(id="room-title")
        self.status_bar = StatusBar(self.url, id="status")
        self.conversation = Vertical(id="conversation")
        with Horizontal(id="main"):
            yield self.sidebar
            with self.conversation:
                yield self.room_title
                yield self.lists[GENERAL]
                yield self.typing_line
                yield self.chat_input
            yield self.roster
        yield self.status_bar
        yield KeyFooter(id="footer")

    @property
    def message_list(self) -> MessageList:
        """The list of the room on screen."""
        return self.lists[self.current_room]

    async def on_mount(self) -> None:
        self._show_rooms()
        self.chat_input.focus()
        self.status_bar.reconnect_key = self.key_for("connection.reconnect")
        if self._keymap:
            self.message_list.failed_hint = (
                f"{self.key_for('message.retry')} retry · {self.key_for('message.discard')} discard"
            )
        if self.auto_away_seconds:
            self.set_interval(min(5.0, max(0.2, self.auto_away_seconds / 5)), self._check_idle)
        if not self.connect:
            return
        if self.serve_config is not None:
            # An embedded server, started by the caller's factory: the TUI never imports the server.
            try:
                self.server = await self.serve_config()
            except OSError as exc:
                self.exit(return_code=1, message=Text(f"workspace: {exc}"))
                return
            self.url = self.server.url
            self.status_bar.server = self.url
        if self.username:
            await self._join(self.username)
        else:
            self.push_screen(JoinScreen(self.url, self.default_username), self._joined_from_screen)

    async def _joined_from_screen(self, username: str | None) -> None:
        if username:
            await self._join(username)

    async def _join(self, username: str, invite: str | None = None) -> None:
        self.username = username
        self.sub_title = f"{username} @ {self.url}"
        self.rooms.me = username
        for ml in self.lists.values():
            ml.set_username(username)
        self._load_muted()
        self._restore_input_history()
        if invite is None:
            self._unsaved_key = None
            self.client = self.client_factory(self.url, username, self.token)
        else:
            from workspace_tui.client.keys import new_key

            # A new key goes with the invite; the one on disk is replaced only when the server took it.
            self._unsaved_key = new_key()
            self.client = self.client_factory(self.url, username, self.token, key=self._unsaved_key, invite=invite)
        if hasattr(self.client, "follow_roster"):
            self.client.follow_roster = True  # the roster is on screen: re-read it after a presence storm
        await self.client.start()
        self._pump_events(self.client)

    def _ask_for_invite(self, error: str | None = None) -> None:
        """The server wants this name's invite: ask for it, then join again with it."""
        from workspace_tui.tui.screens.invite import InviteScreen

        if isinstance(self.screen, InviteScreen) or not self.username:
            return
        shown = self.url.split("?", 1)[0]  # a token in the query string stays off the screen
        self.push_screen(InviteScreen(self.username, shown, error), self._redeem_invite)

    async def _redeem_invite(self, code: str | None) -> None:
        if not code or not self.username:
            return
        old = self.client
        if old is not None:
            try:
                await old.close()
            except Exception:  # noqa: BLE001 - replacing it anyway
                pass
        await self._join(self.username, invite=code)

    def _keep_redeemed_key(self, verified: bool) -> None:
        """The invite worked: this device's key for the name is the one that went with it."""
        key, self._unsaved_key = self._unsaved_key, None
        if key is None or not verified or not self.username:
            return
        from workspace_tui.client.keys import KeyStoreError, save_key

        try:
            path = save_key(self.url, self.username, key)
        except KeyStoreError as exc:
            self.notify(
                f"Invite accepted, but the key could not be saved: {exc}. You are in for this session only.",
                severity="error", timeout=20, markup=False,
            )
            return
        self.notify(f"Invite accepted: {self.username} is yours; the key is saved in {path}", timeout=10, markup=False)

    @work(exclusive=True, group="network")
    async def _pump_events(self, client: Any) -> None:
        """The one place network events enter the app."""
        try:
            await self._pump(client)
        except Exception as exc:  # a client bug must not take the app (and the user's draft) down
            self.log.error(f"client event stream failed: {exc!r}")
            self.status_bar.set_connection(ConnectionState.STOPPED, reason=f"internal error: {exc}")
            self.notify(f"Connection handling failed: {exc!r}", severity="error", timeout=15, markup=False)

    async def _pump(self, client: Any) -> None:
        async for event in client.events():
            if isinstance(event, MessageReceived):
                item = (event.message, event.own, getattr(event, "room", GENERAL))
                if self._open_batch is not None:
                    self._open_batch.append(item)
                    continue
                self._open_batch = [item]
                self.post_message(m.ChatMessagesReceived(self._open_batch))
                continue
            self._open_batch = None  # keep order: later messages go in a new batch
            message = message_for(event)
            if message is not None:
                self.post_message(message)

    async def on_unmount(self) -> None:
        if self.client is not None:
            try:
                await self.client.close()
            except Exception:
                pass
        if self.server is not None:
            try:
                await self.server.close()
            except Exception:
                pass

    # -- activity and auto-away ----------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded:
            self.last_activity = time.monotonic()
            if self.auto_away_from is not None:
                previous, self.auto_away_from = self.auto_away_from, None
                await self._apply_status(previous)
        await super().on_event(event)

    async def _check_idle(self) -> None:
        if not self.auto_away_seconds or self.auto_away_from is not None or self.status != "online":
            return
        if time.monotonic() - self.last_activity >= self.auto_away_seconds:
            self.auto_away_from = self.status
            await self._apply_status("away", auto=True)

    # -- actions -------------------------------------------------------------

    async def action_status(self, status: str) -> None:
        self.auto_away_from = None
        await self._apply_status(status)

    async def _apply_status(self, status: str, auto: bool = False) -> None:
        self.status = status
        self.status_bar.set_status(status, auto_away=auto)
        if self.user_id is not None:
            self.roster.update_user(self.user_id, self.username or "", status)
        if self.client is not None:
            try:
                await self.client.set_presence(status)
            except Exception as exc:  # the client remembers it and re-applies on reconnect
                self.log.warning(f"set_presence failed: {exc!r}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The failed-message keys appear in the footer only while there is a failed message.
        if action in ("retry_failed", "discard_failed", "failed_messages"):
            return bool(self.message_list.failed_ids())
        return True

    def key_for(self, binding_id: str) -> str:
        """How the key of a binding is shown (``F8``, ``^a``), after the user's keymap."""
        key = self._keymap.get(binding_id) or KEY_IDS[binding_id][0]
        return self.get_key_display(Binding(key.split(",")[0], ""))

    async def action_reconnect_now(self) -> None:
        """Try to connect now: cuts the wait before the next attempt short, or starts again after a refusal."""
        client = self.client
        if client is None:
            self.notify("Not joined yet.", timeout=3)
        elif client.reconnect_now():
            self.status_bar.set_connection(ConnectionState.RECONNECTING, attempt=self.status_bar.attempt)
        elif client.state is ConnectionState.STOPPED and self.username:
            # The server refused us for good (bad token or name) or the client stopped: a fresh start.
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - replacing it anyway
                pass
            await self._join(self.username)
        elif client.state is ConnectionState.CONNECTED:
            self.notify("Already connected.", timeout=3)
        else:
            self.notify("Connecting already…", timeout=3)

    async def action_quit(self) -> None:
        """Quit; with messages still queued, ask first (Ctrl+Q again quits)."""
        from workspace_tui.tui.screens.quit import QuitScreen

        queued = 0
        if self.client is not None:
            try:
                queued = int(self.client.queued)
            except Exception:  # noqa: BLE001 - quitting must always work
                queued = 0
        if not queued or isinstance(self.screen, QuitScreen):
            self.exit()
            return

        def answered(quit_anyway: bool | None) -> None:
            if quit_anyway:
                self.exit()

        self.push_screen(QuitScreen(queued, self.key_for_quit()), answered)

    def key_for_quit(self) -> str:
        return self.get_key_display(Binding("ctrl+q", ""))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_failed_messages(self) -> None:
        """Open the list of failed messages, to retry or discard any one of them."""
        if not self.message_list.failed_ids():
            self.notify("No failed message.", timeout=3)
        elif not isinstance(self.screen, FailedScreen):
            self.push_screen(FailedScreen())

    async def action_retry_failed(self) -> None:
        """Retry the failed message; with several, let the user pick which."""
        failed = self.message_list.failed_ids()
        if len(failed) > 1:
            self.action_failed_messages()
        elif failed:
            await self.retry_message(failed[0])
        else:
            self.notify("No failed message to retry.", timeout=3)

    async def action_discard_failed(self) -> None:
        """Discard the failed message; with several, let the user pick which."""
        failed = self.message_list.failed_ids()
        if len(failed) > 1:
            self.action_failed_messages()
        elif failed:
            await self.discard_message(failed[0])
        else:
            self.notify("No failed message to discard.", timeout=3)

    async def retry_message(self, client_msg_id: str) -> bool:
        """Send one failed message again; ``False`` when it cannot be (it stays failed)."""
        ok = self.client is not None and await self.client.retry(client_msg_id)
        if ok:
            self.message_list.mark_retrying(client_msg_id)
        self.refresh_bindings()
        return bool(ok)

    async def discard_message(self, client_msg_id: str) -> None:
        """Drop one failed message from the outbox and the screen."""
        if self.client is not None:
            await self.client.discard(client_msg_id)
        self.message_list.discard(client_msg_id)
        self._refresh_queued()
        self.refresh_bindings()

    def action_scroll_messages(self, direction: int) -> None:
        ml = self.message_list
        if direction < 0:
            ml.scroll_page_up(animate=False)
        else:
            ml.scroll_page_down(animate=False)

    def action_jump_to_bottom(self) -> None:
        self.message_list.jump_to_bottom()

    # -- what survives a restart: the theme, the input history ---------------

    def watch_theme(self, theme: str) -> None:
        if not self._theme_restored:
            return  # set before compose (by a caller or a test): not the user's pick
        try:
            remembered.save_theme(theme)
        except OSError as exc:
            self._cannot_remember("the theme", exc)

    def _restore_input_history(self) -> None:
        """Up/Down recall what you sent to this server as this user in earlier runs too."""
        self._history_path = input_history_path(self.url, self.username or "")
        earlier = remembered.load_history(self._history_path)
        sent = self.chat_input.sent
        sent[:0] = [text for text in earlier if text not in sent]

    @on(m.SendText)
    def _remember_sent(self, message: m.SendText) -> None:
        if self._history_path is None:
            return
        try:
            remembered.remember_sent(self._history_path, message.text)
        except OSError as exc:
            self._cannot_remember("your input history", exc)

    def _cannot_remember(self, what: str, exc: OSError) -> None:
        if not self._told_cannot_remember:
            self._told_cannot_remember = True
            self.notify(f"Cannot save {what}: {exc}", severity="warning", timeout=8, markup=False)

    def action_toggle_sidebar(self) -> None:
        """Show or hide the rooms; the choice then holds at any width (until the app restarts)."""
        screen = self.sidebar.screen
        show = not self.sidebar.display
        screen.set_class(show, "-sidebar-shown")
        screen.set_class(not show, "-sidebar-hidden")

    def action_toggle_roster(self) -> None:
        """Show or hide the roster; the choice then holds at any width (until the app restarts)."""
        screen = self.roster.screen
        show = not self.roster.display
        screen.set_class(show, "-roster-shown")
        screen.set_class(not show, "-roster-hidden")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for status in ("online", "away", "busy", "offline"):
            yield SystemCommand(
                f"Status: {status}", f"Set your status to {status}", lambda s=status: self.run_action(f"status('{s}')")
            )
        yield SystemCommand(
            "Failed messages", "List the messages that were not sent: retry or discard each", self.action_failed_messages
        )
        yield SystemCommand("Help: keys", "Show every key of the chat", self.action_help)

    # -- typing indicator ----------------------------------------------------

    @on(TextArea.Changed, "#input")
    async def _input_changed(self, event: TextArea.Changed) -> None:
        if not event.text_area.text.strip():
            await self._stop_typing()
            return
        now = time.monotonic()
        if not self._typing_sent or now - self._typing_last >= TYPING_REFRESH:
            self._typing_sent, self._typing_last = True, now
            await self._send_typing(True)
        if self._typing_timer is not None:
            self._typing_timer.stop()
        self._typing_timer = self.set_timer(TYPING_IDLE, self._stop_typing)

    async def _stop_typing(self) -> None:
        if self._typing_timer is not None:
            self._typing_timer.stop()
            self._typing_timer = None
        if self._typing_sent:
            self._typing_sent = False
            await self._send_typing(False)

    async def _send_typing(self, is_typing: bool) -> None:
        if self.client is not None:
            try:
                if self.current_room == GENERAL:
                    await self.client.set_typing(is_typing)
                else:
                    await self.client.set_typing(is_typing, room=self.current_room)
            except Exception as exc:
                self.log.warning(f"set_typing failed: {exc!r}")

    # -- requests from widgets -----------------------------------------------

    async def on_send_text(self, message: m.SendText) -> None:
        from workspace_tui.tui.slash import run_line

        await self._stop_typing()
        await run_line(self, message.text)

    async def send_to_room(self, text: str, room: str | None = None, to: list[str] | None = None) -> None:
        """Post *text* in *room* (default: the one on screen), or as a DM *to* these names."""
        if self.client is None:
            self.notify("Not joined yet.", severity="warning")
            return
        room = room or self.current_room
        if to:
            await self.client.send(text, to=to)
        elif room == GENERAL:
            await self.client.send(text)
        else:
            await self.client.send(text, room=room)

    async def on_load_older(self, message: m.LoadOlder) -> None:
        room = message.room
        if self.client is None or not await self._request_history(message.before, room):
            self.list_for(room).loading_older = False

    async def _request_history(self, before: str | None, room: str) -> bool:
        if room == GENERAL:
            return bool(await self.client.request_history(before=before, limit=HISTORY_PAGE))
        return bool(await self.client.request_history(before=before, limit=HISTORY_PAGE, room=room))

    def on_unseen_changed(self, message: m.UnseenChanged) -> None:
        if message.room == self.current_room:
            self.status_bar.set_unseen(message.count, message.mentions)

    # -- read positions (kept by the server) -----------------------------------

    async def on_mark_read(self, message: m.MarkRead) -> None:
        if message.room == self.current_room:
            await self._report_read(message.message_id, room=message.room)

    async def on_app_focus(self, event: events.AppFocus) -> None:
        # Back in this window: what is on screen at the bottom has now been seen. (Textual
        # sets app_focus after this handler runs: the event itself says we have the focus.)
        if self.message_list.at_newest() and self.message_list.newest_id is not None:
            await self._report_read(self.message_list.newest_id, focused=True, room=self.current_room)

    async def _report_read(self, message_id: str, focused: bool | None = None, room: str = GENERAL) -> None:
        """Seen is read only in the window the user looks at: one with the focus."""
        if focused is None:
            focused = self.app_focus
        if self.client is None or not focused or not hasattr(self.client, "read"):
            return
        view = self.rooms.views.get(room)
        if view is not None and (view.unread or view.mentions):
            view.unread = view.mentions = 0
            self._show_rooms()
        try:
            if room == GENERAL:
                await self.client.read(message_id)
            else:
                await self.client.read(message_id, room=room)
        except Exception as exc:  # noqa: BLE001 - the position is a nicety; chatting goes on
            self.log.warning(f"read failed: {exc!r}")

    def on_read_elsewhere(self, message: m.ReadElsewhere) -> None:
        ml = self.lists.get(message.room)
        if ml is not None:
            ml.read_elsewhere(message.message_id)
        view = self.rooms.views.get(message.room)
        if view is not None and view.unread:
            # What is still unread there: others' messages after the position we were told of.
            after = sum(
                1 for e in (ml._entries if ml is not None else [])
                if e.message.id > message.message_id and e.message.username != self.username
            )
            view.unread = min(view.unread, after)
            view.mentions = min(view.mentions, after)
            self._show_rooms()

    # -- events from the network ---------------------------------------------

    def on_connection_changed(self, message: m.ConnectionChanged) -> None:
        self.status_bar.set_connection(
            message.state,
            attempt=message.attempt,
            delay=message.delay,
            reason=message.reason,
            detail=message.detail,
            status_code=message.status_code,
        )
        self.status_bar.set_queued(message.queued)
        if message.state is ConnectionState.STOPPED and message.refusal in ("invite_required", "bad_invite"):
            self._unsaved_key = None
            error = safe(message.reason or "") if message.refusal == "bad_invite" else None
            self._ask_for_invite(error)
        elif message.state is ConnectionState.STOPPED and message.reason:
            # A refusal says what to run: give the user time to read it.
            timeout = 30 if message.refusal else 10
            self.notify(f"Disconnected: {safe(message.reason)}", severity="error", timeout=timeout, markup=False)
        if message.state is not ConnectionState.CONNECTED:
            self.typing_line.clear()
        self.roster.set_stale(message.state is not ConnectionState.CONNECTED and bool(self.roster.members))

    def on_chat_joined(self, message: m.ChatJoined) -> None:
        self.user_id = message.user_id
        if self._unsaved_key is not None:
            self._keep_redeemed_key(message.verified)
        # Only a server that checks names can vouch for one: elsewhere a mark on every name says nothing.
        checks = message.auth in ("claim", "invite")
        self.message_list.set_mark_unverified(checks)
        self.roster.set_auth(message.auth)
        self.roster.reset(message.user_id, message.users)
        self._rooms_joined(message.rooms, message.resumed)
        general = next((r for r in message.rooms if r.room == GENERAL), None)
        if general is not None:
            if message.resumed:
                # Back after a drop: the marker stays; it only follows reading done elsewhere meanwhile.
                if general.last_read is not None:
                    self.message_list.read_elsewhere(general.last_read)
            else:
                self.message_list.set_read_position(general.last_read, general.unread, general.mentions)
        if message.status is not None and message.status != self.status:
            self._adopt_status(message.status)  # set in another window of ours (or before this one opened)
        # Presence frames go to the others; our own entry shows what we chose.
        self.roster.update_user(message.user_id, message.username, self.status, verified=message.verified)
        self._refresh_queued()

    def on_history_loaded(self, message: m.HistoryLoaded) -> None:
        target = message.room or GENERAL
        groups: dict[str, list[Any]] = {target: []} if message.room is not None else {}
        for i, msg in enumerate(message.messages):
            room = message.rooms[i] if i < len(message.rooms) else target
            groups.setdefault(room, []).append(msg)
        page = message.reason == "page"
        for room, msgs in groups.items():
            ml = self.list_for(room)
            before = ml.message_count
            ml.add_history(
                tuple(msgs),
                has_more=message.has_more if room == target else True,
                page=page,
                live=message.reason == "resume",
            )
            if message.reason == "resume" and room != self.current_room and ml.message_count > before:
                fresh = [x for x in msgs if x.username != self.username]
                self._count_unread(room, fresh)
        if message.gap:
            self.notify("Some messages from while you were away are no longer stored.", severity="warning")

    def on_chat_message_received(self, message: m.ChatMessageReceived) -> None:
        self._receive([(message.message, message.own)])

    def on_chat_messages_received(self, message: m.ChatMessagesReceived) -> None:
        if self._open_batch is message.items:
            self._open_batch = None  # handled: the worker starts a new batch
        self._receive(message.items)

    def _receive(self, items: list[Any]) -> None:
        ring = False
        changed = False
        for item in items:
            msg, own = item[0], item[1]
            room = item[2] if len(item) > 2 else GENERAL
            known = room in self.rooms.views
            view = self.rooms.ensure(room)
            changed = changed or not known
            added = self.list_for(room).add_messages([msg], live=True)
            if room == self.current_room:
                self.typing_line.clear_user(msg.user_id)
            if not added or own or not self.username or msg.username == self.username:
                continue
            if mentions(msg.text, self.username):
                self.mention_count += 1
            if room != self.current_room:
                self._count_unread(room, [msg], redraw=False)
                changed = True
            why = why_notify(msg.text, me=self.username, author=msg.username, room=room, is_dm=view.is_dm,
                             highlights=self.highlight)
            if why is None or view.muted or (room == self.current_room and self.app_focus):
                continue
            ring = True
            self._desktop_notify(view, msg)
        if changed:
            self._show_rooms()
        if ring and self.bell_on_mention:
            self.bell()
        self._refresh_queued()

    def on_own_message_pending(self, message: m.OwnMessagePending) -> None:
        entry = message.entry
        room = getattr(entry, "room", None) or GENERAL
        if room not in self.rooms.views:
            self.rooms.ensure(room)
            self._show_rooms()
        self.list_for(room).set_pending(entry, entry.error if entry.failed else None)
        self._refresh_queued()
        self.refresh_bindings()

    def on_own_message_acknowledged(self, message: m.OwnMessageAcknowledged) -> None:
        ml = next((ml for ml in self.lists.values() if message.client_msg_id in ml._pending), self.message_list)
        ml.acknowledge(message.client_msg_id, message.message)
        self._refresh_queued()

    def on_own_message_failed(self, message: m.OwnMessageFailed) -> None:
        self.list_for(getattr(message.entry, "room", None) or GENERAL).set_pending(message.entry, message.reason or message.code)
        self.notify(f"Message not sent: {safe(message.reason)}", severity="error", timeout=6, markup=False)
        self._refresh_queued()
        self.refresh_bindings()

    def _adopt_status(self, status: str) -> None:
        """Show a status chosen in another window of ours (the client already knows it)."""
        self.status, self.auto_away_from = status, None
        self.status_bar.set_status(status)

    def on_presence_updated(self, message: m.PresenceUpdated) -> None:
        if message.user_id == self.user_id and message.connections is None:
            return  # our own echo: the status bar already shows what we chose
        if message.user_id == self.user_id and message.status != self.status:
            # The server tells our other connections when we set a status in one: follow it.
            self._adopt_status(message.status)
        status = self.status if message.user_id == self.user_id else message.status
        self.roster.update_user(message.user_id, message.username, status, message.connections, message.verified)
        if message.status == "offline" and message.connections == 0:
            self.typing_line.clear_user(message.user_id)

    def on_roster_reloaded(self, message: m.RosterReloaded) -> None:
        if self.user_id is None:
            return
        known = self.roster.by_room.get(GENERAL, {}).get(self.user_id)
        self.roster.reset(self.user_id, message.users)
        # our own entry shows what we chose (as after a join)
        name = known.username if known is not None else self.username or ""
        self.roster.update_user(self.user_id, name, self.status, verified=known.verified if known is not None else None)

    def on_typing_updated(self, message: m.TypingUpdated) -> None:
        if message.user_id != self.user_id and self.current_room == GENERAL:
            self.typing_line.set_typing(message.user_id, message.username, message.is_typing)

    def on_typing_in_room_updated(self, message: m.TypingInRoomUpdated) -> None:
        if message.user_id != self.user_id and message.room == self.current_room:
            self.typing_line.set_typing(message.user_id, message.username, message.is_typing)

    def on_unverified_recipients(self, message: m.UnverifiedRecipients) -> None:
        who = ", ".join(message.names)
        verb = "has" if len(message.names) == 1 else "have"
        self.notify(f"{who} {verb} not proved the name (unverified): whoever uses it now can read this.",
                    severity="warning", timeout=10, markup=False)

    def on_server_error_received(self, message: m.ServerErrorReceived) -> None:
        if message.client_msg_id is not None and message.code in ("rate_limited", "unavailable"):
            # The client waits and sends it again by itself: say so once per burst, in words.
            now = time.monotonic()
            if now - self._rate_toast_at < 30:
                return
            self._rate_toast_at = now
            if message.code == "rate_limited":
                limit = self.client.limits.messages_per_minute if self.client is not None else 0
                takes = f"takes at most {limit} messages a minute" if limit else "limits how fast you send"
                text = f"Sending more slowly: the server {takes}. Your messages wait in order and go out by themselves."
            else:
                text = "The server could not store a message just now; it is sent again by itself."
            self.notify(text, title="Messages paced", timeout=6, markup=False)
            return
        text = safe(message.message) or "(no reason given)"
        self.notify(f"The server refused a request: {text}", severity="warning", timeout=6, markup=False)

    def on_sending_paced(self, message: m.SendingPaced) -> None:
        self.status_bar.set_queued(message.queued)
        self.status_bar.set_paced(message.delay, message.per_minute, message.refused)

    def _refresh_queued(self) -> None:
        if self.client is not None:
            try:
                self.status_bar.set_queued(int(self.client.queued))
            except Exception:
                pass

    # -- rooms -------------------------------------------------------------------
    # The pieces: tui/rooms.py (what the sidebar lists), tui/slash.py (the commands),
    # tui/notify.py (desktop notifications), widgets/sidebar.py, screens/switcher.py.

    def list_for(self, room: str) -> MessageList:
        """The message list of *room*, made (hidden) on first use."""
        ml = self.lists.get(room)
        if ml is None:
            ml = MessageList(self.username or "")
            ml.room = room
            ml.failed_hint = self.lists[GENERAL].failed_hint
            ml.set_mark_unverified(self.lists[GENERAL].mark_unverified)
            ml.display = False
            self.lists[room] = ml
            self.conversation.mount(ml, before=self.typing_line)
            summary = self.summaries.get(room)
            if summary is not None:
                ml.set_read_position(summary.last_read, summary.unread, summary.mentions)
        return ml

    def _rooms_joined(self, summaries: tuple[RoomSummary, ...], resumed: bool) -> None:
        """``connected.rooms``: the sidebar starts over from the server's list."""
        if not summaries:
            return  # a server without rooms: general only, as before
        self.summaries = {r.room: r for r in summaries}
        self.rooms.reset(summaries)
        for summary in summaries:
            ml = self.lists.get(summary.room)
            if ml is not None and summary.room != GENERAL:
                if resumed and summary.last_read is not None:
                    ml.read_elsewhere(summary.last_read)
                elif not resumed:
                    ml.set_read_position(summary.last_read, summary.unread, summary.mentions)
        view = self.rooms.views.get(self.current_room)
        if view is not None and self.current_room != GENERAL:
            view.unread = view.mentions = 0  # on screen: the list's own marker says what is new
        if self.current_room not in self.rooms.views:
            self.switch_room(GENERAL)
        self._show_rooms()

    def _count_unread(self, room: str, msgs: list[Any], redraw: bool = True) -> None:
        view = self.rooms.ensure(room)
        for msg in msgs:
            view.unread += 1
            if self.username and mentions(msg.text, self.username):
                view.mentions += 1
        if redraw:
            self._show_rooms()

    def _show_rooms(self) -> None:
        ordered = self.rooms.ordered()
        self.sidebar.show(ordered, self.current_room)
        self.sidebar.screen.set_class(len(ordered) < 2, "-one-room")
        view = self.rooms.views.get(self.current_room)
        title = Text(no_wrap=True, overflow="ellipsis")
        if view is not None:
            title.append(("@ " if view.is_dm else "#") + safe(view.label if view.is_dm else view.room), "bold")
            if view.topic:
                title.append("  " + safe(view.topic).replace("\n", " "), "dim")
            if view.muted:
                title.append("  (muted)", "dim italic")
        self.room_title.update(title)

    def switch_room(self, room: str) -> None:
        """Show *room*: its messages, its members, its typing; ask for its history the first time."""
        if room == self.current_room and room in self.lists:
            return
        self.rooms.ensure(room)
        old = self.lists.get(self.current_room)
        new = self.list_for(room)
        if old is not None and old is not new:
            old.display = False
        new.display = True
        self.current_room = room
        view = self.rooms.views[room]
        if view.unread or view.mentions:
            # Start where reading stopped, the way a join does in general.
            summary = self.summaries.get(room)
            if new.message_count == 0 or summary is None:
                new.set_read_position(new.newest_id if new.message_count else None, view.unread, view.mentions)
        self.typing_line.clear()
        self.roster.show_room(room)
        self.status_bar.set_unseen(new.unseen, new.unseen_mentions)
        self._show_rooms()
        self.refresh_bindings()
        self.call_after_refresh(self._read_on_screen)
        if self.client is not None and getattr(self.client, "connected", False):
            self.run_worker(self._first_visit(room), group="rooms")

    async def _read_on_screen(self) -> None:
        """A room just opened at its bottom: what arrived while it was hidden is read now."""
        ml = self.message_list
        if ml.at_newest() and ml.newest_id is not None:
            await self._report_read(ml.newest_id, room=self.current_room)

    async def _first_visit(self, room: str) -> None:
        if room.startswith("dm:") and room not in self.summaries:
            return  # a DM the server makes with its first message: nothing to ask for before (room:joined)
        ml = self.lists[room]
        if room != GENERAL and ml.message_count == 0 and not ml.loading_older:
            ml.loading_older = True
            if not await self._request_history(None, room):
                ml.loading_older = False
        if room != GENERAL and room not in self._members_asked and hasattr(self.client, "request_members"):
            self._members_asked.add(room)
            await self.client.request_members(room)

    def action_next_room(self, step: int) -> None:
        self.switch_room(self.rooms.step(self.current_room, step))

    def action_next_unread(self) -> None:
        room = self.rooms.next_unread(self.current_room)
        if room is None:
            self.notify("No unread messages in other rooms.", timeout=3)
        else:
            self.switch_room(room)

    def action_switcher(self) -> None:
        from workspace_tui.tui.screens.switcher import SwitcherScreen

        if isinstance(self.screen, SwitcherScreen):
            return

        def chosen(room: str | None) -> None:
            if room:
                self.switch_room(room)

        self.push_screen(SwitcherScreen(self.rooms.ordered(), self.current_room), chosen)

    def on_sidebar_room_clicked(self, message: Sidebar.RoomClicked) -> None:
        self.switch_room(message.room)

    def on_room_event_received(self, message: m.RoomEventReceived) -> None:
        from workspace_tui.tui.room_events import apply_room_event

        apply_room_event(self, message.event)

    # -- notifications -------------------------------------------------------------

    def _write_terminal(self, data: str) -> None:
        driver = self._driver
        if driver is not None:
            driver.write(data)
            driver.flush()

    def _desktop_notify(self, view: Any, msg: Any) -> None:
        from workspace_tui.tui.commands import action_text

        action = action_text(msg.text)
        body = f"* {msg.username} {action}" if action is not None else msg.text
        title = msg.username if view.is_dm else f"{msg.username} in #{view.room}"
        self.notified.append((title, body))
        del self.notified[:-50]
        self.notifier.notify(f"workspace: {title}", body)

    def _account(self) -> str:
        return f"{self.url.split('?', 1)[0]} {self.username or ''}"

    def _load_muted(self) -> None:
        self.rooms.muted = remembered.load_muted(self._account())
        for room, view in self.rooms.views.items():
            view.muted = room in self.rooms.muted

    def set_muted(self, room: str, muted: bool) -> None:
        self.rooms.set_muted(room, muted)
        self._show_rooms()
        try:
            remembered.save_muted(self._account(), self.rooms.muted)
        except OSError as exc:
            self._cannot_remember("muted rooms", exc)

    # -- completion ------------------------------------------------------------------

    def _complete(self, text: str, cursor: int) -> Any:
        from workspace_tui.tui.completion import complete

        names = sorted({mb.username for members in self.roster.by_room.values() for mb in members.values()})
        names = [n for n in names if n != self.username]
        rooms = [v.room for v in self.rooms.ordered() if not v.is_dm]
        return complete(text, cursor, names, rooms)
