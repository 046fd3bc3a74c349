"""Animator settings: the schema (defaults, types, ranges, docs) as data, plus validation, merging, loading, saving.

The settings file is a flat JSON object, a superset of the reference's ``animator.json``: the reference's files
(``animator.json``, ``glitchyholo.json``, ``redsepia.json``) load unchanged. :data:`SCHEMA` is what the settings
editor generates its panel from (``group``, ``doc``, ``low``/``high``, ``choices``).

Layers, first valid value wins: the user's file, then the shipped ``assets/settings/animator.json``, then the
built-in defaults below. Nothing is dropped silently: every unknown key, wrong type or out-of-range value comes back
as a :class:`Problem` naming the file, the key, the value and why.

Example:
    >>> problems = validate({"target_fps": True, "crop": {"left": 0.9, "right": 0.1}})
    >>> [p.key for p in problems]
    ['target_fps', 'crop']
"""

from __future__ import annotations

import copy
import datetime
import difflib
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raven_avatar.engine import pose
from raven_avatar.engine.compositing import ANIMEFX_KINDS
from raven_avatar.engine.fileio import atomic_write
from raven_avatar.engine.paths import asset_path, user_data_dir
from raven_avatar.engine.poser.cpu_backend import CPU_BACKEND_CHOICES

logger = logging.getLogger(__name__)

KINDS = (
    "int",
    "float",
    "bool",
    "str",
    "choice",
    "morph",
    "morph_list",
    "path",
    "color",
    "crop",
    "animefx_list",
    "chain",
)

MOUTH_OPEN_KEYS = pose.MOUTH_OPEN_KEYS  # generic talking drives one and holds the others shut

CROP_KEYS = ("enabled", "left", "top", "right", "bottom")
_ANIMEFX_KEYS = ("enabled", "emotions", "type", "fps", "duration", "cels")


