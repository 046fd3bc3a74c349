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

from raven_avatar.settings_editor.panels import RESET as RESET_LABEL  # a button that resets the value beside it

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
    """The label a user reads, with a ``##context`` id part as "(context)" (digits-only ids are uniqueness only)."""
    shown_part, _, context = (dpg.get_item_label(item) or "").partition("##")
    shown_part = shown_part.strip()
    return f"{shown_part} ({context})" if context and not context.isdigit() else shown_part


def item_path(item: int | str) -> str:
    """A readable, stable name: the labels of the item and its labelled ancestors, numbering stripped.

    "3. Vignetting / Strength" and "1. Vignetting / Strength" are one control (the same filter's parameter).
    """
    parts = []
    node: Any = item
    while node:
        label = _label(node)
        kind = item_type(node)
        if kind in ("mvCollapsingHeader", "mvTreeNode") and label[:1].isdigit() and ". " in label:
            label = "<instance>"  # numbered instances (filters in a chain) share their controls
        if kind == "mvSelectable":
            label = "<row>"  # one list is one control: its rows do the same thing
        if node == item and len(label) <= 2:
            label = f"{label} ({_neighbour_label(item)})"  # e.g. a reset button "X" names what it resets
        if label:
            parts.append(label)
        node = dpg.get_item_parent(node)
    return " / ".join(reversed(parts)) + f" [{item_type(item)}]"


def _neighbour_label(item: int | str) -> str:
    parent = dpg.get_item_parent(item)
    siblings = dpg.get_item_children(parent, 1) or []
    later = siblings[siblings.index(item) + 1 :] if item in siblings else []
    return next((_label(s) for s in later if _label(s)), "")


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


def enabled(item: int | str) -> bool:
    """Whether the item takes input (a disabled button, e.g. Up on the first filter, is not a control now)."""
    return bool(dpg.get_item_configuration(item).get("enabled", True))


