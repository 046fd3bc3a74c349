"""Filter registry: what each filter is called, what it does, and its parameters with defaults, ranges and docs.

Every filter is a plain function declared with :func:`register`. The metadata lives next to the function, and
the defaults come from the function's own signature, so the settings editor, the chain validator and the docs all
read one source. The settings editor builds its GUI from :func:`filters` alone:

    >>> spec = get_filter("bloom")
    >>> [(p.name, p.kind, p.default, p.range) for p in spec.params][0]
    ('threshold', 'float', 0.56, (0.0, 1.0))
"""

from __future__ import annotations

import functools
import inspect
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "CATEGORIES",
    "KINDS",
    "P",
    "ParamSpec",
    "FilterSpec",
    "FilterState",
    "register",
    "filters",
    "get_filter",
    "FPS_REFERENCE",
]

CATEGORIES = ("light", "camera", "general", "transport", "display")
KINDS = ("bool", "int", "float", "choice", "rgb")

FPS_REFERENCE = 25.0
"""Dynamic filters were designed against a 25 FPS "normalised frame"; time ``t`` seconds maps to ``t * 25``."""


@dataclass(frozen=True)
class P:
    """Parameter metadata as written next to a filter: a one-line doc, and a range or choices where they apply."""

    doc: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ParamSpec:
    """One filter parameter, as the GUI and the validator see it.

    ``kind`` is one of ``bool``, ``int``, ``float``, ``choice`` (``choices`` lists the values) or ``rgb`` (a list of
    three floats in [0, 1], shown as a colour picker). ``range`` is ``(min, max)`` for ``int`` and ``float``.
    """

    name: str
    kind: str
    default: Any
    doc: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FilterSpec:
    """A registered filter: its function, GUI metadata and parameters in signature order."""

    name: str
    func: Callable[..., torch.Tensor]
    summary: str
    doc: str
    category: str
    priority: float
    dynamic: bool
    params: tuple[ParamSpec, ...]

    def param(self, name: str) -> ParamSpec | None:
        """The parameter called ``name``, or None."""
        return next((p for p in self.params if p.name == name), None)

    def defaults(self) -> dict[str, Any]:
        """Every parameter at its default (RGB values as fresh lists)."""
        return {p.name: list(p.default) if p.kind == "rgb" else p.default for p in self.params}


class FilterState:
    """Per-instance memory of one filter in a chain: cached tensors and the seed for its random numbers.

    Each cache *slot* holds one value and the key it was built for; asking with another key (new size, dtype,
    device, parameters or time bucket) rebuilds it, so memory stays bounded without an eviction policy.
    """

    def __init__(self, key: str, upscale: Callable[..., torch.Tensor] | None = None):
        self.key = key
        self.upscale = upscale
        self._slots: dict[str, tuple[Any, Any]] = {}
        self._generators: dict[torch.device, torch.Generator] = {}
        self._salt = zlib.crc32(key.encode("utf-8"))

    def slot(self, name: str, key: Any, build: Callable[[], Any]) -> Any:
        """The value cached in slot ``name`` for ``key``, built with ``build()`` if the key changed."""
        cached = self._slots.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        value = build()
        self._slots[name] = (key, value)
        return value

    def seed(self, *parts: Any) -> int:
        """A stable 63-bit seed from this instance's key and ``parts`` (same key and parts -> same seed)."""
        text = "|".join(str(p) for p in parts).encode("utf-8")
        return (zlib.crc32(text, self._salt) << 31) ^ zlib.crc32(text[::-1], self._salt ^ 0x5BD1E995)

    def generator(self, device: torch.device, *parts: Any) -> torch.Generator:
        """A torch.Generator on ``device`` seeded from ``parts``; seeding is host-side, so no device sync."""
        device = torch.device(device)
        gen = self._generators.get(device)
        if gen is None:
            gen = self._generators[device] = torch.Generator(device=device)
        gen.manual_seed(self.seed(*parts))
        return gen


_REGISTRY: dict[str, FilterSpec] = {}
_RESERVED = ("image", "t", "state")


