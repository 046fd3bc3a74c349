"""The video signal on its way: analog blur, chroma subsampling, bad hsync, VHS tape damage, digital glitches.

Images are ``(B, 4, H, W)`` linear RGBA in [0, 1] with straight alpha (the registry wrapper also accepts
``(4, H, W)``). Dynamic filters take the time ``t`` in seconds; their speeds were designed against the reference's
25 FPS "normalised frame", ``t * 25``, so presets look the same as there at any frame rate.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .colorspace import color_mix, luminance
from .ops import (
    channel_mask,
    gaussian_blur,
    glitch_bands,
    held_segment,
    identity_grid,
    row_mask,
    sample,
    vhs_noise,
)
from .registry import FilterState, P, frame_of, register


def _frac(x: float) -> float:
    return x - math.floor(x)


@functools.lru_cache(maxsize=32)
def _rows(h: int, device: torch.device) -> torch.Tensor:
    """``(H,)`` float32 pixel-centre row coordinates in [-1, 1]."""
    return (torch.arange(h, dtype=torch.float32, device=device) * 2 + 1) / h - 1


def shift_rows(image: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Shift each row of ``(B, C, h, W)`` horizontally by ``dx`` (``(h,)`` float32; the image width is 2).

    Positive ``dx`` reads from the right, moving the picture left; borders extend.
    """
    h, w = image.shape[-2:]
    offset = F.pad(dx.view(1, h, 1, 1), (0, 1))  # [1, h, 1, 2]: (dx, 0)
    return sample(image, identity_grid(h, w, image.device) + offset)


@register(
    category="transport",
    priority=5.0,
    sigma=P("Blur in pixels: the lower bandwidth of an analog signal.", range=(0.1, 3.0)),
)
def analog_lowres(image: torch.Tensor, *, sigma: float = 1.5, state: FilterState) -> torch.Tensor:
    """Low-resolution analog video: a Gaussian blur of all four channels."""
    return gaussian_blur(image, sigma)


@register(
    category="transport",
    priority=5.5,
    mode=P("'analog': horizontal chroma blur; 'digital': decimated chroma blocks.", choices=("analog", "digital")),
    subsampling=P(
        "Digital scheme: '4:2:0' halves chroma both ways, '4:2:2' only horizontally.", choices=("4:2:0", "4:2:2")
    ),
    upscale=P(
        "Digital chroma reconstruction: 'nearest' (blocky) or 'bilinear' (smooth).", choices=("nearest", "bilinear")
    ),
    double_size=P("Digital: halve horizontal chroma once more (4:1:0 or 4:1:1)."),
    sigma=P("Analog: horizontal chroma blur in pixels.", range=(0.1, 7.0)),
)
def chroma_subsample(
    image: torch.Tensor,
    *,
    mode: str = "analog",
    subsampling: str = "4:2:0",
    upscale: str = "nearest",
    double_size: bool = True,
    sigma: float = 4.0,
    state: FilterState,
) -> torch.Tensor:
    """Colour at a lower resolution than brightness, as in analog composite video or digital YUV formats.

    Works in BT.709 YUV: luminance keeps full detail; colour bleeds (analog) or forms blocks (digital).
    Alpha is untouched.
    """
    h, w = image.shape[-2:]
    uv = color_mix(image, "uv")
    if mode == "analog":
        new_uv = gaussian_blur(uv, 0.0, sigma)
    else:
        fx = 4 if double_size else 2
        fy = 2 if subsampling == "4:2:0" else 1
        small = uv[:, :, ::fy, ::fx]
        if upscale == "bilinear":
            new_uv = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        else:
            new_uv = small.repeat_interleave(fx, dim=-1).repeat_interleave(fy, dim=-2)[..., :h, :w]
    delta = color_mix(new_uv - uv, "uv_to_rgb")
    return torch.cat((image[:, :3] + delta, image[:, 3:]), dim=1).clamp_(0.0, 1.0)


