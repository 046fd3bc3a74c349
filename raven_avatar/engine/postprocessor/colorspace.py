"""Colour-space helpers for linear-light images: BT.709 luminance and YUV, exact sRGB transfer functions.

Tensors are ``(..., C, H, W)`` with the colour channels at dim -3. ``C`` is 3 (RGB) or 4 (RGBA); alpha, when
present, passes through unchanged. The postprocessor works in linear light, so ``luminance`` is true relative
luminance (not gamma-encoded luma), and the YUV here is "linear BT.709 YUV" with U, V in [-0.5, 0.5].

Example:
    >>> img = torch.rand(4, 8, 8)
    >>> torch.allclose(yuv_to_rgb(rgb_to_yuv(img)), img, atol=1e-5)
    True
"""

from __future__ import annotations

import functools

import torch

__all__ = [
    "KR",
    "KG",
    "KB",
    "luminance",
    "rgb_to_yuv",
    "yuv_to_rgb",
    "srgb_to_linear",
    "linear_to_srgb",
    "rgb_matrix",
    "color_mix",
]

# BT.709 luminance weights.
KR, KG, KB = 0.2126, 0.7152, 0.0722
_U_SCALE = 2.0 * (1.0 - KB)  # 1.8556: B - Y spans [-0.9278, 0.9278] -> U in [-0.5, 0.5]
_V_SCALE = 2.0 * (1.0 - KR)  # 1.5748

_RGB_TO_YUV = (
    (KR, KG, KB),
    (-KR / _U_SCALE, -KG / _U_SCALE, (1.0 - KB) / _U_SCALE),
    ((1.0 - KR) / _V_SCALE, -KG / _V_SCALE, -KB / _V_SCALE),
)
_YUV_TO_RGB = (
    (1.0, 0.0, _V_SCALE),
    (1.0, -KB * _U_SCALE / KG, -KR * _V_SCALE / KG),
    (1.0, _U_SCALE, 0.0),
)


@functools.lru_cache(maxsize=64)
def rgb_matrix(which: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A cached colour matrix ``(out, 3)`` on ``device``.

    ``which`` is ``"yuv"`` (RGB -> YUV), ``"rgb"`` (YUV -> RGB), ``"y"`` (RGB -> luminance), ``"uv"`` (RGB -> U, V)
    or ``"uv_to_rgb"`` (U, V -> the RGB change they make). Cached so that the hot path never builds a tensor from
    the host.
    """
    rows = {
        "yuv": _RGB_TO_YUV,
        "rgb": _YUV_TO_RGB,
        "y": _RGB_TO_YUV[:1],
        "uv": _RGB_TO_YUV[1:],
        "uv_to_rgb": tuple(row[1:] for row in _YUV_TO_RGB),
    }[which]
    return torch.tensor(rows, dtype=dtype, device=device)


def color_mix(x: torch.Tensor, which: str) -> torch.Tensor:
    """Apply colour matrix ``which`` (see :func:`rgb_matrix`) to the leading channels of ``(B, C, H, W)``.

    An einsum (a batched matmul) rather than a 1x1 convolution: the convolution is ~100x slower on the CPU.
    """
    m = rgb_matrix(which, x.dtype, x.device)
    return torch.einsum("oc,bchw->bohw", m, x[:, : m.shape[1]])


def _apply_matrix(x: torch.Tensor, which: str) -> torch.Tensor:
    """Multiply the first three channels by a 3x3 colour matrix, keeping any alpha channel."""
    if x.shape[-3] not in (3, 4):
        raise ValueError(f"expected 3 or 4 channels at dim -3, got shape {tuple(x.shape)}")
    batch_shape = x.shape[:-3]
    x4 = x.reshape(-1, *x.shape[-3:])
    out = color_mix(x4, which)
    if x4.shape[1] == 4:
        out = torch.cat((out, x4[:, 3:]), dim=1)
    return out.reshape(*batch_shape, *out.shape[-3:])


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Relative luminance Y of linear RGB(A), shape ``(..., 1, H, W)``."""
    batch_shape = rgb.shape[:-3]
    x4 = rgb.reshape(-1, *rgb.shape[-3:])
    y = color_mix(x4, "y")
    return y.reshape(*batch_shape, *y.shape[-3:])


def rgb_to_yuv(rgb: torch.Tensor) -> torch.Tensor:
    """Linear RGB(A) -> BT.709 YUV(A): Y in [0, 1], U and V in [-0.5, 0.5]."""
    return _apply_matrix(rgb, "yuv")


def yuv_to_rgb(yuv: torch.Tensor) -> torch.Tensor:
    """BT.709 YUV(A) -> linear RGB(A). Not clamped: out-of-gamut YUV gives RGB outside [0, 1]."""
    return _apply_matrix(yuv, "rgb")


def _split_alpha(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    if x.ndim >= 3 and x.shape[-3] == 4:
        return x[..., :3, :, :], x[..., 3:, :, :]
    return x, None


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Exact sRGB decoding (IEC 61966-2-1) of RGB(A) in [0, 1]; alpha is linear already and passes through."""
    rgb, alpha = _split_alpha(x)
    rgb = rgb.clamp(0.0, 1.0)
    out = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return out if alpha is None else torch.cat((out, alpha), dim=-3)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Exact sRGB encoding (IEC 61966-2-1) of linear RGB(A) in [0, 1]; alpha passes through."""
    rgb, alpha = _split_alpha(x)
    rgb = rgb.clamp(0.0, 1.0)
    out = torch.where(rgb <= 0.0031308, rgb * 12.92, 1.055 * rgb ** (1.0 / 2.4) - 0.055)
    return out if alpha is None else torch.cat((out, alpha), dim=-3)
