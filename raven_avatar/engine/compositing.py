"""Alpha compositing of cels, and the animefx drivers that say which fx cel shows when.

Images follow the engine convention: ``(..., 4, H, W)`` RGBA, linear light, [0, 1], straight (non-premultiplied) alpha.
Blending cels go onto the character *before* posing, so the blush or tears deform with the face; animefx cels go over
the posed frame. The animefx drivers are pure functions of the time since their trigger, so overlapping effects (a
new emotion while the last one's effect still plays) need no shared state: the animator evaluates each active trigger
and combines the results with :func:`combine_strengths`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import torch

from raven_avatar.engine.character import SUPPORTED_CELS

#: The animefx driver kinds (names as in the reference's animator settings).
ANIMEFX_KINDS = ("cycle", "sequence", "cycle_with_fadeout", "sequence_with_fadeout")

# Frame boundaries are computed from floats such as 1/6 s; this slack puts a time that is exactly on a boundary
# (up to rounding) into the later frame, as a person reading the table would expect.
_EPS = 1e-9


def over(top: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
    """Porter-Duff "over" for straight-alpha RGBA in linear light: ``top`` drawn onto ``bottom``.

    ``αo = αt + αb(1 − αt)``, ``RGBo = (RGBt·αt + RGBb·αb·(1 − αt)) / αo``; fully transparent results get RGB 0
    (not NaN). Shapes broadcast like ``torch`` arithmetic.
    """
    a_top = top[..., 3:4, :, :]
    a_bot = bottom[..., 3:4, :, :]
    weight_bot = a_bot * (1.0 - a_top)
    alpha = a_top + weight_bot
    rgb = top[..., :3, :, :] * a_top + bottom[..., :3, :, :] * weight_bot
    rgb = torch.where(alpha > 0, rgb / alpha.clamp_min(torch.finfo(alpha.dtype).tiny), torch.zeros_like(rgb))
    return torch.cat([rgb, alpha], dim=-3)


def _with_strength(cel: torch.Tensor, strength: float) -> torch.Tensor:
    if strength >= 1.0:
        return cel
    return torch.cat([cel[..., :3, :, :], cel[..., 3:4, :, :] * strength], dim=-3)


def default_order(names: Iterable[str]) -> list[str]:
    """Canonical stacking order: the supported blending cels bottom-up, then any other names (``fx_*``) sorted."""
    names = set(names)
    return [n for n in SUPPORTED_CELS if n in names] + sorted(names.difference(SUPPORTED_CELS))


def composite_cels(
    base: torch.Tensor,
    cels: Mapping[str, torch.Tensor],
    strengths: Mapping[str, float],
    order: Sequence[str] | None = None,
) -> torch.Tensor:
    """Draw ``cels`` over ``base`` bottom-up, each with its alpha scaled by ``strengths[name]``.

    Order is by name, never by the order of the ``strengths`` mapping: ``order`` if given, else
    :func:`default_order`. Names without a cel, or with strength 0 (or NaN), are skipped; strengths are clamped to
    [0, 1]. Inputs are not modified; with nothing to draw, ``base`` itself is returned.
    """
    result = base
    for name in order if order is not None else default_order(strengths):
        cel = cels.get(name)
        strength = float(strengths.get(name, 0.0))
        if cel is None or not strength > 0.0:  # also skips NaN
            continue
        result = over(_with_strength(cel, min(strength, 1.0)), result)
    return result


def animefx_strengths(
    kind: str, cels: Sequence[str], elapsed: float, duration: float, fps: float | None = None
) -> dict[str, float]:
    """Strength of each cel of one animefx effect, ``elapsed`` seconds after its trigger.

    - ``sequence``: plays ``cels`` once, each for ``duration / len(cels)``.
    - ``cycle``: loops ``cels`` at ``fps`` frames per second until ``duration``.
    - ``*_with_fadeout``: the same, times a linear fade from 1 at the trigger to 0 at ``duration``.

    Names may repeat in ``cels`` (``fx_notice1, fx_notice2, fx_notice1, fx_notice2``); the result has one entry per
    distinct name, 0 for the inactive ones. Before the trigger, from ``duration`` on, with ``duration <= 0`` or no
    cels, every strength is 0.
    """
    if kind not in ANIMEFX_KINDS:
        raise ValueError(f"unknown animefx kind {kind!r}; valid kinds: {', '.join(ANIMEFX_KINDS)}")
    cycling = kind.startswith("cycle")
    if cycling and (fps is None or not fps > 0 or not math.isfinite(fps)):
        raise ValueError(f"animefx kind {kind!r} needs fps > 0, got {fps!r}")
    result = dict.fromkeys(cels, 0.0)
    n = len(cels)
    if n == 0 or not duration > 0 or not 0.0 <= elapsed < duration:
        return result
    frame = elapsed * fps if cycling else n * elapsed / duration
    index = math.floor(frame + _EPS) % n if cycling else min(math.floor(frame + _EPS), n - 1)
    strength = 1.0 - elapsed / duration if kind.endswith("_with_fadeout") else 1.0
    result[cels[index]] = strength
    return result


def combine_strengths(strengths: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Merge the cel strengths of several overlapping effects: per cel, the strongest wins."""
    combined: dict[str, float] = {}
    for one in strengths:
        for name, value in one.items():
            combined[name] = max(combined.get(name, 0.0), float(value))
    return combined