@register(
    category="transport",
    priority=6.0,
    speed=P("How fast the ripples travel down the image.", range=(1.0, 16.0)),
    amplitude1=P("Amplitude of wave 1 (image width = 2).", range=(0.001, 0.01)),
    density1=P("Cycles of wave 1 per image height.", range=(1.0, 100.0)),
    amplitude2=P("Amplitude of wave 2 (image width = 2).", range=(0.001, 0.01)),
    density2=P("Cycles of wave 2 per image height.", range=(1.0, 100.0)),
    amplitude3=P("Amplitude of wave 3 (image width = 2).", range=(0.001, 0.01)),
    density3=P("Cycles of wave 3 per image height.", range=(1.0, 100.0)),
)
def analog_rippling_hsync(
    image: torch.Tensor,
    *,
    speed: float = 8.0,
    amplitude1: float = 0.001,
    density1: float = 4.0,
    amplitude2: float = 0.001,
    density2: float = 13.0,
    amplitude3: float = 0.001,
    density3: float = 27.0,
    t: float,
    state: FilterState,
) -> torch.Tensor:
    """A fluctuating horizontal sync: the character's outline ripples, from three superposed travelling sines.

    At ``speed`` 1 a wave of density 1 takes ``H`` normalised frames (1/25 s) to travel one image height.
    """
    h = image.shape[-2]
    cycle = 2.0 * (1.0 - _frac(frame_of(t) / h * speed))  # top to bottom
    y = _rows(h, image.device) + cycle
    dx = (
        torch.sin(y * (density1 * math.pi)) * amplitude1
        + torch.sin(y * (density2 * math.pi)) * amplitude2
        + torch.sin(y * (density3 * math.pi)) * amplitude3
    )
    return shift_rows(image, dx)


@functools.lru_cache(maxsize=32)
def _edge_profile(h: int, placement: str, device: torch.device) -> tuple[int, torch.Tensor]:
    """First row and ``(n,)`` quadratic profile (0 -> 1 toward the edge) of the band in the outer 1/8 of the height."""
    n = max(1, sum(1 for i in range(h) if (2 * i + 1) / h - 1 > 0.75))
    y = _rows(h, device)
    if placement == "bottom":
        return h - n, ((y[h - n :] - 0.75).clamp(min=0.0) * 4.0).square()
    return 0, ((y[:n] + 0.75).clamp(max=0.0) * 4.0).square()


@register(
    category="transport",
    priority=7.0,
    speed=P("How fast the ripple in the shear strength cycles.", range=(1.0, 16.0)),
    asymmetry=P("Base shear at the edge (image width = 2).", range=(0.0, 0.5)),
    ripple_amplitude=P("Variation of the shear around its base, from three sines in time.", range=(0.001, 0.1)),
    ripple_density1=P("Cycles of ripple wave 1 per animation cycle.", range=(1.0, 100.0)),
    ripple_density2=P("Cycles of ripple wave 2 per animation cycle.", range=(1.0, 100.0)),
    ripple_density3=P("Cycles of ripple wave 3 per animation cycle.", range=(1.0, 100.0)),
    placement=P("Which edge is sheared.", choices=("bottom", "top")),
)
def analog_runaway_hsync(
    image: torch.Tensor,
    *,
    speed: float = 8.0,
    asymmetry: float = 0.1,
    ripple_amplitude: float = 0.05,
    ripple_density1: float = 4.0,
    ripple_density2: float = 13.0,
    ripple_density3: float = 27.0,
    placement: str = "bottom",
    t: float,
    state: FilterState,
) -> torch.Tensor:
    """Horizontal sync running away near one edge, as with a long or bad analog cable: that edge shears sideways.

    The shear falls off quadratically over 1/8 of the height and its strength ripples in time; rows outside the
    band are untouched. (The reference's ``ripple_amplitude`` default 0.05 lay outside its range [0.001, 0.01];
    here the range is [0.001, 0.1] so the default and the reference's look are kept.)
    """
    h = image.shape[-2]
    cycle = 2.0 * _frac(frame_of(t) / h * speed) * math.pi
    ripple = sum(math.sin(d * cycle) for d in (ripple_density1, ripple_density2, ripple_density3))
    shear = (1.0 - ripple_amplitude) * asymmetry + ripple_amplitude * ripple
    start, profile = _edge_profile(h, placement, image.device)
    band = shift_rows(image[:, :, start : start + profile.shape[0]], profile * -shear)
    return torch.cat((image[:, :, :start], band, image[:, :, start + profile.shape[0] :]), dim=2)


