"""Widgets generated from data: one per animator setting (from the settings schema) and per filter parameter (from
the postprocessor registry). Each widget calls a model action; ``refresh`` functions put model values back into the
widgets after a load. DearPyGui only: no state of its own beyond the widget ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dearpygui.dearpygui as dpg

from raven_avatar.engine import pose as posemod
from raven_avatar.engine import settings as settingsmod
from raven_avatar.engine.compositing import ANIMEFX_KINDS
from raven_avatar.engine.postprocessor import ParamSpec, filters
from raven_avatar.gui.callbacks import Callbacks
from raven_avatar.gui.text import tooltip

from .chain_edit import FilterInstance
from .model import ActionError, EditorModel

logger = logging.getLogger(__name__)

RESET = "X"  # reset button label (reset to the default)
_SWAY_CANDIDATES = [
    p.key
    for p in posemod.PARAMS
    if p.category in (posemod.Category.FACE_ROTATION, posemod.Category.BODY_ROTATION, posemod.Category.IRIS_ROTATION)
]

ErrorSink = Callable[[str], None]


def pretty(name: str) -> str:
    """``snake_case`` -> ``Snake case``."""
    return name.replace("_", " ").capitalize()


def rgb01(value: Any) -> list[float]:
    """A colour widget's value as floats in [0, 1] (DearPyGui reports 0..255 for some widgets)."""
    vals = [float(v) for v in value]
    if any(v > 1.0 for v in vals):
        vals = [v / 255.0 for v in vals]
    return vals


def _number_widget(label: str, kind: str, value: Any, low: float, high: float, callback, width: int) -> int:
    if kind == "int":
        return dpg.add_slider_int(
            label=label,
            default_value=int(value),
            min_value=int(low),
            max_value=int(high),
            callback=callback,
            width=width,
            clamped=True,
        )
    span = high - low
    fmt = "%.3f" if span <= 2 else "%.2f"
    return dpg.add_slider_float(
        label=label,
        default_value=float(value),
        min_value=float(low),
        max_value=float(high),
        callback=callback,
        width=width,
        format=fmt,
        clamped=True,
    )


