"""Tensor building blocks shared by the filters: separable Gaussian blur, sampling grids, noise, held random patterns.

Everything takes and returns ``(B, C, H, W)`` tensors. Kernels and grids are cached (per size, dtype and device), so
that a filter's hot path only launches GPU work and never copies from the host or waits for the device.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .registry import FilterState

__all__ = [
    "blur_kernel_size",
    "gaussian_blur",
    "identity_grid",
    "sample",
    "with_alpha",
    "channel_mask",
    "uniform_noise",
    "vhs_noise",
    "held_segment",
    "glitch_bands",
    "row_mask",
]


def blur_kernel_size(sigma: float) -> int:
    """Odd Gaussian kernel length by the 2-sigma rule (95% of the mass), at least 3 taps."""
    return max(3, 2 * math.ceil(2.0 * sigma) + 1)


@functools.lru_cache(maxsize=128)
def _gaussian_taps(sigma: float) -> tuple[float, ...]:
    n = blur_kernel_size(sigma)
    k = [math.exp(-0.5 * ((i - (n - 1) / 2) / sigma) ** 2) for i in range(n)]
    return tuple(v / sum(k) for v in k)


@functools.lru_cache(maxsize=128)
def _gaussian_kernel(sigma: float, channels: int, horizontal: bool, dtype: torch.dtype, device: torch.device):
    k = torch.tensor(_gaussian_taps(sigma), dtype=dtype, device=device)
    shape = (1, 1, 1, -1) if horizontal else (1, 1, -1, 1)
    return k.reshape(shape).repeat(channels, 1, 1, 1)


def _use_slices(x: torch.Tensor) -> bool:
    # Eager shifted slices beat convolution on the CPU by ~10x for large images (depthwise conv is slow there);
    # on a GPU one convolution beats a launch per tap.
    return x.device.type == "cpu"


def _blur_axis(x: torch.Tensor, sigma: float, horizontal: bool, border: str) -> torch.Tensor:
    taps = _gaussian_taps(float(sigma))
    r = len(taps) // 2
    if _use_slices(x):
        pad = (r, r, 0, 0) if horizontal else (0, 0, r, r)
        p = F.pad(x, pad, mode="replicate") if border == "replicate" else F.pad(x, pad)
        dim, n = (-1, x.shape[-1]) if horizontal else (-2, x.shape[-2])
        out = p.narrow(dim, 0, n) * taps[0]
        for i in range(1, len(taps)):
            out.add_(p.narrow(dim, i, n), alpha=taps[i])
        return out
    c = x.shape[1]
    k = _gaussian_kernel(float(sigma), c, horizontal, x.dtype, x.device)
    if border == "zeros":
        # Zero padding is done inside the convolution: one kernel launch instead of two.
        return F.conv2d(x, k, padding=(0, r) if horizontal else (r, 0), groups=c)
    pad = (r, r, 0, 0) if horizontal else (0, 0, r, r)
    return F.conv2d(F.pad(x, pad, mode="replicate"), k, groups=c)


def gaussian_blur(
    x: torch.Tensor, sigma_y: float, sigma_x: float | None = None, *, border: str = "replicate"
) -> torch.Tensor:
    """Separable Gaussian blur of every channel of ``(B, C, H, W)``; an axis with sigma <= 0 is left alone.

    ``border`` is ``"replicate"`` (edges extend, no darkening) or ``"zeros"`` (light falls off the edge, which is
    right for glows and cheaper).
    """
    sigma_x = sigma_y if sigma_x is None else sigma_x
    if sigma_x > 0:
        x = _blur_axis(x, sigma_x, True, border)
    if sigma_y > 0:
        x = _blur_axis(x, sigma_y, False, border)
    return x


@functools.lru_cache(maxsize=32)
def identity_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """``(1, H, W, 2)`` float32 sampling grid of pixel centres in [-1, 1], for ``grid_sample(align_corners=False)``.

    float32 whatever the image dtype: fp16 coordinates are quantised to about a quarter pixel at 1024 px, which
    makes sub-pixel warps (chromatic aberration, hsync ripple) jitter.
    """
    ys = (torch.arange(h, dtype=torch.float32, device=device) * 2 + 1) / h - 1
    xs = (torch.arange(w, dtype=torch.float32, device=device) * 2 + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1).unsqueeze(0)


def sample(image: torch.Tensor, grid: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Bilinear ``grid_sample`` with a float32 grid, returning the image dtype.

    ``grid`` is ``(1 or B, H, W, 2)``; a batch of one is shared by the whole image batch.
    """
    b = image.shape[0]
    if grid.shape[0] != b:
        grid = grid.expand(b, -1, -1, -1)
    out = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode=padding, align_corners=False)
    return out.to(image.dtype)


