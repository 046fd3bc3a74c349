"""Building blocks of the THA3 networks: conv blocks (dense or depthwise-separable), encoder-decoders, warping.

The module trees mirror the layout of the official THA3 weight files, so those files load unchanged with
``load_state_dict(strict=True)``. Every block is a plain ``nn.Module`` on tensors; nothing is cached between calls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fused import NormAct, UpsampleCat


def conv(cin: int, cout: int, kernel: int, *, separable: bool, bias: bool = False, stride: int = 1) -> nn.Module:
    """A ``kernel``×``kernel`` convolution; separable = depthwise ``kernel``² then pointwise 1×1."""
    padding = (kernel - 1) // 2 if stride == 1 else 1
    if not separable:
        return nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=bias)
    return nn.Sequential(
        nn.Conv2d(cin, cin, kernel, stride=stride, padding=padding, groups=cin, bias=False),
        nn.Conv2d(cin, cout, 1, bias=bias),
    )


def _flat(*modules: nn.Module) -> list[nn.Module]:
    # A separable conv contributes its two layers directly to the enclosing block (weight-file layout).
    out: list[nn.Module] = []
    for m in modules:
        out.extend(m if isinstance(m, nn.Sequential) else [m])
    return out


def activation(leaky: bool) -> nn.Module:
    """THA3 uses ReLU in the eyebrow/face stages and LeakyReLU(0.1) in the rotator and editor."""
    return nn.LeakyReLU(0.1) if leaky else nn.ReLU()


def conv_block(cin: int, cout: int, kernel: int, *, separable: bool, leaky: bool) -> nn.Sequential:
    """conv → InstanceNorm(affine) → activation."""
    return nn.Sequential(
        *_flat(conv(cin, cout, kernel, separable=separable)), nn.InstanceNorm2d(cout, affine=True), activation(leaky)
    )


def down_block(cin: int, cout: int, *, separable: bool, leaky: bool) -> nn.Sequential:
    """Stride-2 4×4 conv → InstanceNorm → activation: halves the resolution."""
    return nn.Sequential(
        *_flat(conv(cin, cout, 4, separable=separable, stride=2)),
        nn.InstanceNorm2d(cout, affine=True),
        activation(leaky),
    )


def transposed_up_block(cin: int, cout: int, *, separable: bool, leaky: bool) -> nn.Sequential:
    """Stride-2 4×4 transposed conv → InstanceNorm → activation: doubles the resolution."""
    if separable:
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cin, cin, 4, stride=2, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
        ]
    else:
        layers = [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)]
    return nn.Sequential(*layers, nn.InstanceNorm2d(cout, affine=True), activation(leaky))


class ResnetBlock(nn.Module):
    """x + (conv3 → IN → act → conv3 → IN)(x)."""

    def __init__(self, channels: int, *, separable: bool, leaky: bool):
        super().__init__()
        self.resnet_path = nn.Sequential(
            conv(channels, channels, 3, separable=separable),
            nn.InstanceNorm2d(channels, affine=True),
            activation(leaky),
            conv(channels, channels, 3, separable=separable),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        *path, last = self.resnet_path
        y = x
        for layer in path:
            y = layer(y)
        if isinstance(last, NormAct):  # fused (CUDA): the residual add happens inside the norm kernel
            return last(y, residual=x)
        return x + last(y)


def _channels(start: int, image_size: int, size: int, max_channels: int) -> int:
    return min(start * (image_size // size), max_channels)


class PoseEncoderDecoder(nn.Module):
    """Encoder → bottleneck (pose injected as constant channels) → transposed-conv decoder.

    The body of the eyebrow decomposer, eyebrow combiner and face morpher. Returns the full-resolution feature.
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        num_pose: int,
        *,
        start: int = 64,
        bottleneck_size: int,
        num_bottleneck: int = 6,
        max_channels: int = 512,
        separable: bool,
    ):
        super().__init__()
        self.num_pose = num_pose
        self.bottleneck_size = bottleneck_size
        kw = {"separable": separable, "leaky": False}
        self.downsample_blocks = nn.ModuleList([conv_block(in_channels, start, 3, **kw)])
        size, ch = image_size, start
        while size > bottleneck_size:
            size //= 2
            nxt = _channels(start, image_size, size, max_channels)
            self.downsample_blocks.append(down_block(ch, nxt, **kw))
            ch = nxt
        self.bottleneck_blocks = nn.ModuleList([conv_block(ch + num_pose, ch, 3, **kw)])
        self.bottleneck_blocks.extend(ResnetBlock(ch, **kw) for _ in range(num_bottleneck - 1))
        self.upsample_blocks = nn.ModuleList()
        while size < image_size:
            size *= 2
            nxt = _channels(start, image_size, size, max_channels)
            self.upsample_blocks.append(transposed_up_block(ch, nxt, **kw))
            ch = nxt

    def forward(self, image: Tensor, pose: Tensor | None = None) -> Tensor:
        x = image
        for block in self.downsample_blocks:
            x = block(x)
        if self.num_pose:
            n = pose.shape[0]
            x = torch.cat([x, pose.view(n, -1, 1, 1).expand(n, self.num_pose, *x.shape[-2:])], dim=1)
        for block in self.bottleneck_blocks:
            x = block(x)
        for block in self.upsample_blocks:
            x = block(x)
        return x


