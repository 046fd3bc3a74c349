"""THA3's hot spots on CUDA as Triton kernels (:mod:`.triton_ops`), swapped into a loaded model by :func:`fuse`.

:func:`fuse` rewrites a model in place, keeping its state-dict keys (the new modules share the old ones' weights):

- every ``InstanceNorm2d`` followed by its ``ReLU`` / ``LeakyReLU`` becomes one :class:`NormAct` (the activation's
  slot becomes ``Identity``); the last norm of a resnet block also takes the block's residual add
  (see :class:`~.blocks.ResnetBlock`);
- every depthwise 4×4 stride-2 ``ConvTranspose2d`` (the separable decoders) becomes a :class:`DepthwiseUp2x`;
- every :class:`UpsampleCat` (nearest 2× upsampling, with the editor's skip concatenation) and every
  ``nn.Upsample(scale_factor=2)`` of the rotator's decoder is switched to its kernel;
- each network's sibling output heads run as one :class:`MergedHeads` conv (cuDNN, not Triton: one call and one
  NCHW→NHWC conversion of the feature map instead of one per head).

These modules run the Triton kernels only on contiguous CUDA tensors when Triton imports; everything else (the CPU,
a channels-last tensor, a model moved back to the CPU after running out of GPU memory) goes through PyTorch's own
ops, with the same result up to rounding. The poser fuses only on CUDA, and only when :func:`kernels_work`
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
#: Activation codes of :func:`.triton_ops.instance_norm_act`.
ACT_NONE, ACT_RELU, ACT_LEAKY = 0, 1, 2


@functools.cache
def triton_kernels() -> ModuleType | None:
    """The kernel module, or None when Triton is missing, broken or turned off by ``$RAVEN_AVATAR_TRITON=0``."""
    if os.environ.get(TRITON_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        from . import triton_ops
    except Exception as e:  # noqa: BLE001 - any import failure means: no Triton here
        log.info("Triton kernels unavailable (%s: %s); THA3 runs on PyTorch's ops", type(e).__name__, e)
        return None
    return triton_ops


def triton_available() -> bool:
    """Whether the fused Triton kernels can be used (Triton imports and is not turned off)."""
    return triton_kernels() is not None


def _agree(name: str, got: Tensor, want: Tensor, dtype: torch.dtype) -> None:
    err = float((got.float() - want.float()).abs().max()) if got.shape == want.shape else float("inf")
    if not err <= (1e-2 if dtype == torch.float16 else 1e-4):
        raise RuntimeError(f"{name}: max abs difference {err:.3g} from PyTorch")


@functools.cache
def kernels_work(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the kernels compile and agree with PyTorch on ``device`` in ``dtype`` (each kernel, both norm paths, a
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
            _agree("instance_norm_act", got, want, dtype)
        x = torch.randn(2, 3, 6, 5, generator=gen).to(device, dtype)
        k = torch.randn(3, 1, 4, 4, generator=gen).to(device, dtype)
        want = F.conv_transpose2d(x.float(), k.float(), stride=2, padding=1, groups=3)
        _agree("depthwise_up2x", kernels.depthwise_up2x(x, k), want, dtype)
        skip = torch.randn(2, 2, 12, 10, generator=gen).to(device, dtype)
        _agree("upsample2x_cat", kernels.upsample2x_cat(x, skip), UpsampleCat()._torch(x, skip), dtype)
    except Exception as e:  # noqa: BLE001 - whatever breaks (compiler, driver, wrong result): do not use them
        log.warning("Triton kernels unusable on %s (%s: %s); THA3 runs on PyTorch's ops", device, type(e).__name__, e)
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


class DepthwiseUp2x(nn.Module):
    """A depthwise 4×4 stride-2 padding-1 transposed conv (doubles the resolution); Triton on CUDA."""

    def __init__(self, weight: Tensor):
        super().__init__()
        self.weight = weight

    def forward(self, x: Tensor) -> Tensor:
        kernels = triton_kernels() if x.is_cuda else None
        if kernels is not None and x.is_contiguous():
            return kernels.depthwise_up2x(x, self.weight)
        return F.conv_transpose2d(x, self.weight, stride=2, padding=1, groups=x.shape[1])


class UpsampleCat(nn.Module):
    """Nearest 2× upsampling, concatenated with ``skip`` along the channels when given.

    Plain PyTorch ops until :func:`fuse` sets :attr:`triton`; then one kernel on contiguous CUDA tensors.
    """

    def __init__(self) -> None:
        super().__init__()
        self.triton = False

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        kernels = triton_kernels() if self.triton and x.is_cuda else None
        if kernels is not None and x.is_contiguous() and (skip is None or skip.is_contiguous()):
            return kernels.upsample2x_cat(x, skip)
        return self._torch(x, skip)

    @staticmethod
    def _torch(x: Tensor, skip: Tensor | None) -> Tensor:
        up = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return up if skip is None else torch.cat([up, skip], dim=1)


class MergedHeads(nn.Module):
    """Sibling output heads (3×3 conv + optional tanh/sigmoid) reading one feature map, as one conv split back.

    The concatenated weights are non-persistent buffers: they follow ``.to()`` and stay out of the state dict.
    """

    def __init__(self, heads: list[nn.Module]):
        super().__init__()
        convs = [h[0] if isinstance(h, nn.Sequential) else h for h in heads]
        self.finals = [h[1] if isinstance(h, nn.Sequential) else None for h in heads]  # plain list: not submodules
        self.sizes = [c.out_channels for c in convs]
        w = convs[0].weight
        bias = [c.bias if c.bias is not None else w.new_zeros(c.out_channels) for c in convs]
        self.register_buffer("weight", torch.cat([c.weight.detach() for c in convs]), persistent=False)
        self.register_buffer("bias", torch.cat([b.detach() for b in bias]), persistent=False)

    @staticmethod
    def mergeable(heads: list[nn.Module]) -> bool:
        convs = [h[0] if isinstance(h, nn.Sequential) else h for h in heads]
        return len(convs) > 1 and all(
            isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1)
            and c.groups == 1 and c.dilation == (1, 1) and c.padding_mode == "zeros"
            and c.in_channels == convs[0].in_channels for c in convs
        )  # fmt: skip

    def forward(self, f: Tensor) -> tuple[Tensor, ...]:
        y = F.conv2d(f, self.weight, self.bias, padding=1)
        return tuple(o if final is None else final(o) for o, final in zip(y.split(self.sizes, dim=1), self.finals,
                                                                            strict=True))  # fmt: skip


def _is_depthwise_up2x(m: nn.Module) -> bool:
    return (isinstance(m, nn.ConvTranspose2d) and m.groups == m.in_channels == m.out_channels and m.bias is None
            and m.kernel_size == (4, 4) and m.stride == (2, 2) and m.padding == (1, 1)
            and m.output_padding == (0, 0) and m.dilation == (1, 1))  # fmt: skip


def fuse(model: nn.Module) -> int:
    """Swap ``model``'s norms, depthwise transposed convs and 2× upsamplings for the Triton-backed modules, in place
    (see the module docstring); returns how many modules now run on Triton kernels."""
    count = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        layers = list(seq)
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.InstanceNorm2d) and layer.affine and not layer.track_running_stats:
                nxt = layers[i + 1] if i + 1 < len(layers) else None
                activation = nxt if isinstance(nxt, (nn.ReLU, nn.LeakyReLU)) else None
                seq[i] = NormAct.replacing(layer, activation)
                if activation is not None:
                    seq[i + 1] = nn.Identity()
            elif _is_depthwise_up2x(layer):
                seq[i] = DepthwiseUp2x(layer.weight)
            elif isinstance(layer, nn.Upsample) and layer.scale_factor in (2, 2.0) and layer.mode == "nearest":
                seq[i] = UpsampleCat()
                seq[i].triton = True
            else:
                continue
            count += 1
    for m in list(model.modules()):
        if isinstance(m, UpsampleCat) and not m.triton:
            m.triton = True
            count += 1
        names = getattr(m, "HEADS", ())  # the networks' sibling output heads (networks._WithHeads)
        if (
            names
            and getattr(m, "merged_heads", False) is None
            and MergedHeads.mergeable([getattr(m, n) for n in names])
        ):
            m.merged_heads = MergedHeads([getattr(m, n) for n in names])
            count += 1
    return count


__all__ = [
    "ACT_LEAKY", "ACT_NONE", "ACT_RELU", "TRITON_ENV", "DepthwiseUp2x", "MergedHeads", "NormAct", "UpsampleCat",
    "fuse", "kernels_work", "triton_available", "triton_kernels",
]  # fmt: skip
