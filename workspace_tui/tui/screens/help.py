"""The help screen (F1 or ``?`` in an empty input): every key, as currently bound, with its id for remapping."""

from __future__ import annotations

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
    ("Ctrl+P", "Command palette (statuses, failed messages, help)"),
    ("Ctrl+Q", "Quit"),
]


class HelpScreen(ModalScreen[None]):
    """A modal table of the keys."""

    BINDINGS = [
        Binding("escape,f1,q,question_mark", "dismiss", "Close", show=True),
    ]

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column(style="bold #33b3e0", no_wrap=True)
        table.add_column()
        table.add_column(style="dim", no_wrap=True)
        keymap = self.app._keymap
        for binding in self._app_bindings():
            key = keymap.get(binding.id or "") or binding.key
            shown = " / ".join(self.app.get_key_display(Binding(k, "")) for k in key.split(","))
            table.add_row(shown, binding.tooltip or binding.description, binding.id)
        for key, what in INPUT_KEYS:
            table.add_row(key, what, "")
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