def resize_encoder(
    image_size: int,
    in_channels: int,
    *,
    start: int,
    stem_kernel: int,
    bottleneck_size: int,
    num_bottleneck: int,
    max_channels: int,
    separable: bool,
) -> tuple[nn.ModuleList, nn.ModuleList, list[int]]:
    """Stem conv → stride-2 blocks doubling the width → resnet bottleneck: the encoder of the rotator and editor.

    Returns the down blocks, the bottleneck blocks and the width at each resolution (full size first).
    """
    kw = {"separable": separable, "leaky": True}
    down = nn.ModuleList([conv_block(in_channels, start, stem_kernel, **kw)])
    widths, size = [start], image_size
    while size > bottleneck_size:
        size //= 2
        widths.append(min(max_channels, widths[-1] * 2))
        # Quirk kept for weight compatibility: the dense variants' encoders were trained with ReLU here.
        down.append(down_block(widths[-2], widths[-1], separable=separable, leaky=separable))
    bottleneck = nn.ModuleList(ResnetBlock(widths[-1], **kw) for _ in range(num_bottleneck))
    return down, bottleneck, widths


class ResizeEncoderDecoder(nn.Module):
    """The resize encoder → nearest-upsample + conv decoder (the body rotator's body)."""

    def __init__(self, image_size: int, in_channels: int, *, start: int, bottleneck_size: int, num_bottleneck: int = 6,
                 max_channels: int = 512, separable: bool):  # fmt: skip
        super().__init__()
        self.downsample_blocks, self.bottleneck_blocks, widths = resize_encoder(
            image_size, in_channels, start=start, stem_kernel=7, bottleneck_size=bottleneck_size,
            num_bottleneck=num_bottleneck, max_channels=max_channels, separable=separable,
        )  # fmt: skip
        up = [(a, b) for a, b in zip(widths[:0:-1], widths[-2::-1], strict=True)]
        self.upsample_blocks = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2), conv_block(a, b, 3, separable=separable, leaky=True))
            for a, b in up
        )

    def forward(self, x: Tensor) -> Tensor:
        for blocks in (self.downsample_blocks, self.bottleneck_blocks, self.upsample_blocks):
            x = x.to(next(blocks.parameters()).dtype)  # a half-precision poser keeps the encoder in float32
            for block in blocks:
                x = block(x)
        return x


