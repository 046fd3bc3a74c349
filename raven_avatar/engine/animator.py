"""Time-driven animation: emotion templates + idle life (sway, blinks, breathing, saccades) -> one frame's state.

The animator knows no images and no device: each :meth:`Animator.advance` reads the clock once and returns an
:class:`AnimationState` (a 45-float pose vector, blending-cel strengths by name, animefx cel strengths by name). It is
deterministic given ``seed`` and the sequence of clock readings, so tests and headless clip rendering use a fake
clock. Everything is measured in *animation time*: wall time between :meth:`~Animator.advance` calls, times
``animation_speed``, with paused time left out.

Smoothing is exponential and frame-rate independent: ``pose_interpolator_step`` is the fraction of the remaining way
covered per 1/25 s, and a frame ``dt`` seconds long covers ``1 - (1 - step) ** (25 * dt)`` of it, so 12, 25 and 60 FPS
follow the same curve in wall time.

Random events (blinks, sway targets, saccades, mouth changes of generic talking) are real-time processes: each event
has a moment in animation time, drawn when the previous one happened, and a frame shows the state at its own
moment. A slow frame (a CPU takes seconds) therefore neither makes events more frequent nor stretches them: a blink
shuts the eyes for ``blink_hold_duration`` seconds, so at 1 FPS most frames show open eyes and the share of frames
with shut eyes is the blinks' duty cycle, as at 60 FPS. Events that fell between two frames still happened (they
are counted and they move the random sequence on), they are just not seen.

Example:
    >>> anim = Animator({}, {"neutral": {"pose": {}, "cels": {}}}, seed=1, clock=iter([0.0, 0.04]).__next__)
    >>> anim.advance().pose.shape, anim.advance().t
    (torch.Size([45]), 0.04)
"""

from __future__ import annotations

import copy
import difflib
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from raven_avatar.engine import pose as posemod
from raven_avatar.engine import settings as settingsmod
from raven_avatar.engine.character import SUPPORTED_CELS
from raven_avatar.engine.compositing import animefx_strengths, combine_strengths

logger = logging.getLogger(__name__)

#: Frame rate the per-frame rates (interpolator step, blink probability) are quoted at.
REFERENCE_FPS = 25.0
CONFUSION = "confusion"
NEUTRAL = "neutral"

# Values this close to their target snap to it: the pipeline then sees unchanged inputs and skips work
# (a 1e-3 cel strength or 1e-4 pose step is invisible in an 8-bit frame).
_POSE_SNAP = 1e-4
_CEL_SNAP = 1e-3
_MICRO_SWAY_PERIOD = 1.0 / REFERENCE_FPS
# Animation time is a sum of frame times; this slack puts a moment that is on a cel-cycle boundary up to rounding
# into the later cel.
_FRAME_EPS = 1e-9
# A saccade takes 2-3 frames at 25 FPS (~80 ms), much faster than the pose interpolator.
_SACCADE_RATE = 0.85
_SACCADE_RECENTRE_CHANCE = 0.3
# Two blinks start at least this far apart, even with an interval of 0 and a probability of 1.
_MIN_BLINK_GAP = 1.0 / REFERENCE_FPS
# Events more than this long before a frame are not replayed one by one (a stall, or settings that moved a timer far
# into the past): nothing of them could be seen, and the replay would only cost time.
_CATCH_UP_S = 10.0

_IDX = {key: posemod.param(key).index for key in posemod.KEYS}
_BLINK = (_IDX["eye_wink_left_index"], _IDX["eye_wink_right_index"])
_IRIS = (_IDX["iris_rotation_x_index"], _IDX["iris_rotation_y_index"])
_BREATHING = _IDX["breathing_index"]
_MOUTH_OPEN = tuple(_IDX[k] for k in settingsmod.MOUTH_OPEN_KEYS)
_LOWS = [p.low for p in posemod.PARAMS]
_HIGHS = [p.high for p in posemod.PARAMS]


def fps_corrected_step(rate: float, dt: float, reference_fps: float = REFERENCE_FPS) -> float:
    """Fraction of the remaining distance covered in ``dt`` seconds by a smoother that covers ``rate`` per frame at
    ``reference_fps``. Composes exactly: two steps of ``dt/2`` equal one of ``dt``."""
    if rate >= 1.0:
        return 1.0
    return 1.0 - (1.0 - rate) ** (max(dt, 0.0) * reference_fps)