def inventory(main_window: int | str) -> list[tuple[str, int]]:
    """(path, item) of every interactive, shown item of ``main_window``, in tree order (dialogs excluded)."""
    out: list[tuple[str, int]] = []

    def walk(node: Any) -> None:
        for slot in range(4):
            for child in dpg.get_item_children(node, slot) or []:
                if item_type(child) in INTERACTIVE and shown(child) and enabled(child):
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

    def __init__(self, call: Callable[[Callable[[], Any]], Any], title: str,
                 screenshot: Callable[[Any], None] | None = None):  # fmt: skip
        """``screenshot(path)`` (the app's own, run on the GUI thread) lets the robot find popups on screen."""
        self.call = call
        self.screenshot = screenshot
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

        return self._screen(self.call(lambda: _viewport_rect(item)))

    def _screen(self, r: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
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
        self.settle(1)

    def drag(self, x0: float, y0: float, x1: float, y1: float, steps: int = 3) -> None:
        """Press at (x0, y0), move in ``steps`` (a frame each: a widget follows the pointer frame by frame), release.

        A one-step drag left a slider unchanged now and then (one of ~60 in a sweep): keep three steps."""
        self.move(x0, y0)
        self.xdo("mousedown", "1")
        self.settle(1)
        for i in range(1, steps + 1):
            self.xdo("mousemove", str(int(x0 + (x1 - x0) * i / steps)), str(int(y0 + (y1 - y0) * i / steps)))
            self.settle(1)
        self.xdo("mouseup", "1")
        self.settle(2)

    def key(self, *chords: str, settle: bool = True) -> None:
        """Press ``chords`` in turn; ``settle=False`` for a key that closes the app (no frames follow it)."""
        self.xdo("windowfocus", "--sync", self.window)
        for chord in chords:
            self.xdo("key", "--clearmodifiers", "--delay", "60", chord)
            if settle:
                self.settle(2)

    def type(self, text: str) -> None:
        self.xdo("type", "--delay", "40", text)
        self.settle(2)

    def park(self) -> None:
        """Move the pointer to a corner where it hovers nothing (no tooltips in screenshots)."""
        ox, oy = self._origin or self.origin()
        self.move(ox + 2, oy + 2)

    # -- reaching an item -----------------------------------------------------------------------------------------

    def open_ancestors(self, item: int | str) -> None:
        """Open (by clicking) every closed collapsing header or tree node above ``item``."""
        for header in self.call(lambda: _ancestors(item)[0]):
            self.reveal(header)
            r = self.rect(header)
            if r is not None:
                self.click(r[0] + 30, (r[1] + r[3]) / 2)

    def reveal(self, item: int | str, tries: int = 60) -> tuple[float, float, float, float]:
        """Scroll ``item``'s column with the mouse wheel until the item is wholly in view; returns its rect."""
        columns = self.call(lambda: _ancestors(item)[1])
        child = columns[0] if columns else None
        if len(columns) > 1:
            self.reveal(child, tries)  # a list inside a scrolled column: the list first
        for attempt in range(tries):
            if attempt:
                self.settle(1)  # the wheel click scrolls on the next frame
            r, where, anchor = self.call(lambda: _scroll_position(item, child))
            if where == "inside" and r is not None:
                return self._screen(r)
            if anchor is None:
                break
            ax0, ay0, ax1, ay1 = self._screen(anchor)
            self.move(ax0 + 4, (ay0 + ay1) / 2)  # over something inside the scrolled column or list
            self.xdo("click", "5" if where == "below" else "4")
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
            label_w, low, high, value = self.call(lambda: (_label_width(item),
                                                           dpg.get_item_configuration(item)["min_value"],
                                                           dpg.get_item_configuration(item)["max_value"],
                                                           dpg.get_value(item)))  # fmt: skip
            frame_w = (x1 - x0) - label_w
            frac = (value - low) / (high - low) if high != low else 0.0
            start, end = (0.15, 0.8) if frac < 0.5 else (0.85, 0.2)
            self.drag(x0 + frame_w * start, cy, x0 + frame_w * end, cy)
            return "drag"
        if kind.startswith("mvDrag") or kind == "mvColorEdit" and self._has_inputs(item):
            self.drag(x0 + 20, cy, x0 + 70, cy)
            return "drag field"
        if kind == "mvColorEdit":
            return self._pick_colour(x0, y0, x1, y1)
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

    def _pick_colour(self, x0: float, y0: float, x1: float, y1: float) -> str:
        """Click the swatch, find the picker popup (where the window changed) and click into its colour square."""
        for _attempt in range(3):  # a click that only closed some other popup opens nothing: try again
            self.park()
            before = window_pixels(self.call, self.screenshot)
            self.click(x1 - (y1 - y0) / 2, (y0 + y1) / 2)
            self.park()
            after = window_pixels(self.call, self.screenshot)
            changed = np.abs(before.astype(np.int16) - after.astype(np.int16)).max(axis=-1) > 24
            ys, xs = np.nonzero(changed)
            if len(xs) >= 100:
                break
            self.key("Escape")
        else:
            raise RuntimeError("the colour picker did not open")
        ox, oy = self._origin or self.origin()
        px0, py0, px1, py1 = xs.min(), ys.min(), xs.max(), ys.max()
        self.click(ox + px0 + 0.25 * (px1 - px0), oy + py0 + 0.2 * (py1 - py0))  # inside the saturation/value square
        self.key("Escape")
        return "pick colour"

    def find(self, main_window: int | str, path: str) -> int:
        """The first interactive item whose path (see :func:`item_path`) ends with ``path``."""
        for p, item in self.call(lambda: inventory(main_window)):
            if p.endswith(path):
                return item
        raise LookupError(f"no control {path!r}")

    def pick(self, item: int | str, value: str) -> None:
        """Choose ``value`` in a combo: click it open, click the entry."""
        self.open_ancestors(item)
        self._pick_combo(item, *self.reveal(item), value=value)

    def _pick_combo(self, item: int | str, x0: float, y0: float, x1: float, y1: float, value: str | None = None
                    ) -> str:  # fmt: skip
        items, current = self.call(lambda: (list(dpg.get_item_configuration(item)["items"]), dpg.get_value(item)))
        if len(items) < 2:
            raise RuntimeError("a combo with fewer than two entries cannot change")
        first = 1 if current in items and items.index(current) == 0 else 0
        target = items.index(value) if value is not None else first
        if target >= 8:
            raise ValueError("entries below the eighth need scrolling in the popup")
        self.click((x0 + x1) / 2, (y0 + y1) / 2)
        shown_rows = min(len(items), 8)
        ox, oy = self._origin or self.origin()
        vh = self.call(dpg.get_viewport_client_height)
        popup_h = shown_rows * ROW_H + 16
        top = y1 + 8 if y1 + popup_h < oy + vh else y0 - popup_h + 8
        self.click(x0 + 20, top + (target + 0.5) * ROW_H)
        return f"pick entry {items[target]!r}"


def _value_sibling(item: int | str) -> int | str | None:
    """The value widget (slider, checkbox, combo, field) a reset button resets: in its row, else the first one in
    what follows the row (a list setting's editors below it), if any."""
    if not dpg.does_item_exist(item):
        return None
    values = set(VALUE_FIRST) - {"mvButton", "mvSelectable", "mvMenuItem"}
    row = dpg.get_item_parent(item)
    siblings = dpg.get_item_children(row, 1) or []
    found = next((s for s in siblings if s != item and item_type(s) in values and shown(s)), None)
    if found is not None:
        return found
    outer = dpg.get_item_children(dpg.get_item_parent(row), 1) or []
    stack = outer[outer.index(row) + 1 : outer.index(row) + 2] if row in outer else []
    while stack:
        node = stack.pop(0)
        if item_type(node) in values and shown(node):
            return node
        stack[:0] = dpg.get_item_children(node, 1) or []
    return None


def _ancestors(item: int | str) -> tuple[list[int], list[int]]:
    """The closed collapsing headers and tree nodes above ``item`` (outermost first), and the child windows that
    scroll it (innermost first): one GUI-thread call instead of one per question."""
    closed, columns, node = [], [], dpg.get_item_parent(item)
    while node:
        kind = item_type(node)
        if kind in ("mvCollapsingHeader", "mvTreeNode") and not dpg.get_value(node):
            closed.append(node)
        elif kind == "mvChildWindow":
            columns.append(node)
        node = dpg.get_item_parent(node)
    return list(reversed(closed)), columns


def _viewport_rect(item: int | str) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) of ``item`` in the viewport as last drawn, or None (not drawn: clipped, hidden, gone)."""
    if not dpg.does_item_exist(item):
        return None
    st = dpg.get_item_state(item)
    # Child windows report no "visible"/"rect_min"; their "pos" is in the primary window, i.e. the viewport.
    if not st.get("visible", True) or "rect_size" not in st:
        return None
    (x, y), (w, h) = st.get("rect_min", st.get("pos")), st["rect_size"]
    return x, y, x + w, y + h


def _scroll_position(item: int | str, child: int | str | None) -> tuple[Any, str, Any]:
    """(viewport rect or None, "inside"/"above"/"below", rect of a visible item in ``child`` to wheel over).

    An item's "pos" is in its window's content coordinates (scroll included), so it is compared with the part of
    the content the child window shows: ``[scroll, scroll + height]``.
    """
    rect = _viewport_rect(item)
    if child is None:
        return rect, "inside" if rect is not None else "below", None
    st = dpg.get_item_state(item)
    y, h = st["pos"][1], st.get("rect_size", [0, 20])[1]
    top, height = dpg.get_y_scroll(child), dpg.get_item_state(child)["rect_size"][1]
    where = "above" if y < top else "below" if y + h > top + height - 4 else "inside"
    # Wheel over the middle one of the visible items: ones at the edges may be cut by the border (no scrolling).
    shown_rects = []
    stack = list(dpg.get_item_children(child, 1) or [])
    while stack and len(shown_rects) < 200:
        node = stack.pop(0)
        if item_type(node) == "mvChildWindow":
            continue  # a list inside the column would take the wheel itself
        r = _viewport_rect(node) if item_type(node) != "mvGroup" else None
        if r is not None and dpg.get_item_state(node).get("visible") and r[3] > r[1]:
            shown_rects.append(r)
        stack.extend(dpg.get_item_children(node, 1) or [])
    shown_rects.sort(key=lambda r: r[1])
    anchor = shown_rects[len(shown_rects) // 2] if shown_rects else None
    return rect, where if rect is not None or where != "inside" else "below", anchor


def _label_width(item: int | str) -> float:
    """Width of the label ImGui draws right of a widget's frame (item rects include it), with its spacing."""
    label = (dpg.get_item_label(item) or "").split("##")[0]
    if not label:
        return 0.0
    size = dpg.get_text_size(label)
    return (size[0] if size else len(label) * 8.5) + 6  # ImGui's inner item spacing (4) plus a margin


