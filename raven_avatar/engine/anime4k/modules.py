"""PyTorch modules rebuilt from parsed Anime4K shader networks (see :mod:`raven_avatar.engine.anime4k.glsl`).

Passes that read the same inputs are merged into one ``Conv2d`` (the shaders split every 8-channel layer into two
4-channel passes because a texture holds 4 lanes). A layer whose output is only ever read through CReLU
(``max(t, 0)`` and ``max(-t, 0)``) is built with weights ``[W; -W]`` and a ReLU, so it directly produces the
``[relu(t), relu(-t)]`` channels its consumers want: one conv + one in-place ReLU per layer, no extra negation.
Texture reads clamp to the edge in mpv, so 3×3 layers pad with edge replication.

Shapes are static and there is no host-side branching on data, so the modules can be captured in a CUDA graph.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .glsl import ClampPass, ConvPass, DepthToSpacePass, LumaMaxPass, Network, PassThroughPass, ShaderError

#: The stage input of a network (the shader's MAIN / HOOKED texture).
_STAGE_INPUT = -1


class Anime4KCNN(nn.Module):
    """One Anime4K CNN (Restore, or Upscale ×2), on RGB in [0,1] as the shaders see it (display-encoded)."""

    def __init__(
        self,
        name: str,
        convs: list[nn.Conv2d],
        inputs: list[tuple[int, ...]],
        relu: list[bool],
        scale: int,
        residual: bool,
    ):
        super().__init__()
        self.name = name
        self.convs = nn.ModuleList(convs)
        self.inputs = inputs
        self.relu = relu
        self.scale = scale
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, H·scale, W·scale), not clamped."""
        feats: list[torch.Tensor] = []
        for conv, inputs, relu in zip(self.convs, self.inputs, self.relu, strict=True):
            srcs = [x if i == _STAGE_INPUT else feats[i] for i in inputs]
            h = srcs[0] if len(srcs) == 1 else torch.cat(srcs, dim=1)
            pad = conv.kernel_size[0] // 2
            if pad:
                h = F.pad(h, (pad, pad, pad, pad), mode="replicate")
            y = conv(h)
            feats.append(torch.relu_(y) if relu else y)
        y = feats[-1]
        if self.scale == 2:
            y = F.pixel_shuffle(y, 2)
            if self.residual:
                y = y + F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        elif self.residual:
            y = y + x
        return y