class ResizeUNet(nn.Module):
    """The resize encoder → nearest-upsample decoder with skip connections (the editor's body)."""

    def __init__(self, image_size: int, in_channels: int, *, start: int, bottleneck_size: int, num_bottleneck: int = 6,
                 max_channels: int = 512, separable: bool):  # fmt: skip
        super().__init__()
        self.downsample_blocks, self.bottleneck_blocks, widths = resize_encoder(
            image_size, in_channels, start=start, stem_kernel=3, bottleneck_size=bottleneck_size,
            num_bottleneck=num_bottleneck, max_channels=max_channels, separable=separable,
        )  # fmt: skip
        self.upsample_blocks = nn.ModuleList(
            conv_block(a + b, b, 3, separable=separable, leaky=True)
            for a, b in zip(widths[:0:-1], widths[-2::-1], strict=True)
        )
        self.upsample_cat = UpsampleCat()

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for block in self.downsample_blocks:
            x = block(x)
            skips.append(x)
        for block in self.bottleneck_blocks:
            x = block(x)
        for i, block in enumerate(self.upsample_blocks):
            x = block(self.upsample_cat(x, skips[-i - 2]))
        return x


def head(cin: int, cout: int, final: nn.Module | None) -> nn.Module:
    """A dense 3×3 conv with bias producing an output map, followed by tanh/sigmoid when given."""
    layer = nn.Conv2d(cin, cout, 3, padding=1, bias=True)
    return layer if final is None else nn.Sequential(layer, final)


def grid_head(cin: int) -> nn.Conv2d:
    """The 2-channel, bias-free 3×3 conv that predicts a sampling-grid offset."""
    return nn.Conv2d(cin, 2, 3, padding=1, bias=False)


# Identity sampling grids on CUDA by (height, width, device, dtype), shape (1, H, W, 2): on CUDA F.affine_grid runs a
# GEMM with K=3 (up to ~50 µs at 512² on an H200) that gives the same grid every call. Built from the same device
# linspace as affine_grid's base grid, times the identity exactly (no TF32 can round it): its fp32 result bit for bit.
_IDENTITY_GRIDS: dict[tuple, Tensor] = {}


def _identity_grid(n: int, c: int, h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    key = (h, w, device, dtype)
    grid = _IDENTITY_GRIDS.get(key)
    if grid is not None:
        return grid
    if device.type != "cuda" or torch.cuda.is_current_stream_capturing():
        # the CPU (and its exports) keeps the plain op; a graph capture records kernels without running them
        identity = torch.eye(2, 3, device=device, dtype=dtype).expand(n, 2, 3)
        return F.affine_grid(identity, [n, c, h, w], align_corners=False)
    xs = torch.linspace(-1, 1, w, device=device, dtype=dtype) * (w - 1) / w  # affine_grid, align_corners=False
    ys = torch.linspace(-1, 1, h, device=device, dtype=dtype) * (h - 1) / h
    grid = _IDENTITY_GRIDS[key] = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w)], dim=-1)[None]
    return grid


def warp(image: Tensor, grid_change: Tensor) -> Tensor:
    """Resample ``image`` at identity-grid + ``grid_change`` (B,2,H,W), bilinear, border padding.

    Sampling runs in at least float32: a float16 grid has steps of up to 1/1024 of the image width, which moves
    sharp edges by a quarter pixel at random (the reference's ``separable_half`` shows this as edge shimmer).
    """
    n, c, h, w = image.shape
    dtype = torch.promote_types(image.dtype, torch.float32)
    grid = _identity_grid(n, c, h, w, image.device, dtype) + grid_change.permute(0, 2, 3, 1).to(dtype)
    out = F.grid_sample(image.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(image.dtype)


def blend(alpha: Tensor, change: Tensor, image: Tensor) -> Tensor:
    """``change·α + image·(1−α)``: THA3's colour change."""
    return change * alpha + image * (1 - alpha)


def blend_rgb(alpha: Tensor, change: Tensor, image: Tensor) -> Tensor:
    """Colour change on RGB only; ``image``'s alpha is kept."""
    return torch.cat([change[:, :3] * alpha + image[:, :3] * (1 - alpha), image[:, 3:4]], dim=1)
