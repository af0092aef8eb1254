"""The help screen (F1 or ``?`` in an empty input): every key, as currently bound."""

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
    ("PgUp / PgDn", "Scroll the conversation; the top loads older messages"),
    ("Ctrl+End", "Jump to the latest message"),
    ("Ctrl+P", "Command palette (statuses, retry, discard, help)"),
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
        for binding in self._app_bindings():
            table.add_row(self.app.get_key_display(binding), binding.tooltip or binding.description)
        for key, what in INPUT_KEYS:
            table.add_row(key, what)
        with VerticalScroll(id="help-box"):
            yield Static(Text("Keys", style="bold"), id="help-title")
            yield Static(table, id="help-table")
            yield Static(
                Text(
                    "Auto-away after a while without a key press (--auto-away); the next key undoes it.\n"
                    "Esc, F1 or ? closes this screen.",
                    style="dim",
                ),
                id="help-foot",
            )

    def _app_bindings(self) -> list[Binding]:
        seen: list[Binding] = []
        for _key, binding in self.app._bindings:
            if binding.id and binding.show and binding.id != "help" and binding not in seen:
                seen.append(binding)
        return seen