@dataclass(frozen=True)
class Setting:
    """One animator setting: what a GUI needs to build its widget, and what validation checks."""

    key: str
    default: Any
    kind: str  # one of KINDS
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    doc: str = ""
    group: str = ""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a settings value: ``key`` may be nested (``crop.left``, ``animefx[2].duration``)."""

    key: str
    value: Any
    why: str
    source: str = ""  # the file (or layer) the value came from, when known

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.key or '<settings>'} = {self.value!r}: {self.why}"


class SettingsError(ValueError):
    """A settings file that cannot be read at all (missing, malformed JSON, not an object)."""


def _fx(emotions: Sequence[str], kind: str, duration: float, cels: Sequence[str], fps: float | None = None) -> dict:
    params: dict[str, Any] = {"enabled": True, "emotions": list(emotions), "type": kind}
    if fps is not None:
        params["fps"] = fps
    params.update(duration=duration, cels=list(cels))
    return params


_DEFAULT_ANIMEFX = [
    ["angervein", _fx(["anger"], "cycle_with_fadeout", 1.0, ["fx_angervein1", "fx_angervein2"], fps=6.0)],
    ["sweatdrop", _fx(["embarrassment"], "sequence_with_fadeout", 0.3, [f"fx_sweatdrop{i}" for i in (1, 2, 3)])],
    [
        "smallsweatdrop",
        _fx(["nervousness"], "sequence_with_fadeout", 0.3, [f"fx_smallsweatdrop{i}" for i in (1, 2, 3)]),
    ],
    ["heart", _fx(["desire", "love"], "sequence_with_fadeout", 0.3, [f"fx_heart{i}" for i in (1, 2, 3)])],
    ["blackcloud", _fx(["annoyance"], "cycle_with_fadeout", 1.0, ["fx_blackcloud1", "fx_blackcloud2"], fps=6.0)],
    ["flowers", _fx(["joy"], "cycle_with_fadeout", 1.0, ["fx_flowers1", "fx_flowers2"], fps=6.0)],
    ["shock", _fx(["disgust", "fear"], "sequence_with_fadeout", 2.0, ["fx_shock1"])],
    ["notice", _fx(["surprise"], "sequence", 0.25, ["fx_notice1", "fx_notice2", "fx_notice1", "fx_notice2"])],
    [
        "beaming",
        _fx(["admiration", "amusement", "excitement", "pride"], "sequence", 0.25, ["fx_beaming1", "fx_beaming2"]),
    ],
    ["question", _fx(["confusion"], "sequence", 0.25, [f"fx_question{i}" for i in (1, 2, 3)])],
    ["exclaim", _fx(["realization"], "sequence", 0.25, [f"fx_exclaim{i}" for i in (1, 2, 3)])],
]

_DEFAULT_CHAIN = [
    ["bloom", {}],
    ["chromatic_aberration", {}],
    ["vignetting", {}],
    ["translucent_display", {}],
    ["banding", {}],
    ["scanlines", {}],
]

S = Setting
# fmt: off
#: Every setting, in the order a GUI shows them. Built-in defaults follow the reference's where it has the key.
SCHEMA: tuple[Setting, ...] = (
    # -- output
    S("target_fps", 25, "int", 1, 240, doc="Frames per second the renderer aims for.", group="output"),
    S("metrics_enabled", False, "bool", doc="Time each render stage separately (syncs the device; slower).",
      group="output"),
    S("cpu_backend", "auto", "choice", choices=CPU_BACKEND_CHOICES,
      doc="Library that runs THA3 on a CPU: auto picks the fastest installed here (applies when an avatar is made).",
      group="output"),
    S("format", "PNG", "choice", choices=("PNG", "QOI", "TGA", "IM"),
      doc="Frame encoding of the reference's network stream; kept so its files round-trip (we do not encode).",
      group="output"),
    # -- animation
    S("animation_speed", 1.0, "float", 0.1, 4.0, doc="Multiplies the speed of all animation (1 = real time).",
      group="animation"),
    S("pose_interpolator_step", 0.3, "float", 0.01, 1.0,
      doc="Fraction of the remaining way to the target pose covered per 1/25 s (frame-rate independent).",
      group="animation"),
    # -- blinking
    S("blink_probability", 0.03, "float", 0.0, 1.0, doc="Chance of a blink per 1/25 s, once a blink is allowed.",
      group="blink"),
    S("blink_interval_min", 2.0, "float", 0.0, 60.0, doc="Shortest random wait (s) after a blink before the next.",
      group="blink"),
    S("blink_interval_max", 5.0, "float", 0.0, 60.0, doc="Longest random wait (s) after a blink before the next.",
      group="blink"),
    S("blink_confusion_duration", 10.0, "float", 0.0, 120.0,
      doc="For this long (s) after entering 'confusion', blinks may come in rapid succession.", group="blink"),
    S("blink_hold_duration", 0.04, "float", 0.0, 0.5, doc="How long (s) the eyes stay fully shut in a blink.",
      group="blink"),
    # -- talking
    S("talking_fps", 12.0, "float", 1.0, 60.0, doc="Mouth changes per second of the generic talking animation.",
      group="talking"),
    S("talking_morph", "mouth_aaa_index", "morph", choices=MOUTH_OPEN_KEYS,
      doc="Mouth morph the generic talking animation opens (the other mouth-open morphs are held shut).",
      group="talking"),
    # -- sway
    S("sway_morphs", ["head_x_index", "head_y_index", "neck_z_index", "body_y_index", "body_z_index"],
      "morph_list", doc="Morphs that sway while idle.", group="sway"),
    S("sway_interval_min", 5.0, "float", 0.1, 120.0, doc="Shortest time (s) before a new sway target.",
      group="sway"),
    S("sway_interval_max", 10.0, "float", 0.1, 120.0, doc="Longest time (s) before a new sway target.",
      group="sway"),
    S("sway_macro_strength", 0.6, "float", 0.0, 1.0, doc="Largest sway deviation (morph units, range -1..1).",
      group="sway"),
    S("sway_micro_strength", 0.02, "float", 0.0, 0.2,
      doc="Size of the small restless jitter around the sway target (does not drift).", group="sway"),
    # -- breathing
    S("breathing_cycle_duration", 4.0, "float", 0.5, 30.0, doc="Length (s) of one breath.", group="breathing"),
    # -- eyes
    S("eye_waver_fps", 12.0, "float", 0.0, 60.0,
      doc="Alternation rate of the eye-waver cels (waver1/waver2); 0 turns eye waver off.", group="eyes"),
    S("data_eyes_fps", 12.0, "float", 0.0, 60.0, doc="Cycle rate of the data-eyes cels; 0 turns data eyes off.",
      group="eyes"),
    S("data_eyes_fadeout_duration", 0.75, "float", 0.0, 10.0, doc="Fade-out time (s) when data eyes stop.",
      group="eyes"),
    S("saccade_enabled", True, "bool", doc="Small quick idle eye movements (turn off if a character's eyes "
      "look wrong when the irises move).", group="eyes"),
    S("saccade_interval_min", 1.0, "float", 0.1, 30.0, doc="Shortest time (s) between idle eye movements.",
      group="eyes"),
    S("saccade_interval_max", 4.0, "float", 0.1, 30.0, doc="Longest time (s) between idle eye movements.",
      group="eyes"),
    S("saccade_strength", 0.15, "float", 0.0, 1.0,
      doc="Largest iris_rotation offset of an idle eye movement (iris rotation range is -1..1).", group="eyes"),
    # -- animefx
    S("animefx_enabled", True, "bool", doc="Show anime effects (hearts, sweat drops, ...) on emotion changes.",
      group="animefx"),
    S("animefx", _DEFAULT_ANIMEFX, "animefx_list",
      doc="Effects: [name, {enabled, emotions, type, fps, duration, cels}], triggered on entering an emotion.",
      group="animefx"),
    # -- crop and upscale
    S("crop", {"enabled": False, "left": 0.0, "top": 0.0, "right": 1.0, "bottom": 1.0}, "crop", 0.0, 1.0,
      doc="Box (unit square, 0..1) cut out of the posed image before upscaling.", group="crop"),
    S("upscale", 1.0, "float", 1.0, 2.0, doc="Output scale factor (1 = no upscaling).", group="upscale"),
    S("upscale_preset", "C", "choice", choices=("A", "B", "C"),
      doc="Anime4K preset: A restore + upscale (blurry input), B soft restore + upscale, C upscale only "
          "(clean input).", group="upscale"),
    S("upscale_quality", "bicubic", "choice", choices=("low", "high", "bilinear", "bicubic", "lanczos"),
      doc="Anime4K network size (low/high) or a plain interpolation.", group="upscale"),
    # -- postprocessor
    S("postprocessor_chain", _DEFAULT_CHAIN, "chain", doc="Filters applied in order: [[filter, {params}], ...].",
      group="postprocessor"),
    # -- backdrop (drawn by the app under the avatar)
    S("backdrop_path", None, "path", doc="Image drawn behind the avatar (none: plain colour).", group="backdrop"),
    S("backdrop_blur", True, "bool", doc="Blur the backdrop image so the avatar stands out.", group="backdrop"),
    S("backdrop_blur_amount", 12.0, "float", 0.5, 60.0,
      doc="Blur radius in pixels per 1000 pixels of view size (the look does not change with the window size).",
      group="backdrop"),
    S("backdrop_postprocess", False, "bool",
      doc="Run the backdrop through the postprocessor chain too (frozen in time), so the scene shares the look.",
      group="backdrop"),
    S("backdrop_fit", "cover", "choice", choices=("cover", "contain", "stretch", "center"),
      doc="How the backdrop image fills the view.", group="backdrop"),
    S("backdrop_color", [0.0, 0.0, 0.0, 0.0], "color", 0.0, 1.0,
      doc="Colour behind the avatar and the backdrop image (sRGB + alpha, 0..1).", group="backdrop"),
)
# fmt: on
del S

BY_KEY: dict[str, Setting] = {s.key: s for s in SCHEMA}
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(s.group for s in SCHEMA))

#: (low key, high key) pairs that must satisfy low <= high.
ORDERED_PAIRS = (
    ("blink_interval_min", "blink_interval_max"),
    ("sway_interval_min", "sway_interval_max"),
    ("saccade_interval_min", "saccade_interval_max"),
)

assert all(s.kind in KINDS for s in SCHEMA)


def defaults() -> dict[str, Any]:
    """The built-in defaults, a fresh deep copy."""
    return {s.key: copy.deepcopy(s.default) for s in SCHEMA}


def settings_in(group: str) -> list[Setting]:
    """The settings of one GUI group, in schema order."""
    return [s for s in SCHEMA if s.group == group]


# ---------------------------------------------------------------------------------------------------------- checks


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(key: str, value: Any, low: float | None, high: float | None, integer: bool) -> list[Problem]:
    if not _is_number(value):
        return [Problem(key, value, f"expected {'an integer' if integer else 'a number'}")]
    if not math.isfinite(value):
        return [Problem(key, value, "not a finite number")]
    if integer and value != int(value):
        return [Problem(key, value, "expected an integer")]
    if (low is not None and value < low) or (high is not None and value > high):
        return [Problem(key, value, f"outside the range [{low:g}, {high:g}]")]
    return []


def _close(word: str, candidates: Sequence[str]) -> str:
    near = difflib.get_close_matches(word, candidates, n=3)
    return f"; did you mean {', '.join(near)}?" if near else ""


def _check_morph(key: str, value: Any, choices: Sequence[str] | None) -> list[Problem]:
    if not isinstance(value, str):
        return [Problem(key, value, "expected a morph name (string)")]
    if not pose.is_pose_key(value):
        return [Problem(key, value, f"not a pose parameter{_close(value, pose.KEYS)}")]
    if choices is not None and pose.param(value).key not in choices:
        return [Problem(key, value, f"must be one of {', '.join(choices)}")]
    return []


def _check_crop(key: str, value: Any) -> list[Problem]:
    if not isinstance(value, Mapping):
        return [Problem(key, value, "expected an object {enabled, left, top, right, bottom}")]
    problems = []
    for sub, v in value.items():
        if sub not in CROP_KEYS:
            problems.append(Problem(f"{key}.{sub}", v, f"unknown crop field{_close(str(sub), CROP_KEYS)}"))
        elif sub == "enabled":
            if not isinstance(v, bool):
                problems.append(Problem(f"{key}.{sub}", v, "expected true or false"))
        else:
            problems += _check_number(f"{key}.{sub}", v, 0.0, 1.0, integer=False)
    if not problems:
        box = {**BY_KEY["crop"].default, **value}
        if not (box["left"] < box["right"] and box["top"] < box["bottom"]):
            problems.append(Problem(key, dict(value), "needs left < right and top < bottom"))
    return problems


def _check_str_list(key: str, value: Any, what: str) -> list[Problem]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return [Problem(key, value, f"expected a list of {what} (non-empty strings)")]
    return []


def _check_animefx(key: str, value: Any) -> list[Problem]:
    if not isinstance(value, list):
        return [Problem(key, value, "expected a list of [name, {params}] entries")]
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, entry in enumerate(value):
        at = f"{key}[{i}]"
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str) and entry[0]):
            problems.append(Problem(at, entry, "expected [name, {params}] with a non-empty name"))
            continue
        name, params = entry
        if name in seen:
            problems.append(Problem(at, name, "effect name used twice"))
        seen.add(name)
        if not isinstance(params, Mapping):
            problems.append(Problem(at, params, f"effect {name!r}: parameters must be an object"))
            continue
        for field_ in ("emotions", "type", "duration", "cels"):
            if field_ not in params:
                problems.append(Problem(f"{at}.{field_}", None, f"effect {name!r}: missing"))
        for field_, v in params.items():
            sub = f"{at}.{field_}"
            if field_ == "enabled":
                if not isinstance(v, bool):
                    problems.append(Problem(sub, v, f"effect {name!r}: expected true or false"))
            elif field_ == "emotions":
                problems += _check_str_list(sub, v, "emotion names")
            elif field_ == "cels":
                problems += _check_str_list(sub, v, "cel names")
            elif field_ == "type":
                if v not in ANIMEFX_KINDS:
                    problems.append(Problem(sub, v, f"effect {name!r}: type must be one of {', '.join(ANIMEFX_KINDS)}"))
            elif field_ == "duration":
                problems += _check_number(sub, v, 0.0, 600.0, integer=False)
            elif field_ == "fps":
                problems += _check_number(sub, v, 0.0, 240.0, integer=False)
            else:
                problems.append(Problem(sub, v, f"effect {name!r}: unknown field{_close(str(field_), _ANIMEFX_KEYS)}"))
        if str(params.get("type", "")).startswith("cycle"):
            fps = params.get("fps")
            if fps is None or (_is_number(fps) and fps <= 0):
                problems.append(Problem(f"{at}.fps", fps, f"effect {name!r}: a cycle needs fps > 0"))
    return problems


def _check_chain(key: str, value: Any) -> list[Problem]:
    if not isinstance(value, list) or not all(
        isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], Mapping)
        for e in value
    ):
        return [Problem(key, value, "expected a list of [filter_name, {params}] entries")]
    try:
        from raven_avatar.engine.postprocessor import validate_chain
    except ImportError as exc:
        logger.debug("postprocessor chain not validated (%s)", exc)
        return []
    try:
        found = validate_chain(value)
    except (TypeError, ValueError, KeyError) as exc:
        return [Problem(key, value, str(exc))]
    return [_as_problem(key, value, item) for item in found or ()]


def _as_problem(key: str, chain: list, item: Any) -> Problem:
    """Re-key the postprocessor's problem (``index``, ``filter``, ``param``, ``message``) under this setting."""
    index, param = getattr(item, "index", None), getattr(item, "param", None)
    why = getattr(item, "message", None) or str(item)
    if getattr(item, "filter", None):
        why = f"filter {item.filter!r}: {why}"
    if index is None or not 0 <= index < len(chain):
        return Problem(key, chain, why)
    entry = chain[index]
    if param is None:
        return Problem(f"{key}[{index}]", entry, why)
    return Problem(f"{key}[{index}].{param}", entry[1].get(param), why)


