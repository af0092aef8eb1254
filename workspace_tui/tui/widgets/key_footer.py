"""The key hints at the bottom: Textual's footer, fitted to the terminal's width.

Textual's :class:`~textual.widgets.Footer` lays every key out in a row and cuts
what does not fit (``f5 Offlin▏^p palette`` at 60 columns). This one tries, in
order, the layouts of :data:`FITS` until the row fits: every key with its
label; the compact style; the status keys under one label (``f2 f3 f4 f5
Status``); without the command palette's key; and, while a failed message
needs its keys, without the status keys. Whatever is left out of the row is
on the help screen (F1) and in the command palette.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer
from textual.widgets._footer import FooterKey, FooterLabel, KeyGroup

from workspace_tui.tui.keys import KEY_IDS

# binding id prefix -> the one label its keys share when the row is short of room
GROUPS: dict[str, str] = {"status.": "Status", "message.": "Failed msg"}


@dataclass(frozen=True, slots=True)
class Fit:
    """One way to lay out the row; :data:`FITS` goes from roomiest to tightest."""

    compact: bool = False
    grouped: tuple[str, ...] = ()  # id prefixes whose keys share one label
    hidden: tuple[str, ...] = ()  # id prefixes left to the help screen and the command palette
    palette: bool = True  # show the command palette's key


FITS: tuple[Fit, ...] = (
    Fit(),
    Fit(compact=True),
    Fit(compact=True, grouped=("status.",)),
    Fit(compact=True, grouped=("status.",), palette=False),
    # a failed message matters more than the status keys: their labels stay, statuses go
    Fit(compact=True, hidden=("status.",), palette=False),
    Fit(compact=True, grouped=("message.",), hidden=("status.",), palette=False),
)

_Item = tuple[Binding, bool, str]  # binding, enabled, tooltip


def _prefix(binding: Binding, prefixes: tuple[str, ...]) -> str | None:
    return next((p for p in prefixes if (binding.id or "").startswith(p)), None)


class KeyFooter(Footer):
    """A footer whose row of keys always fits: labels shorten, related keys group, as the width shrinks."""

    DEFAULT_CSS = """
    KeyFooter.-compact FooterLabel {
        margin: 0 1 0 0;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.fit = FITS[0]  # how the last row was laid out

    # -- measuring -------------------------------------------------------------

    def _items(self) -> tuple[list[_Item], _Item | None]:
        """The keys to show (one per action, in the app's binding order) and the command palette's key."""
        active = self.screen.active_bindings
        by_action: dict[str, _Item] = {}
        for _node, binding, enabled, tooltip in active.values():
            if binding.show:
                by_action.setdefault(binding.action, (binding, enabled, tooltip))
        order = {binding_id: n for n, binding_id in enumerate(KEY_IDS)}
        # priority bindings come first in active_bindings; the row keeps the order of the key table
        items = sorted(by_action.values(), key=lambda item: order.get(item[0].id or "", len(order)))
        palette: _Item | None = None
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            found = active.get(self.app.COMMAND_PALETTE_BINDING)
            if found is not None:
                palette = (found.binding, found.enabled, found.tooltip)
        return items, palette

    def _display(self, binding: Binding) -> str:
        return self.app.get_key_display(binding)

    def _runs(self, items: list[_Item], fit: Fit) -> list[tuple[str | None, list[_Item]]]:
        """The row as runs of (group prefix or None, items): consecutive keys of one group share a run."""
        runs: list[tuple[str | None, list[_Item]]] = []
        for item in items:
            if _prefix(item[0], fit.hidden):
                continue
            prefix = _prefix(item[0], fit.grouped)
            if prefix is not None and runs and runs[-1][0] == prefix:
                runs[-1][1].append(item)
            else:
                runs.append((prefix, [item]))
        return runs

    def _width(self, items: list[_Item], palette: _Item | None, fit: Fit) -> int:
        """Columns the row takes laid out as *fit* (a little generous: FooterKey pads, KeyGroup adds margins)."""
        total = 0
        for prefix, members in self._runs(items, fit):
            if prefix is not None and len(members) > 1:
                total += sum(len(self._display(b)) + 2 for b, _, _ in members) + len(GROUPS[prefix]) + 1
                continue
            for binding, _, _ in members:
                total += len(self._display(binding)) + len(binding.description) + (2 if fit.compact else 3)
        if palette is not None and fit.palette:
            binding = palette[0]
            total += len(self._display(binding)) + len(binding.description) + (2 if fit.compact else 4)
        return total

    def fit_for(self, width: int) -> Fit:
        """The roomiest layout whose row fits *width* columns."""
        items, palette = self._items()
        for fit in FITS:
            if self._width(items, palette, fit) <= width:
                return fit
        return FITS[-1]

    # -- drawing ---------------------------------------------------------------

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        items, palette = self._items()
        self.fit = fit = self.fit_for(self.size.width or self.app.size.width)
        self.compact = fit.compact
        for prefix, members in self._runs(items, fit):
            if prefix is not None and len(members) > 1:
                with KeyGroup():
                    for binding, enabled, tooltip in members:
                        yield FooterKey(
                            binding.key,
                            self._display(binding),
                            "",
                            binding.action,
                            disabled=not enabled,
                            tooltip=tooltip or binding.description,
                            classes="-grouped",
                        ).data_bind(compact=Footer.compact)
                yield FooterLabel(GROUPS[prefix])
                continue
            for binding, enabled, tooltip in members:
                yield FooterKey(
                    binding.key,
                    self._display(binding),
                    binding.description,
                    binding.action,
                    disabled=not enabled,
                    tooltip=tooltip,
                ).data_bind(compact=Footer.compact)
        if palette is not None and fit.palette:
            binding, enabled, tooltip = palette
            yield FooterKey(
                binding.key,
                self._display(binding),
                binding.description,
                binding.action,
                classes="-command-palette",
                disabled=not enabled,
                tooltip=binding.tooltip or binding.description,
            )

    def on_resize(self, event: events.Resize) -> None:
        if self._bindings_ready and self.fit_for(event.size.width) != self.fit:
            self.call_after_refresh(self.recompose)