def _infer_kind(name: str, default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "choice"
    if isinstance(default, tuple) and len(default) == 3:
        return "rgb"
    raise TypeError(f"parameter {name!r}: cannot infer a kind from default {default!r}")


def _param_spec(name: str, default: Any, meta: P) -> ParamSpec:
    kind = _infer_kind(name, default)
    if kind in ("int", "float"):
        if meta.range is None:
            raise ValueError(f"parameter {name!r}: numeric parameters need a range")
        lo, hi = meta.range
        if not lo <= default <= hi:
            raise ValueError(f"parameter {name!r}: default {default} is outside its range [{lo}, {hi}]")
        rng = (float(lo), float(hi)) if kind == "float" else (int(lo), int(hi))
        return ParamSpec(name, kind, default, meta.doc, range=rng)
    if kind == "choice":
        if not meta.choices or default not in meta.choices:
            raise ValueError(f"parameter {name!r}: default {default!r} must be one of its choices {meta.choices}")
        return ParamSpec(name, kind, default, meta.doc, choices=tuple(meta.choices))
    if kind == "rgb" and not all(0.0 <= c <= 1.0 for c in default):
        raise ValueError(f"parameter {name!r}: RGB default {default} must be in [0, 1]")
    return ParamSpec(name, kind, default, meta.doc)


def _as_batch(image: torch.Tensor, filter_name: str) -> tuple[torch.Tensor, bool]:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{filter_name}: expected a torch.Tensor, got {type(image).__name__}")
    if image.ndim == 3:
        image, squeeze = image.unsqueeze(0), True
    elif image.ndim == 4:
        squeeze = False
    else:
        raise ValueError(f"{filter_name}: expected a (B, 4, H, W) or (4, H, W) image, got shape {tuple(image.shape)}")
    if image.shape[1] != 4 or not image.is_floating_point():
        raise ValueError(
            f"{filter_name}: expected float RGBA with 4 channels, got shape {tuple(image.shape)} dtype {image.dtype}"
        )
    return image, squeeze


def register(*, category: str, priority: float, **params: P) -> Callable[[Callable], Callable]:
    """Declare a filter: its GUI category and position, and metadata for each keyword parameter, in order.

    The decorated function takes ``(image, *, <params>, [t], state)`` where ``image`` is ``(B, 4, H, W)``, ``t`` is
    the time in seconds (dynamic filters only) and ``state`` a :class:`FilterState`. The wrapper accepts
    ``(4, H, W)`` too, checks the input once, makes a throwaway state when none is given, and only passes ``t`` to
    dynamic filters. Filters return a new tensor and never modify their input (a no-op may return the input).
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")

    def decorate(func: Callable) -> Callable:
        sig = inspect.signature(func)
        names = [n for n in sig.parameters if n not in _RESERVED]
        if names != list(params):
            raise ValueError(f"{func.__name__}: metadata {list(params)} does not match signature {names}")
        specs = tuple(_param_spec(n, sig.parameters[n].default, params[n]) for n in names)
        dynamic = "t" in sig.parameters
        doc = inspect.getdoc(func) or ""

        @functools.wraps(func)
        def wrapper(image: torch.Tensor, *, t: float = 0.0, state: FilterState | None = None, **kwargs: Any):
            batch, squeeze = _as_batch(image, func.__name__)
            if state is None:
                state = FilterState(func.__name__)
            if dynamic:
                kwargs["t"] = t
            out = func(batch, state=state, **kwargs)
            return out.squeeze(0) if squeeze else out

        spec = FilterSpec(
            name=func.__name__,
            func=wrapper,
            summary=doc.split("\n", 1)[0],
            doc=doc,
            category=category,
            priority=float(priority),
            dynamic=dynamic,
            params=specs,
        )
        if spec.name in _REGISTRY:
            raise ValueError(f"filter {spec.name!r} registered twice")
        _REGISTRY[spec.name] = spec
        wrapper.spec = spec  # type: ignore[attr-defined]
        return wrapper

    return decorate


def filters() -> list[FilterSpec]:
    """Every filter, in GUI order (by priority, then name). The package's ``__init__`` imports every filter module
    (which registers them) before anything can reach this module."""
    return sorted(_REGISTRY.values(), key=lambda s: (s.priority, s.name))


def get_filter(name: str) -> FilterSpec | None:
    """The filter registered as ``name`` (current names only; see ``chain.ALIASES`` for older ones), or None."""
    return _REGISTRY.get(name)


def frame_of(t: float) -> float:
    """The reference's normalised frame number for time ``t`` seconds."""
    return float(t) * FPS_REFERENCE