def _check_color(key: str, value: Any) -> list[Problem]:
    if not (isinstance(value, list) and len(value) in (3, 4) and all(_is_number(v) for v in value)):
        return [Problem(key, value, "expected [r, g, b] or [r, g, b, a] with numbers 0..1")]
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in value):
        return [Problem(key, value, "colour components must be within 0..1")]
    return []


def check_value(setting: Setting, value: Any) -> list[Problem]:
    """Problems with one value for ``setting`` (empty: the value is usable)."""
    key, kind = setting.key, setting.kind
    if kind in ("int", "float"):
        return _check_number(key, value, setting.low, setting.high, integer=kind == "int")
    if kind == "bool":
        return [] if isinstance(value, bool) else [Problem(key, value, "expected true or false")]
    if kind == "str":
        return [] if isinstance(value, str) else [Problem(key, value, "expected a string")]
    if kind == "choice":
        if value in (setting.choices or ()):
            return []
        return [Problem(key, value, f"must be one of {', '.join(setting.choices or ())}")]
    if kind == "morph":
        return _check_morph(key, value, setting.choices)
    if kind == "morph_list":
        if not isinstance(value, list):
            return [Problem(key, value, "expected a list of morph names")]
        problems = [p for i, v in enumerate(value) for p in _check_morph(f"{key}[{i}]", v, setting.choices)]
        if not problems and len({pose.param(v).key for v in value}) != len(value):
            problems.append(Problem(key, value, "a morph is listed twice"))
        return problems
    if kind == "path":
        return [] if value is None or isinstance(value, str) else [Problem(key, value, "expected a path or null")]
    if kind == "color":
        return _check_color(key, value)
    if kind == "crop":
        return _check_crop(key, value)
    if kind == "animefx_list":
        return _check_animefx(key, value)
    if kind == "chain":
        return _check_chain(key, value)
    raise AssertionError(f"unhandled setting kind {kind!r}")


