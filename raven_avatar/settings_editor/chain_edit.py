"""The postprocessor chain as the settings editor edits it: ordered filter instances, each enabled or not.

The settings file holds only what runs (``[[filter, {params}], ...]``, duplicates and order kept); disabled
instances live here so a user can switch a filter off and on without losing its parameters. Every edit is a plain
method, so the GUI, hotkeys and tests share them.

Example:
    >>> chain = EditableChain.from_chain([["bloom", {}], ["scanlines", {"strength": 0.2}]])
    >>> chain.duplicate(1); chain.move(2, -2)
    >>> [name for name, _ in chain.to_chain()]
    ['scanlines', 'bloom', 'scanlines']
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from raven_avatar.engine.postprocessor import FilterSpec, ParamSpec, get_filter, normalize_chain

_ids = itertools.count(1)


@dataclass
class FilterInstance:
    """One filter in the chain; ``uid`` is stable across moves so GUI widgets can be keyed by it."""

    spec: FilterSpec
    params: dict[str, Any]
    enabled: bool = True
    uid: int = field(default_factory=lambda: next(_ids))

    @property
    def name(self) -> str:
        return self.spec.name

    def param_spec(self, name: str) -> ParamSpec:
        p = self.spec.param(name)
        if p is None:
            raise KeyError(f"filter {self.name!r} has no parameter {name!r}")
        return p


def _spec(name: str) -> FilterSpec:
    spec = get_filter(name)
    if spec is None:
        raise KeyError(f"unknown filter {name!r}")
    return spec


class EditableChain:
    """An ordered list of :class:`FilterInstance`; index arguments are positions in :attr:`instances`."""

    def __init__(self, instances: Sequence[FilterInstance] = ()):
        self.instances: list[FilterInstance] = list(instances)

    @classmethod
    def from_chain(cls, chain: Sequence[Any]) -> EditableChain:
        """From the settings format; raises ``postprocessor.ChainError`` listing every problem."""
        return cls([FilterInstance(_spec(name), dict(params)) for name, params in normalize_chain(list(chain))])

    def to_chain(self) -> list[list[Any]]:
        """The enabled instances in order, in the settings format, every parameter written out."""
        return [[inst.name, copy.deepcopy(inst.params)] for inst in self.instances if inst.enabled]

    def __len__(self) -> int:
        return len(self.instances)

    def index_of(self, uid: int) -> int:
        for i, inst in enumerate(self.instances):
            if inst.uid == uid:
                return i
        raise KeyError(f"no filter instance {uid}")

    # ------------------------------------------------------------------------------------------------------- edits

    def add(self, name: str, index: int | None = None) -> FilterInstance:
        """A new instance of ``name`` at its defaults, at ``index`` (default: the end)."""
        spec = _spec(name)
        inst = FilterInstance(spec, spec.defaults())
        self.instances.insert(len(self.instances) if index is None else index, inst)
        return inst

    def remove(self, index: int) -> FilterInstance:
        return self.instances.pop(index)

    def move(self, index: int, delta: int) -> int:
        """Move an instance ``delta`` places (clamped to the ends); returns its new index."""
        new = min(max(index + delta, 0), len(self.instances) - 1)
        self.instances.insert(new, self.instances.pop(index))
        return new

    def duplicate(self, index: int) -> FilterInstance:
        """A copy of the instance right after it (same parameters, same enabled state, no instance name)."""
        src = self.instances[index]
        params = copy.deepcopy(src.params)
        params.pop("name", None)
        inst = FilterInstance(src.spec, params, src.enabled)
        self.instances.insert(index + 1, inst)
        return inst

    def set_enabled(self, index: int, enabled: bool) -> None:
        self.instances[index].enabled = bool(enabled)

    def set_param(self, index: int, name: str, value: Any) -> Any:
        """Set one parameter, converted and clamped to its kind and range; returns the value stored."""
        inst = self.instances[index]
        p = inst.param_spec(name)
        inst.params[name] = coerce_param(p, value)
        return inst.params[name]

    def reset_param(self, index: int, name: str) -> Any:
        p = self.instances[index].param_spec(name)
        return self.set_param(index, name, p.default)

    def reset_filter(self, index: int) -> None:
        inst = self.instances[index]
        keep = {"name": inst.params["name"]} if "name" in inst.params else {}
        inst.params = {**inst.spec.defaults(), **keep}

    def clear(self) -> None:
        """Every instance disabled (kept, so they can be switched back on)."""
        for inst in self.instances:
            inst.enabled = False


def coerce_param(p: ParamSpec, value: Any) -> Any:
    """``value`` as parameter ``p`` stores it: bool, int/float clamped to the range, a listed choice, RGB list."""
    if p.kind == "bool":
        return bool(value)
    if p.kind in ("int", "float"):
        lo, hi = p.range
        v = min(max(float(value), lo), hi)
        return int(round(v)) if p.kind == "int" else v
    if p.kind == "choice":
        if value not in p.choices:
            raise ValueError(f"parameter {p.name!r} must be one of {list(p.choices)}, got {value!r}")
        return value
    rgb = [min(max(float(c), 0.0), 1.0) for c in list(value)[:3]]
    if len(rgb) != 3:
        raise ValueError(f"parameter {p.name!r} needs three colour components, got {value!r}")
    return rgb
