"""The 45 THA3 pose parameters: names, groups, categories, arity, ranges; dict <-> vector.

Index order is THA3's. Keys are the reference's JSON keys (THA3 name + ``_index``, except ``mouth_delta`` and
``mouth_smirk``), so the reference's emotion templates and settings load unchanged. The bare THA3 names are accepted
as aliases on input.

Example:
    >>> vec, problems = pose_from_dict({"head_x_index": 0.5, "mouth_aaa_index": 1.0})
    >>> vec.shape, problems
    (torch.Size([45]), [])
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch


class Category(enum.Enum):
    """Pose parameter categories, as THA3 groups them (the editors build one panel per category)."""

    EYEBROW = "eyebrow"
    EYE = "eye"
    IRIS_MORPH = "iris_morph"
    IRIS_ROTATION = "iris_rotation"
    MOUTH = "mouth"
    FACE_ROTATION = "face_rotation"
    BODY_ROTATION = "body_rotation"
    BREATHING = "breathing"


@dataclass(frozen=True)
class PoseParam:
    """One scalar of the pose vector."""

    index: int
    key: str  # reference JSON key, e.g. "eyebrow_troubled_left_index"
    name: str  # THA3 parameter name, e.g. "eyebrow_troubled_left"
    group: str  # THA3 group, e.g. "eyebrow_troubled"
    category: Category
    side: str | None  # "left", "right" or None for arity-1 groups
    low: float
    high: float
    default: float  # the reference fills missing keys with 0.0; so do we

    @property
    def arity(self) -> int:
        return 1 if self.side is None else 2


# (group, category, arity, (low, high)) in THA3 order.
_GROUPS: tuple[tuple[str, Category, int, tuple[float, float]], ...] = (
    ("eyebrow_troubled", Category.EYEBROW, 2, (0.0, 1.0)),
    ("eyebrow_angry", Category.EYEBROW, 2, (0.0, 1.0)),
    ("eyebrow_lowered", Category.EYEBROW, 2, (0.0, 1.0)),
    ("eyebrow_raised", Category.EYEBROW, 2, (0.0, 1.0)),
    ("eyebrow_happy", Category.EYEBROW, 2, (0.0, 1.0)),
    ("eyebrow_serious", Category.EYEBROW, 2, (0.0, 1.0)),
    ("eye_wink", Category.EYE, 2, (0.0, 1.0)),
    ("eye_happy_wink", Category.EYE, 2, (0.0, 1.0)),
    ("eye_surprised", Category.EYE, 2, (0.0, 1.0)),
    ("eye_relaxed", Category.EYE, 2, (0.0, 1.0)),
    ("eye_unimpressed", Category.EYE, 2, (0.0, 1.0)),
    ("eye_raised_lower_eyelid", Category.EYE, 2, (0.0, 1.0)),
    ("iris_small", Category.IRIS_MORPH, 2, (0.0, 1.0)),
    ("mouth_aaa", Category.MOUTH, 1, (0.0, 1.0)),
    ("mouth_iii", Category.MOUTH, 1, (0.0, 1.0)),
    ("mouth_uuu", Category.MOUTH, 1, (0.0, 1.0)),
    ("mouth_eee", Category.MOUTH, 1, (0.0, 1.0)),
    ("mouth_ooo", Category.MOUTH, 1, (0.0, 1.0)),
    ("mouth_delta", Category.MOUTH, 1, (0.0, 1.0)),
    ("mouth_lowered_corner", Category.MOUTH, 2, (0.0, 1.0)),
    ("mouth_raised_corner", Category.MOUTH, 2, (0.0, 1.0)),
    ("mouth_smirk", Category.MOUTH, 1, (0.0, 1.0)),
    ("iris_rotation_x", Category.IRIS_ROTATION, 1, (-1.0, 1.0)),
    ("iris_rotation_y", Category.IRIS_ROTATION, 1, (-1.0, 1.0)),
    ("head_x", Category.FACE_ROTATION, 1, (-1.0, 1.0)),
    ("head_y", Category.FACE_ROTATION, 1, (-1.0, 1.0)),
    ("neck_z", Category.FACE_ROTATION, 1, (-1.0, 1.0)),
    ("body_y", Category.BODY_ROTATION, 1, (-1.0, 1.0)),
    ("body_z", Category.BODY_ROTATION, 1, (-1.0, 1.0)),
    ("breathing", Category.BREATHING, 1, (0.0, 1.0)),
)

# The reference's key names drop the "_index" suffix for these two only.
_NO_SUFFIX = {"mouth_delta", "mouth_smirk"}


def _build() -> tuple[PoseParam, ...]:
    params: list[PoseParam] = []
    for group, category, arity, (low, high) in _GROUPS:
        sides: Sequence[str | None] = (None,) if arity == 1 else ("left", "right")
        for side in sides:
            name = group if side is None else f"{group}_{side}"
            key = name if name in _NO_SUFFIX else f"{name}_index"
            params.append(PoseParam(len(params), key, name, group, category, side, low, high, 0.0))
    return tuple(params)


PARAMS: tuple[PoseParam, ...] = _build()
NUM_PARAMS = len(PARAMS)
KEYS: tuple[str, ...] = tuple(p.key for p in PARAMS)

#: Which slice of the pose vector each THA3 stage consumes.
EYEBROW_SLICE = slice(0, 12)
FACE_SLICE = slice(12, 39)
BODY_SLICE = slice(39, 45)

#: The mouth-open morphs: generic talking drives one of them, lipsync any of them.
MOUTH_OPEN_KEYS = ("mouth_aaa_index", "mouth_iii_index", "mouth_uuu_index", "mouth_eee_index", "mouth_ooo_index",
                   "mouth_delta")  # fmt: skip

_LOOKUP: dict[str, PoseParam] = {**{p.name: p for p in PARAMS}, **{p.key: p for p in PARAMS}}

_SHOWN_UNKNOWN = 10  # unknown keys named in the one problem line about them

LOWS = torch.tensor([p.low for p in PARAMS])
HIGHS = torch.tensor([p.high for p in PARAMS])

assert NUM_PARAMS == 45


def param(key: str) -> PoseParam:
    """Look up a parameter by reference key or THA3 name; ``KeyError`` names the bad key."""
    try:
        return _LOOKUP[key]
    except KeyError:
        raise KeyError(f"unknown pose parameter {key!r}") from None


def is_pose_key(key: str) -> bool:
    return key in _LOOKUP


def default_pose(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The all-default (all-zero) pose, shape ``(45,)``."""
    return torch.tensor([p.default for p in PARAMS], dtype=dtype)