def validate(settings: Mapping[str, Any], *, source: str = "") -> list[Problem]:
    """Everything wrong with a (possibly partial) settings dict: unknown keys, types, ranges, min > max, nested fields.

    ``bool`` is not a number here and numbers are not ``bool``. Integral floats pass for ``int`` settings (JSON
    writers differ). ``source`` (a file name) is copied into each problem.
    """
    if not isinstance(settings, Mapping):
        return [Problem("", settings, "settings must be a JSON object {key: value}", source)]
    problems: list[Problem] = []
    for key, value in settings.items():
        setting = BY_KEY.get(key)
        if setting is None:
            problems.append(Problem(key, value, f"unknown setting{_close(str(key), list(BY_KEY))}"))
        else:
            problems += check_value(setting, value)
    bad = {p.key.split(".")[0].split("[")[0] for p in problems}
    for lo, hi in ORDERED_PAIRS:
        if lo in settings and hi in settings and lo not in bad and hi not in bad and settings[lo] > settings[hi]:
            problems.append(Problem(lo, settings[lo], f"larger than {hi} ({settings[hi]!r})"))
    return [Problem(p.key, p.value, p.why, p.source or source) for p in problems]


# ------------------------------------------------------------------------------------------------- merge, load, save


def _normalize(setting: Setting, value: Any) -> Any:
    """A valid value in canonical form (own copy; ints for int settings; reference morph keys; full crop box)."""
    kind = setting.kind
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "morph":
        return pose.param(value).key
    if kind == "morph_list":
        return [pose.param(v).key for v in value]
    if kind == "path":
        return value or None
    if kind == "color":
        return [float(v) for v in value] + ([1.0] if len(value) == 3 else [])
    if kind == "crop":
        box = {**setting.default, **value}
        return {k: bool(box[k]) if k == "enabled" else float(box[k]) for k in CROP_KEYS}
    if kind == "animefx_list":
        out = []
        for name, params in value:
            p = copy.deepcopy(dict(params))
            p.setdefault("enabled", True)
            for k in ("duration", "fps"):
                if p.get(k) is not None:
                    p[k] = float(p[k])
            out.append([name, p])
        return out
    if kind == "chain":
        return [[name, copy.deepcopy(dict(params))] for name, params in value]
    return copy.deepcopy(value)


