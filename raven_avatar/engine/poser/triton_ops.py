"""Triton kernels for THA3 on CUDA: InstanceNorm fused with its activation, the depthwise transposed conv, upsample+cat.

:func:`instance_norm_act`: InstanceNorm (statistics + affine) fused with the activation and an optional residual add.

PyTorch runs ``InstanceNorm2d`` as a batch norm over a (1, B·C, H, W) view: a statistics kernel, a transform kernel
and two copies that repeat the affine weights B times, then a separate kernel for the activation. These kernels do
the same in one pass over the data for small planes, two for large ones:

- planes of at most :data:`ROW_BLOCK` elements: one program per (sample, channel) plane holds it in registers,
  computes mean and variance (two-pass, exact), normalises, applies ``weight``/``bias``, the activation and the
  residual, and stores;
- larger planes: a statistics kernel writes a mean and M2 per chunk of :data:`CHUNK` elements, then the apply kernel,
  one program per chunk, merges its plane's chunks (Chan's parallel formula) and transforms its chunk. The second read
  mostly hits L2 (the largest THA3 plane set, 32 × 512² fp16, is 16 MB).

:func:`depthwise_up2x`: the separable decoders' depthwise 4×4 stride-2 transposed conv (cuDNN runs it as a grouped
backward-data kernel at ~50 µs a call in fp16; each output pixel here reads its 2×2 inputs directly).

:func:`upsample2x_cat`: nearest 2× upsampling, written straight into the channel-concatenation with a skip tensor
(the editor's decoder), or alone (the rotator's decoder).

Arithmetic runs in float32 whatever the tensor dtype; results are stored in the input's dtype. Tensors must be
contiguous NCHW. Kernels compile on first use per shape class; the launches need no host
synchronisation, so they can be captured in a CUDA graph. With ``TRITON_INTERPRET=1`` set before this module is
imported, the same code runs on CPU tensors (how CI tests it).
"""

# Compile-time (tl.constexpr) parameters are upper case, Triton's convention.
# ruff: noqa: N803

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

#: Largest plane (H·W) normalised by one program in one pass.
ROW_BLOCK = 4096
#: Elements per program in the two-kernel path.
CHUNK = 4096


@triton.jit
def _activate(y, slope, ACT: tl.constexpr):
    if ACT == 1:
        y = tl.maximum(y, 0.0)
    elif ACT == 2:
        y = tl.where(y >= 0.0, y, y * slope)
    return y