def item_path_safe(robot: Robot, item: int | str) -> str:
    return robot.call(lambda: item_path(item) if dpg.does_item_exist(item) else str(item))


def window_pixels(call: Callable[[Callable[[], Any]], Any], screenshot: Callable[[Any], None]) -> np.ndarray:
    """The window as an (H, W, 4) uint8 array, through the app's own screenshot."""
    import tempfile
    from pathlib import Path

    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="gui_robot_") as tmp:
        path = Path(tmp) / "shot.png"
        call(lambda: screenshot(path))
        with Image.open(path) as im:
            return np.asarray(im.convert("RGBA"))


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
    rounds: int = 12,
) -> Report:
    """Operate every interactive item of ``main_window`` by real input and record what each did.

    ``state()`` (run on the GUI thread) is what the app holds for the user (model values, selections, files);
    a control passes when it changes ``state()`` or opens a dialog. Failing that it is operated once more between
    two screenshots, and passes when the window's pixels outside its own box changed (a view option). ``options``
    maps paths of controls that only hold a choice read by another action (a checkbox "with backdrop" read by
    Screenshot) to that action; ``texts`` maps input-field paths to what to type. Controls sharing a path (the
    Up button of every filter) are one control: when one instance does nothing (Up on the first filter), the next
    is tried. Within each container, value widgets go before buttons (so that a Reset has something to reset).
    ``after(path, outcome)`` may restore things (close a dialog, undo a toggle that would slow the rest).
    """
    report = Report()
    covered: set[str] = set()
    failed: dict[str, int] = {}
    for _ in range(rounds):
        items = robot.call(lambda: _ordered(inventory(main_window)))
        report.inventory = sorted({p for p, _, _ in items} | set(report.inventory))
        todo = [(p, i, k) for p, i, k in items if p not in covered]
        if not todo:
            break
        for path, item, kind in todo:
            if path in covered:
                continue
            if not robot.call(lambda i=item: dpg.does_item_exist(i) and shown(i)):
                # Rebuilt since the inventory (a chain panel after Up/Dup/Del): the same control, new id.
                now = [i for p, i in robot.call(lambda: inventory(main_window)) if p == path]
                if not now:
                    continue
                item = now[0]
            if kind == "mvSelectable":  # a row not selected yet, from the end of the list (not "[custom]")
                rows = [i for p, i, _ in items if p == path]
                free = robot.call(lambda rows=rows: [r for r in rows if not dpg.get_value(r)])
                item = free[-1] if free else item
            if kind == "mvButton" and robot.call(lambda i=item: dpg.get_item_label(i)) == RESET_LABEL:
                _move_value_beside(robot, item, texts.get(path))  # a reset button needs a value off its default
            outcome = _exercise(robot, item, kind, path, state, dialogs_open, screenshot, options, texts)
            if "Item not found" in outcome.detail and not outcome.action:
                continue  # it vanished before it was operated (its panel was rebuilt): the next round retries it
            if not outcome.ok and kind == "mvButton" and robot.call(lambda i=item: dpg.does_item_exist(i)):
                # Once more, after changing the value beside it: a reset button has nothing to reset while its
                # setting is at the default (and a click can land while a popup closes).
                if after is not None:
                    after(path, outcome)
                if _move_value_beside(robot, item, texts.get(path)) and after is not None:
                    after(path, outcome)
                outcome = _exercise(robot, item, kind, path, state, dialogs_open, screenshot, options, texts)
            if not outcome.ok and failed.get(path, 0) < 2 and sum(p == path for p, _, _ in items) > 1:
                failed[path] = failed.get(path, 0) + 1  # another instance of the same control may do something
                if after is not None:
                    after(path, outcome)
                continue
            covered.add(path)
            report.outcomes.append(outcome)
            log.info("%s %s -> %s %s", "ok " if outcome.ok else "BAD", path, outcome.effect, outcome.detail)
            if after is not None:
                after(path, outcome)
    final = {p for p, _ in robot.call(lambda: inventory(main_window))}
    report.inventory = sorted(final | set(report.inventory))
    report.uncovered = sorted(final - covered)
    return report


