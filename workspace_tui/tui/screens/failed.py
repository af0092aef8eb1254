"""The failed-messages picker: every message the server refused, with its reason; retry or discard any one."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from workspace_tui.tui.format import local_time, safe_name

PREVIEW = 60  # characters of the message shown in the list


class FailedScreen(ModalScreen[None]):
    """A modal list of failed messages. Enter or R retries the highlighted one, D or Delete discards it.

    Stays open while failed messages remain, so several can be handled in a row.
    """

    BINDINGS = [
        Binding("r", "retry", "Retry", show=True),
        Binding("d,delete", "discard", "Discard", show=True),
        Binding("escape", "dismiss", "Close", show=True),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="failed-box"):
            yield Static(Text("Messages not sent", style="bold"), id="failed-title")
            yield OptionList(id="failed-list")
            yield Static(
                Text("Enter or R: retry  ·  D or Delete: discard  ·  Esc: close", style="dim"), id="failed-help"
            )

    def on_mount(self) -> None:
        self.refresh_list()
        self.query_one(OptionList).focus()

    def refresh_list(self) -> None:
        """Show the failed messages as they are now; close when there are none left."""
        entries = self.app.message_list.failed_entries()  # type: ignore[attr-defined]
        if not entries:
            self.dismiss(None)
            return
        options = self.query_one(OptionList)
        keep = options.highlighted
        options.clear_options()
        for entry, reason in entries:
            options.add_option(Option(self._label(entry, reason), id=entry.client_msg_id))
        options.highlighted = min(keep if keep is not None else len(entries) - 1, len(entries) - 1)

    @staticmethod
    def _label(entry: Any, reason: str) -> Text:
        text = safe_name(entry.text).strip()
        if len(text) > PREVIEW:
            text = text[: PREVIEW - 1] + "…"
        label = Text(no_wrap=True, overflow="ellipsis")
        label.append(local_time(entry.created_at).strftime("%H:%M") + "  ", style="dim")
        label.append(text or "(empty)")
        label.append("\n      " + safe_name(reason), style="red")
        return label

    def _highlighted_id(self) -> str | None:
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return None
        return options.get_option_at_index(options.highlighted).id

    @on(OptionList.OptionSelected)
    async def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        await self.action_retry()

    async def action_retry(self) -> None:
        cmid = self._highlighted_id()
        if cmid is not None:
            if not await self.app.retry_message(cmid):  # type: ignore[attr-defined]
                self.app.notify("Still cannot be sent: it failed again.", severity="warning", timeout=4)
            self.refresh_list()

    async def action_discard(self) -> None:
        cmid = self._highlighted_id()
        if cmid is not None:
            await self.app.discard_message(cmid)  # type: ignore[attr-defined]
            self.refresh_list()
