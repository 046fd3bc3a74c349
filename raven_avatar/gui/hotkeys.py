"""A hotkey table: one place that binds keys to actions, documents them for the help card, and knows when to stay out.

Hotkeys are ignored while a text field (or a slider in Ctrl+click text mode) owns the keyboard, and while a dialog is
open; then only Enter and Esc go to the dialog. Up/Down/Home/End/PageUp/PageDown browse the focused list (a listbox
or combo registered with :meth:`HotkeyTable.add_list`) and fire its callback, like a click would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import dearpygui.dearpygui as dpg

from raven_avatar.gui.callbacks import Callbacks
from raven_avatar.gui.dialogs import Dialogs
from raven_avatar.gui.listview import stepped

log = logging.getLogger(__name__)

# Page Up / Page Down arrive with these codes in DearPyGui 2.x (the mvKey_Prior/Next constants are stale).
KEY_PAGE_UP, KEY_PAGE_DOWN = 517, 518
_CTRL = (dpg.mvKey_LControl, dpg.mvKey_RControl)
_SHIFT = (dpg.mvKey_LShift, dpg.mvKey_RShift)
_BROWSE = {dpg.mvKey_Up: -1, dpg.mvKey_Down: 1, KEY_PAGE_UP: -10, KEY_PAGE_DOWN: 10, dpg.mvKey_Home: "first",
           dpg.mvKey_End: "last"}  # fmt: skip


def key_name(key: int) -> str:
    """A readable name for a DearPyGui key code ("S", "F1", "Up")."""
    for name in dir(dpg):
        if name.startswith("mvKey_") and getattr(dpg, name) == key and not name.startswith("mvKey_Mod"):
            return name[len("mvKey_") :]
    return {KEY_PAGE_UP: "PageUp", KEY_PAGE_DOWN: "PageDown"}.get(key, str(key))


@dataclass(frozen=True)
class Hotkey:
    key: int
    ctrl: bool
    shift: bool
    description: str
    action: Callable[[], None]
    label: str = ""  # shown instead of the generated chord (e.g. "Ctrl+click")

    @property
    def chord(self) -> str:
        if self.label:
            return self.label
        return "+".join([*(["Ctrl"] if self.ctrl else []), *(["Shift"] if self.shift else []), key_name(self.key)])


class Browsable(Protocol):
    """A list the arrow keys can browse: a :class:`~raven_avatar.gui.listview.ListView` or a :class:`ComboList`."""

    item: int | str

    def items(self) -> Sequence[str]: ...

    def get(self) -> str | None: ...

    def choose(self, value: str) -> None: ...


class ComboList:
    """A combo as a :class:`Browsable`: ``choose`` sets it and calls ``on_select`` as picking the entry would."""

    def __init__(self, item: int | str, items: Callable[[], Sequence[str]], on_select: Callable[[str], None]):
        self.item, self._items, self._on_select = item, items, on_select

    def items(self) -> Sequence[str]:
        return self._items()

    def get(self) -> str | None:
        return dpg.get_value(self.item)

    def choose(self, value: str) -> None:
        dpg.set_value(self.item, value)
        self._on_select(value)


class HotkeyTable:
    """The app's hotkeys. Add entries, then :meth:`install` once the DearPyGui context exists."""

    def __init__(self, dialogs: Dialogs, callbacks: Callbacks):
        self.dialogs = dialogs
        self._cb = callbacks
        self.entries: list[Hotkey] = []
        self.notes: list[tuple[str, str]] = []  # (chord, description) documented but handled elsewhere
        self._lists: list[Browsable] = []
        self._installed = False
        self._current: Browsable | None = None  # the list last clicked or focused by a hotkey
        # Keys held down, from press/release events in queue order: callbacks may run a frame after the event, when
        # a quick Ctrl+S is already released, so is_key_down() at dispatch time would miss the Ctrl.
        self._down: set[int] = set()

    def add(self, key: int, description: str, action: Callable[[], None], *, ctrl: bool = False,
            shift: bool = False) -> None:  # fmt: skip
        if any(h.key == key and h.ctrl == ctrl and h.shift == shift for h in self.entries):
            raise ValueError(f"hotkey {Hotkey(key, ctrl, shift, '', action).chord} bound twice")
        self.entries.append(Hotkey(key, ctrl, shift, description, action))

    def note(self, chord: str, description: str) -> None:
        """Document a key handled by a widget itself (help card only)."""
        self.notes.append((chord, description))

    def add_list(self, target: Browsable) -> None:
        """Let Up/Down/Home/End/PageUp/PageDown browse ``target`` while it has the focus (or was clicked last)."""
        self._lists.append(target)

    def focus_list(self, target: Browsable) -> None:
        """Give a registered list the keyboard (ImGui does not report a focused listbox, so this is tracked here)."""
        dpg.focus_item(target.item)
        self._current = target

    def _clicked(self) -> None:
        self._current = next((t for t in self._lists if dpg.is_item_hovered(t.item)), None)

    def install(self) -> None:
        """Listen to the keyboard (once: a second registry would run every hotkey twice)."""
        if self._installed:
            return
        self._installed = True
        with dpg.handler_registry():
            dpg.add_key_press_handler(callback=self._cb.value(self._pressed))
            dpg.add_key_release_handler(callback=self._cb.value(self._released))
            dpg.add_mouse_click_handler(callback=self._cb.click(self._clicked))

    def _released(self, key: int) -> None:
        self._down.discard(int(key))

    def _pressed(self, key: int) -> None:
        self._down.add(int(key))
        self.dispatch(int(key))

    # -- dispatch -----------------------------------------------------------------------------------------------------

    def typing(self) -> bool:
        """Whether a text field (or a slider being typed into) owns the keyboard right now."""
        item = dpg.get_focused_item()
        return bool(item) and dpg.does_item_exist(item) and bool(dpg.is_item_active(item))

    def dispatch(self, key: int, ctrl: bool | None = None, shift: bool | None = None) -> bool:
        """Handle one key press; returns whether it did something. ``ctrl``/``shift`` default to the held keys."""
        if self.dialogs.is_open:
            if key in (dpg.mvKey_Escape,):
                self.dialogs.cancel()
                return True
            if key in (dpg.mvKey_Return, getattr(dpg, "mvKey_KeypadEnter", -1)) and not self.typing():
                self.dialogs.accept()
                return True
            if key in _BROWSE and not self.typing():
                return self.dialogs.browse(_BROWSE[key])
            return False
        if self.typing():
            return False
        if ctrl is None:
            ctrl = any(k in self._down for k in _CTRL)
        if shift is None:
            shift = any(k in self._down for k in _SHIFT)
        log.debug("key %d ctrl=%s shift=%s", key, ctrl, shift)
        for h in self.entries:
            if h.key == key and h.ctrl == ctrl and h.shift == shift:
                log.debug("hotkey %s", h.chord)
                h.action()
                return True
        if key in _BROWSE and not ctrl and not shift:
            return self.browse(key)
        return False

    def browse(self, key: int) -> bool:
        """Move the selection of the list last clicked or focused by a hotkey, else of a focused combo."""
        target = self._current if self._current in self._lists else None
        if target is None:
            target = next((t for t in self._lists if dpg.is_item_focused(t.item)), None)
        if target is None:
            return False
        items = list(target.items())
        if not items:
            return False
        target.choose(stepped(items, target.get(), _BROWSE[key]))
        return True
