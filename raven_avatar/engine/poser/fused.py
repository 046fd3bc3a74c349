"""Fused InstanceNorm + activation (+ residual) for THA3 on CUDA, through the Triton kernels of :mod:`.triton_norm`.

:func:`fuse_norm_act` rewrites a loaded model in place: every ``InstanceNorm2d`` followed by its ``ReLU`` /
``LeakyReLU`` becomes one :class:`NormAct` (the activation's slot becomes ``Identity``), sharing the norm's weight
and bias, so the state dict keeps its keys. The last norm of a resnet block also takes the block's residual add
(see :class:`~.blocks.ResnetBlock`).

:class:`NormAct` runs the Triton kernel only on contiguous CUDA tensors when Triton imports; everything else (the
CPU, a channels-last tensor, a model moved back to the CPU after running out of GPU memory) goes through PyTorch's
own ops, with the same result up to rounding. The poser fuses only on CUDA, and only when :func:`triton_available`
(``$RAVEN_AVATAR_TRITON=0`` turns it off).
"""

from __future__ import annotations

import functools
import logging
import os
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

TRITON_ENV = "RAVEN_AVATAR_TRITON"
#: Activation codes of :func:`.triton_norm.instance_norm_act`.
ACT_NONE, ACT_RELU, ACT_LEAKY = 0, 1, 2


@functools.cache
def triton_kernels() -> ModuleType | None:
    """The kernel module, or None when Triton is missing, broken or turned off by ``$RAVEN_AVATAR_TRITON=0``."""
    if os.environ.get(TRITON_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        from . import triton_norm
    except Exception as e:  # noqa: BLE001 - any import failure means: no Triton here
        log.info("Triton kernels unavailable (%s: %s); InstanceNorm runs on PyTorch", type(e).__name__, e)
        return None
    return triton_norm


def triton_available() -> bool:
    """Whether the fused Triton kernels can be used (Triton imports and is not turned off)."""
    return triton_kernels() is not None


@functools.cache
def kernels_work(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the kernels compile and agree with PyTorch on ``device`` in ``dtype`` (both kernel paths, a
    residual, each activation); False, with a warning, when Triton is unusable there (e.g. no compiler)."""
    kernels = triton_kernels()
    if kernels is None:
        return False
    gen = torch.Generator().manual_seed(0)
    try:
        for hw, act in ((16, ACT_RELU), (96, ACT_LEAKY), (8, ACT_NONE)):  # 256 and 9216 elements: both paths
            x = torch.randn(2, 3, hw, hw, generator=gen).to(device, dtype) * 3 + 1
            w, b = torch.rand(3, generator=gen).to(device, dtype) + 0.5, torch.randn(3, generator=gen).to(device, dtype)
            res = torch.randn(2, 3, hw, hw, generator=gen).to(device, dtype) if act == ACT_NONE else None
            got = kernels.instance_norm_act(x, w, b, eps=1e-5, act=act, slope=0.1, residual=res)
            want = NormAct(w, b, act=act, slope=0.1)._torch(x.float(), None if res is None else res.float())
            err = float((got.float() - want).abs().max())
            if not err <= (1e-2 if dtype == torch.float16 else 1e-4):
                raise RuntimeError(f"max abs difference {err:.3g} from PyTorch")
    except Exception as e:  # noqa: BLE001 - whatever breaks (compiler, driver, wrong result): do not use them
        log.warning("Triton InstanceNorm kernels unusable on %s (%s: %s); using PyTorch's", device, type(e).__name__, e)
        return False
    return True


class NormAct(nn.Module):
    """``act(InstanceNorm2d(x)) [+ residual]`` with the norm's affine weights; Triton on CUDA, PyTorch elsewhere."""

    def __init__(self, weight: Tensor, bias: Tensor, *, eps: float = 1e-5, act: int = ACT_NONE, slope: float = 0.0):
        super().__init__()
        self.weight, self.bias, self.eps, self.act, self.slope = weight, bias, eps, act, slope

    @classmethod
    def replacing(cls, norm: nn.InstanceNorm2d, activation: nn.Module | None) -> NormAct:
        """The fused form of ``norm`` followed by ``activation`` (ReLU, LeakyReLU or None), sharing its weights."""
        if isinstance(activation, nn.LeakyReLU):
            return cls(norm.weight, norm.bias, eps=norm.eps, act=ACT_LEAKY, slope=float(activation.negative_slope))
        return cls(norm.weight, norm.bias, eps=norm.eps, act=ACT_NONE if activation is None else ACT_RELU)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        kernels = triton_kernels() if x.is_cuda else None
        if kernels is not None and x.is_contiguous() and (residual is None or residual.is_contiguous()):
            return kernels.instance_norm_act(x, self.weight, self.bias, eps=self.eps, act=self.act, slope=self.slope,
                                             residual=residual)  # fmt: skip
        return self._torch(x, residual)

    def _torch(self, x: Tensor, residual: Tensor | None) -> Tensor:
        y = F.instance_norm(x, weight=self.weight.to(x.dtype), bias=self.bias.to(x.dtype), eps=self.eps)
        if self.act == ACT_RELU:
            y = F.relu(y)
        elif self.act == ACT_LEAKY:
            y = F.leaky_relu(y, self.slope)
        return y if residual is None else residual + y

    def extra_repr(self) -> str:
        act = {ACT_NONE: "none", ACT_RELU: "relu", ACT_LEAKY: f"leaky_relu({self.slope:g})"}[self.act]
        return f"{self.weight.shape[0]}, eps={self.eps:g}, act={act}"


def fuse_norm_act(model: nn.Module) -> int:
    """Replace each affine ``InstanceNorm2d`` (+ the activation after it) inside ``model``'s ``Sequential`` blocks by
    a :class:`NormAct`, in place; returns how many were replaced."""
    count = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        layers = list(seq)
        for i, layer in enumerate(layers):
            if not (isinstance(layer, nn.InstanceNorm2d) and layer.affine) or layer.track_running_stats:
                continue
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            activation = nxt if isinstance(nxt, (nn.ReLU, nn.LeakyReLU)) else None
            seq[i] = NormAct.replacing(layer, activation)
            if activation is not None:
                seq[i + 1] = nn.Identity()
            count += 1
    return count


__all__ = [
    "ACT_LEAKY", "ACT_NONE", "ACT_RELU", "TRITON_ENV", "NormAct", "fuse_norm_act", "kernels_work", "triton_available",
    "triton_kernels",
]  # fmt: skip