def _rgb_only(image: torch.Tensor) -> torch.Tensor:
    return channel_mask((1.0, 1.0, 1.0, 0.0), image.dtype, image.device)


@register(
    category="transport",
    priority=7.5,
    strength=P("How much of the signal the tape noise replaces.", range=(0.1, 1.0)),
    mode=P("'PAL': noise on luminance only; 'NTSC': also colour speckle.", choices=("PAL", "NTSC")),
    double_size=P("Draw the noise at half resolution for chunkier grain."),
    ntsc_chroma=P(
        "NTSC colour noise reconstruction: 'nearest' (blocky) or 'bilinear' (smooth).", choices=("nearest", "bilinear")
    ),
)
def analog_vhs_noise(
    image: torch.Tensor,
    *,
    strength: float = 0.3,
    mode: str = "PAL",
    double_size: bool = True,
    ntsc_chroma: str = "nearest",
    t: float,
    state: FilterState,
) -> torch.Tensor:
    """VHS tape noise: horizontal runs of grain on luminance and, in NTSC, speckles of wrong colour.

    A new pattern every 1/25 s. Alpha is untouched.
    """
    h, w = image.shape[-2:]
    bucket = math.floor(frame_of(t))

    def build() -> tuple[torch.Tensor, torch.Tensor | None]:
        gen = state.generator(image.device, "vhs", bucket)
        n = vhs_noise(
            h,
            w,
            generator=gen,
            dtype=image.dtype,
            device=image.device,
            mode=mode,
            ntsc_chroma=ntsc_chroma,
            double_size=double_size,
        )
        fac = (n[:, :1] - 1.0).mul_(strength)
        chroma = None
        if mode == "NTSC":
            chroma = color_mix(n[:, 1:] * strength, "uv_to_rgb")
        return fac, chroma

    key = (bucket, h, w, strength, mode, double_size, ntsc_chroma, image.dtype, str(image.device))
    fac, chroma = state.slot("noise", key, build)
    out = torch.addcmul(image, luminance(image) * fac, _rgb_only(image))
    if chroma is not None:
        out = torch.cat((out[:, :3] + chroma, out[:, 3:]), dim=1)
    return out.clamp_(0.0, 1.0)


