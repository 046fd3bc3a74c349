"""Colour grading: desaturation with a tint and a hue bandpass.

Images are ``(B, 4, H, W)`` linear RGBA in [0, 1] with straight alpha (the registry wrapper also accepts
``(4, H, W)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .colorspace import color_mix
from .ops import channel_mask, with_alpha
from .registry import FilterState, P, register

_GRAY_CHROMA = 0.05  # below this U/V magnitude a pixel's hue is noise: such pixels are always desaturated


def _hue(r, g, b):
    """Approximate HSL hue in [0, 1) from the cartesian chroma plane; exact enough for a hue detector."""
    return torch.atan2(math.sqrt(3.0) / 2.0 * (g - b), r - 0.5 * (g + b)) * (0.5 / math.pi) % 1.0


def desaturate_image(
    image: torch.Tensor,
    strength: float,
    tint_rgb: Sequence[float],
    bandpass_reference_rgb: Sequence[float] | None = None,
    bandpass_q: float = 0.0,
) -> torch.Tensor:
    """Blend RGB toward ``luminance * tint``; with ``bandpass_q > 0`` hues near the reference are kept."""
    yuv = color_mix(image, "yuv")
    tint = channel_mask((*map(float, tint_rgb), 0.0), image.dtype, image.device)[:, :3]
    target = yuv[:, :1] * tint
    weight: float | torch.Tensor = strength
    if bandpass_q > 0.0 and bandpass_reference_rgb is not None:
        ref = float(_hue(*(torch.tensor(float(c)) for c in bandpass_reference_rgb)))
        d = (_hue(image[:, 0:1], image[:, 1:2], image[:, 2:3]) - ref).abs()
        d = torch.minimum(d, 1.0 - d) * 2.0  # circular distance, opposite hues = 1
        keep = (1.0 - (d * (1.0 / bandpass_q)).clamp_(max=1.0)).square_()
        keep = keep.masked_fill_(yuv[:, 1:].square().sum(1, keepdim=True) < _GRAY_CHROMA**2, 0.0)
        weight = (1.0 - keep).mul_(strength)
    return with_alpha(torch.lerp(image[:, :3], target, weight), image)


@register(
    category="general",
    priority=3.5,
    strength=P("Blend of the effect: 0 is off, 1 is fully desaturated.", range=(0.0, 1.0)),
    tint_rgb=P("Colour multiplied into the grayscale result, e.g. sepia (1.0, 0.76, 0.45)."),
    bandpass_reference_rgb=P("Colour whose hue survives the desaturation, when bandpass_q > 0."),
    bandpass_q=P(
        "Half-width of the kept hue band (1 = half the colour wheel); 0 turns the bandpass off.", range=(0.0, 1.0)
    ),
)
def desaturate(
    image: torch.Tensor,
    *,
    strength: float = 1.0,
    tint_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0),
    bandpass_reference_rgb: tuple[float, float, float] = (1.0, 0.0, 0.0),
    bandpass_q: float = 0.0,
    state: FilterState,
) -> torch.Tensor:
    """Desaturation with a tint and a hue bandpass, e.g. a sepia image where only red things keep their colour.

    The bandpass is a quadratic spike at the reference hue, falling to full desaturation ``bandpass_q`` away.
    Near-gray pixels are always desaturated (their hue is noise). Alpha is untouched.
    """
    if strength == 0.0:
        return image
    return desaturate_image(image, strength, tint_rgb, bandpass_reference_rgb, bandpass_q)
