"""The video camera: zoom, lens chromatic aberration, sensor noise, vignetting.

Images are ``(B, 4, H, W)`` linear RGBA in [0, 1] with straight alpha (the registry wrapper also accepts
``(4, H, W)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .colorspace import luminance
from .ops import channel_mask, gaussian_blur, identity_grid, sample, uniform_noise
from .registry import FilterState, P, frame_of, register


def _zoom_window(center: float, factor: float, size: int) -> tuple[float, int, int]:
    """Clamp a zoom centre so the window stays inside the frame; return it with the window's pixel start and size."""
    half = 1.0 / factor
    center = min(max(center, -1.0 + half), 1.0 - half)
    n = max(1, round(size / factor))
    start = min(max(0, round((center + 1.0) / 2.0 * size - n / 2.0)), size - n)
    return center, start, n


@register(
    category="camera",
    priority=-1.0,
    center_x=P("Horizontal centre of the zoom: -1 is the left edge, 1 the right.", range=(-1.0, 1.0)),
    center_y=P("Vertical centre of the zoom: -1 is the top edge, 1 the bottom.", range=(-1.0, 1.0)),
    factor=P("Magnification; 1 is off.", range=(1.0, 4.0)),
    quality=P(
        "'low': bilinear warp; 'high'/'ultra': crop, then upscale with the chain's upscaler (bicubic if none).",
        choices=("low", "high", "ultra"),
    ),
)
def zoom(
    image: torch.Tensor,
    *,
    center_x: float = 0.0,
    center_y: float = -0.867,
    factor: float = 2.0,
    quality: str = "low",
    state: FilterState,
) -> torch.Tensor:
    """Optical zoom into part of the frame, e.g. a head-and-shoulders shot from a full-body character.

    The window is kept inside the frame (the centre is clamped), so the border never smears in. With
    ``quality`` ``high`` or ``ultra`` the window is cropped and handed to the chain's upscaler callback
    (``upscale(crop, (H, W), quality)``, e.g. Anime4K); without one, bicubic interpolation is used.
    """
    if factor <= 1.0:
        return image
    h, w = image.shape[-2:]
    cx, x0, nw = _zoom_window(center_x, factor, w)
    cy, y0, nh = _zoom_window(center_y, factor, h)
    if quality == "low":

        def build() -> torch.Tensor:
            grid = identity_grid(h, w, image.device) / factor
            grid[..., 0] += cx
            grid[..., 1] += cy
            return grid

        grid = state.slot("grid", (h, w, cx, cy, factor, str(image.device)), build)
        return sample(image, grid)
    crop = image[:, :, y0 : y0 + nh, x0 : x0 + nw]
    if state.upscale is not None:
        return state.upscale(crop, (h, w), quality)
    return F.interpolate(crop, size=(h, w), mode="bicubic", align_corners=False).clamp_(0.0, 1.0)


@register(
    category="camera",
    priority=1.0,
    scale=P("Relative size difference of the red and blue images (axial aberration).", range=(0.001, 0.05)),
    sigma=P("Blur of the red and blue channels in pixels (transverse aberration).", range=(0.1, 3.0)),
)
def chromatic_aberration(
    image: torch.Tensor, *, scale: float = 0.005, sigma: float = 1.0, state: FilterState
) -> torch.Tensor:
    """Colour fringes of a cheap lens: red is magnified less and blue more than green, both slightly out of focus.

    Three wavelengths instead of a spectrum give clear-cut red/blue bands; the blur hides them. Alpha is warped
    like each colour and averaged, so the fringes also show at the silhouette over a transparent background.
    """
    b, _, h, w = image.shape
    dev = image.device

    def build() -> torch.Tensor:
        base = identity_grid(h, w, dev)
        grids = torch.cat((base * (1.0 + scale), base * (1.0 - scale)))
        return grids.repeat_interleave(b, dim=0)  # [2B, H, W, 2]: red+alpha grids, then blue+alpha grids

    grid = state.slot("grid", (b, h, w, scale, str(dev)), build)
    pairs = torch.cat((image[:, 0::3], image[:, 2:]), dim=0)  # [2B, 2, H, W]: (R, A) then (B, A)
    warped = gaussian_blur(sample(pairs, grid), sigma)
    red, blue = warped[:b], warped[b:]
    alpha = (red[:, 1:] + blue[:, 1:] + image[:, 3:]) * (1.0 / 3.0)
    return torch.cat((red[:, :1], image[:, 1:2], blue[:, :1], alpha), dim=1)


@register(
    category="camera",
    priority=1.5,
    strength=P("How much of the signal the grain can take away: 0.1 is subtle, 1 is heavy.", range=(0.1, 1.0)),
    sigma=P("Grain size: Gaussian blur of the noise in pixels.", range=(0.1, 3.0)),
    channel=P(
        "'Y': grain on luminance (colours kept); 'A': grain on alpha (a flickering hologram).", choices=("Y", "A")
    ),
    double_size=P("Draw the grain at half resolution for chunkier grain."),
)
def noise(
    image: torch.Tensor,
    *,
    strength: float = 0.3,
    sigma: float = 1.0,
    channel: str = "Y",
    double_size: bool = True,
    t: float,
    state: FilterState,
) -> torch.Tensor:
    """Multiplicative film/sensor grain, ``x * ((1 - strength) + strength * noise)``, on luminance or on alpha.

    A new grain pattern is drawn every 1/25 s (seeded by the instance and the time, so equal times look equal).
    """
    h, w = image.shape[-2:]
    bucket = math.floor(frame_of(t))

    def build() -> torch.Tensor:
        gen = state.generator(image.device, "noise", bucket)
        n = uniform_noise(
            h, w, generator=gen, dtype=image.dtype, device=image.device, sigma=sigma, double_size=double_size
        )
        # Cached as the multiplier minus one: x' = x + x * fac.
        return (n - 1.0).mul_(strength)

    key = (bucket, h, w, strength, sigma, double_size, image.dtype, str(image.device))
    fac = state.slot("noise", key, build)
    if channel == "A":
        return torch.cat((image[:, :3], torch.addcmul(image[:, 3:], image[:, 3:], fac)), dim=1)
    # Scaling Y alone in YUV equals subtracting the lost luminance from each of R, G and B: no round trip.
    rgb_only = channel_mask((1.0, 1.0, 1.0, 0.0), image.dtype, image.device)
    return torch.addcmul(image, luminance(image) * fac, rgb_only).clamp_(0.0, 1.0)


@register(
    category="camera",
    priority=2.0,
    strength=P("Darkening toward the corners: the profile is cos^2(strength * pi * d).", range=(0.1, 0.5)),
)
def vignetting(image: torch.Tensor, *, strength: float = 0.42, state: FilterState) -> torch.Tensor:
    """Less light reaches the corners of the film or sensor; RGB is darkened with distance from the centre.

    The profile is ``cos^2(strength * pi * d)`` with ``d`` = 1 at the corners and 0.707 at the edge midpoints.
    Alpha is untouched.
    """
    h, w = image.shape[-2:]

    def build() -> torch.Tensor:
        grid = identity_grid(h, w, image.device)
        d = grid.square().sum(-1).sqrt() * (1.0 / math.sqrt(2.0))  # [1, H, W]
        gain = torch.cos(d * (strength * math.pi)).square()
        return torch.cat((gain.expand(3, h, w), torch.ones_like(gain))).unsqueeze(0).to(image.dtype)

    mask = state.slot("mask", (h, w, strength, image.dtype, str(image.device)), build)
    return image * mask
