"""The display the viewer looks at: hologram translucency, monochrome tube, banding, scanlines, CRT glass.

Images are ``(B, 4, H, W)`` linear RGBA in [0, 1] with straight alpha (the registry wrapper also accepts
``(4, H, W)``).
"""

from __future__ import annotations

import functools
import math

import torch

from .colorspace import luminance
from .filters_general import desaturate_image
from .ops import channel_mask, gaussian_blur, identity_grid, sample
from .registry import FilterState, P, frame_of, register


@register(
    category="display",
    priority=10.5,
    alpha=P("Opacity multiplier: lower is more see-through.", range=(0.1, 0.9)),
)
def translucent_display(image: torch.Tensor, *, alpha: float = 0.9, state: FilterState) -> torch.Tensor:
    """A translucent display, e.g. a sci-fi hologram: alpha is multiplied by ``alpha``."""
    return image * channel_mask((1.0, 1.0, 1.0, float(alpha)), image.dtype, image.device)


@register(
    category="display",
    priority=11.0,
    strength=P("Blend of the effect: 0 is off, 1 is fully monochrome.", range=(0.0, 1.0)),
    tint_rgb=P("Phosphor colour, e.g. green (0.5, 1.0, 0.5) or amber (1.0, 0.5, 0.2)."),
)
def monochrome_display(
    image: torch.Tensor,
    *,
    strength: float = 1.0,
    tint_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0),
    state: FilterState,
) -> torch.Tensor:
    """A monochrome display: luminance times the phosphor colour.

    Placed late in the chain so colour noise from the transport collapses to brightness, as on a real monochrome
    tube. Alpha is untouched. For colour grading with a hue bandpass, see ``desaturate``.
    """
    if strength == 0.0:
        return image
    return desaturate_image(image, strength, tint_rgb)


@functools.lru_cache(maxsize=32)
def _band_rows(h: int, device: torch.device) -> torch.Tensor:
    return torch.linspace(0.0, math.pi, h, dtype=torch.float32, device=device)


@register(
    category="display",
    priority=12.0,
    strength=P("Brightness gain in the bright bands.", range=(0.1, 0.9)),
    density=P("Band cycles per image height.", range=(1.0, 4.0)),
    speed=P("Band movement in pixels per 1/25 s.", range=(1.0, 32.0)),
)
def banding(
    image: torch.Tensor,
    *,
    strength: float = 0.4,
    density: float = 2.0,
    speed: float = 16.0,
    t: float,
    state: FilterState,
) -> torch.Tensor:
    """Brighter bands roll down the picture, as when a CRT is filmed without syncing the camera to it.

    RGB is multiplied by ``1 + strength * sin^2(density * y + phase)``; alpha is untouched.
    """
    h = image.shape[-2]
    phase = (1.0 - (frame_of(t) / h * speed) % 1.0) * math.pi
    gain = torch.sin(_band_rows(h, image.device) * density + phase).square_().mul_(strength).add_(1.0)
    gain4 = torch.where(_alpha_channel(image.device), 1.0, gain.view(1, 1, h, 1)).to(image.dtype)
    return (image * gain4).clamp_(0.0, 1.0)


@functools.lru_cache(maxsize=8)
def _alpha_channel(device: torch.device) -> torch.Tensor:
    return torch.tensor((False, False, False, True), device=device).view(1, 4, 1, 1)


@functools.lru_cache(maxsize=64)
def _scan_rows(h: int, start: int, double_size: bool, device: torch.device) -> torch.Tensor:
    """``(1, 1, H, 1)`` float32: 1 on the dimmed lines, 0 elsewhere."""
    r = torch.arange(h, device=device) - start
    dimmed = (r % 4 < 2) if double_size else (r % 2 == 0)
    return dimmed.float().view(1, 1, h, 1)