class SettingsPanel:
    """Animator settings widgets, generated from :data:`settings.SCHEMA` for the given groups."""

    #: Drawn by the backdrop, crop and postprocessor sections; a label map is edited in the settings file.
    SKIP_KINDS = ("path", "color", "crop", "chain", "label_map")

    def __init__(self, model: EditorModel, callbacks: Callbacks, on_error: ErrorSink, width: int = 170):
        self.model = model
        self._cb = callbacks
        self.on_error = on_error
        self.width = width
        self.widgets: dict[str, int] = {}
        self._fx_group: int | None = None
        self._sway: dict[str, int] = {}

    def _set(self, key: str, value: Any) -> None:
        try:
            self.model.set_setting(key, value)
        except ActionError as exc:
            self.on_error(str(exc))
        self.refresh_keys([k for pair in settingsmod.ORDERED_PAIRS if key in pair for k in pair if k != key])

    def build_group(self, group: str, parent: int | str) -> None:
        for setting in settingsmod.settings_in(group):
            if setting.kind in self.SKIP_KINDS or setting.key == "format":
                continue
            self.build_setting(setting, parent)

    def build_setting(self, s: settingsmod.Setting, parent: int | str) -> None:
        value = self.model.settings[s.key]
        with dpg.group(horizontal=True, parent=parent):
            reset = dpg.add_button(label=RESET, callback=self._cb.click(self._reset, s.key))
            tooltip(reset, f"Reset to the default ({s.default!r})")
            label = pretty(s.key)
            cb = self._cb.value(self._set, s.key)
            if s.kind in ("int", "float"):
                w = _number_widget(label, s.kind, value, s.low, s.high, cb, self.width)
            elif s.kind == "bool":
                w = dpg.add_checkbox(label=label, default_value=bool(value), callback=cb)
            elif s.kind in ("choice", "morph"):
                w = dpg.add_combo(
                    list(s.choices or ()), label=label, default_value=value, callback=cb, width=self.width
                )
            elif s.kind in ("morph_list", "animefx_list"):
                w = dpg.add_text(label)
            else:
                w = dpg.add_input_text(
                    label=label, default_value=str(value), callback=cb, on_enter=True, width=self.width
                )
            self.widgets[s.key] = w
            tooltip(w, s.doc)
        if s.kind == "morph_list":
            self._build_sway(s, parent)
        elif s.kind == "animefx_list":
            self._fx_group = dpg.add_group(parent=parent)
            self._build_animefx()

    def _reset(self, key: str) -> None:
        self.model.reset_setting(key)
        self.refresh()

    # ----------------------------------------------------------------------------------------------- sway morphs

    def _build_sway(self, s: settingsmod.Setting, parent: int | str) -> None:
        with dpg.group(parent=parent, indent=24):
            for key in _SWAY_CANDIDATES:
                self._sway[key] = dpg.add_checkbox(
                    label=key.removesuffix("_index"),
                    default_value=key in self.model.settings[s.key],
                    callback=self._cb.click(self._sway_changed, s.key),
                )

    def _sway_changed(self, key: str) -> None:
        self._set(key, [k for k, w in self._sway.items() if dpg.get_value(w)])

    # ----------------------------------------------------------------------------------------------------- animefx

    def _build_animefx(self) -> None:
        dpg.delete_item(self._fx_group, children_only=True)
        effects = self.model.settings["animefx"]
        for i, (name, params) in enumerate(effects):
            with dpg.tree_node(label=name, parent=self._fx_group, default_open=False):
                dpg.add_checkbox(
                    label="Enabled",
                    default_value=params.get("enabled", True),
                    callback=self._cb.value(self._fx_edit, i, "enabled"),
                )
                w = dpg.add_input_text(
                    label="Emotions",
                    default_value=", ".join(params["emotions"]),
                    on_enter=True,
                    width=self.width,
                    callback=self._cb.value(self._fx_edit_words, i, "emotions"),
                )
                tooltip(w, "Emotions that trigger this effect (comma-separated); Enter applies.")
                dpg.add_combo(
                    list(ANIMEFX_KINDS),
                    label="Type",
                    default_value=params["type"],
                    width=self.width,
                    callback=self._cb.value(self._fx_edit, i, "type"),
                )
                dpg.add_slider_float(
                    label="Duration (s)",
                    default_value=float(params["duration"]),
                    min_value=0.05,
                    max_value=5.0,
                    width=self.width,
                    callback=self._cb.value(self._fx_edit, i, "duration"),
                )
                dpg.add_slider_float(
                    label="FPS",
                    default_value=float(params.get("fps") or 0.0),
                    min_value=0.0,
                    max_value=30.0,
                    width=self.width,
                    callback=self._cb.value(self._fx_edit_fps, i),
                )
                w = dpg.add_input_text(
                    label="Cels",
                    default_value=", ".join(params["cels"]),
                    on_enter=True,
                    width=self.width,
                    callback=self._cb.value(self._fx_edit_words, i, "cels"),
                )
                tooltip(w, "Cel names shown in order (comma-separated); Enter applies.")

    def _fx_edit_words(self, index: int, field: str, text: str) -> None:
        self._fx_edit(index, field, _words(text))

    def _fx_edit_fps(self, index: int, fps: float) -> None:
        self._fx_edit(index, "fps", fps or None)  # 0: the effect's own pace

    def _fx_edit(self, index: int, field: str, value: Any) -> None:
        effects = [[n, dict(p)] for n, p in self.model.settings["animefx"]]
        if value is None:
            effects[index][1].pop(field, None)
        else:
            effects[index][1][field] = value
        try:
            self.model.set_setting("animefx", effects)
        except ActionError as exc:
            self.on_error(str(exc))

    # ----------------------------------------------------------------------------------------------------- refresh

    def refresh_keys(self, keys: list[str]) -> None:
        for key in keys:
            w = self.widgets.get(key)
            s = settingsmod.BY_KEY[key]
            if w is None or s.kind in ("morph_list", "animefx_list"):
                continue
            dpg.set_value(w, self.model.settings[key])

    def refresh(self) -> None:
        """Every widget from the model (after a load or a reset)."""
        self.refresh_keys(list(self.widgets))
        for key, w in self._sway.items():
            dpg.set_value(w, key in self.model.settings["sway_morphs"])
        if self._fx_group is not None:
            self._build_animefx()


