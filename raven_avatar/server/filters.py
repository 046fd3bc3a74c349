"""The postprocessor's filters as the reference's ``get_available_filters`` describes them.

``[[name, {"defaults": {...}, "ranges": {...}, "docstring": "..."}], ...]`` in chain-priority order. Range forms:
``[min, max]`` (numbers), ``[true, false]`` (booleans), ``[choice, ...]``, ``["!RGB"]`` (a colour, three floats in
[0, 1]) and ``["!ignore"]`` (``name``, which only keys a filter instance's state).
"""

from __future__ import annotations

from typing import Any

from raven_avatar.engine.postprocessor import registry


def _range(p: registry.ParamSpec) -> list[Any]:
    if p.kind == "bool":
        return [True, False]
    if p.kind == "choice":
        return list(p.choices or ())
    if p.kind == "rgb":
        return ["!RGB"]
    return list(p.range) if p.range is not None else ["!ignore"]


def available_filters() -> list[list[Any]]:
    out: list[list[Any]] = []
    for spec in sorted(registry.filters(), key=lambda s: s.priority):
        defaults = {"name": spec.name, **spec.defaults()}
        ranges = {"name": ["!ignore"], **{p.name: _range(p) for p in spec.params}}
        out.append([spec.name, {"defaults": defaults, "ranges": ranges, "docstring": spec.doc}])
    return out
