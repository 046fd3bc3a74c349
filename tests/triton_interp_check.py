"""Run the Triton InstanceNorm kernels on CPU tensors under Triton's interpreter; print one JSON line per case.

Used by ``tests/test_fused_norm.py`` in a subprocess: ``TRITON_INTERPRET=1`` must be set before Triton is first
imported (its own helpers, such as the reductions' combine functions, are compiled or interpreted from then on).
Each line: shape, dtype, activation code, residual or not, and the max abs difference from ``nn.InstanceNorm2d`` +
the activation (+ the residual) in float32.
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
    from raven_avatar.engine.poser import triton_norm

    gen = torch.Generator().manual_seed(0)
    for shape in SHAPES:
        c = shape[1]
        weight, bias = torch.rand(c, generator=gen) + 0.5, torch.randn(c, generator=gen)
        for dtype in (torch.float32, torch.float16):
            for act in (0, 1, 2):
                for with_residual in (False, True):
                    x = (torch.randn(shape, generator=gen) * 3 + 2).to(dtype)  # an offset mean tests the variance
                    res = torch.randn(shape, generator=gen).to(dtype) if with_residual else None
                    y = triton_norm.instance_norm_act(x, weight.to(dtype), bias.to(dtype), act=act, slope=0.1,
                                                      residual=res)  # fmt: skip
                    ok = y.dtype == dtype and y.shape == x.shape
                    err = float((y.float() - reference(x, weight, bias, act, res)).abs().max())
                    print(json.dumps({"shape": shape, "dtype": str(dtype), "act": act, "residual": with_residual,
                                      "err": err if ok else float("inf")}))  # fmt: skip
    for bad in ("layout", "residual"):
        x = torch.randn(1, 4, 8, 8)
        w = torch.ones(4)
        try:
            if bad == "layout":
                triton_norm.instance_norm_act(x.transpose(2, 3), w, w)
            else:
                triton_norm.instance_norm_act(x, w, w, residual=x[:, :2])
            print(json.dumps({"refused": bad, "error": None}))
        except ValueError as e:
            print(json.dumps({"refused": bad, "error": str(e)}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