def pose_from_dict(
    values: Mapping[str, object], *, base: torch.Tensor | None = None, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, list[str]]:
    """Turn a ``{key: value}`` dict into a ``(45,)`` vector.

    Missing keys keep ``base`` (default: all zeros). Unknown keys are skipped, non-numeric and non-finite values keep
    the base value, out-of-range values are clamped; each of these adds one human-readable line to the returned
    problem list, so callers can report it once instead of failing or silently drifting.
    """
    vec = (default_pose(dtype) if base is None else base.detach().to(dtype=dtype, device="cpu")).clone()
    problems: list[str] = []
    unknown: list[object] = []
    for key, raw in values.items():
        p = _LOOKUP.get(key)
        if p is None:
            unknown.append(key)
            continue
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            problems.append(f"{key}: value {raw!r} is not a number; kept {float(vec[p.index]):g}")
            continue
        value = float(raw)
        if not math.isfinite(value):
            problems.append(f"{key}: value {value} is not finite; kept {float(vec[p.index]):g}")
            continue
        if not p.low <= value <= p.high:
            clamped = min(max(value, p.low), p.high)
            problems.append(f"{key}: value {value:g} outside [{p.low:g}, {p.high:g}]; clamped to {clamped:g}")
            value = clamped
        vec[p.index] = value
    if len(unknown) == 1:
        problems.insert(0, f"unknown pose key {unknown[0]!r} ignored")
    elif unknown:  # one line, however many: a file with millions of bad keys must not print millions of lines
        shown = ", ".join(repr(k) for k in unknown[:_SHOWN_UNKNOWN])
        more = f" and {len(unknown) - _SHOWN_UNKNOWN} more" if len(unknown) > _SHOWN_UNKNOWN else ""
        problems.insert(0, f"{len(unknown)} unknown pose keys ignored: {shown}{more}")
    return vec, problems


def pose_to_dict(vec: torch.Tensor | Sequence[float]) -> dict[str, float]:
    """A ``(45,)`` vector as an ordered ``{key: value}`` dict (all 45 keys, THA3 order)."""
    values = vec.detach().cpu().tolist() if isinstance(vec, torch.Tensor) else list(vec)
    if len(values) != NUM_PARAMS:
        raise ValueError(f"a pose has {NUM_PARAMS} values, got {len(values)}")
    return {p.key: float(v) for p, v in zip(PARAMS, values, strict=True)}


def sanitize_pose(pose: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """Clamp a ``(..., 45)`` pose tensor into range and replace NaN/inf by the default; report what was changed.

    Costs a host sync, so the hot path does not call it: callers sanitize poses where they enter the engine.
    """
    if pose.shape[-1] != NUM_PARAMS:
        raise ValueError(f"a pose tensor has {NUM_PARAMS} values in its last dimension, got shape {tuple(pose.shape)}")
    lows, highs = LOWS.to(pose), HIGHS.to(pose)
    problems: list[str] = []
    bad = ~torch.isfinite(pose)
    if bad.any():
        names = sorted({PARAMS[i].key for i in bad.nonzero()[:, -1].tolist()})
        problems.append(f"non-finite pose values replaced by 0: {', '.join(names)}")
        pose = torch.where(bad, torch.zeros_like(pose), pose)
    out = (pose < lows) | (pose > highs)
    if out.any():
        names = sorted({PARAMS[i].key for i in out.nonzero()[:, -1].tolist()})
        problems.append(f"out-of-range pose values clamped: {', '.join(names)}")
        pose = torch.minimum(torch.maximum(pose, lows), highs)
    return pose, problems


def params_in(category: Category) -> list[PoseParam]:
    return [p for p in PARAMS if p.category is category]
