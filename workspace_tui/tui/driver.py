"""The terminal driver of the chat: Textual's, reading ESC CR as Alt+Enter.

tmux, xterm without modifyOtherKeys, and macOS terminals with "Option as Meta"
send Alt+Enter as ESC followed by CR. Textual's parser turns an ESC prefix into
``alt+`` only for single characters and reads ESC CR as a plain Enter, so the
chat would send the message instead of starting a new line. :class:`ChatParser`
names that sequence ``alt+enter`` (ESC LF, Alt+Ctrl+J, likewise stays a new
line); everything else is Textual's own parsing.

Textual creates its parser inside ``LinuxDriver.run_input_thread`` with no hook,
so :class:`ChatDriver` repeats that method (Textual 8.2) with our parser.
Terminals speaking the kitty keyboard protocol send ``CSI 13;3u``, which Textual
already reads as ``alt+enter``.
"""

from __future__ import annotations

import os
import selectors
from codecs import getincrementaldecoder
from collections.abc import Iterable

from textual import events
from textual._loop import loop_last
from textual._parser import ParseError
from textual._xterm_parser import XTermParser
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver


class ChatParser(XTermParser):
    """Textual's parser, with ESC CR (and ESC LF) read as Alt+Enter."""

    def _sequence_to_key_events(self, sequence: str, alt: bool = False) -> Iterable[events.Key]:
        if alt and sequence in ("\r", "\n"):
            yield events.Key("alt+enter", None)
            return
        yield from super()._sequence_to_key_events(sequence, alt)


class ChatDriver(LinuxDriver):
    """Textual's Linux/macOS driver, reading keys with :class:`ChatParser`."""

    def run_input_thread(self) -> None:
        """Wait for input and dispatch events (``LinuxDriver.run_input_thread``, with our parser)."""
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        fileno = self.fileno
        event_read = selectors.EVENT_READ
        parser = ChatParser(self._debug)
        feed = parser.feed
        tick = parser.tick
        decode = getincrementaldecoder("utf-8")().decode
        read = os.read

        def process_selector_events(selector_events: list[tuple[selectors.SelectorKey, int]], final: bool = False) -> None:
            for last, (_selector_key, mask) in loop_last(selector_events):
                if mask & event_read:
                    unicode_data = decode(read(fileno, 1024 * 4), final=final and last)
                    if not unicode_data:
                        break  # stdin is a pipe that was closed
                    for event in feed(unicode_data):
                        self.process_message(event)
            for event in tick():
                self.process_message(event)

        try:
            while not self.exit_event.is_set():
                process_selector_events(selector.select(0.1))
            selector.unregister(self.fileno)
            process_selector_events(selector.select(0.1), final=True)
        finally:
            selector.close()
            try:
                for _event in feed(""):
                    pass
            except (EOFError, ParseError):
                pass


def chat_driver_class(default: type[Driver]) -> type[Driver]:
    """:class:`ChatDriver` where Textual would use its Linux driver; otherwise Textual's choice."""
    return ChatDriver if default is LinuxDriver else default