def with_alpha(rgb: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """New RGBA from ``rgb`` and the alpha channel of ``image``."""
    return torch.cat((rgb, image[:, 3:]), dim=1)


@functools.lru_cache(maxsize=64)
def channel_mask(values: tuple[float, float, float, float], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Cached ``(1, 4, 1, 1)`` per-channel constant, e.g. ``(1, 1, 1, 0)`` to select RGB."""
    return torch.tensor(values, dtype=dtype, device=device).view(1, 4, 1, 1)


def uniform_noise(
    h: int,
    w: int,
    *,
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device,
    sigma: float = 0.0,
    horizontal_only: bool = False,
    double_size: bool = False,
) -> torch.Tensor:
    """``(1, 1, H, W)`` uniform [0, 1) noise, optionally blurred (isotropic or horizontal) and doubled in size.

    ``double_size`` draws at half resolution and repeats each value 2x2: chunkier grain, a quarter of the work.
    """
    gh, gw = ((h + 1) // 2, (w + 1) // 2) if double_size else (h, w)
    noise = torch.rand((1, 1, gh, gw), generator=generator, dtype=dtype, device=device)
    if sigma > 0:
        noise = gaussian_blur(noise, 0.0 if horizontal_only else sigma, sigma)
    if double_size:
        noise = noise.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2)[..., :h, :w]
    return noise


def vhs_noise(
    h: int,
    w: int,
    *,
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device,
    mode: str = "PAL",
    ntsc_chroma: str = "nearest",
    double_size: bool = False,
) -> torch.Tensor:
    """Blank-tape noise: horizontal runs with soft transitions, as a helical-scan VCR shows them.

    Returns ``(1, 1, H, W)`` luma in [0, 1] for ``"PAL"``, whose phase alternation cancels chroma errors, or
    ``(1, 3, H, W)`` Y, U, V for ``"NTSC"``, with U and V in [-0.5, 0.5] at 4:2:0 and a wider horizontal blur
    (VHS chroma has about a sixth of the luma bandwidth); ``ntsc_chroma`` picks ``"nearest"`` (blocky) or
    ``"bilinear"`` (smooth) chroma reconstruction.
    """
    gh, gw = ((h + 1) // 2, (w + 1) // 2) if double_size else (h, w)
    y = gaussian_blur(torch.rand((1, 1, gh, gw), generator=generator, dtype=dtype, device=device), 0.0, 2.0)
    if mode == "NTSC":
        ch, cw = (gh + 1) // 2, (gw + 1) // 2
        uv = gaussian_blur(torch.rand((1, 2, ch, cw), generator=generator, dtype=dtype, device=device), 0.0, 4.0)
        if ntsc_chroma == "bilinear":
            uv = F.interpolate(uv, size=(gh, gw), mode="bilinear", align_corners=False)
        else:
            uv = uv.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2)[..., :gh, :gw]
        y = torch.cat((y, uv - 0.5), dim=1)
    if double_size:
        y = y.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2)[..., :h, :w]
    return y


def _unit(state: FilterState, *parts: object) -> float:
    """A deterministic uniform [0, 1) number from the instance key and ``parts`` (host-side, no device work)."""
    return (state.seed(*parts) % (1 << 53)) / float(1 << 53)


_EPOCH = 64  # normalised frames; held patterns restart at epoch boundaries so any time resolves in bounded work


def held_segment(state: FilterState, frame: float, hold_min: int, hold_max: int) -> tuple[int, int]:
    """Which randomly held pattern is showing at normalised ``frame``: a ``(epoch, index)`` pair.

    Patterns are held for a random whole number of frames in ``[hold_min, hold_max]``. The segmentation is a pure
    function of time (seeded per epoch of 64 frames), so equal times give equal patterns at any frame rate and after
    seeking; the walk inside an epoch is cached, so per-frame cost stays O(1).
    """
    f = math.floor(frame)
    epoch = f // _EPOCH
    cursor = state.slot("held", (epoch, hold_min, hold_max), lambda: [0, epoch * _EPOCH])
    index, start = cursor
    if f < start:  # time went backwards inside the epoch: walk again from its start
        index, start = 0, epoch * _EPOCH
    while True:
        length = hold_min + int(_unit(state, "hold", epoch, index) * (hold_max - hold_min + 1))
        if f < start + length or start + length >= (epoch + 1) * _EPOCH:
            break
        index, start = index + 1, start + length
    cursor[0], cursor[1] = index, start
    return epoch, index


def glitch_bands(
    state: FilterState,
    segment: tuple[int, int],
    h: int,
    *,
    unboost: float,
    max_glitches: int,
    min_height: int,
    max_height: int,
) -> list[tuple[int, int]]:
    """Random bands of rows ``[(start, stop), ...]`` for one held segment: ``int(max * U**unboost)`` of them."""
    n = int(max_glitches * _unit(state, "n", *segment) ** unboost)
    span = max(1, h - (max_height - 1))
    bands = []
    for i in range(n):
        start = int(span * _unit(state, "start", *segment, i))
        height = int(min_height + (max_height - min_height) * _unit(state, "height", *segment, i))
        bands.append((start, min(h, start + max(1, height))))
    return bands


def row_mask(bands: Sequence[tuple[int, int]], h: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(1, 1, H, 1)`` mask, 1 on the rows of ``bands`` and 0 elsewhere (fills on the device, no host copy)."""
    mask = torch.zeros((1, 1, h, 1), dtype=dtype, device=device)
    for start, stop in bands:
        mask[:, :, start:stop] = 1
    return mask