def merge(
    user: Mapping[str, Any],
    shipped: Mapping[str, Any],
    builtin: Mapping[str, Any] | None = None,
    *,
    sources: tuple[str, str, str] = ("user settings", "shipped settings", "built-in defaults"),
) -> tuple[dict[str, Any], list[Problem]]:
    """Complete settings: per key, the first valid value of ``user``, ``shipped``, ``builtin`` (default: built-ins).

    Returns ``(settings, problems)``; ``problems`` lists every invalid or unknown value that was passed over (with its
    layer in ``source``) and every min/max pair that only clashed after merging (both then taken from the built-ins).
    The result always holds every schema key, valid and in canonical form.
    """
    layers = [(user, sources[0]), (shipped, sources[1]), (builtin if builtin is not None else defaults(), sources[2])]
    problems: list[Problem] = []
    bad: list[set[str]] = []
    for layer, source in layers:
        found = validate(layer, source=source)
        problems += found
        bad.append({p.key.split(".")[0].split("[")[0] for p in found})
    out: dict[str, Any] = {}
    for setting in SCHEMA:
        for (layer, _), skip in zip(layers, bad, strict=True):
            if isinstance(layer, Mapping) and setting.key in layer and setting.key not in skip:
                out[setting.key] = _normalize(setting, layer[setting.key])
                break
        else:
            out[setting.key] = copy.deepcopy(setting.default)
    for lo, hi in ORDERED_PAIRS:
        if out[lo] > out[hi]:
            problems.append(Problem(lo, out[lo], f"larger than {hi} ({out[hi]!r}) after merging; both reset"))
            out[lo], out[hi] = BY_KEY[lo].default, BY_KEY[hi].default
    return out, problems