class ClampHighlights(nn.Module):
    """Anime4K's de-ring: lower each output pixel's luma to the max luma of the input's 5×5 neighbourhood.

    ``stats`` runs on the stage input, ``forward`` on the (upscaled) output, which samples the statistics
    bilinearly like the shader's ``STATSMAX_tex(HOOKED_pos)``.
    """

    def __init__(self, kernel: tuple[int, int], luma: tuple[float, float, float]):
        super().__init__()
        self.kernel = kernel  # (rows, cols)
        self.register_buffer("luma", torch.tensor(luma, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def stats(self, x: torch.Tensor) -> torch.Tensor:
        y = (x * self.luma.to(x.dtype)).sum(dim=1, keepdim=True)
        kh, kw = self.kernel
        return F.max_pool2d(y, (kh, kw), stride=1, padding=(kh // 2, kw // 2)).clamp_min(0.0)

    def forward(self, image: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        if stats.shape[-2:] != image.shape[-2:]:
            stats = F.interpolate(stats, size=image.shape[-2:], mode="bilinear", align_corners=False)
        luma = (image * self.luma.to(image.dtype)).sum(dim=1, keepdim=True)
        return image - (luma - stats).clamp_min(0.0)


def _conv(weight: np.ndarray, bias: np.ndarray) -> nn.Conv2d:
    out_ch, in_ch, k, _ = weight.shape
    conv = nn.Conv2d(in_ch, out_ch, k, padding=0, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight))
        conv.bias.copy_(torch.from_numpy(bias))
    conv.requires_grad_(False)
    return conv


def build_cnn(network: Network) -> Anime4KCNN:
    """Rebuild a Restore/Upscale network. Every pass must be a convolution except an optional final depth-to-space.

    Raises :class:`ShaderError` (file:line) for structures the shaders do not use and we therefore do not support.
    """
    passes = list(network.passes)
    d2s = passes.pop() if passes and isinstance(passes[-1], DepthToSpacePass) else None
    if not passes or not all(isinstance(p, ConvPass) for p in passes):
        bad = next((p for p in passes if not isinstance(p, ConvPass)), None)
        where = bad.source if bad else None
        raise ShaderError(network.path, where.line if where else 0, f"{network.name}: not a CNN network")
    final_pass = d2s or passes[-1]
    stage_tex = final_pass.source.hook
    if final_pass.source.output != stage_tex:
        raise final_pass.source.error(final_pass.source.line, f"last pass must write the hooked texture {stage_tex}")

    # Merge passes with identical inputs and kernel into groups; a texture is (group, lane offset).
    groups: list[list[ConvPass]] = []
    where: dict[str, tuple[int, int]] = {}
    for p in passes:
        sp = p.source
        if sp.output == stage_tex and p is not passes[-1]:
            raise sp.error(sp.line, f"only the last pass may write {stage_tex}")
        key = (tuple(p.inputs), p.radius, p.residual)
        if not groups or (tuple(groups[-1][0].inputs), groups[-1][0].radius, groups[-1][0].residual) != key:
            groups.append([])
        gi = len(groups) - 1
        if sp.output in where:
            raise sp.error(sp.line, f"texture {sp.output!r} written twice")
        where[sp.output] = (gi, 4 * len(groups[gi]))
        groups[gi].append(p)

    # How each group's output is consumed: raw, or through CReLU (then the group itself emits [relu(t), relu(-t)]).
    consumption: dict[int, set[int]] = {}
    for p in passes:
        for inp in p.inputs:
            if inp.texture == stage_tex:
                if inp.sign != 0:
                    raise p.source.error(p.source.line, f"{stage_tex} must be read raw, not through max()")
                continue
            if inp.texture not in where:
                raise p.source.error(p.source.line, f"reads {inp.texture!r} before any pass writes it")
            consumption.setdefault(where[inp.texture][0], set()).add(0 if inp.sign == 0 else 1)
    for gi, kinds in consumption.items():
        if len(kinds) > 1:
            sp = groups[gi][0].source
            raise sp.error(sp.line, "a texture read both raw and through max() is not supported")
    crelu = [consumption.get(gi) == {1} for gi in range(len(groups))]

    convs, group_inputs = [], []
    for gi, g in enumerate(groups):
        first = g[0]
        order: list[int] = []  # group indices (or _STAGE_INPUT) in first-use order: the channel layout of the input
        for inp in first.inputs:
            src = _STAGE_INPUT if inp.texture == stage_tex else where[inp.texture][0]
            if src not in order:
                order.append(src)
        width = {src: 3 if src == _STAGE_INPUT else 4 * len(groups[src]) * (2 if crelu[src] else 1) for src in order}
        base, offset = {}, 0
        for src in order:
            base[src] = offset
            offset += width[src]
        k = 2 * first.radius + 1
        weight = np.zeros((4 * len(g), offset, k, k), dtype=np.float64)
        bias = np.zeros(4 * len(g), dtype=np.float64)
        for pi, p in enumerate(g):
            rows = slice(4 * pi, 4 * pi + 4)
            bias[rows] = p.bias
            for index, dx, dy, w in p.terms:
                inp = p.inputs[index]
                w = np.asarray(w, dtype=np.float64)
                if inp.texture == stage_tex:
                    if np.any(w[:, 3] != 0):
                        raise p.source.error(p.source.line, "weights on the alpha lane of the input are not supported")
                    cols = slice(base[_STAGE_INPUT], base[_STAGE_INPUT] + 3)
                    w = w[:, :3]
                else:
                    src, lane = where[inp.texture]
                    half = 4 * len(groups[src])
                    start = base[src] + lane + (half if inp.sign < 0 else 0)
                    cols = slice(start, start + 4)
                weight[rows, cols, dy + first.radius, dx + first.radius] += w
        if crelu[gi]:
            weight, bias = np.concatenate([weight, -weight]), np.concatenate([bias, -bias])
        convs.append([weight, bias])
        group_inputs.append(tuple(order))

    last = passes[-1]
    for p in passes[:-1]:
        if p.residual is not None:
            raise p.source.error(p.source.line, "a residual is only supported on the network's output pass")
    for residual_of in (last, d2s):
        if residual_of is not None and residual_of.residual not in (None, stage_tex):
            sp = residual_of.source
            raise sp.error(sp.line, f"residual must add the hooked texture {stage_tex}, not {residual_of.residual}")
    last_group = where[last.source.output][0]
    if last_group != len(groups) - 1 or crelu[last_group]:
        raise last.source.error(last.source.line, "the network's output layer must be its last, read raw")
    weight, bias = convs[-1]
    if d2s is None:
        rows = [where[last.source.output][1] + lane for lane in range(3)]  # RGB lanes of the output texture
        scale, residual = 1, last.residual == stage_tex
    else:
        rows = []
        for tex in d2s.channels:
            if tex not in where or where[tex][0] != last_group:
                raise d2s.source.error(d2s.source.line, f"depth-to-space reads {tex!r}, not the last layer's output")
            rows += [where[tex][1] + lane for lane in range(4)]
        scale, residual = 2, d2s.residual == stage_tex
        if last.residual is not None:
            raise last.source.error(last.source.line, "a residual before depth-to-space is not supported")
    convs[-1] = [weight[rows], bias[rows]]
    modules = [_conv(w.astype(np.float32), b.astype(np.float32)) for w, b in convs]
    return Anime4KCNN(network.name, modules, group_inputs, crelu, scale, residual)


def build_clamp_highlights(network: Network) -> ClampHighlights:
    """Rebuild the de-ring network: two 1-D luma-max statistics passes and a clamp pass."""
    stats = [p for p in network.passes if isinstance(p, LumaMaxPass)]
    clamps = [p for p in network.passes if isinstance(p, ClampPass)]
    if len(clamps) != 1 or len(stats) + 1 != len(network.passes) or not stats or stats[0].luma is None:
        line = network.passes[0].source.line if network.passes else 0
        raise ShaderError(network.path, line, f"{network.name}: expected luma statistics passes then one clamp pass")
    rows = max((p.kernel for p in stats if p.axis == "y"), default=1)
    cols = max((p.kernel for p in stats if p.axis == "x"), default=1)
    return ClampHighlights((rows, cols), clamps[0].luma)


def build_network(network: Network) -> nn.Module | None:
    """The module for any network of a shader file; ``None`` for AutoDownscalePre, which we deliberately skip
    (it only matters for mpv's second ×2 stage, and we never compute beyond 2×)."""
    if network.name == "Clamp_Highlights":
        return build_clamp_highlights(network)
    if all(isinstance(p, PassThroughPass) for p in network.passes):
        return None
    return build_cnn(network)
