"""Real mouse and keyboard input for the apps' windows under Xvfb, and the control sweep built on it.

A :class:`Robot` runs on a driver thread next to an app whose frame loop owns the main thread. It asks the GUI
thread where items are (``call``: a function run between frames) and moves the real X pointer and keys with
xdotool, the way a person would: scroll a column with the wheel until the control is in view, open the collapsing
header it sits in, drag the slider, click the combo and then one of its entries, type into the field and press
Enter. :func:`sweep` does that for every interactive item of the app's main window and checks that each one did
something a user can see: the app's state changed, a dialog opened, or the window's pixels changed.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import dearpygui.dearpygui as dpg
import numpy as np

log = logging.getLogger("gui_robot")

#: Item types a user can operate, by DearPyGui type name (``mvAppItemType::<name>``).
INTERACTIVE = {
    "mvButton", "mvCheckbox", "mvCombo", "mvSliderFloat", "mvSliderInt", "mvSliderDouble", "mvDragFloat",
    "mvDragInt", "mvInputText", "mvInputFloat", "mvInputInt", "mvColorEdit", "mvSelectable", "mvListbox",
    "mvCollapsingHeader", "mvTreeNode", "mvMenuItem", "mvRadioButton",
}  # fmt: skip
VALUE_FIRST = ("mvCheckbox", "mvSliderFloat", "mvSliderInt", "mvSliderDouble", "mvDragFloat", "mvDragInt",
               "mvCombo", "mvInputText", "mvInputFloat", "mvInputInt", "mvColorEdit", "mvSelectable", "mvListbox",
               "mvRadioButton", "mvMenuItem", "mvButton")  # fmt: skip
ROW_H = 20.0  # combo popup rows: 16 px font + 4 px item spacing (gui/theme.py)


def item_type(item: int | str) -> str:
    return dpg.get_item_type(item).rsplit(":", 1)[-1]


def _label(item: int | str) -> str:
    label = dpg.get_item_label(item) or ""
    return label.split("##")[0].strip()


def item_path(item: int | str) -> str:
    """A readable, stable name: the labels of the item and its labelled ancestors, numbering stripped.

    "3. Vignetting / Strength" and "1. Vignetting / Strength" are one control (the same filter's parameter).
    """
    parts = []
    node: Any = item
    while node:
        label = _label(node)
        kind = item_type(node)
        if kind in ("mvCollapsingHeader", "mvTreeNode"):
            label = label.split(". ", 1)[-1] if label[:1].isdigit() else label
        if kind == "mvSelectable":
            label = "<row>"  # one list is one control: its rows do the same thing
        if label:
            parts.append(label)
        node = dpg.get_item_parent(node)
    return " / ".join(reversed(parts)) + f" [{item_type(item)}]"


def root_window(item: int | str) -> int | str:
    node, parent = item, dpg.get_item_parent(item)
    while parent:
        node, parent = parent, dpg.get_item_parent(parent)
    return node


def shown(item: int | str) -> bool:
    """Whether the item and all its ancestors are configured to show (collapsed headers do not count here)."""
    node: Any = item
    while node:
        if not dpg.get_item_configuration(node).get("show", True):
            return False
        node = dpg.get_item_parent(node)
    return True


def inventory(main_window: int | str) -> list[tuple[str, int]]:
    """(path, item) of every interactive, shown item of ``main_window``, in tree order (dialogs excluded)."""
    out: list[tuple[str, int]] = []

    def walk(node: Any) -> None:
        for slot in range(4):
            for child in dpg.get_item_children(node, slot) or []:
                if item_type(child) in INTERACTIVE and shown(child):
                    out.append((item_path(child), child))
                walk(child)

    walk(main_window)
    return out


@dataclass
class Outcome:
    path: str
    kind: str
    action: str = ""
    effect: str = ""  # "state", "dialog", "pixels", "option: why", "" when it did nothing visible
    ok: bool = False
    detail: str = ""


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    inventory: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


class Robot:
    """Real input for the window titled ``title``; ``call(fn)`` runs ``fn`` on the GUI thread and returns its value."""

    def __init__(self, call: Callable[[Callable[[], Any]], Any], title: str):
        self.call = call
        self.window = self._find(title)
        self._origin: tuple[int, int] | None = None

    @staticmethod
    def _find(title: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = subprocess.run(["xdotool", "search", "--name", title], capture_output=True, text=True)
            if found.stdout.split():
                return found.stdout.split()[0]
            time.sleep(0.3)
        raise TimeoutError(f"no window titled {title!r}")

    # -- geometry -------------------------------------------------------------------------------------------------

    def origin(self) -> tuple[int, int]:
        out = subprocess.run(["xdotool", "getwindowgeometry", "--shell", self.window], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        values = dict(line.split("=", 1) for line in out.split())
        self._origin = (int(values["X"]), int(values["Y"]))
        return self._origin

    def settle(self, frames: int = 2) -> None:
        """Let the app draw a few frames (item rects are those of the last frame drawn)."""
        for _ in range(frames):
            self.call(lambda: None)

    def rect(self, item: int | str) -> tuple[float, float, float, float] | None:
        """(x0, y0, x1, y1) of ``item`` on the screen, or None when it was not drawn in the last frame."""

        def query():
            if not dpg.does_item_exist(item) or not dpg.is_item_visible(item):
                return None
            (x, y), (w, h) = dpg.get_item_rect_min(item), dpg.get_item_rect_size(item)
            return x, y, x + w, y + h

        r = self.call(query)
        if r is None:
            return None
        ox, oy = self._origin or self.origin()
        return r[0] + ox, r[1] + oy, r[2] + ox, r[3] + oy

    # -- input ----------------------------------------------------------------------------------------------------

    def xdo(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], check=True)

    def move(self, x: float, y: float) -> None:
        self.xdo("mousemove", str(int(x)), str(int(y)))
        time.sleep(0.05)
        self.settle(1)

    def click(self, x: float, y: float, button: int = 1, repeat: int = 1) -> None:
        self.move(x, y)
        self.xdo("click", "--repeat", str(repeat), "--delay", "90", str(button))
        self.settle(2)

    def drag(self, x0: float, y0: float, x1: float, y1: float, steps: int = 6) -> None:
        self.move(x0, y0)
        self.xdo("mousedown", "1")
        self.settle(1)
        for i in range(1, steps + 1):
            self.xdo("mousemove", str(int(x0 + (x1 - x0) * i / steps)), str(int(y0 + (y1 - y0) * i / steps)))
            self.settle(1)
        self.xdo("mouseup", "1")
        self.settle(2)

    def key(self, *chords: str) -> None:
        self.xdo("windowfocus", "--sync", self.window)
        for chord in chords:
            self.xdo("key", "--clearmodifiers", "--delay", "60", chord)
            self.settle(2)

    def type(self, text: str) -> None:
        self.xdo("type", "--delay", "40", text)
        self.settle(2)

    def park(self) -> None:
        """Move the pointer to a corner where it hovers nothing (no tooltips in screenshots)."""
        ox, oy = self._origin or self.origin()
        self.move(ox + 2, oy + 2)

    # -- reaching an item -----------------------------------------------------------------------------------------

    def _scroll_parent(self, item: int | str) -> int | None:
        def find():
            node = dpg.get_item_parent(item)
            while node:
                if item_type(node) == "mvChildWindow":
                    return node
                node = dpg.get_item_parent(node)
            return None

        return self.call(find)

    def open_ancestors(self, item: int | str) -> None:
        """Open (by clicking) every closed collapsing header or tree node above ``item``."""

        def closed():
            out, node = [], dpg.get_item_parent(item)
            while node:
                if item_type(node) in ("mvCollapsingHeader", "mvTreeNode") and not dpg.get_value(node):
                    out.append(node)
                node = dpg.get_item_parent(node)
            return list(reversed(out))

        for header in self.call(closed):
            self.reveal(header)
            r = self.rect(header)
            if r is not None:
                self.click(r[0] + 30, (r[1] + r[3]) / 2)

    def reveal(self, item: int | str, tries: int = 60) -> tuple[float, float, float, float]:
        """Scroll ``item``'s column with the mouse wheel until the item is wholly in view; returns its rect."""
        child = self._scroll_parent(item)
        for _ in range(tries):
            self.settle(1)
            r = self.rect(item)
            c = self.rect(child) if child is not None else None
            if r is not None and (c is None or (r[1] >= c[1] - 1 and r[3] <= c[3] + 1)):
                return r
            if c is None:
                break
            # Which way: compare the item's layout position with the visible part of the column.
            below = self.call(lambda: dpg.get_item_state(item).get("pos", [0, 0])[1] > dpg.get_y_scroll(child)
                              + dpg.get_item_height(child) / 2 if dpg.does_item_exist(item) else True)  # fmt: skip
            if r is not None:
                below = r[3] > c[3]
            self.move(c[0] + 6, (c[1] + c[3]) / 2)  # the column's left margin: over no control
            self.xdo("click", "5" if below else "4")
        raise RuntimeError(f"cannot scroll {item_path_safe(self, item)} into view")

    # -- operating one control ------------------------------------------------------------------------------------

    def operate(self, item: int | str, kind: str, text: str | None = None) -> str:
        """Real input that should change the control's value (or press it); returns what was done."""
        self.open_ancestors(item)
        x0, y0, x1, y1 = self.reveal(item)
        cy = (y0 + y1) / 2
        if kind in ("mvButton", "mvSelectable", "mvMenuItem", "mvRadioButton"):
            self.click((x0 + x1) / 2 if kind == "mvButton" else x0 + 12, cy)
            return "click"
        if kind in ("mvCollapsingHeader", "mvTreeNode"):
            self.click(x0 + 30, cy)
            return "click header"
        if kind == "mvCheckbox":
            self.click(x0 + (y1 - y0) / 2, cy)
            return "click box"
        if kind.startswith("mvSlider"):
            frame_w = self.call(lambda: dpg.get_item_width(item)) or (x1 - x0)
            frame_w = frame_w if frame_w > 0 else x1 - x0
            low, high, value = self.call(lambda: (dpg.get_item_configuration(item)["min_value"],
                                                  dpg.get_item_configuration(item)["max_value"],
                                                  dpg.get_value(item)))  # fmt: skip
            frac = (value - low) / (high - low) if high != low else 0.0
            start, end = (0.15, 0.8) if frac < 0.5 else (0.85, 0.2)
            self.drag(x0 + frame_w * start, cy, x0 + frame_w * end, cy)
            return "drag"
        if kind.startswith("mvDrag") or kind == "mvColorEdit" and self._has_inputs(item):
            self.drag(x0 + 20, cy, x0 + 70, cy)
            return "drag field"
        if kind == "mvColorEdit":
            self.click(x1 - (y1 - y0) / 2, cy)  # the swatch opens the picker below it
            self.click(x1 - (y1 - y0) / 2 + 60, y1 + 60)
            self.key("Escape")
            return "pick colour"
        if kind == "mvCombo":
            return self._pick_combo(item, x0, y0, x1, y1)
        if kind in ("mvInputText", "mvInputFloat", "mvInputInt"):
            self.click(x0 + 10, cy)
            self.key("ctrl+a")
            self.type(text if text is not None else "1")
            self.key("Return")
            return f"type {text!r}"
        raise ValueError(f"no real input for {kind}")

    def _has_inputs(self, item: int | str) -> bool:
        return not self.call(lambda: dpg.get_item_configuration(item).get("no_inputs", False))

    def _pick_combo(self, item: int | str, x0: float, y0: float, x1: float, y1: float) -> str:
        items, value = self.call(lambda: (list(dpg.get_item_configuration(item)["items"]), dpg.get_value(item)))
        if len(items) < 2:
            raise RuntimeError("a combo with fewer than two entries cannot change")
        target = 1 if items.index(value) == 0 else 0 if value in items else 0
        self.click((x0 + x1) / 2, (y0 + y1) / 2)
        shown_rows = min(len(items), 8)
        ox, oy = self._origin or self.origin()
        vh = self.call(dpg.get_viewport_client_height)
        popup_h = shown_rows * ROW_H + 16
        top = y1 + 8 if y1 + popup_h < oy + vh else y0 - popup_h + 8
        self.click(x0 + 20, top + (target + 0.5) * ROW_H)
        return f"pick entry {items[target]!r}"


def item_path_safe(robot: Robot, item: int | str) -> str:
    return robot.call(lambda: item_path(item) if dpg.does_item_exist(item) else str(item))


def window_pixels(call: Callable[[Callable[[], Any]], Any], screenshot: Callable[[Any], None]) -> np.ndarray:
    """The window as an (H, W, 4) uint8 array (through the app's own screenshot, into memory)."""
    import io

    from PIL import Image

    buf = io.BytesIO()

    class _Sink:
        def __fspath__(self):  # pragma: no cover - only a path-like for the shell's atomic writer
            raise TypeError

    del _Sink
    path = _tmp_png()
    call(lambda: screenshot(path))
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGBA"))
    buf.close()
    return arr


_TMP: list[str] = []


def _tmp_png() -> Any:
    import tempfile
    from pathlib import Path

    if not _TMP:
        _TMP.append(tempfile.mkdtemp(prefix="gui_robot_"))
    return Path(_TMP[0]) / "shot.png"


def sweep(
    robot: Robot,
    main_window: int | str,
    state: Callable[[], Any],
    *,
    dialogs_open: Callable[[], str | None],
    screenshot: Callable[[Any], None],
    options: dict[str, str],
    texts: dict[str, str],
    after: Callable[[str, Outcome], None] | None = None,
    rounds: int = 3,
) -> Report:
    """Operate every interactive item of ``main_window`` by real input and record what each did.

    ``state()`` (run on the GUI thread) is what the app holds for the user (model values, selections, files);
    a control passes when it changes ``state()``, opens a dialog, or changes the window's pixels outside its own
    box. ``options`` maps paths of controls that only hold a choice read by another action (a checkbox "with
    backdrop" read by Screenshot) to the action that reads them; ``texts`` maps input-field paths to what to type.
    ``after(path, outcome)`` may restore things (close a dialog, undo a toggle that would slow the rest).
    """
    report = Report()
    covered: set[str] = set()
    for _ in range(rounds):
        items = robot.call(lambda: inventory(main_window))
        report.inventory = sorted({p for p, _ in items} | set(report.inventory))
        todo = [(p, i) for p, i in items if p not in covered]
        if not todo:
            break
        kinds = robot.call(lambda: {i: item_type(i) for _, i in todo})
        for path, item in todo:
            if path in covered or not robot.call(lambda i=item: dpg.does_item_exist(i) and shown(i)):
                continue
            covered.add(path)
            outcome = Outcome(path, kinds[item])
            try:
                before = robot.call(state)
                pixels = None
                if path not in options:
                    robot.park()
                    pixels = window_pixels(robot.call, screenshot)
                box = robot.rect(item)
                outcome.action = robot.operate(item, kinds[item], texts.get(path))
                deadline = time.monotonic() + 8
                while time.monotonic() < deadline:
                    if robot.call(dialogs_open):
                        outcome.effect = "dialog"
                        break
                    if robot.call(state) != before:
                        outcome.effect = "state"
                        break
                    time.sleep(0.2)
                if not outcome.effect and path in options:
                    outcome.effect = f"option: {options[path]}"
                if not outcome.effect and pixels is not None:
                    robot.park()
                    now = window_pixels(robot.call, screenshot)
                    if _pixels_changed(pixels, now, box, robot.origin()):
                        outcome.effect = "pixels"
                outcome.ok = bool(outcome.effect)
                if not outcome.ok:
                    outcome.detail = "no visible effect"
            except Exception as e:  # recorded; the sweep goes on
                log.exception("control %s", path)
                outcome.detail = f"{type(e).__name__}: {e}"
            report.outcomes.append(outcome)
            log.info("%s %s -> %s %s", "ok " if outcome.ok else "BAD", path, outcome.effect, outcome.detail)
            if after is not None:
                after(path, outcome)
    final = {p for p, _ in robot.call(lambda: inventory(main_window))}
    report.inventory = sorted(final | set(report.inventory))
    report.uncovered = sorted(final - covered)
    return report


def _pixels_changed(a: np.ndarray, b: np.ndarray, box, origin) -> bool:
    """Whether the two window images differ outside the operated control's own box (its own look changes)."""
    if a.shape != b.shape:
        return True
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1) > 24
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in (box[0] - origin[0], box[1] - origin[1], box[2] - origin[0],
                                             box[3] - origin[1]))  # fmt: skip
        diff[max(0, y0 - 4) : y1 + 4, max(0, x0 - 4) : x1 + 4] = False
    return int(diff.sum()) > 50