@register(
    category="transport",
    priority=8.0,
    strength=P("How much noise is blended into a glitching line.", range=(0.1, 0.9)),
    unboost=P("Higher: glitches are rarer and fewer (the count is max * U**unboost).", range=(0.1, 10.0)),
    max_glitches=P("Most glitch bands in one frame.", range=(1, 10)),
    min_glitch_height=P("Smallest band height in pixels.", range=(1, 3)),
    max_glitch_height=P("Largest band height in pixels.", range=(3, 10)),
    hold_min=P("Shortest time a pattern is held, in 1/25 s.", range=(1, 3)),
    hold_max=P("Longest time a pattern is held, in 1/25 s.", range=(3, 6)),
)
def analog_vhsglitches(
    image: torch.Tensor,
    *,
    strength: float = 0.1,
    unboost: float = 4.0,
    max_glitches: int = 3,
    min_glitch_height: int = 3,
    max_glitch_height: int = 6,
    hold_min: int = 1,
    hold_max: int = 3,
    t: float,
    state: FilterState,
) -> torch.Tensor:
    """Damaged VHS tape: a few random bands of lines flash with tape noise, each pattern held for a moment.

    Only RGB is touched, so transparent parts stay transparent and the effect stays on the character.
    """
    h, w = image.shape[-2:]
    segment = held_segment(state, frame_of(t), hold_min, hold_max)

    def build() -> tuple[torch.Tensor, torch.Tensor] | None:
        bands = glitch_bands(
            state,
            segment,
            h,
            unboost=unboost,
            max_glitches=max_glitches,
            min_height=min_glitch_height,
            max_height=max_glitch_height,
        )
        if not bands:
            return None
        gen = state.generator(image.device, "vhsglitch", *segment)
        noise = vhs_noise(h, w, generator=gen, dtype=image.dtype, device=image.device)
        weight = row_mask(bands, h, image.dtype, image.device) * (_rgb_only(image) * strength)  # [1, 4, H, 1]
        return noise, weight

    key = (
        segment,
        h,
        w,
        strength,
        unboost,
        max_glitches,
        min_glitch_height,
        max_glitch_height,
        image.dtype,
        str(image.device),
    )
    cached = state.slot("glitch", key, build)
    if cached is None:
        return image
    noise, weight = cached
    return torch.lerp(image, noise.expand_as(image), weight)


@functools.lru_cache(maxsize=32)
def _ramp(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32, device=device) / max(1, n - 1)


@register(
    category="transport",
    priority=8.5,
    speed=P("How fast the bottom band wobbles.", range=(1.0, 32.0)),
    height=P("Height of the band as a fraction of the image height.", range=(0.01, 0.05)),
    max_displacement=P("Largest sideways shift at the bottom row (image width = 2).", range=(0.01, 0.1)),
    noise_blend=P("Tape noise at the bottom row: 0 none, 1 pure noise.", range=(0.0, 1.0)),
    double_size=P("Draw the noise at half resolution for chunkier grain."),
)
def analog_vhs_headswitching(
    image: torch.Tensor,
    *,
    speed: float = 8.0,
    height: float = 0.035,
    max_displacement: float = 0.03,
    noise_blend: float = 0.075,
    double_size: bool = True,
    t: float,
    state: FilterState,
) -> torch.Tensor:
    """VHS head-switching noise: a squiggly sheared band dissolving into static at the bottom of the frame.

    CRTs hid it behind overscan; digital captures show it. Each row of the band shifts by three sines under a
    ramp that grows toward the bottom, and luma-only tape noise is blended in under the same ramp.
    """
    h, w = image.shape[-2:]
    n = min(h, max(1, int(height * h)))
    frame = frame_of(t)
    cycle = frame / h * speed
    env = _ramp(n, image.device)
    wobble = (
        torch.sin((env * 3.0 + 2.0 * cycle) * math.pi)
        + 0.7 * torch.sin((env * 7.0 + 5.0 * cycle) * math.pi)
        + 0.4 * torch.sin((env * 13.0 + 11.0 * cycle) * math.pi)
    )
    band = shift_rows(image[:, :, h - n :], env * wobble * max_displacement)
    if noise_blend > 0.0:
        bucket = math.floor(frame)

        def build() -> torch.Tensor:
            gen = state.generator(image.device, "headswitch", bucket)
            return vhs_noise(n, w, generator=gen, dtype=image.dtype, device=image.device, double_size=double_size)

        noise = state.slot("noise", (bucket, n, w, double_size, image.dtype, str(image.device)), build)
        weight = (env * noise_blend).to(image.dtype).view(1, 1, n, 1) * _rgb_only(image)
        band = torch.lerp(band, noise.expand_as(band), weight)
    return torch.cat((image[:, :, : h - n], band), dim=2)


