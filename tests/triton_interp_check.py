"""Run our Triton kernels on CPU tensors under Triton's interpreter; print one JSON line per case.

Used by ``tests/test_fused_norm.py`` in a subprocess: ``TRITON_INTERPRET=1`` must be set before Triton is first
imported (its own helpers, such as the reductions' combine functions, are compiled or interpreted from then on).
Each line: the op, shape, dtype (and for the norm: activation code, residual or not) and the max abs difference from
PyTorch's ops in float32 (``nn.InstanceNorm2d`` + the activation (+ the residual), ``conv_transpose2d``,
``interpolate`` + ``cat``).
"""

from __future__ import annotations

import json
import os
import sys

import torch
from torch import nn

#: Planes on both sides of the one-program limit (4096), non-powers of two, one not a whole number of chunks.
SHAPES = [(1, 6, 16, 16), (2, 3, 24, 24), (1, 2, 64, 64), (2, 2, 96, 96), (1, 3, 72, 60)]


def reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, act: int, residual: torch.Tensor | None):
    norm = nn.InstanceNorm2d(x.shape[1], affine=True)
    with torch.no_grad():
        norm.weight.copy_(weight)
        norm.bias.copy_(bias)
        y = norm(x.float())
    y = (y, torch.relu(y), nn.functional.leaky_relu(y, 0.1))[act]
    return y if residual is None else y + residual.float()


def main() -> None:
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("run with TRITON_INTERPRET=1")
    from raven_avatar.engine.poser import triton_ops

    gen = torch.Generator().manual_seed(0)
    for shape in SHAPES:
        c = shape[1]
        weight, bias = torch.rand(c, generator=gen) + 0.5, torch.randn(c, generator=gen)
        for dtype in (torch.float32, torch.float16):
            for act in (0, 1, 2):
                for with_residual in (False, True):
                    x = (torch.randn(shape, generator=gen) * 3 + 2).to(dtype)  # an offset mean tests the variance
                    res = torch.randn(shape, generator=gen).to(dtype) if with_residual else None
                    y = triton_ops.instance_norm_act(x, weight.to(dtype), bias.to(dtype), act=act, slope=0.1,
                                                     residual=res)  # fmt: skip
                    ok = y.dtype == dtype and y.shape == x.shape
                    err = float((y.float() - reference(x, weight, bias, act, res)).abs().max())
                    case = {"op": "instance_norm_act", "shape": shape, "dtype": str(dtype), "act": act}
                    print(json.dumps({**case, "residual": with_residual, "err": err if ok else float("inf")}))
    for shape in ((1, 3, 5, 7), (2, 4, 16, 16)):
        for dtype in (torch.float32, torch.float16):
            x = torch.randn(shape, generator=gen).to(dtype)
            k = torch.randn(shape[1], 1, 4, 4, generator=gen).to(dtype)
            y = triton_ops.depthwise_up2x(x, k)
            want = nn.functional.conv_transpose2d(x.float(), k.float(), stride=2, padding=1, groups=shape[1])
            err = float((y.float() - want).abs().max()) if y.shape == want.shape and y.dtype == dtype else float("inf")
            print(json.dumps({"op": "depthwise_up2x", "shape": shape, "dtype": str(dtype), "err": err}))
            for skip_channels in (0, 2):
                skip = torch.randn(shape[0], skip_channels, 2 * shape[2], 2 * shape[3], generator=gen).to(dtype)
                y = triton_ops.upsample2x_cat(x, skip if skip_channels else None)
                want = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
                want = torch.cat([want, skip], dim=1) if skip_channels else want
                err = float((y - want).abs().max()) if y.shape == want.shape and y.dtype == dtype else float("inf")
                print(json.dumps({"op": "upsample2x_cat", "shape": shape, "dtype": str(dtype), "skip": skip_channels,
                                  "err": err}))  # fmt: skip
    for bad in ("layout", "residual"):
        x = torch.randn(1, 4, 8, 8)
        w = torch.ones(4)
        try:
            if bad == "layout":
                triton_ops.instance_norm_act(x.transpose(2, 3), w, w)
            else:
                triton_ops.instance_norm_act(x, w, w, residual=x[:, :2])
            print(json.dumps({"refused": bad, "error": None}))
        except ValueError as e:
            print(json.dumps({"refused": bad, "error": str(e)}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
