"""A list of text rows that scrolls to its selection: DearPyGui's listbox cannot be scrolled from code.

Rows are selectables in a child window; one row is selected at a time. A click selects (and calls ``on_select``),
a double click or :meth:`activate` calls ``on_activate``. Keyboard browsing (Up/Down/Home/End/PageUp/PageDown) comes
from :class:`raven_avatar.gui.hotkeys.HotkeyTable`, which calls :meth:`choose`; the row chosen is scrolled into view.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import dearpygui.dearpygui as dpg

from raven_avatar.gui.callbacks import Callbacks

DOUBLE_CLICK_S = 0.45  # two clicks on one row within this time are a double click
_ROW_H = 21  # until a frame has been drawn and real row positions are known (16 px font + 4 px spacing)


def stepped(items: Sequence[str], current: str | None, step: int | str) -> str:
    """The entry of the non-empty ``items`` that a key moves to from ``current``: ``"first"``, ``"last"`` or
    ``step`` entries on (clamped at the ends; from no selection, ``+1`` is the first entry)."""
    if step == "first":
        return items[0]
    if step == "last":
        return items[-1]
    index = items.index(current) if current in items else -1
    return items[min(max(index + int(step), 0), len(items) - 1)]


class ListView:
    """``values`` shown as rows (optionally with other ``labels``); :meth:`get` is the selected value or ``None``.

    ``label`` names the list for tests and logs (a child window does not show it).
    """

    def __init__(
        self,
        callbacks: Callbacks,
        parent: int | str,
        *,
        height: int,
        width: int = -1,
        label: str = "",
        on_select: Callable[[str], None] | None = None,
        on_activate: Callable[[str], None] | None = None,
    ):
        self._cb = callbacks
        self.on_select = on_select
        self.on_activate = on_activate
        self.item = dpg.add_child_window(parent=parent, height=height, width=width, border=True, label=label)
        self._values: list[str] = []
        self._rows: list[int | str] = []
        self._index = -1
        self._last_click: tuple[int, float] = (-1, 0.0)

    # -- content ------------------------------------------------------------------------------------------------------

    def items(self) -> list[str]:
        return list(self._values)

    def set_items(self, values: Sequence[str], labels: Sequence[str] | None = None) -> None:
        """Replace the rows (the selection is kept when its value is still there)."""
        labels = list(labels) if labels is not None else list(values)
        if list(values) == self._values and all(
            dpg.get_item_label(r) == lab for r, lab in zip(self._rows, labels, strict=True)
        ):
            return
        current = self.get()
        dpg.delete_item(self.item, children_only=True)
        self._values = list(values)
        self._rows = [
            dpg.add_selectable(label=label, parent=self.item, callback=self._cb.click(self._clicked, i))
            for i, label in enumerate(labels)
        ]
        self._index = self._values.index(current) if current in self._values else -1
        self._paint()

    def set_height(self, height: int) -> None:
        dpg.configure_item(self.item, height=height)

    # -- selection ----------------------------------------------------------------------------------------------------

    def get(self) -> str | None:
        return self._values[self._index] if 0 <= self._index < len(self._values) else None

    def select(self, value: str | None, *, scroll: bool = True) -> None:
        """Show ``value`` as selected (no callback); ``None`` or an unknown value clears the selection."""
        index = self._values.index(value) if value in self._values else -1
        if index != self._index:
            self._index = index
            self._paint()
        if scroll and index >= 0:
            self.scroll_to(index)

    def choose(self, value: str) -> None:
        """Select ``value`` as a click would (``on_select`` runs)."""
        self.select(value)
        if self.on_select is not None:
            self.on_select(value)

    def activate(self) -> None:
        """What a double click on the selected row does (``on_activate``)."""
        value = self.get()
        if value is not None and self.on_activate is not None:
            self.on_activate(value)

    def _clicked(self, index: int) -> None:
        now = time.monotonic()
        double = self._last_click[0] == index and now - self._last_click[1] < DOUBLE_CLICK_S
        self._last_click = (index, 0.0 if double else now)
        self._index = index
        self._paint()
        value = self._values[index]
        if double and self.on_activate is not None:
            self.on_activate(value)
        elif self.on_select is not None:
            self.on_select(value)

    def _paint(self) -> None:
        for i, row in enumerate(self._rows):
            dpg.set_value(row, i == self._index)

    def row_height(self) -> float:
        if len(self._rows) >= 2:
            y0, y1 = dpg.get_item_pos(self._rows[0])[1], dpg.get_item_pos(self._rows[1])[1]
            if y1 > y0:
                return float(y1 - y0)
        return float(_ROW_H)

    def scroll_to(self, index: int) -> None:
        """Scroll so that row ``index`` is inside the visible part of the list."""
        row_h = self.row_height()
        visible = max(row_h, dpg.get_item_height(self.item) - 2 * 8)
        top = dpg.get_y_scroll(self.item)
        y = index * row_h
        if y < top:
            dpg.set_y_scroll(self.item, y)
        elif y + row_h > top + visible:
            dpg.set_y_scroll(self.item, y + row_h - visible)
