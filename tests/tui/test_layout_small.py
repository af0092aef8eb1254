"""Small terminals: the roster collapses (F7 shows it), the footer and the help screen stay readable.

Against a real in-process server and real clients, driven with Pilot at 80x24
and 60x20 (and 140x40 where the roster has room).
"""

from __future__ import annotations

import pytest
from textual.geometry import Region
from textual.widgets import Footer, Static
from textual.widgets._footer import FooterKey

from workspace_tui.client.events import ConnectionState
from workspace_tui.tui.app import ChatApp
from workspace_tui.tui.keys import KEY_IDS, check_keymap
from workspace_tui.tui.screens.help import HelpScreen

from .conftest import Harness, screen_text, wait_until

SMALL = [(80, 24), (60, 20)]


def footer_line(app: ChatApp) -> str:
    return screen_text(app).rstrip("\n").splitlines()[-1]


def assert_footer_readable(app: ChatApp) -> str:
    """Every key the footer shows is on its line whole, its label not cut (today: ``f5 Offlin▏``)."""
    line = footer_line(app)
    footer = app.screen.query_one(Footer)
    shown = list(footer.query(FooterKey))
    assert shown, "the footer shows no key"
    for key in shown:
        assert key.key_display in line, (key.key_display, line)
        if key.description:
            assert f"{key.description}" in line, (key.description, line)
        assert key.region.right <= footer.region.right, (key.description, key.region, footer.region)
    # nothing in the footer overlaps the command palette key docked on its right
    palette = [k for k in shown if k.has_class("-command-palette")]
    if palette:
        others = [k for k in shown if k not in palette]
        assert all(k.region.right <= palette[0].region.x for k in others), line
    return line


async def _joined(app: ChatApp, pilot, *names: str) -> None:
    await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED, what="connected")
    await wait_until(
        pilot, lambda: {m.username for m in app.roster.members.values()} >= set(names), what=f"roster has {names}"
    )


@pytest.mark.parametrize("size", SMALL)
async def test_roster_collapses_on_a_small_terminal_and_f7_shows_it(harness: Harness, size):
    await harness.client("bob")
    await harness.client("carol")
    app = harness.app("alice")
    async with app.run_test(size=size) as pilot:
        await _joined(app, pilot, "alice", "bob", "carol")
        await wait_until(pilot, lambda: "Help" in footer_line(app), what="the footer drawn")
        width = size[0]
        # collapsed: the conversation has the whole width
        assert not app.roster.display
        assert app.message_list.region.width == width
        line = assert_footer_readable(app)
        assert "Roster" in line  # the key that brings it back is on screen
        await pilot.press("f7")
        await wait_until(pilot, lambda: app.roster.display and app.roster.region.width > 0, what="roster shown")
        shown = screen_text(app)
        assert "● bob" in shown and "alice (you)" in shown
        # shown on request, it still leaves the conversation most of the width
        assert app.roster.region.width <= width * 0.4
        assert app.message_list.region.width >= width * 0.6
        assert_footer_readable(app)
        await pilot.press("f7")
        await wait_until(pilot, lambda: not app.roster.display, what="roster hidden again")
        assert app.message_list.region.width == width
        assert app.chat_input.has_focus  # the key never takes you out of what you are typing


async def test_roster_shown_on_a_wide_terminal_and_f7_hides_it(harness: Harness):
    await harness.client("bob")
    app = harness.app("alice")
    async with app.run_test(size=(140, 40)) as pilot:
        await _joined(app, pilot, "alice", "bob")
        await pilot.pause()
        assert app.roster.display and app.roster.region.width >= 20
        assert "● bob" in screen_text(app)
        await pilot.press("f7")
        await wait_until(pilot, lambda: not app.roster.display, what="roster hidden")
        assert app.message_list.region.width == 140
        # the choice holds when the terminal changes size
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        await pilot.pause()
        assert not app.roster.display
        await pilot.press("f7")
        await wait_until(pilot, lambda: app.roster.display, what="roster back")


async def test_roster_follows_the_terminal_width_until_you_choose(harness: Harness):
    app = harness.app("alice")
    async with app.run_test(size=(140, 40)) as pilot:
        await _joined(app, pilot, "alice")
        assert app.roster.display
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: not app.roster.display, what="collapsed when the terminal shrinks")
        await pilot.resize_terminal(140, 40)
        await wait_until(pilot, lambda: app.roster.display, what="back when it grows")


async def test_roster_key_is_remappable(harness: Harness):
    assert "roster.toggle" in KEY_IDS
    keymap = check_keymap({"roster.toggle": "ctrl+o"})
    app = harness.app("alice", keymap=keymap)
    async with app.run_test(size=(80, 24)) as pilot:
        await _joined(app, pilot, "alice")
        assert not app.roster.display
        await wait_until(pilot, lambda: "^o Roster" in footer_line(app), what="the remapped key in the footer")
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: app.roster.display, what="roster shown by the remapped key")


@pytest.mark.parametrize("size", SMALL)
async def test_footer_readable_with_a_failed_message(tmp_path, size):
    """The failed-message keys join the footer: it still fits, and they are there."""
    h = Harness(tmp_path, rate_limit=0, address_rate_limit=0, max_payload=300)
    await h.start()
    try:
        app = h.app("alice")
        async with app.run_test(size=size) as pilot:
            await _joined(app, pilot, "alice")
            app.chat_input.insert("x" * 400)
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.message_list.failed_ids(), what="a failed message")
            await pilot.pause()
            line = assert_footer_readable(app)
            for word in ("Retry", "Discard", "Help", "Roster"):
                assert word in line, line
    finally:
        await h.stop()


def _rendered(widget: Static) -> str:
    """All of a widget's lines as drawn at its size (the help box scrolls, so the screen shows only some)."""
    strips = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


@pytest.mark.parametrize("size", SMALL + [(140, 40)])
async def test_help_screen_readable(harness: Harness, size):
    app = harness.app("alice")
    async with app.run_test(size=size) as pilot:
        await _joined(app, pilot, "alice")
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help open")
        await pilot.pause()
        table = app.screen.query_one("#help-table", Static)
        assert table.size.width > 0
        text = _rendered(table)
        assert "…" not in text, text
        flat = " ".join(text.split())
        for binding_id, (_key, what) in KEY_IDS.items():
            assert binding_id in text, (binding_id, text)
            for word in what.split():
                assert word in flat, (word, text)
        assert "roster.toggle" in text
        # the box fits the screen and its frame is whole
        box = app.screen.query_one("#help-box")
        assert box.region.right <= size[0] and box.region.bottom <= size[1]
        # what does not fit scrolls: the end of the table can be reached
        await pilot.press("end")
        await pilot.pause()
        assert "closes this screen" in screen_text(app)