@register(
    category="transport",
    priority=9.0,
    base_offset=P("Height of the noise band at the bottom (image height = 2).", range=(0.0, 1.0)),
    max_dynamic_offset=P("How far the image floats up and down (image height = 2).", range=(0.0, 1.0)),
    speed=P("How fast the image floats.", range=(1.0, 16.0)),
    double_size=P("Draw the noise at half resolution for chunkier grain."),
)
def analog_vhstracking(
    image: torch.Tensor,
    *,
    base_offset: float = 0.03,
    max_dynamic_offset: float = 0.01,
    speed: float = 8.0,
    double_size: bool = True,
    t: float,
    state: FilterState,
) -> torch.Tensor:
    """Bad VHS tracking: the picture floats up and down and a band of tape noise eats into the bottom.

    The band replaces all four channels (it is signal, not picture); it grows when the picture floats up.
    """
    h, w = image.shape[-2:]
    frame = frame_of(t)
    yoffs = max_dynamic_offset * math.sin(2.0 * math.pi * _frac(frame / h * speed))
    out = image
    if yoffs != 0.0:
        grid = identity_grid(h, w, image.device).clone()
        grid[..., 1] += yoffs
        out = sample(image, grid)
    rows = min(h, max(0, int(yoffs / 2.0 * h) + int(base_offset / 2.0 * h)))
    if rows == 0:
        return out
    bucket = math.floor(frame)
    tallest = min(h, int(max_dynamic_offset / 2.0 * h) + int(base_offset / 2.0 * h) + 1)

    def build() -> torch.Tensor:
        gen = state.generator(image.device, "tracking", bucket)
        return vhs_noise(tallest, w, generator=gen, dtype=image.dtype, device=image.device, double_size=double_size)

    noise = state.slot("noise", (bucket, tallest, w, double_size, image.dtype, str(image.device)), build)
    if out is image:
        out = image.clone()
    out[:, :, h - rows :] = noise[:, :, :rows]
    return out


@register(
    category="transport",
    priority=10.0,
    strength=P("Sideways shift of a glitching block (image width = 2); negative shifts left.", range=(-0.1, 0.1)),
    unboost=P("Higher: glitches are rarer and fewer (the count is max * U**unboost).", range=(0.1, 10.0)),
    max_glitches=P("Most shifted blocks in one frame.", range=(1, 10)),
    min_glitch_height=P("Smallest block height in pixels.", range=(1, 20)),
    max_glitch_height=P("Largest block height in pixels.", range=(30, 100)),
    hold_min=P("Shortest time a pattern is held, in 1/25 s.", range=(1, 3)),
    hold_max=P("Longest time a pattern is held, in 1/25 s.", range=(3, 6)),
)
def digital_glitches(
    image: torch.Tensor,
    *,
    strength: float = 0.05,
    unboost: float = 4.0,
    max_glitches: int = 3,
    min_glitch_height: int = 20,
    max_glitch_height: int = 30,
    hold_min: int = 1,
    hold_max: int = 3,
    t: float,
    state: FilterState,
) -> torch.Tensor:
    """Glitchy digital transport: random blocks of lines jump sideways for a moment.

    Use two instances (one with negative ``strength``) for shifts in both directions. Other rows are untouched.
    """
    h, w = image.shape[-2:]
    segment = held_segment(state, frame_of(t), hold_min, hold_max)

    def build() -> tuple[torch.Tensor, torch.Tensor] | None:
        bands = glitch_bands(
            state,
            segment,
            h,
            unboost=unboost,
            max_glitches=max_glitches,
            min_height=min_glitch_height,
            max_height=max_glitch_height,
        )
        if not bands:
            return None
        mask = row_mask(bands, h, torch.float32, image.device)
        # Reading from the left moves the block right for positive strength.
        grid = identity_grid(h, w, image.device) + F.pad((mask * -strength).view(1, h, 1, 1), (0, 1))
        return grid, mask.bool()

    key = (
        segment,
        h,
        w,
        strength,
        unboost,
        max_glitches,
        min_glitch_height,
        max_glitch_height,
        image.dtype,
        str(image.device),
    )
    cached = state.slot("glitch", key, build)
    if cached is None:
        return image
    grid, rows = cached
    return torch.where(rows, sample(image, grid), image)
