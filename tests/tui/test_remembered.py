"""The theme you pick and what you sent survive a restart of the chat (per server and user, bounded).

Two runs of the real app against one real server, with the data directory the
isolated_dirs fixture gives every test.
"""

from __future__ import annotations

import json
import os
import stat

from workspace_tui.client.events import ConnectionState
from workspace_tui.paths import chat_settings_path, input_history_path
from workspace_tui.tui import remembered
from workspace_tui.tui.remembered import ENTRY_MAX_BYTES, HISTORY_MAX, load_history, remember_sent

from .conftest import Harness, wait_until

SIZE = (100, 28)


async def _connected(app, pilot) -> None:
    await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")


async def test_the_theme_you_pick_survives_a_restart(harness: Harness):
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await _connected(app, pilot)
        assert app.theme != "nord"
        app.theme = "nord"  # what the command palette's "Change theme" does
        await pilot.pause()
    assert json.loads(chat_settings_path().read_text())["theme"] == "nord"

    again = harness.app("alice")
    async with again.run_test(size=SIZE) as pilot:
        await _connected(again, pilot)
        assert again.theme == "nord"
        assert again.current_theme.name == "nord"


async def test_a_bad_settings_file_is_ignored(harness: Harness):
    path = chat_settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    for content in ('{"theme": "no-such-theme"}', "not json", '["nord"]', '{"theme": 7}'):
        path.write_text(content)
        app = harness.app("alice")
        default = app.theme
        async with app.run_test(size=SIZE) as pilot:
            await _connected(app, pilot)
            assert app.theme == default, content


async def test_input_history_survives_a_restart_per_server_and_user(harness: Harness):
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await _connected(app, pilot)
        for text in ("deploy is green", "thanks @bob"):
            await pilot.press(*text, "enter")
        app.chat_input.insert("line one\nline two")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.message_list.message_count == 3, what="three sent")

    again = harness.app("alice")
    async with again.run_test(size=SIZE) as pilot:
        await _connected(again, pilot)
        box = again.chat_input
        await pilot.press("up")
        assert box.text == "line one\nline two"
        await pilot.press("up")  # the cursor ends on the last line: Up moves to the first, then on
        assert box.text == "line one\nline two"
        await pilot.press("up")
        assert box.text == "thanks @bob"
        await pilot.press("up")
        assert box.text == "deploy is green"
        await pilot.press("down", "down", "down")
        assert box.text == ""

    # another user on the same server has a history of their own
    bob = harness.app("bob")
    async with bob.run_test(size=SIZE) as pilot:
        await _connected(bob, pilot)
        await pilot.press("up")
        assert bob.chat_input.text == ""

    path = input_history_path(harness.url, "alice")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # what you wrote is yours to read
    assert not input_history_path(harness.url, "bob").exists()
    assert input_history_path("ws://elsewhere:4000/ws", "alice") != path


async def test_two_windows_add_to_one_history(harness: Harness):
    one = harness.app("alice")
    two = harness.app("alice")
    async with one.run_test(size=SIZE) as p1:
        await _connected(one, p1)
        async with two.run_test(size=SIZE) as p2:
            await _connected(two, p2)
            await p1.press(*"from the first", "enter")
            await p2.press(*"from the second", "enter")
            await wait_until(p2, lambda: two.message_list.message_count == 2, what="both sent")
    assert load_history(input_history_path(harness.url, "alice")) == ["from the first", "from the second"]


def test_history_is_bounded_in_entries_and_bytes(tmp_path):
    path = tmp_path / "h.json"
    for n in range(HISTORY_MAX + 50):
        remember_sent(path, f"message {n}")
    kept = load_history(path)
    assert len(kept) == HISTORY_MAX
    assert kept[0] == "message 50" and kept[-1] == f"message {HISTORY_MAX + 49}"
    remember_sent(path, "x" * (ENTRY_MAX_BYTES + 1))  # sent, but too big to keep
    assert load_history(path)[-1] == f"message {HISTORY_MAX + 49}"
    remember_sent(path, "é" * (ENTRY_MAX_BYTES // 2))  # bytes, not characters: exactly the bound
    assert load_history(path)[-1] == "é" * (ENTRY_MAX_BYTES // 2)
    remember_sent(path, "é" * (ENTRY_MAX_BYTES // 2))  # not twice in a row
    assert load_history(path).count("é" * (ENTRY_MAX_BYTES // 2)) == 1
    assert path.stat().st_size < HISTORY_MAX * ENTRY_MAX_BYTES


def test_a_damaged_history_file_reads_as_empty_or_keeps_what_is_valid(tmp_path):
    path = tmp_path / "h.json"
    for content in ("", "{", "[1, 2]", '{"sent": "text"}', "\x00\xff"):
        path.write_bytes(content.encode("latin-1"))
        assert load_history(path) == []
    path.write_text(json.dumps({"sent": ["ok", 3, None, "", {"a": 1}, "fine"]}))
    assert load_history(path) == ["ok", "fine"]
    assert remember_sent(path, "next") == ["ok", "fine", "next"]


def test_save_theme_keeps_other_settings(tmp_path):
    path = tmp_path / "chat.json"
    path.write_text('{"later": 1}')
    remembered.save_theme("gruvbox", path)
    assert json.loads(path.read_text()) == {"later": 1, "theme": "gruvbox"}
    assert remembered.load_theme(path) == "gruvbox"