@triton.jit
def _row_kernel(x_ptr, w_ptr, b_ptr, r_ptr, y_ptr, channels, hw, eps, slope,
                BLOCK: tl.constexpr, ACT: tl.constexpr, HAS_RES: tl.constexpr):  # fmt: skip
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    mask = offs < hw
    base = row.to(tl.int64) * hw
    x = tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / hw
    d = tl.where(mask, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(d * d, axis=0) / hw + eps)
    c = row % channels
    scale = tl.load(w_ptr + c).to(tl.float32) * rstd
    y = _activate(d * scale + tl.load(b_ptr + c).to(tl.float32), slope, ACT)
    if HAS_RES:
        y += tl.load(r_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + base + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _stats_kernel(x_ptr, mean_ptr, m2_ptr, hw, n_chunks, CHUNK: tl.constexpr):
    row, chunk = tl.program_id(0), tl.program_id(1)
    offs = chunk * CHUNK + tl.arange(0, CHUNK)
    mask = offs < hw
    x = tl.load(x_ptr + row.to(tl.int64) * hw + offs, mask=mask, other=0.0).to(tl.float32)
    count = tl.minimum(hw - chunk * CHUNK, CHUNK)
    mean = tl.sum(x, axis=0) / count
    d = tl.where(mask, x - mean, 0.0)
    tl.store(mean_ptr + row * n_chunks + chunk, mean)
    tl.store(m2_ptr + row * n_chunks + chunk, tl.sum(d * d, axis=0))


@triton.jit
def _apply_kernel(x_ptr, w_ptr, b_ptr, r_ptr, y_ptr, mean_ptr, m2_ptr, channels, hw, n_chunks, eps, slope,
                  CHUNK: tl.constexpr, NCH: tl.constexpr, ACT: tl.constexpr, HAS_RES: tl.constexpr):  # fmt: skip
    row, chunk = tl.program_id(0), tl.program_id(1)
    k = tl.arange(0, NCH)
    kmask = k < n_chunks
    means = tl.load(mean_ptr + row * n_chunks + k, mask=kmask, other=0.0)
    m2s = tl.load(m2_ptr + row * n_chunks + k, mask=kmask, other=0.0)
    counts = tl.where(kmask, tl.minimum(hw - k * CHUNK, CHUNK), 0).to(tl.float32)
    mean = tl.sum(means * counts, axis=0) / hw
    dm = means - mean
    var = (tl.sum(m2s, axis=0) + tl.sum(counts * dm * dm, axis=0)) / hw
    rstd = 1.0 / tl.sqrt(var + eps)
    c = row % channels
    scale = tl.load(w_ptr + c).to(tl.float32) * rstd
    shift = tl.load(b_ptr + c).to(tl.float32) - mean * scale
    offs = chunk * CHUNK + tl.arange(0, CHUNK)
    mask = offs < hw
    base = row.to(tl.int64) * hw
    x = tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
    y = _activate(x * scale + shift, slope, ACT)
    if HAS_RES:
        y += tl.load(r_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + base + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


def instance_norm_act(
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    *,
    eps: float = 1e-5,
    act: int = 0,
    slope: float = 0.0,
    residual: Tensor | None = None,
) -> Tensor:
    """``act(instance_norm(x) · weight + bias) + residual`` for a contiguous (B, C, H, W) ``x``; a new tensor.

    ``act``: 0 none, 1 ReLU, 2 LeakyReLU with ``slope`` (:data:`.fused.ACT_NONE` ...).
    """
    if x.dim() != 4 or not x.is_contiguous():
        raise ValueError(f"instance_norm_act needs a contiguous (B, C, H, W) tensor, got {tuple(x.shape)}")
    if residual is not None and (residual.shape != x.shape or not residual.is_contiguous()):
        raise ValueError("the residual must be a contiguous tensor of the input's shape")
    n, c, h, w = x.shape
    hw, rows = h * w, n * c
    y = torch.empty_like(x)
    r = x if residual is None else residual  # a valid pointer either way; read only when HAS_RES
    flags = {"ACT": act, "HAS_RES": residual is not None}
    if hw <= ROW_BLOCK:
        block = max(triton.next_power_of_2(hw), 16)
        warps = 4 if block >= 2048 else (2 if block >= 512 else 1)
        _row_kernel[(rows,)](x, weight, bias, r, y, c, hw, eps, slope, BLOCK=block, num_warps=warps, **flags)
        return y
    n_chunks = triton.cdiv(hw, CHUNK)
    means = torch.empty(rows, n_chunks, device=x.device, dtype=torch.float32)
    m2s = torch.empty_like(means)
    _stats_kernel[(rows, n_chunks)](x, means, m2s, hw, n_chunks, CHUNK=CHUNK, num_warps=8)
    _apply_kernel[(rows, n_chunks)](
        x, weight, bias, r, y, means, m2s, c, hw, n_chunks, eps, slope,
        CHUNK=CHUNK, NCH=max(triton.next_power_of_2(n_chunks), 2), num_warps=8, **flags,
    )  # fmt: skip
    return y


@triton.jit
def _dw_up_kernel(x_ptr, w_ptr, y_ptr, channels, h, w, BLOCK: tl.constexpr):
    # out[oy, ox] = sum over the 2x2 inputs that reach it: x[iy, ix] * k[ky, kx] with oy = 2 iy - 1 + ky (k 4x4).
    row, blk = tl.program_id(0), tl.program_id(1)
    ow = 2 * w
    offs = blk * BLOCK + tl.arange(0, BLOCK)
    mask = offs < 4 * h * w
    oy, ox = offs // ow, offs % ow
    py, px = (oy + 1) % 2, (ox + 1) % 2  # the taps ky = py, py + 2 reach rows iy = (oy + 1 - ky) / 2
    iy0, ix0 = (oy + 1 - py) // 2, (ox + 1 - px) // 2
    base = row.to(tl.int64) * h * w
    kbase = w_ptr + (row % channels) * 16
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for dy in tl.static_range(2):
        iy = iy0 - dy
        ky = py + 2 * dy
        for dx in tl.static_range(2):
            ix = ix0 - dx
            kx = px + 2 * dx
            ok = mask & (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
            v = tl.load(x_ptr + base + iy * w + ix, mask=ok, other=0.0).to(tl.float32)
            acc += v * tl.load(kbase + ky * 4 + kx, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row.to(tl.int64) * 4 * h * w + offs, acc.to(y_ptr.dtype.element_ty), mask=mask)


def depthwise_up2x(x: Tensor, weight: Tensor) -> Tensor:
    """``conv_transpose2d(x, weight, stride=2, padding=1, groups=C)`` for a 4×4 depthwise ``weight`` (C, 1, 4, 4):
    (B, C, H, W) → (B, C, 2H, 2W), contiguous NCHW."""
    n, c, h, w = x.shape
    if not x.is_contiguous() or tuple(weight.shape) != (c, 1, 4, 4):
        raise ValueError(f"depthwise_up2x needs a contiguous (B, C, H, W) tensor and (C, 1, 4, 4) weights, got "
                         f"{tuple(x.shape)} and {tuple(weight.shape)}")  # fmt: skip
    y = torch.empty(n, c, 2 * h, 2 * w, device=x.device, dtype=x.dtype)
    block = 1024
    _dw_up_kernel[(n * c, triton.cdiv(4 * h * w, block))](x, weight.contiguous(), y, c, h, w, BLOCK=block, num_warps=4)
    return y


@triton.jit
def _up_cat_kernel(x_ptr, s_ptr, y_ptr, cx, cs, h, w, BLOCK: tl.constexpr):
    # y[:, :cx] = nearest 2x of x; y[:, cx:] = skip (already at 2H x 2W).
    row, blk = tl.program_id(0), tl.program_id(1)
    ct = cx + cs
    n, c = row // ct, row % ct
    ow, plane = 2 * w, 4 * h * w
    offs = blk * BLOCK + tl.arange(0, BLOCK)
    mask = offs < plane
    if c < cx:  # an upsampled channel
        src = (offs // ow // 2) * w + (offs % ow) // 2
        v = tl.load(x_ptr + (n * cx + c).to(tl.int64) * h * w + src, mask=mask)
    else:  # a skip channel: a plain copy
        v = tl.load(s_ptr + (n * cs + c - cx).to(tl.int64) * plane + offs, mask=mask)
    tl.store(y_ptr + row.to(tl.int64) * plane + offs, v, mask=mask)


def upsample2x_cat(x: Tensor, skip: Tensor | None = None) -> Tensor:
    """``cat([interpolate(x, scale_factor=2, mode="nearest"), skip], dim=1)`` (or just the upsample) in one pass."""
    n, cx, h, w = x.shape
    cs = 0 if skip is None else skip.shape[1]
    if not x.is_contiguous() or (
        skip is not None
        and (tuple(skip.shape) != (n, cs, 2 * h, 2 * w) or not skip.is_contiguous() or skip.dtype != x.dtype)
    ):
        raise ValueError("upsample2x_cat needs contiguous NCHW tensors, the skip of the same dtype at twice the size")
    y = torch.empty(n, cx + cs, 2 * h, 2 * w, device=x.device, dtype=x.dtype)
    block = 2048
    _up_cat_kernel[(n * (cx + cs), triton.cdiv(4 * h * w, block))](
        x, x if skip is None else skip, y, cx, cs, h, w, BLOCK=block, num_warps=4
    )
    return y


__all__ = ["CHUNK", "ROW_BLOCK", "depthwise_up2x", "instance_norm_act", "upsample2x_cat"]
