"""Triton kernels: InstanceNorm (statistics + affine) fused with the activation and an optional residual add.

PyTorch runs ``InstanceNorm2d`` as a batch norm over a (1, B·C, H, W) view: a statistics kernel, a transform kernel
and two copies that repeat the affine weights B times, then a separate kernel for the activation. These kernels do
the same in one pass over the data for small planes, two for large ones:

- planes of at most :data:`ROW_BLOCK` elements: one program per (sample, channel) plane holds it in registers,
  computes mean and variance (two-pass, exact), normalises, applies ``weight``/``bias``, the activation and the
  residual, and stores;
- larger planes: a statistics kernel writes a mean and M2 per chunk of :data:`CHUNK` elements, then the apply kernel,
  one program per chunk, merges its plane's chunks (Chan's parallel formula) and transforms its chunk. The second read
  mostly hits L2 (the largest THA3 plane set, 32 × 512² fp16, is 16 MB).

Statistics and arithmetic run in float32 whatever the tensor dtype; the result is stored in the input's dtype. Input
and residual must be contiguous NCHW. Kernels compile on first use per shape class; the launches need no host
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


__all__ = ["CHUNK", "ROW_BLOCK", "instance_norm_act"]
