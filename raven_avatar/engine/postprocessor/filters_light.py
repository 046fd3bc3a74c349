"""Light in the scene: bloom, atmospheric dust, rim light / outline.

Images are ``(B, 4, H, W)`` linear RGBA in [0, 1] with straight alpha (the registry wrapper also accepts
``(4, H, W)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .colorspace import luminance
from .ops import channel_mask, gaussian_blur, with_alpha
from .registry import FilterState, P, register


@register(
    category="light",
    priority=0.0,
    threshold=P("Luminance from which a pixel glows: 0 is black, 1 is white.", range=(0.0, 1.0)),
    exposure=P("Tonemapping exposure: higher is brighter, saturating toward white.", range=(0.1, 5.0)),
    sigma=P("Glow radius (Gaussian standard deviation) in pixels.", range=(0.1, 7.0)),
)
def bloom(
    image: torch.Tensor, *, threshold: float = 0.56, exposure: float = 0.842, sigma: float = 7.0, state: FilterState
) -> torch.Tensor:
    """Bright areas bleed light into their surroundings (fake HDR), then RGB is tonemapped back to [0, 1].

    Pixels with luminance >= ``threshold`` are blurred and added to the image; RGB is tonemapped with
    ``1 - exp(-x * exposure)`` and alpha is max-combined with the blurred alpha, so the glow also shows over a
    transparent background. Looks best on a dark-ish backdrop. Popular in early-2000s anime.
    """
    brights = image * (luminance(image) >= threshold)
    h, w = image.shape[-2:]
    if sigma >= 2.0 and min(h, w) >= 8:
        # A wide glow has no detail at the pixel scale: blurring at half resolution gives the same picture with
        # a quarter of the pixels and half the taps.
        small = F.avg_pool2d(brights, 2, ceil_mode=True)
        glow = F.interpolate(
            gaussian_blur(small, sigma / 2, border="zeros"), size=(h, w), mode="bilinear", align_corners=False
        )
    else:
        glow = gaussian_blur(brights, sigma, border="zeros")
    hdr = image + glow
    rgb = torch.expm1(hdr[:, :3] * -exposure).neg_()
    alpha = torch.maximum(image[:, 3:], glow[:, 3:])
    return torch.cat((rgb, alpha), dim=1).clamp_(0.0, 1.0)


def _dust_motes(count: int, state: FilterState, device: torch.device) -> torch.Tensor:
    """``(7, N)`` float32 per-mote constants: x0, y0, vx, vy, phase, size factor, brightness factor."""
    gen = state.generator(device, "dust", count)
    u = torch.rand((7, count), generator=gen, device=device)
    u[2] = (u[2] - 0.5) * 0.6  # mostly vertical drift: slight sideways wander
    u[3] = 0.4 + 0.6 * u[3]  # every mote floats, some faster
    u[4] *= 2 * math.pi
    u[5] = 0.5 + u[5]
    u[6] = 0.35 + 0.65 * u[6]
    return u


@register(
    category="light",
    priority=0.5,
    count=P("Number of dust motes in the frame.", range=(0, 200)),
    size=P("Mote radius (Gaussian standard deviation) as a fraction of the image height.", range=(0.001, 0.03)),
    brightness=P("Peak brightness of a mote: 0 is invisible, 1 is full intensity.", range=(0.0, 1.0)),
    speed=P("Upward drift speed in image heights per second.", range=(0.0, 0.3)),
    tint_rgb=P("Colour of the light the motes scatter."),
)
def atmospheric_dust(
    image: torch.Tensor,
    *,
    count: int = 40,
    size: float = 0.004,
    brightness: float = 0.35,
    speed: float = 0.02,
    tint_rgb: tuple[float, float, float] = (1.0, 0.95, 0.85),
    t: float,
    state: FilterState,
) -> torch.Tensor:
    """Soft dust motes drift and twinkle in a beam of light in front of the character.

    The motes are additive light: they brighten what is behind them and show on a transparent background. Their
    motion is a function of time only, so it looks the same at any frame rate.
    """
    if count == 0 or brightness == 0:
        return image
    h, w = image.shape[-2:]
    dev = image.device
    m = state.slot("motes", (count, str(dev)), lambda: _dust_motes(count, state, dev))
    x0, y0, vx, vy, phase, size_f, bright_f = m
    # Positions wrap around a frame with a margin, so motes leave and enter smoothly.
    sigma = size * h * size_f  # [N] pixels
    margin = 3.0 * size * h * 1.5
    fx = torch.remainder(x0 + speed * h / w * vx * t + 0.01 * torch.sin(0.5 * t + phase), 1.0)
    fy = torch.remainder(y0 - speed * vy * t, 1.0)
    cx = fx * (w + 2 * margin) - margin
    cy = fy * (h + 2 * margin) - margin
    twinkle = bright_f * (0.75 + 0.25 * torch.sin(1.7 * t + 3.0 * phase))
    xs = torch.arange(w, dtype=torch.float32, device=dev) + 0.5
    ys = torch.arange(h, dtype=torch.float32, device=dev) + 0.5
    inv = -0.5 / sigma**2
    gx = torch.exp((xs[None, :] - cx[:, None]) ** 2 * inv[:, None])  # [N, W]
    gy = torch.exp((ys[None, :] - cy[:, None]) ** 2 * inv[:, None]) * twinkle[:, None]  # [N, H]
    # Each mote is a separable Gaussian, so all of them together are one [H, N] @ [N, W] product.
    dust = (gy.T @ gx).clamp_(max=1.0).mul_(brightness).to(image.dtype)[None, None]
    a = image[:, 3:]
    a_out = a + dust * (1 - a)
    tint = channel_mask((*map(float, tint_rgb), 0.0), image.dtype, dev)[:, :3]
    premul = torch.addcmul(image[:, :3] * a, dust, tint)
    rgb = torch.where(a_out > 0, premul / a_out.clamp(min=1e-4), image[:, :3])
    return torch.cat((rgb, a_out), dim=1).clamp_(0.0, 1.0)


@register(
    category="light",
    priority=0.25,
    mode=P(
        "'rim': light along the inside of the silhouette; 'outline': a line around the outside.",
        choices=("rim", "outline"),
    ),
    width=P("Width of the rim or outline in pixels.", range=(0.5, 8.0)),
    strength=P("Opacity / brightness of the effect: 0 is off.", range=(0.0, 1.0)),
    color_rgb=P("Colour of the rim light or outline."),
)
def outline(
    image: torch.Tensor,
    *,
    mode: str = "rim",
    width: float = 2.0,
    strength: float = 0.6,
    color_rgb: tuple[float, float, float] = (0.6, 0.8, 1.0),
    state: FilterState,
) -> torch.Tensor:
    """A rim light inside the character's silhouette, or an outline around it, found from the alpha edges.

    ``rim`` adds light where opaque pixels are near transparency (a backlit look); ``outline`` paints a soft
    line of ``color_rgb`` on the transparent side of the edge. Needs a transparent background to find edges.
    """
    if strength == 0:
        return image
    a = image[:, 3:]
    spread = gaussian_blur(a, width / 2, border="replicate")
    color = channel_mask((*map(float, color_rgb), 0.0), image.dtype, image.device)[:, :3]
    if mode == "rim":
        edge = (a - spread).clamp_(min=0.0).mul_(2.0 * strength)
        return with_alpha(torch.addcmul(image[:, :3], edge, color).clamp_(0.0, 1.0), image)
    line = (spread - a).clamp_(min=0.0).mul_(2.0 * strength).clamp_(max=1.0)
    a_out = a + line * (1 - a)
    premul = torch.addcmul(image[:, :3] * a, line * (1 - a), color)
    rgb = torch.where(a_out > 0, premul / a_out.clamp(min=1e-4), image[:, :3])
    return torch.cat((rgb, a_out), dim=1).clamp_(0.0, 1.0)