def _words(text: str) -> list[str]:
    return [w.strip() for w in str(text).split(",") if w.strip()]


class ChainPanel:
    """The postprocessor chain: one collapsible block per filter instance, rebuilt on structural changes."""

    def __init__(self, model: EditorModel, callbacks: Callbacks, on_error: ErrorSink, width: int = 200):
        self.model = model
        self._cb = callbacks
        self.on_error = on_error
        self.width = width
        self.group: int | None = None
        self._headers: dict[int, int] = {}  # instance uid -> its collapsing header (open state kept on rebuild)
        self._filter_names = [f.name for f in filters()]

    def build(self, parent: int | str) -> None:
        with dpg.group(horizontal=True, parent=parent):
            self.add_combo = dpg.add_combo(self._filter_names, default_value=self._filter_names[0], width=170,
                                           label="##filter to add")  # fmt: skip
            b = dpg.add_button(label="Add filter", callback=self._cb.click(self._add))
            tooltip(b, "Append a new instance of the chosen filter (the same filter may appear several times).")
            b = dpg.add_button(label="Clear", callback=self._cb.click(self._do, self.model.clear_filters))
            tooltip(b, "Switch every filter off (they stay in the list).")
        self.summary = dpg.add_text("", parent=parent, wrap=0)
        self.group = dpg.add_group(parent=parent)
        self.rebuild()

    def _add(self) -> None:
        self._do(self.model.add_filter, dpg.get_value(self.add_combo))

    def _do(self, action: Callable, *args: Any, rebuild: bool = True) -> None:
        try:
            action(*args)
        except ActionError as exc:
            self.on_error(str(exc))
        if rebuild:
            self.rebuild()

    def rebuild(self) -> None:
        if self.group is None:
            return
        opened = {uid for uid, header in self._headers.items() if dpg.does_item_exist(header) and dpg.get_value(header)}
        dpg.delete_item(self.group, children_only=True)
        self._headers = {}
        for i, inst in enumerate(self.model.chain.instances):
            self._build_instance(i, inst, inst.uid in opened)
        self.update_summary()

    def update_summary(self) -> None:
        """The line above the chain: what runs, or that nothing does while the postprocessor is off."""
        names = [inst.name for inst in self.model.chain.instances if inst.enabled]
        chain = " -> ".join(names) if names else "(nothing)"
        text = f"Running: {chain}" if self.model.postprocessor_enabled else f"Off (postprocessor disabled): {chain}"
        dpg.set_value(self.summary, text)

    def _build_instance(self, i: int, inst: FilterInstance, opened: bool) -> None:
        spec = inst.spec
        with dpg.collapsing_header(
            label=f"{i + 1}. {pretty(spec.name)}##{inst.uid}", parent=self.group, default_open=opened
        ) as header:
            self._headers[inst.uid] = header
            tooltip(header, f"{spec.summary}\n\n{spec.doc}" if spec.doc != spec.summary else spec.summary)
            with dpg.group(horizontal=True):
                dpg.add_checkbox(label="On", default_value=inst.enabled, callback=self._cb.value(self._enable, i))
                m = self.model
                last = len(m.chain.instances) - 1
                for label, tip, action, args, usable in (
                    ("Up", "Move earlier in the chain", m.move_filter, (i, -1), i > 0),
                    ("Down", "Move later in the chain", m.move_filter, (i, 1), i < last),
                    ("Dup", "Duplicate this instance (right after it)", m.duplicate_filter, (i,), True),
                    ("Reset", "Every parameter to its default", m.reset_filter, (i,), True),
                    ("Del", "Remove this instance", m.remove_filter, (i,), True),
                ):
                    b = dpg.add_button(label=label, callback=self._cb.click(self._do, action, *args), enabled=usable)
                    if not usable:  # the first cannot move up, the last cannot move down: greyed, not clickable
                        dpg.bind_item_theme(b, _disabled_button_theme())
                    tooltip(b, tip if usable else f"{tip} (it is already {'first' if label == 'Up' else 'last'})")
            for p in spec.params:
                self._build_param(i, inst, p)
        # Show the state in the header itself (enabled instances read normally, disabled ones greyed).
        if not inst.enabled:
            dpg.bind_item_theme(header, _disabled_theme())

    def _enable(self, i: int, on: bool) -> None:
        self._do(self.model.set_filter_enabled, i, on, rebuild=False)
        self.update_summary()

    def _reset_param(self, i: int, p: ParamSpec, widget: int) -> None:
        self._do(self.model.reset_filter_param, i, p.name, rebuild=False)
        dpg.set_value(widget, _widget_value(p, self.model.chain.instances[i].params[p.name]))

    def _param_changed(self, i: int, p: ParamSpec, sender: int, app_data: Any) -> None:
        v = rgb01(dpg.get_value(sender))[:3] if p.kind == "rgb" else app_data
        self._do(self.model.set_filter_param, i, p.name, v, rebuild=False)

    def _build_param(self, i: int, inst: FilterInstance, p: ParamSpec) -> None:
        value = inst.params[p.name]
        with dpg.group(horizontal=True, indent=12):
            reset = dpg.add_button(label=RESET)
            changed = self._cb.sender(self._param_changed, i, p)
            label = pretty(p.name)
            if p.kind in ("int", "float"):
                w = _number_widget(label, p.kind, value, p.range[0], p.range[1], changed, self.width)
            elif p.kind == "bool":
                w = dpg.add_checkbox(label=label, default_value=bool(value), callback=changed)
            elif p.kind == "choice":
                w = dpg.add_combo(list(p.choices), label=label, default_value=value, callback=changed, width=self.width)
            else:
                w = dpg.add_color_edit(
                    _widget_value(p, value),
                    label=label,
                    no_alpha=True,
                    callback=changed,
                    width=self.width,
                    display_type=dpg.mvColorEdit_float,
                )
            dpg.configure_item(reset, callback=self._cb.click(self._reset_param, i, p, w))
            tooltip(w, f"{p.doc}\nDefault: {p.default!r}" + (f"; range {p.range[0]}..{p.range[1]}" if p.range else ""))


def _widget_value(p: ParamSpec, value: Any) -> Any:
    if p.kind == "rgb":
        return [float(c) for c in value] + [1.0]
    return value


_THEMES: dict[str, int] = {}


def _disabled_button_theme() -> int:
    """A disabled button: grey text, no hover or press highlight."""
    if "disabled_button" not in _THEMES:
        with dpg.theme() as theme, dpg.theme_component(dpg.mvButton, enabled_state=False):
            dpg.add_theme_color(dpg.mvThemeCol_Text, (110, 110, 110, 255))
            for col in (dpg.mvThemeCol_Button, dpg.mvThemeCol_ButtonHovered, dpg.mvThemeCol_ButtonActive):
                dpg.add_theme_color(col, (45, 45, 50, 255))
        _THEMES["disabled_button"] = theme
    return _THEMES["disabled_button"]


def _disabled_theme() -> int:
    if "disabled" not in _THEMES:
        with dpg.theme() as theme, dpg.theme_component(dpg.mvAll):
            dpg.add_theme_color(dpg.mvThemeCol_Text, (140, 140, 140, 255))
            dpg.add_theme_color(dpg.mvThemeCol_Header, (45, 45, 50, 255))
        _THEMES["disabled"] = theme
    return _THEMES["disabled"]
