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
from raven_avatar.engine.emotion_text import DEFAULT_MODEL as DEFAULT_EMOTION_MODEL
from raven_avatar.engine.emotions import validate_emotion_name
from raven_avatar.engine.fileio import JsonFileError, atomic_write, read_json
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
    "label_map",
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

# = postprocessor.DEFAULT_CHAIN (settings.py imports the postprocessor only lazily); a test keeps them equal.
_DEFAULT_CHAIN = [
    ["bloom", {}],
    ["chromatic_aberration", {}],
    ["vignetting", {}],
    ["translucent_display", {}],
    ["banding", {"strength": 0.2}],
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
    S("blink_probability", 0.03, "float", 0.0, 1.0,
      doc="Chance of a blink per 1/25 s, once a blink is allowed (a rate in real time: the same at any frame rate).",
      group="blink"),
    S("blink_interval_min", 2.0, "float", 0.0, 60.0, doc="Shortest random wait (s) after a blink before the next.",
      group="blink"),
    S("blink_interval_max", 5.0, "float", 0.0, 60.0, doc="Longest random wait (s) after a blink before the next.",
      group="blink"),
    S("blink_confusion_duration", 10.0, "float", 0.0, 120.0,
      doc="For this long (s) after entering 'confusion', blinks may come in rapid succession.", group="blink"),
    S("blink_hold_duration", 0.04, "float", 0.0, 0.5,
      doc="How long (s) the eyes stay fully shut in a blink, in real time: a slow frame rate may not show it.",
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
    # -- emotion from text (engine/emotion_text.py, engine/emotion_follow.py)
    S("emotion_model", DEFAULT_EMOTION_MODEL, "str",
      doc="Text classifier for emotion from text: a Hugging Face Hub id or a local model folder (any transformers "
          "text-classification model; its labels go through the label map).", group="emotion_text"),
    S("emotion_device", "auto", "choice", choices=("auto", "cpu", "cuda"),
      doc="Where the text classifier runs (auto: the first CUDA GPU, else the CPU).", group="emotion_text"),
    S("emotion_dtype", "float32", "choice", choices=("float32", "bfloat16"),
      doc="Number format of the text classifier: bfloat16 is about 1.5x faster on CPUs with AMX or AVX512-BF16 "
          "(recent Xeons) and much slower on CPUs without.", group="emotion_text"),
    S("emotion_classify_interval_ms", 500, "int", 0, 10000,
      doc="Streamed text is classified at each sentence end and, while a long sentence streams, once this many "
          "milliseconds have passed since unclassified text arrived (0: only at sentence ends).",
      group="emotion_text"),
    S("emotion_hold_time", 2.0, "float", 0.0, 60.0,
      doc="Shortest time (s) an emotion chosen from text is shown before the text may change it again.",
      group="emotion_text"),
    S("emotion_margin", 0.1, "float", 0.0, 1.0,
      doc="A new emotion from text must score this much more than the current one (stops flicker between close "
          "labels).", group="emotion_text"),
    S("emotion_neutral_threshold", 0.2, "float", 0.0, 1.0,
      doc="When the best emotion's score is below this, the avatar turns neutral.", group="emotion_text"),
    S("emotion_context_sentences", 3, "int", 1, 20,
      doc="How many of the last sentences the classifier reads.", group="emotion_text"),
    S("emotion_recency", 0.5, "float", 0.0, 1.0,
      doc="Weight of each sentence relative to the one after it (1: all equal; 0: only the last sentence counts).",
      group="emotion_text"),
    S("emotion_label_map", {}, "label_map",
      doc="Classifier label -> emotion template, over the built-in table (go-emotions labels are template names; "
          "e.g. {\"happy\": \"joy\"} for a classifier with other labels).", group="emotion_text"),
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


def _chain_problems(key: str, value: Any, *, repair: bool) -> tuple[list | None, list[Problem]]:
    """The postprocessor's verdict on a chain, re-keyed under this setting: ``(usable chain, problems)``.

    With ``repair``, each problem says what was done (entry skipped, default used) and the usable chain holds every
    valid entry in order (``None`` when ``value`` is not a list at all). Without the postprocessor (no torch), a list
    of ``[name, {params}]`` passes unchecked.
    """
    if not isinstance(value, list):
        return None, [Problem(key, value, "expected a list of [filter_name, {params}] entries")]
    try:
        from raven_avatar.engine.postprocessor import repair_chain
    except ImportError as exc:
        logger.debug("postprocessor chain not validated (%s)", exc)
        if all(isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[1], Mapping) for e in value):
            return value, []
        return None, [Problem(key, value, "expected a list of [filter_name, {params}] entries")]
    usable, found = repair_chain(value)
    chain = [[name, params] for name, params in usable]
    return chain, [_as_problem(key, value, item, with_fix=repair) for item in found]


def usable_chain(value: Any, *, source: str = "") -> tuple[list | None, list[Problem]]:
    """What a ``postprocessor_chain`` value gives, as :func:`merge` uses it: ``(chain, problems)``.

    ``chain`` holds every valid entry in order (aliases resolved, every parameter written out), broken entries
    skipped and bad parameters at their defaults; ``None`` when ``value`` is not a list at all. Each problem names
    the entry's index, the filter, ``source`` and what was done.
    """
    chain, problems = _chain_problems("postprocessor_chain", value, repair=True)
    return chain, [Problem(p.key, p.value, p.why, source) for p in problems]


def _as_problem(key: str, chain: list, item: Any, *, with_fix: bool) -> Problem:
    """The postprocessor's problem (``index``, ``filter``, ``param``, ``message``, ``fix``) under this setting."""
    index, param = item.index, item.param
    why = item.message
    if item.filter:
        why = f"filter {item.filter!r}: {why}"
    if with_fix and item.fix:
        why = f"{why} ({item.fix})"
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


def _check_label_map(key: str, value: Any) -> list[Problem]:
    if not isinstance(value, Mapping):
        return [Problem(key, value, "expected an object {classifier label: emotion template}")]
    problems = []
    for label, name in value.items():
        if not (isinstance(label, str) and label):
            problems.append(Problem(key, label, "labels must be non-empty strings"))
            continue
        try:
            validate_emotion_name(name)
        except ValueError as exc:
            problems.append(Problem(f"{key}.{label}", name, str(exc)))
    return problems


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
        return _chain_problems(key, value, repair=False)[1]
    if kind == "label_map":
        return _check_label_map(key, value)
    raise AssertionError(f"unhandled setting kind {kind!r}")


def _base_key(key: str) -> str:
    """The setting a (possibly nested) problem key belongs to: ``crop.left`` -> ``crop``."""
    return key.split(".")[0].split("[")[0]


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
    bad = {_base_key(p.key) for p in problems}
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
    A postprocessor chain is not passed over for one bad entry: its broken entries are skipped and its bad
    parameters take their defaults, each reported with the entry's index, the filter and what was done. The result
    always holds every schema key, valid and in canonical form.
    """
    layers = [(user, sources[0]), (shipped, sources[1]), (builtin if builtin is not None else defaults(), sources[2])]
    problems: list[Problem] = []
    usable: list[dict[str, Any]] = []  # per layer: key -> its valid value (a chain: what could be used of it)
    for layer, source in layers:
        found = validate(layer, source=source)
        bad = {_base_key(p.key) for p in found}
        valid = {k: v for k, v in layer.items() if k in BY_KEY and k not in bad} if isinstance(layer, Mapping) else {}
        for setting in SCHEMA:
            if setting.kind == "chain" and setting.key in bad:  # keep every good filter, say what was left out
                chain, chain_problems = _chain_problems(setting.key, layer[setting.key], repair=True)
                if chain is not None:
                    found = [p for p in found if _base_key(p.key) != setting.key]
                    found += [Problem(p.key, p.value, p.why, source) for p in chain_problems]
                    valid[setting.key] = chain
        problems += found
        usable.append(valid)
    out: dict[str, Any] = {}
    for setting in SCHEMA:
        for valid in usable:
            if setting.key in valid:
                out[setting.key] = _normalize(setting, valid[setting.key])
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
        data = read_json(path)
    except FileNotFoundError:
        raise SettingsError(f"{path}: settings file not found") from None
    except JsonFileError as exc:
        raise SettingsError(f"settings file {exc}") from None
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
