"""The help screen (F1): every key, as currently bound, with its id for remapping."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

# Keys that are not app bindings but belong in the list.
INPUT_KEYS: list[tuple[str, str]] = [
    ("Enter", "Send the message"),
    ("Ctrl+J / Alt+Enter", "New line (Shift+Enter does not reach most terminals)"),
    ("Up / Down", "Recall what you sent (from an empty input)"),
    ("Tab", "Complete a name (@bo, bo), a #room or a /command; Tab again: the next one"),
    ("/help", "Lists the slash commands: /join, /leave, /create, /topic, /msg, /me, /away, /who, /mute and more"),
    ("Ctrl+P", "Command palette (statuses, failed messages, help)"),
    ("Ctrl+Q", "Quit (asks first while messages are queued; Ctrl+Q twice quits)"),
]


WIDE = 80  # narrower than this, the binding id goes under the description instead of in a third column


class KeyTable:
    """The rows of the help screen, laid out for the width they get.

    Wide: key, what it does, binding id. Narrow: the id moves under what it
    does, and the key column wraps (``Ctrl+J /`` ``Alt+Enter``), so no
    description is cut down to ``…`` on a small terminal.
    """

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        self.rows = rows  # (key as shown, what it does, binding id or "")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width >= WIDE:
            table = Table(box=None, show_header=False, padding=(0, 2), expand=False)
            table.add_column(style="bold #33b3e0", no_wrap=True)
            table.add_column()
            table.add_column(style="dim", no_wrap=True)
            for key, what, binding_id in self.rows:
                table.add_row(key, what, binding_id)
        else:
            table = Table(box=None, show_header=False, padding=(0, 1, 0, 0), expand=True)
            table.add_column(style="bold #33b3e0", max_width=max(8, options.max_width // 4), overflow="fold")
            table.add_column(ratio=1, overflow="fold")
            for key, what, binding_id in self.rows:
                cell = Text(what)
                if binding_id:
                    cell.append("\n" + binding_id, style="dim")
                table.add_row(key, cell)
        yield table


class HelpScreen(ModalScreen[None]):
    """A modal table of the keys."""

    BINDINGS = [
        Binding("escape,f1,q,question_mark", "dismiss", "Close", show=True),
    ]

    def compose(self) -> ComposeResult:
        rows: list[tuple[str, str, str]] = []
        keymap = self.app._keymap
        for binding in self._app_bindings():
            key = keymap.get(binding.id or "") or binding.key
            shown = " / ".join(self.app.get_key_display(Binding(k, "")) for k in key.split(","))
            rows.append((shown, binding.tooltip or binding.description, binding.id or ""))
        for key, what in INPUT_KEYS:
            rows.append((key, what, ""))
        table = KeyTable(rows)
        with VerticalScroll(id="help-box"):
            yield Static(Text("Keys", style="bold"), id="help-title")
            yield Static(table, id="help-table")
            yield Static(
                Text(
                    "Auto-away (--auto-away) acts only while you are online; the next key brings you back.\n"
                    "Remap a key by its id in the config file: [chat.keys] \"status.away\" = \"ctrl+a\"\n"
                    "Esc, F1 or ? closes this screen.",
                    style="dim",
                ),
                id="help-foot",
            )

    def _app_bindings(self) -> list[Binding]:
        seen: list[Binding] = []
        for _key, binding in self.app._bindings:
            if binding.id and binding not in seen:
                seen.append(binding)
        return seen