def smooth_transition(x: float) -> float:
    """C-infinity ramp from 0 (x <= 0) to 1 (x >= 1): no visible kink at either end of a fade."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    a, b = math.exp(-1.0 / x), math.exp(-1.0 / (1.0 - x))
    return a / (a + b)


@dataclass(frozen=True)
class AnimationState:
    """One frame of animation."""

    pose: torch.Tensor  # (45,) float32, THA3 order, within each parameter's range
    cels: dict[str, float]  # blending cel strengths by name, 0..1
    fx: dict[str, float]  # animefx cel strengths by name (only those > 0)
    emotion: str
    t: float  # animation time in seconds


@dataclass(frozen=True)
class _Template:
    pose: tuple[float, ...]
    cels: dict[str, float]


@dataclass(frozen=True)
class _Effect:
    name: str
    kind: str
    cels: tuple[str, ...]
    duration: float
    fps: float | None
    start: float


def _get(obj: Any, field: str) -> Any:
    return obj.get(field) if isinstance(obj, Mapping) else getattr(obj, field, None)


def _to_template(name: str, obj: Any) -> _Template:
    """Accept an ``EmotionTemplate``-like object or a ``{"pose": ..., "cels": ...}`` dict; missing keys are 0."""
    raw_pose, raw_cels = _get(obj, "pose"), _get(obj, "cels")
    if raw_pose is None and raw_cels is None and not isinstance(obj, Mapping):
        raise TypeError(f"emotion {name!r}: expected an object with .pose and .cels, got {type(obj).__name__}")
    if raw_pose is None or isinstance(raw_pose, Mapping):
        vec, problems = posemod.pose_from_dict(raw_pose or {})
        for problem in problems:
            logger.warning("emotion %r: %s", name, problem)
    else:
        vec, problems = posemod.sanitize_pose(torch.as_tensor(raw_pose, dtype=torch.float32).reshape(-1))
        for problem in problems:
            logger.warning("emotion %r: %s", name, problem)
    pairs = raw_cels.items() if isinstance(raw_cels, Mapping) else (raw_cels or ())
    cels = {}
    for cel, value in pairs:
        value = float(value)
        cels[str(cel)] = min(max(value, 0.0), 1.0) if math.isfinite(value) else 0.0
    return _Template(tuple(vec.tolist()), cels)


class Animator:
    """The animation state of one avatar, advanced frame by frame from a clock.

    Thread-safe: the render thread calls :meth:`advance` while GUI, lipsync or API threads call the setters; a
    setter's effect shows from the next frame on.

    Args:
        settings: animator settings (see :mod:`raven_avatar.engine.settings`); missing keys take the built-in
            defaults, invalid ones raise ``ValueError`` listing every problem.
        templates: emotion name -> template with ``.pose`` (``{key: float}``) and ``.cels`` (``{name: float}`` or
            ``[[name, float], ...]``), as objects (``emotions.EmotionTemplate``) or plain dicts; a dict or an
            ``emotions.TemplateSet``.
        seed: seeds every random choice (blinks, sway, talking, saccades).
        clock: seconds, monotonic; read once per :meth:`advance` and by :meth:`resume`.
        emotion: the starting emotion (default ``neutral``, else the first name in sorted order).
        data_cel_count: how many consecutive ``data1..dataN`` cels the character has (0: no data eyes).
    """

    def __init__(
        self,
        settings: Mapping[str, Any],
        templates: Mapping[str, Any],
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        emotion: str | None = None,
        data_cel_count: int = 0,
    ) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._rng = {part: random.Random(f"{seed}:{part}") for part in ("blink", "sway", "micro", "talk", "saccade")}
        self._settings = self._complete(settings)
        self._templates = self._convert(templates)
        self._cel_names = self._names_in(self._templates)
        start = self._fallback() if emotion is None else emotion
        self._check_emotion(start)
        self._emotion = self._pending = start
        self._entered = False  # entry effects (sway pick, animefx) fire at the first advance
        self._data_cel_count = self._check_count(data_cel_count)

        self._t = 0.0
        self._last_wall: float | None = None
        self._paused = False
        self._last_state: AnimationState | None = None
        self._entered_t = 0.0

        template = self._templates[start]
        self._pose = list(template.pose)
        self._pose[_BREATHING] = 0.0
        self._cels = {name: template.cels.get(name, 0.0) for name in self._cel_names}
        self._pose_overrides: dict[int, float] = {}
        self._cel_overrides: dict[str, float] = {}

        self._sway_macro: dict[int, float] | None = None
        self._sway_next = 0.0
        self._micro: dict[int, float] = {}
        self._micro_next = 0.0
        self._blink_start = -math.inf  # when the last blink began
        self._blink_gap_u = 0.0  # U(0, 1): where between blink_interval_min and _max the next blink is allowed
        self._blink_wait = self._rng["blink"].expovariate(1.0)  # Exp(1), scaled by the blink rate once allowed
        self._blinks = 0
        self._talking = False
        self._talk_value = 0.0
        self._talk_next = 0.0
        self._breath_phase = 0.0
        self._saccade = [0.0, 0.0]
        self._saccade_target = [0.0, 0.0]
        self._saccade_next = 0.0
        self._data_state = "off"  # off / on / fading
        self._data_start = 0.0
        self._data_fade_start = 0.0
        self._effects: list[_Effect] = []

    # ----------------------------------------------------------------------------------------------- configuration

    @staticmethod
    def _complete(settings: Mapping[str, Any]) -> dict[str, Any]:
        merged, problems = settingsmod.merge(settings, {}, sources=("animator settings", "", "built-in defaults"))
        if problems:
            raise ValueError("invalid animator settings:\n" + "\n".join(f"  {p}" for p in problems))
        return merged

    @staticmethod
    def _convert(templates: Mapping[str, Any]) -> dict[str, _Template]:
        if not templates:
            raise ValueError("no emotion templates given")
        # Iterate names and index, so an emotions.TemplateSet works as well as a dict.
        return {str(name): _to_template(str(name), templates[name]) for name in templates}

    @staticmethod
    def _names_in(templates: Mapping[str, _Template]) -> list[str]:
        return list(dict.fromkeys(name for t in templates.values() for name in t.cels))

    @staticmethod
    def _check_count(n: int) -> int:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"data_cel_count must be a non-negative integer, got {n!r}")
        return n

    def _fallback(self) -> str:
        return NEUTRAL if NEUTRAL in self._templates else sorted(self._templates)[0]

    def _check_emotion(self, name: str) -> None:
        if name not in self._templates:
            near = difflib.get_close_matches(str(name), list(self._templates), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(near)}?" if near else f"; known: {', '.join(sorted(self._templates))}"
            raise ValueError(f"unknown emotion {name!r}{hint}")

    @property
    def settings(self) -> dict[str, Any]:
        """The complete settings in use (a copy)."""
        with self._lock:
            return copy.deepcopy(self._settings)

    @property
    def emotions(self) -> list[str]:
        """Known emotion names, sorted."""
        with self._lock:
            return sorted(self._templates)

    @property
    def emotion(self) -> str:
        """The emotion last asked for (it takes effect at the next frame)."""
        return self._pending

    def update_settings(self, settings: Mapping[str, Any]) -> None:
        """Replace the settings (missing keys: built-in defaults) between frames; the current pose is kept."""
        new = self._complete(settings)
        with self._lock:
            old, self._settings = self._settings, new
            if old["sway_morphs"] != new["sway_morphs"] or old["sway_macro_strength"] != new["sway_macro_strength"]:
                self._sway_macro = None
            if any(old[k] != new[k] for k in ("saccade_enabled", "saccade_strength", "saccade_interval_max")):
                self._saccade_next = self._t
            if not new["animefx_enabled"]:
                self._effects.clear()

    def set_templates(self, templates: Mapping[str, Any]) -> None:
        """Replace the emotion templates between frames; an emotion no longer there falls back to ``neutral``."""
        converted = self._convert(templates)
        with self._lock:
            self._templates = converted
            for name in self._names_in(converted):
                if name not in self._cel_names:
                    self._cel_names.append(name)
                    self._cels.setdefault(name, 0.0)
            if self._emotion not in converted:
                fallback = self._fallback()
                logger.info("emotion %r not in the new templates; now %r", self._emotion, fallback)
                self._emotion = fallback
                self._entered = False
            if self._pending not in converted:
                self._pending = self._emotion

    @property
    def blink_count(self) -> int:
        """Blinks since the animator was made, seen in a frame or not (for statistics and tests)."""
        return self._blinks

    @property
    def data_cel_count(self) -> int:
        return self._data_cel_count

    @data_cel_count.setter
    def data_cel_count(self, n: int) -> None:
        self.set_data_cel_count(n)

    def set_data_cel_count(self, n: int) -> None:
        """How many ``data1..dataN`` cels the (re)loaded character has; 0 turns data eyes off."""
        n = self._check_count(n)
        with self._lock:
            self._data_cel_count = n
            if n == 0:
                self._data_state = "off"

    # ---------------------------------------------------------------------------------------------------- controls

    def set_emotion(self, name: str) -> None:
        """Switch emotion at the next frame; setting the current one again changes nothing (no animefx re-trigger)."""
        with self._lock:
            self._check_emotion(name)
            self._pending = name

    def start_talking(self) -> None:
        """Generic talking (no lipsync): ``talking_morph`` opens and shuts at random, ``talking_fps`` times a second."""
        with self._lock:
            if not self._talking:
                self._talking = True
                self._talk_next = self._t

    def stop_talking(self) -> None:
        """The mouth returns smoothly to the emotion's shape."""
        with self._lock:
            self._talking = False

    @property
    def is_talking(self) -> bool:
        return self._talking

    def start_data_eyes(self) -> None:
        """Cycle the data-eyes cels (on at once); no-op for characters without data cels."""
        with self._lock:
            if self._data_cel_count and self._data_state != "on":
                if self._data_state == "off":
                    self._data_start = self._t
                self._data_state = "on"

    def stop_data_eyes(self) -> None:
        """Fade data eyes out over ``data_eyes_fadeout_duration``."""
        with self._lock:
            if self._data_state == "on":
                self._data_state = "fading"
                self._data_fade_start = self._t

    @property
    def overrides(self) -> dict[str, float]:
        """Current overrides: pose keys (reference spelling) and cel names -> value."""
        with self._lock:
            return {posemod.KEYS[i]: v for i, v in self._pose_overrides.items()} | dict(self._cel_overrides)

    def set_overrides(self, overrides: Mapping[str, float]) -> None:
        """Replace all overrides.

        An overridden morph or cel moves smoothly (pose interpolator) to the given value and stays there: blinking,
        talking, breathing and saccades do not touch it. When an override is removed, the value moves smoothly back.
        Keys are pose keys (or THA3 names) and cel names; values are clamped to the parameter's range.
        """
        pose_part, cel_part = self._parse_overrides(overrides)
        with self._lock:
            self._pose_overrides, self._cel_overrides = pose_part, cel_part

    def modify_overrides(self, action: str, overrides: Mapping[str, float] | Iterable[str]) -> None:
        """``"set"``: add or change the given overrides; ``"unset"``: remove the given keys (values are ignored)."""
        if action == "set":
            if not isinstance(overrides, Mapping):
                raise TypeError("modify_overrides('set', ...) needs a {key: value} mapping")
            pose_part, cel_part = self._parse_overrides(overrides)
            with self._lock:
                self._pose_overrides.update(pose_part)
                self._cel_overrides.update(cel_part)
        elif action == "unset":
            if isinstance(overrides, (str, bytes)) or not isinstance(overrides, Iterable):
                raise TypeError(
                    "modify_overrides('unset', keys) takes a list of keys (e.g. ['head_x_index']) or a dict, "
                    f"got {type(overrides).__name__} {overrides!r}"
                )
            keys = list(overrides)
            for key in keys:
                self._override_target(key)
            with self._lock:
                for key in keys:
                    if posemod.is_pose_key(key):
                        self._pose_overrides.pop(posemod.param(key).index, None)
                    else:
                        self._cel_overrides.pop(key, None)
        else:
            raise ValueError(f"modify_overrides: action must be 'set' or 'unset', got {action!r}")

    def clear_overrides(self) -> None:
        with self._lock:
            self._pose_overrides, self._cel_overrides = {}, {}

    def _override_target(self, key: str) -> tuple[float, float]:
        """The (low, high) range of an override key; ``ValueError`` for keys that are neither morph nor cel."""
        if not isinstance(key, str):
            raise ValueError(f"override key must be a string, got {key!r}")
        if posemod.is_pose_key(key):
            p = posemod.param(key)
            return p.low, p.high
        if key in SUPPORTED_CELS or key in self._cel_names:
            return 0.0, 1.0
        near = difflib.get_close_matches(key, [*posemod.KEYS, *SUPPORTED_CELS, *self._cel_names], n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise ValueError(f"override {key!r} is neither a pose parameter nor a cel{hint}")

    def _parse_overrides(self, overrides: Mapping[str, float]) -> tuple[dict[int, float], dict[str, float]]:
        if not isinstance(overrides, Mapping):
            raise TypeError(f"overrides must be a dict {{pose key or cel name: value}}, got {type(overrides).__name__}")
        pose_part: dict[int, float] = {}
        cel_part: dict[str, float] = {}
        for key, value in overrides.items():
            low, high = self._override_target(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"override {key!r}: value {value!r} is not a finite number")
            value = min(max(float(value), low), high)
            if posemod.is_pose_key(key):
                pose_part[posemod.param(key).index] = value
            else:
                cel_part[key] = value
        return pose_part, cel_part

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Freeze animation time: :meth:`advance` returns the last frame until :meth:`resume`."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        """Continue from where :meth:`pause` stopped: the paused wall time is skipped, nothing jumps."""
        with self._lock:
            if self._paused:
                self._paused = False
                if self._last_wall is not None:
                    self._last_wall = self._clock()

    # ------------------------------------------------------------------------------------------------------ frame

    def advance(self) -> AnimationState:
        """Read the clock once and compute the frame for that moment."""
        with self._lock:
            if self._paused and self._last_state is not None:
                return self._last_state
            now = self._clock()
            dt_wall = 0.0 if self._last_wall is None or self._paused else max(0.0, now - self._last_wall)
            self._last_wall = now
            dt = dt_wall * self._settings["animation_speed"]
            self._t += dt
            if self._pending != self._emotion or not self._entered:
                self._enter(self._pending)
            state = self._frame(dt)
            self._last_state = state
            return state

    def _enter(self, emotion: str) -> None:
        self._emotion = emotion
        self._entered = True
        self._entered_t = self._t
        self._sway_macro = None
        s = self._settings
        if not s["animefx_enabled"]:
            return
        for name, params in s["animefx"]:
            if params.get("enabled", True) and emotion in params["emotions"] and params["cels"]:
                cels, duration = tuple(params["cels"]), params["duration"]
                self._effects.append(_Effect(name, params["type"], cels, duration, params.get("fps"), self._t))

    def _frame(self, dt: float) -> AnimationState:
        s = self._settings
        template = self._templates[self._emotion]
        step = fps_corrected_step(s["pose_interpolator_step"], dt)

        target = list(template.pose)
        target[_BREATHING] = self._pose[_BREATHING]
        self._sway(target, template, dt)
        for i, value in self._pose_overrides.items():
            target[i] = value
        cur = self._pose
        for i, (c, g) in enumerate(zip(cur, target, strict=True)):
            cur[i] = g if abs(g - c) < _POSE_SNAP else c + step * (g - c)
        settled = {i: cur[i] for i in self._pose_overrides}

        self._talk(cur, dt)
        self._breathe(cur, dt)
        for i, value in settled.items():  # overrides win over talk/breathing writes
            cur[i] = value

        out = list(cur)
        shut = self._blink(dt)
        for i in _BLINK:
            if i not in self._pose_overrides:  # ... and over blinks
                out[i] += (1.0 - out[i]) * shut
        offset = self._saccade_offset(dt)
        for axis, i in enumerate(_IRIS):
            if i not in self._pose_overrides:
                out[i] += offset[axis]
        out = [min(max(v, lo), hi) for v, lo, hi in zip(out, _LOWS, _HIGHS, strict=True)]
        return AnimationState(
            pose=torch.tensor(out, dtype=torch.float32),
            cels=self._cel_frame(template, step),
            fx=self._fx_frame(),
            emotion=self._emotion,
            t=self._t,
        )

    def _sway(self, target: list[float], template: _Template, dt: float) -> None:
        """Macro sway: a random target every few seconds (on entering an emotion, and at real-time moments after).
        Micro sway: fresh noise around it 25 times a second, never accumulated into the target (the reference's
        accumulates, and drifts as a random walk)."""
        s = self._settings
        morphs = [_IDX[k] for k in s["sway_morphs"]]
        if self._sway_macro is None:
            self._sway_next = self._t
        due = max(self._sway_next, self._earliest(dt))
        while self._t >= due:
            rng, strength = self._rng["sway"], s["sway_macro_strength"]
            self._sway_macro = {}
            for i in morphs:
                # Deviate at most `strength`, staying within +-strength of centre, or, where the emotion itself
                # goes further out, only back towards the centre (strength 0: no sway at all).
                v = template.pose[i]
                bound = max(strength, abs(v))
                self._sway_macro[i] = v + rng.uniform(max(-strength, -bound - v), min(strength, bound - v))
            due += rng.uniform(s["sway_interval_min"], s["sway_interval_max"])
        self._sway_next = due
        if self._t >= self._micro_next or self._micro.keys() != self._sway_macro.keys():
            rng, m = self._rng["micro"], s["sway_micro_strength"]
            self._micro = {i: rng.uniform(-m, m) for i in morphs}
            self._micro_next = max(self._micro_next + _MICRO_SWAY_PERIOD, self._t)
        for i in morphs:
            target[i] = min(max(self._sway_macro[i] + self._micro[i], -1.0), 1.0)

    def _earliest(self, dt: float) -> float:
        """The earliest moment an event that fell due is placed at: the start of this frame's interval (at most
        :data:`_CATCH_UP_S` back). Only a settings change or a stall can leave a timer further in the past."""
        return self._t - min(dt, _CATCH_UP_S)

    def _next_blink(self, earliest: float) -> float:
        """When the next blink starts: once the random interval after the last blink has passed (in the first
        ``blink_confusion_duration`` s of ``confusion``: once the last blink is over), after a wait drawn from the
        rate that ``blink_probability`` per 1/25 s stands for; never before ``earliest``."""
        s = self._settings
        p = s["blink_probability"]
        if p <= 0.0:
            return math.inf
        wait = 0.0 if p >= 1.0 else self._blink_wait / (-REFERENCE_FPS * math.log1p(-p))
        start = self._blink_start
        over = start + max(s["blink_hold_duration"], _MIN_BLINK_GAP)
        lo, hi = s["blink_interval_min"], s["blink_interval_max"]
        due = max(start + lo + self._blink_gap_u * (hi - lo), over, 0.0) + wait
        if self._emotion == CONFUSION:
            rapid = max(max(over, self._entered_t) + wait, earliest)
            if rapid < self._entered_t + s["blink_confusion_duration"]:
                due = min(due, rapid)
        return max(due, earliest)

    def _blink(self, dt: float) -> float:
        """How far blinking shuts the eyes now (0..1): fully for ``blink_hold_duration`` s from the start of the
        newest blink, then reopening along the pose interpolator's curve. Blinks due since the last frame start at
        their own moments, one after the other, so their rate does not depend on the frame rate."""
        s = self._settings
        earliest = self._earliest(dt)
        while (start := self._next_blink(earliest)) <= self._t:
            self._blink_start = earliest = start
            self._blinks += 1
            rng = self._rng["blink"]
            self._blink_gap_u, self._blink_wait = rng.random(), rng.expovariate(1.0)
        since = self._t - self._blink_start
        if since < s["blink_hold_duration"]:
            return 1.0
        shut = 1.0 - fps_corrected_step(s["pose_interpolator_step"], since - s["blink_hold_duration"])
        # The reopening curve only approaches 0; snap like the interpolator does, or every later frame would
        # differ in the eye values by 1e-9 and rerun THA3's face stage (most idle frames did, on the CPU).
        return shut if shut >= _POSE_SNAP else 0.0

    def _talk(self, cur: list[float], dt: float) -> None:
        if not self._talking:
            return
        s = self._settings
        due = max(self._talk_next, self._earliest(dt))
        while self._t >= due:
            # Mostly wide open or shut, sometimes in between; a shut mouth tends to open next and vice versa.
            value = abs(1.0 - self._talk_value) + self._rng["talk"].uniform(-2.0, 2.0)
            self._talk_value = min(max(value, 0.0), 1.0)
            due += 1.0 / s["talking_fps"]
        self._talk_next = due
        morph = _IDX[s["talking_morph"]]
        for i in _MOUTH_OPEN:
            cur[i] = self._talk_value if i == morph else 0.0

    def _breathe(self, cur: list[float], dt: float) -> None:
        # The phase accumulates, so changing the cycle length or a long frame never makes it jump.
        self._breath_phase = (self._breath_phase + dt / self._settings["breathing_cycle_duration"]) % 1.0
        cur[_BREATHING] = math.sin(math.pi * self._breath_phase) ** 2

    def _saccade_offset(self, dt: float) -> list[float]:
        s = self._settings
        if not s["saccade_enabled"]:
            self._saccade_target = [0.0, 0.0]
        else:
            due = max(self._saccade_next, self._earliest(dt))
            while self._t >= due:
                rng = self._rng["saccade"]
                if rng.random() < _SACCADE_RECENTRE_CHANCE:
                    self._saccade_target = [0.0, 0.0]
                else:
                    radius = s["saccade_strength"] * math.sqrt(rng.random())
                    angle = rng.uniform(0.0, 2.0 * math.pi)
                    self._saccade_target = [radius * math.cos(angle), radius * math.sin(angle)]
                due += rng.uniform(s["saccade_interval_min"], s["saccade_interval_max"])
            self._saccade_next = due
        step = fps_corrected_step(_SACCADE_RATE, dt)
        for axis in (0, 1):
            c, g = self._saccade[axis], self._saccade_target[axis]
            self._saccade[axis] = g if abs(g - c) < _POSE_SNAP else c + step * (g - c)
        return self._saccade

    def _cel_frame(self, template: _Template, step: float) -> dict[str, float]:
        """Blending-cel strengths by name: interpolated toward the template (absent cels count as 0), then the
        eye-waver and data-eyes cycles, then overrides."""
        s = self._settings
        for name in self._cel_overrides:
            if name not in self._cels:
                self._cel_names.append(name)
                self._cels[name] = 0.0
        for name, c in self._cels.items():
            g = self._cel_overrides.get(name, template.cels.get(name, 0.0))
            self._cels[name] = g if abs(g - c) < _CEL_SNAP else c + step * (g - c)
        out = dict(self._cels)

        if "waver1" in out or "waver2" in out:
            strength, fps = self._cels.get("waver1", 0.0), s["eye_waver_fps"]
            first = fps > 0 and int(self._t * fps + _FRAME_EPS) % 2 == 0
            out["waver1"] = strength if fps > 0 and first else 0.0
            out["waver2"] = strength if fps > 0 and not first else 0.0

        n = self._data_cel_count
        if n:
            strength = 0.0
            if self._data_state == "on":
                strength = 1.0
            elif self._data_state == "fading":
                duration = s["data_eyes_fadeout_duration"]
                elapsed = self._t - self._data_fade_start
                strength = 1.0 - smooth_transition(elapsed / duration) if duration > 0 else 0.0
                if strength <= 0.0:
                    self._data_state = "off"
            fps = s["data_eyes_fps"]
            active = int((self._t - self._data_start) * fps + _FRAME_EPS) % n if fps > 0 else -1
            for k in range(n):
                name = f"data{k + 1}"
                if self._data_state != "off" or name not in out:
                    out[name] = strength if k == active else 0.0

        for name in self._cel_overrides:
            out[name] = self._cels[name]
        return {name: min(max(v, 0.0), 1.0) for name, v in out.items()}

    def _fx_frame(self) -> dict[str, float]:
        """Animefx strengths: every running effect (several may overlap), combined by maximum per cel."""
        if not self._effects:
            return {}
        self._effects = [e for e in self._effects if self._t - e.start < e.duration]
        parts = [animefx_strengths(e.kind, list(e.cels), self._t - e.start, e.duration, e.fps) for e in self._effects]
        return {name: v for name, v in combine_strengths(parts).items() if v > 0.0}
