"""The invite screen: the server wants the one-time invite an admin made for this name."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Input, Label, Static

from workspace_tui.tui.format import safe_name

INVITE_MAX = 128  # the longest invite the server takes


class InviteScreen(Screen[str]):
    """Asks for the invite (hidden as it is typed); dismisses with it. Esc quits the app."""

    BINDINGS = [("escape", "app.quit", "Quit")]

    def __init__(self, username: str, server: str, error: str | None = None) -> None:
        super().__init__()
        self.username = username
        self.server = server
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="invite-box"):
            yield Static(Text(f"An invite for {safe_name(self.username)}", style="bold"), id="invite-title")
            yield Label(Text(f"Server: {safe_name(self.server)}"), id="invite-server")
            yield Static(
                Text(
                    "The server's admin created this name for you and gave you a one-time invite"
                    " (`workspace users add`). Paste it here: this device then keeps a key that"
                    " proves the name is yours."
                ),
                id="invite-about",
            )
            yield Input(password=True, placeholder="invite", id="invite-code", max_length=INVITE_MAX)
            yield Static(Text("Enter to join, Esc to quit", style="dim"), id="invite-help")
            yield Static(Text(safe_name(self.error), style="bold red") if self.error else "", id="invite-error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def redeem(self, event: Input.Submitted) -> None:
        from workspace_tui.client.keys import is_secret

        code = event.value.strip()
        if not is_secret(code):
            self.query_one("#invite-error", Static).update(
                Text("That is not an invite: 32-128 letters, digits, - and _.", style="bold red")
            )
            return
        self.dismiss(code)