def _move_value_beside(robot: Robot, item: int | str, text: str | None) -> bool:
    """Operate the value widget a (reset) button sits beside (see :func:`_value_sibling`); whether there was one."""
    neighbour = robot.call(lambda: _value_sibling(item))
    if neighbour is None:
        return False
    robot.operate(neighbour, robot.call(lambda: item_type(neighbour)), text)
    return True


def _ordered(items: list[tuple[str, int]]) -> list[tuple[str, int, str]]:
    """Tree order, but inside one container (header) value widgets before buttons and headers last."""
    rank = {k: n for n, k in enumerate(VALUE_FIRST)}
    out = []
    for n, (path, item) in enumerate(items):
        kind = item_type(item)
        container = path.rsplit(" / ", 1)[0] if " / " in path else ""
        out.append((container, rank.get(kind, len(rank)), n, path, item, kind))
    firsts: dict[str, int] = {}
    for c, _, n, *_ in out:
        firsts.setdefault(c, n)
    out.sort(key=lambda t: (firsts[t[0]], t[1], t[2]))
    return [(p, i, k) for *_, p, i, k in out]


def _exercise(robot, item, kind, path, state, dialogs_open, screenshot, options, texts) -> Outcome:
    outcome = Outcome(path, kind)
    before = None
    try:
        before = robot.call(state)
        outcome.action = robot.operate(item, kind, texts.get(path))
        # A listed option holds a choice for another action, a header shows its own open state: nothing to wait for.
        waits = path not in options and kind not in ("mvCollapsingHeader", "mvTreeNode")
        deadline = time.monotonic() + (6 if waits else 0)
        while time.monotonic() < deadline:
            dialog, now = robot.call(lambda: (dialogs_open(), state()))
            if dialog:
                outcome.effect = "dialog"
                break
            if now != before:
                outcome.effect = "state"
                break
            time.sleep(0.05)  # each look is a GUI-thread call, i.e. a frame, already
        if not outcome.effect and path in options:
            outcome.effect = f"option: {options[path]}"
        if not outcome.effect and kind not in ("mvCollapsingHeader", "mvTreeNode"):
            box = robot.rect(item)
            robot.park()
            pixels = window_pixels(robot.call, screenshot)
            robot.operate(item, kind, texts.get(path))
            robot.park()
            if _pixels_changed(pixels, window_pixels(robot.call, screenshot), box, robot.origin()):
                outcome.effect = "pixels"
        if not outcome.effect and kind in ("mvCollapsingHeader", "mvTreeNode"):
            opened = robot.call(lambda: dpg.get_value(item))
            outcome.effect = "opens its panel" if opened else "closes its panel"
            if not opened:
                robot.operate(item, kind)  # open it again for the controls inside
        outcome.ok = bool(outcome.effect)
        if not outcome.ok:
            outcome.detail = "no visible effect"
    except Exception as e:  # recorded; the sweep goes on
        log.exception("control %s", path)
        outcome.detail = f"{type(e).__name__}: {e}"
        # A click that rebuilt the control's own panel (a filter moved Up) removes the control mid-check: what
        # counts is whether the app's state changed.
        if before is not None and "Item not found" in outcome.detail and robot.call(state) != before:
            outcome.effect, outcome.ok, outcome.detail = "state", True, ""
    return outcome


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