@register(
    category="display",
    priority=13.0,
    field=P("Which field is dimmed first: 0 top, 1 bottom.", range=(0, 1)),
    dynamic=P("Alternate the dimmed field every 1/25 s, like an interlaced CRT."),
    double_size=P("Each scanline is two pixel rows: a lo-fi look on a high-resolution screen."),
    channel=P("'Y': dim luminance (colours kept); 'A': dim alpha (the lines become translucent).", choices=("Y", "A")),
    strength=P("How much a dimmed line is darkened: 0.25 dims to 75%.", range=(0.1, 0.9)),
)
def scanlines(
    image: torch.Tensor,
    *,
    field: int = 0,
    dynamic: bool = True,
    double_size: bool = True,
    channel: str = "Y",
    strength: float = 0.1,
    t: float,
    state: FilterState,
) -> torch.Tensor:
    """CRT scanlines: every other line (or pair of lines) is dimmed, on luminance or on alpha."""
    h = image.shape[-2]
    start = (field + math.floor(frame_of(t))) % 2 if dynamic else field

    def build() -> torch.Tensor:
        rows = _scan_rows(h, start, double_size, image.device)
        if channel == "A":
            return (1.0 - rows * torch.where(_alpha_channel(image.device), strength, 0.0)).to(image.dtype)
        return (rows * -strength).to(image.dtype)

    fac = state.slot(f"rows{start}", (h, double_size, channel, strength, image.dtype, str(image.device)), build)
    if channel == "A":
        return image * fac
    # Scaling Y alone in YUV equals subtracting the lost luminance from each of R, G and B: no round trip.
    rgb_only = channel_mask((1.0, 1.0, 1.0, 0.0), image.dtype, image.device)
    return torch.addcmul(image, luminance(image) * fac, rgb_only).clamp_(0.0, 1.0)


@register(
    category="display",
    priority=13.5,
    curvature=P("Bulge of the tube glass; 0 is flat.", range=(0.0, 0.3)),
    mask_strength=P("Visibility of the phosphor stripes: 0 is off.", range=(0.0, 1.0)),
    mask_pitch=P("Width of one red-green-blue phosphor triad in pixels.", range=(2, 8)),
    glow=P("Light bleeding from the phosphors into their surroundings.", range=(0.0, 1.0)),
)
def crt(
    image: torch.Tensor,
    *,
    curvature: float = 0.06,
    mask_strength: float = 0.3,
    mask_pitch: int = 3,
    glow: float = 0.15,
    state: FilterState,
) -> torch.Tensor:
    """A CRT tube: curved glass with rounded corners, an aperture-grille phosphor mask, and a soft glow.

    Put it last, after ``scanlines``, so the scanlines bend with the glass. Corners outside the tube become
    transparent. The mask is normalised to keep the average brightness.
    """
    h, w = image.shape[-2:]
    dev = image.device
    out = image
    if curvature > 0.0:

        def build_grid() -> torch.Tensor:
            base = identity_grid(h, w, dev)
            r2 = base.square().sum(-1, keepdim=True)
            return base * (1.0 + curvature * r2) / (1.0 + curvature)  # edge midpoints stay put, corners bend away

        out = sample(image, state.slot("grid", (h, w, curvature, str(dev)), build_grid), padding="zeros")
    if glow > 0.0:
        halo = gaussian_blur(out, 2.0, border="zeros")
        out = torch.cat(
            (torch.add(out[:, :3], halo[:, :3], alpha=glow), torch.maximum(out[:, 3:], halo[:, 3:] * glow)), 1
        )
    if mask_strength > 0.0:

        def build_mask() -> torch.Tensor:
            x = (torch.arange(w, dtype=torch.float32, device=dev) + 0.5) / mask_pitch
            phase = torch.tensor((0.0, 1.0 / 3.0, 2.0 / 3.0, 0.0), device=dev).view(1, 4, 1, 1)
            stripe = 0.5 + 0.5 * torch.cos(2.0 * math.pi * (x.view(1, 1, 1, w) - phase))
            gain = (1.0 - mask_strength + mask_strength * stripe) / (1.0 - 0.5 * mask_strength)
            gain[:, 3:] = 1.0
            return gain.to(image.dtype)

        out = out * state.slot("mask", (w, mask_strength, mask_pitch, image.dtype, str(dev)), build_mask)
    return out.clamp(0.0, 1.0) if out is not image else image