def user_settings_path() -> Path:
    """Where the settings editor keeps the user's own animator settings."""
    return user_data_dir() / "settings" / "animator.json"


def shipped_settings_path() -> Path:
    return asset_path("settings", "animator.json")


def presets() -> dict[str, Path]:
    """Named settings presets: the shipped ones, then the user's (``<user data>/settings/*.json``) by file stem."""
    found: dict[str, Path] = {}
    for folder in (asset_path("settings"), user_settings_path().parent):
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                if path.name != "animator.json":
                    found[path.stem] = path
    return found


def read_settings_file(path: str | os.PathLike) -> dict[str, Any]:
    """The raw JSON object of a settings file; :class:`SettingsError` names the file and what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{path}: settings file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read settings file: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a JSON object {{key: value}}, got {type(data).__name__}")
    return data


def load_settings(path: str | os.PathLike | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """Complete settings from ``path`` (default: the user's settings file, if any) → shipped → built-in defaults.

    An explicit ``path`` that cannot be read raises :class:`SettingsError`; an unreadable default user file is
    reported as a problem (the app still starts, and the file is left as it is for the user to fix).
    """
    user: dict[str, Any] = {}
    problems: list[Problem] = []
    if path is not None:
        user_path = Path(path)
        user = read_settings_file(user_path)
    else:
        user_path = user_settings_path()
        if user_path.exists():
            try:
                user = read_settings_file(user_path)
            except SettingsError as exc:
                problems.append(Problem("", None, str(exc), str(user_path)))
    shipped_path = shipped_settings_path()
    shipped = read_settings_file(shipped_path)
    settings, found = merge(user, shipped, sources=(str(user_path), str(shipped_path), "built-in defaults"))
    return settings, problems + found


def save_settings(settings: Mapping[str, Any], path: str | os.PathLike, *, keep_backups: int = 20) -> Path | None:
    """Write settings (complete or a partial preset) atomically; an existing different file is backed up first.

    Refuses (``ValueError`` listing the problems) to write settings that would not load back cleanly. Backups go to
    ``<folder>/backups/<stem>-<timestamp>.json``; the newest ``keep_backups`` per file are kept. Returns the backup's
    path, or ``None`` when there was nothing to back up.
    """
    path = Path(path)
    problems = validate(settings, source=str(path))
    if problems:
        raise ValueError(f"{path}: not saved, the settings have problems:\n" + "\n".join(map(str, problems)))
    text = json.dumps(dict(settings), indent=4, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if path.exists():
        old = path.read_bytes()
        if old == text.encode("utf-8"):
            return None
        backup = _backup(path, old, keep_backups)
    atomic_write(path, text.encode("utf-8"))
    return backup


def _backup(path: Path, content: bytes, keep: int) -> Path:
    folder = path.parent / "backups"
    folder.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    backup = folder / f"{path.stem}-{stamp}{path.suffix}"
    atomic_write(backup, content)
    olds = sorted(folder.glob(f"{path.stem}-[0-9]*{path.suffix}"))
    for old in olds[: max(0, len(olds) - keep)]:
        old.unlink(missing_ok=True)
    return backup
