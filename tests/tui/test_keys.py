"""Remappable keys: the ``[chat.keys]`` config table, checked, fed to the app, shown in help, and working."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from textual.widgets import TextArea

from workspace_tui.cli import main
from workspace_tui.client.events import ConnectionState, PresenceChanged
from workspace_tui.protocol import user_id_for
from workspace_tui.tui.app import ChatApp
from workspace_tui.tui.keys import KEY_IDS, RESERVED, KeymapError, check_keymap
from workspace_tui.tui.screens.help import HelpScreen

from .conftest import Harness, events_of, screen_text, screen_with, wait_until

SIZE = (110, 32)


def test_every_app_binding_has_a_documented_id():
    ids = [b.id for b in ChatApp.BINDINGS]  # type: ignore[union-attr]
    assert None not in ids
    assert ids == list(KEY_IDS)
    for binding in ChatApp.BINDINGS:
        assert binding.key == KEY_IDS[binding.id][0]  # type: ignore[union-attr,index]


def test_check_keymap_accepts_and_normalises():
    assert check_keymap({"status.away": "Ctrl+A", "message.failed": "f6, ctrl+f"}) == {
        "status.away": "ctrl+a",
        "message.failed": "f6,ctrl+f",
    }
    assert check_keymap({}) == {}
    # swapping two keys is fine: each id gets the other's key
    assert check_keymap({"status.away": "f4", "status.busy": "f3"}) == {"status.away": "f4", "status.busy": "f3"}


@pytest.mark.parametrize(
    ("keymap", "why"),
    [
        ({"status.gone": "f6"}, "unknown binding id 'status.gone'"),
        ({"status.away": 3}, "must be a key"),
        ({"status.away": "ctrl a"}, "is not a key name"),
        ({"status.away": "a"}, "needed for typing"),
        ({"status.away": "shift+a"}, "needed for typing"),
        ({"status.away": "enter"}, "needed for typing"),
        ({"status.away": "ctrl+b", "status.busy": "ctrl+b"}, "given to both"),
        ({"status.away": "f4"}, "already the key of status.busy"),
        (["status.away"], "must be a table"),
    ],
)
def test_check_keymap_refuses_with_a_reason(keymap, why):
    with pytest.raises(KeymapError, match=why):
        check_keymap(keymap)


def test_reserved_keys_cover_what_the_input_needs_to_type():
    textarea = {k for b in TextArea.BINDINGS for k in b.key.split(",")}  # type: ignore[union-attr]
    assert {"up", "down", "left", "right", "home", "end", "backspace", "delete"} <= textarea & RESERVED


def _write_config(isolated_dirs, text: str) -> None:
    config = isolated_dirs / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text(text, encoding="utf-8")


def test_chat_feeds_the_config_keymap_to_the_app(isolated_dirs, monkeypatch):
    _write_config(isolated_dirs, '[chat.keys]\n"status.away" = "ctrl+a"\n"message.failed" = "f6"\n')
    seen: dict[str, object] = {}

    def fake_run(self: ChatApp, *args, **kwargs) -> None:
        seen["keymap"] = dict(self._keymap)

    monkeypatch.setattr(ChatApp, "run", fake_run)
    import workspace_tui.cli.chat as chat_command

    monkeypatch.setattr(chat_command, "_need_a_terminal", lambda: None)  # CliRunner has no terminal
    result = CliRunner().invoke(main, ["chat", "-u", "alice"])
    assert result.exit_code == 0, result.output
    assert seen["keymap"] == {"status.away": "ctrl+a", "message.failed": "f6"}


def test_chat_refuses_a_bad_keymap_before_starting(isolated_dirs):
    _write_config(isolated_dirs, '[chat.keys]\n"status.whatever" = "ctrl+a"\n')
    result = CliRunner().invoke(main, ["chat", "-u", "alice"])
    assert result.exit_code == 2
    assert "unknown binding id 'status.whatever'" in result.output and "status.away" in result.output


async def test_a_remapped_key_works_over_the_input_and_shows_in_help(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    alice_id = user_id_for("alice")
    # ctrl+a is the input's "start of line": the user's choice wins; F3 no longer sets away.
    app = harness.app("alice", keymap=check_keymap({"status.away": "ctrl+a", "status.busy": "ctrl+b"}))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await pilot.press(*"draft")
        await pilot.press("f3")
        await pilot.pause()
        assert app.status == "online"
        await pilot.press("ctrl+a")
        await wait_until(pilot, lambda: app.status == "away", what="ctrl+a sets away")
        await wait_until(
            pilot,
            lambda: any(isinstance(e, PresenceChanged) and e.user_id == alice_id and e.status == "away" for e in bob_events),
            what="bob sees alice away",
        )
        assert app.chat_input.text == "draft"  # the draft is untouched
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: app.status == "busy")
        footer = screen_text(app).splitlines()[-1]
        assert "^a Away" in footer and "^b Busy" in footer
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = await wait_until(pilot, lambda: screen_with(app, "status.away", "message.failed"))
        away_line = next(line for line in shown.splitlines() if "status.away" in line)
        assert "^a" in away_line and "f3" not in away_line
        online_line = next(line for line in shown.splitlines() if "status.online" in line)
        assert "f2" in online_line
