"""The chat's rough edges (issue 12): wrapping, resizing, the input's keys, links.

Against a real in-process server and real clients (see conftest.py); the
Alt+Enter test runs the real ``workspace chat`` in a pseudo-terminal and
writes the bytes tmux sends.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console
from textual import events

from workspace_tui.client.events import ConnectionState, MessageReceived, PresenceChanged
from workspace_tui.protocol import user_id_for
from workspace_tui.tui.screens.help import HelpScreen
from workspace_tui.tui.widgets.chat_input import ChatInput
from workspace_tui.tui.widgets.message_list import GUTTER, wrap_line

from .conftest import Harness, delivered, events_of, screen_text, wait_until

SIZE = (110, 32)
LINK_TEXT = "please read https://example.com/docs/onboarding and ping me"
CJK_TEXT = "请先阅读入职文档然后再来找我 日本語のテキストを最後まで読んでください。 한국어 문장도 잘 보여야 합니다"


def read_back(text: str, lines: list[str]) -> str:
    """Find each shown line in ``text``, in order; what lies between two lines must be whitespace.

    Returns the text as read from the lines (with the original spaces between them),
    and fails if a line is not a piece of the text (``oardingand`` for ``oarding and``).
    """
    pos = 0
    for line in lines:
        line = line.rstrip()
        if not line:
            continue
        found = text.find(line, pos)
        assert found >= 0, f"{line!r} is not in the text after position {pos}: {text!r}"
        assert not text[pos:found].strip(), f"{text[pos:found]!r} was lost before {line!r}"
        pos = found + len(line)
    assert not text[pos:].strip(), f"{text[pos:]!r} was lost at the end"
    return text


def body_lines(app, text_start: str) -> list[str]:
    """The text column of the message starting with ``text_start``, one entry per row on screen."""
    rows = app.message_list.rendered_text().splitlines()
    start = next(i for i, row in enumerate(rows) if row[GUTTER:].startswith(text_start))
    out = [rows[start][GUTTER:]]
    for row in rows[start + 1 :]:
        if row[: GUTTER - 3].strip():  # the next message (a time and a name in the gutter)
            break
        out.append(row[GUTTER:])
    return out


# -- 1. wrapping keeps the spaces, CJK is neither split nor lost ---------------


@pytest.mark.parametrize("width", [12, 20, 27, 30, 31, 40])
def test_wrap_keeps_the_space_after_a_cut_word(width):
    lines = wrap_line(LINK_TEXT, width)
    assert all(cell_len(line) <= width for line in lines), lines
    read_back(LINK_TEXT, lines)
    assert not any("oardingand" in line for line in lines)


@pytest.mark.parametrize("width", [10, 11, 15, 20, 21, 33])
def test_wrap_cjk_is_not_split_or_lost(width):
    lines = wrap_line(CJK_TEXT, width)
    assert all(cell_len(line) <= width for line in lines), lines
    read_back(CJK_TEXT, lines)
    assert "".join(lines).replace(" ", "") == CJK_TEXT.replace(" ", "")
    # Ideographs break anywhere: a line is not left half empty before a run of them.
    assert all(cell_len(line) >= width - 3 for line in lines[:-1] if not line.isascii()), lines
    # "。" does not start a line (it stays with the character before it)
    assert not any(line.startswith("。") for line in lines)


async def test_wrapped_messages_read_with_their_spaces_on_screen(harness: Harness):
    bob = await harness.client("bob")
    app = harness.app("alice")
    async with app.run_test(size=(60, 24)) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await bob.send(LINK_TEXT)
        await bob.send(CJK_TEXT)
        await wait_until(pilot, lambda: app.message_list.message_count == 2)
        await pilot.pause()
        width = app.message_list._text_width()
        assert width < len(LINK_TEXT)  # the layout does force a cut
        for text in (LINK_TEXT, CJK_TEXT):
            lines = body_lines(app, text[:4])
            assert len(lines) > 1
            assert all(cell_len(line.rstrip()) <= width for line in lines)
            read_back(text, lines)


# -- 3. shrinking the terminal at the bottom stays at the bottom ---------------


@pytest.mark.parametrize("new_size", [(110, 18), (70, 32), (64, 16)], ids=["shorter", "narrower", "both"])
async def test_shrinking_the_terminal_keeps_following_new_messages(harness: Harness, new_size):
    bob = await harness.client("bob")
    for i in range(40):
        await bob.send(f"history line {i} " + "words " * (i % 7))
    await delivered(bob)
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        ml = app.message_list
        await wait_until(pilot, lambda: ml.message_count == 40 and ml.max_scroll_y > 10)
        await wait_until(pilot, lambda: ml.scroll_offset.y == ml.max_scroll_y, what="at the bottom")
        await pilot.resize_terminal(*new_size)
        await wait_until(pilot, lambda: app.size == new_size)
        await pilot.pause()
        await wait_until(pilot, lambda: ml.scroll_offset.y == ml.max_scroll_y, what="still at the bottom after resize",
                         detail=lambda: (ml.scroll_offset.y, ml.max_scroll_y))
        await bob.send("after the resize")
        await wait_until(pilot, lambda: "after the resize" in screen_text(app), what="new message visible",
                         detail=lambda: (ml.scroll_offset.y, ml.max_scroll_y))
        assert ml.scroll_offset.y == ml.max_scroll_y
        assert ml.unseen == 0
        assert "new messages" not in screen_text(app)


# -- 4. Alt+Enter (ESC CR in tmux) is a new line -------------------------------


def test_esc_cr_parses_as_alt_enter():
    from workspace_tui.tui.driver import ChatParser

    def keys(data: str) -> list[str]:
        parser = ChatParser()
        out = [e.key for e in parser.feed(data) if isinstance(e, events.Key)]
        time.sleep(0.15)  # past Textual's escape delay: a lone ESC is the Escape key
        out += [e.key for e in parser.tick() if isinstance(e, events.Key)]
        return out

    assert keys("\x1b\r") == ["alt+enter"]
    assert keys("\r") == ["enter"]
    assert keys("\x1b") == ["escape"]
    assert keys("\x1ba") == ["alt+a"]
    assert keys("hi\x1b\rthere\r") == ["h", "i", "alt+enter", "t", "h", "e", "r", "e", "enter"]


async def test_alt_enter_is_a_new_line_in_the_input(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await pilot.press(*"line one", "alt+enter", *"line two", "enter")
        await wait_until(pilot, lambda: any(isinstance(e, MessageReceived) for e in bob_events))
        got = [e.message.text for e in bob_events if isinstance(e, MessageReceived)]
        assert got[0] == "line one\nline two"


async def test_esc_cr_from_a_real_terminal_is_a_new_line(harness: Harness, tmp_path: Path):
    """The real ``workspace chat`` in a pseudo-terminal gets the bytes tmux sends for Alt+Enter."""
    import asyncio

    from client.support import TerminalProcess

    bob = await harness.client("bob")
    bob_events = events_of(bob)
    term = TerminalProcess(
        ["chat", "--url", harness.url, "-u", "alice", "--no-bell", "--auto-away", "0"],
        env={"WORKSPACE_DATA_DIR": str(tmp_path / "data"), "WORKSPACE_CONFIG_DIR": str(tmp_path / "config")},
    )
    alice = user_id_for("alice")
    try:
        deadline = time.monotonic() + 30
        while not any(isinstance(e, PresenceChanged) and e.user_id == alice and e.status == "online" for e in bob_events):
            assert term.proc.poll() is None, term.output()[-2000:]
            assert time.monotonic() < deadline, "the chat did not join"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let the app settle its terminal queries
        term.write(b"line one")
        term.write(b"\x1b\r")  # what tmux sends for Alt+Enter
        term.write(b"line two")
        await asyncio.sleep(0.3)
        term.write(b"\r")
        while not any(isinstance(e, MessageReceived) for e in bob_events):
            assert time.monotonic() < deadline, "nothing was sent"
            await asyncio.sleep(0.05)
        got = [e.message.text for e in bob_events if isinstance(e, MessageReceived)]
        assert got[0] == "line one\nline two"
    finally:
        term.close(quit_keys=b"\x11")  # ctrl+q


# -- 5. ? types a question mark; F1 is help -------------------------------------


async def test_question_mark_starts_a_message(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await pilot.press("question_mark", *" who deployed")
        assert not isinstance(app.screen, HelpScreen)
        assert app.chat_input.text == "? who deployed"
        await pilot.press("enter")
        await wait_until(pilot, lambda: any(isinstance(e, MessageReceived) for e in bob_events))
        assert [e.message.text for e in bob_events if isinstance(e, MessageReceived)] == ["? who deployed"]
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="F1 opens help")


# -- 9. the input: pasted newlines, blank input, Tab -----------------------------


async def test_pasted_trailing_newline_is_not_sent(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        app.post_message(events.Paste("deploy finished\n"))
        await wait_until(pilot, lambda: app.chat_input.text.startswith("deploy finished"))
        await pilot.press("enter")
        app.post_message(events.Paste("\n\n  indented code\n  second line\n\n"))
        await wait_until(pilot, lambda: "indented" in app.chat_input.text)
        await pilot.press("enter")
        await wait_until(pilot, lambda: sum(isinstance(e, MessageReceived) for e in bob_events) == 2)
        got = [e.message.text for e in bob_events if isinstance(e, MessageReceived)]
        assert got == ["deploy finished", "  indented code\n  second line"]
        await wait_until(pilot, lambda: app.message_list.message_count == 2 and not app.message_list.pending_ids)
        assert app.chat_input.sent[-1] == "  indented code\n  second line"


async def test_blank_input_is_cleared_not_sent_and_does_not_linger(harness: Harness):
    bob = await harness.client("bob")
    bob_events = events_of(bob)
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await pilot.press("space", "space", "space", "enter")
        assert app.chat_input.text == ""
        await pilot.press("ctrl+j", "space", "enter")
        assert app.chat_input.text == ""
        await pilot.press(*"hello", "enter")
        await wait_until(pilot, lambda: any(isinstance(e, MessageReceived) for e in bob_events))
        assert [e.message.text for e in bob_events if isinstance(e, MessageReceived)] == ["hello"]
        assert app.chat_input.sent == ["hello"]


async def test_tab_keeps_focus_in_the_input(harness: Harness):
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await pilot.press(*"hel", "tab", *"lo", "shift+tab", "!")
        assert isinstance(app.focused, ChatInput)
        assert app.chat_input.text == "hello!"


async def test_typing_after_clicking_the_messages_goes_to_the_input(harness: Harness):
    app = harness.app("alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await pilot.click("#messages")
        assert app.focused is app.message_list
        await pilot.press(*"hi there")
        assert isinstance(app.focused, ChatInput)
        assert app.chat_input.text == "hi there"


# -- 11. links ---------------------------------------------------------------


def test_links_finds_http_urls_only_and_leaves_trailing_punctuation():
    from workspace_tui.tui.format import links

    text = (
        "docs: https://example.com/a?b=1&c=2. (see http://example.org/x_(y)) and https://example.net/z, "
        "not javascript:alert(1) or file:///etc/passwd or ftp://x.org or xhttps://no.pe or https:// alone"
    )
    found = [url for _a, _b, url in links(text)]
    assert found == ["https://example.com/a?b=1&c=2", "http://example.org/x_(y)", "https://example.net/z"]
    for a, b, url in links(text):
        assert text[a:b] == url


def test_a_link_cannot_carry_an_escape_sequence():
    from workspace_tui.tui.format import links, safe

    hostile = "go https://evil.example/\x1b]8;;https://other.example\x07click\x1b]8;;\x07 now \x9d8;;x\x9c https://a.b/\x07c"
    shown = safe(hostile)
    for _a, _b, url in links(shown):
        assert re.fullmatch(r"https?://[!-~]+", url), url
        assert "\x1b" not in url and "\x07" not in url and "\x9d" not in url


def _link_cells(app, text_start: str) -> list[tuple[str, str | None]]:
    """(text, link) of every run of cells in the message starting with ``text_start``."""
    ml = app.message_list
    width = ml._text_width() + GUTTER
    for row in ml._rows:
        if row.kind == "msg" and row.entry.message.text.startswith(text_start):
            out = []
            for strip in ml._row_strips(row, width):
                for seg in strip:
                    out.append((seg.text, seg.style.link if seg.style else None))
                out.append(("\n", None))
            return out
    raise AssertionError(f"no message starting {text_start!r}")


async def test_urls_are_links_and_long_ones_stay_whole(harness: Harness):
    bob = await harness.client("bob")
    long_url = "https://example.com/" + "/".join(f"segment{i}" for i in range(12)) + "?q=1"
    app = harness.app("alice")
    async with app.run_test(size=(70, 24)) as pilot:
        await wait_until(pilot, lambda: app.status_bar.state is ConnectionState.CONNECTED)
        await bob.send("short https://example.com/a?b=1&c=2. then words")
        await bob.send(f"look at {long_url} please")
        await bob.send("javascript:alert(1) and file:///etc/passwd are text")
        await wait_until(pilot, lambda: app.message_list.message_count == 3)
        await pilot.pause()
        cells = _link_cells(app, "short")
        linked = "".join(t for t, link in cells if link)
        assert linked == "https://example.com/a?b=1&c=2"
        assert {link for _t, link in cells if link} == {"https://example.com/a?b=1&c=2"}

        width = app.message_list._text_width()
        assert len(long_url) > width
        cells = _link_cells(app, "look at")
        assert {link for _t, link in cells if link} == {long_url}  # every piece opens the whole URL
        assert "".join(t for t, link in cells if link) == long_url  # nothing inserted inside it
        lines = body_lines(app, "look at")
        # The URL starts a line of its own and fills whole lines: only the terminal's edge cuts it.
        url_lines = [line for line in lines if "segment" in line or "?q=1" in line]
        assert url_lines[0].startswith("https://")
        assert all(len(line) == width for line in url_lines[:-1])
        assert read_back(f"look at {long_url} please", lines)

        cells = _link_cells(app, "javascript")
        assert not any(link for _t, link in cells)

        # The terminal gets OSC 8 hyperlinks, with the URL and nothing else in them.
        console = Console(width=70, height=24, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                          legacy_windows=False)
        console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
        raw = console.file.getvalue()
        targets = set(re.findall(r"\x1b\]8;[^;]*;([^\x1b]*)\x1b\\", raw)) - {""}
        assert targets == {"https://example.com/a?b=1&c=2", long_url}
