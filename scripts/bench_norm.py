"""Benchmark the fused InstanceNorm + activation kernels against PyTorch's ops on THA3's own norm calls (CUDA).

The calls are recorded from one full pose of the real model (shape, activation, residual add of the resnet blocks),
then each implementation runs the whole list on random data of those shapes inside one CUDA graph (as the poser
runs it); the table gives the median ms of that graph and the max abs difference from PyTorch in float32.

Usage: ``python scripts/bench_norm.py [--variant separable_half] [--iters 200]`` or ``bench.py norm``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import cuda_graphed, markdown_table, median_ms, run_standalone  # noqa: E402

from raven_avatar.engine.device import describe  # noqa: E402
from raven_avatar.engine.poser import load_poser  # noqa: E402
from raven_avatar.engine.poser.blocks import ResnetBlock  # noqa: E402
from raven_avatar.engine.poser.fused import NormAct, fuse, triton_kernels  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``norm`` benchmark."""
    parser.add_argument("--variant", default="separable_half", help="THA3 variant (default separable_half)")
    parser.add_argument("--iters", type=int, default=200, help="timed graph replays per case")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")


def recorded_calls(variant: str) -> list[tuple[tuple[int, ...], NormAct, bool]]:
    """(input shape at batch 1, fused module, has residual) of every norm call in one full pose, in call order."""
    poser = load_poser(variant, "cuda", use_cuda_graphs=False, triton=False, progress=False)
    fuse(poser.model)  # NormAct modules; the hook below sees every call with its residual
    residual_norms = {id(m.resnet_path[-1]) for m in poser.model.modules() if isinstance(m, ResnetBlock)}
    calls: list[tuple[tuple[int, ...], NormAct, bool]] = []

    def hook(module: nn.Module, args: tuple) -> None:
        calls.append((tuple(args[0].shape), module, id(module) in residual_norms))

    handles = [m.register_forward_pre_hook(hook) for m in poser.model.modules() if isinstance(m, NormAct)]
    image = torch.rand(4, 512, 512, device="cuda")
    with torch.inference_mode():
        poser.session().pose(image, torch.rand(45))
    for h in handles:
        h.remove()
    return calls


def _case(calls: list, kernels, batch: int, dtype: torch.dtype, iters: int) -> tuple[float, float, float]:
    """(PyTorch ms, Triton ms, max abs difference of Triton from PyTorch in float32) for all calls at ``batch``."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    data = [(torch.randn((batch, *shape[1:]), device="cuda", dtype=dtype, generator=gen) * 2 + 0.5,
             torch.randn((batch, *shape[1:]), device="cuda", dtype=dtype, generator=gen) if res else None)
            for shape, _, res in calls]  # fmt: skip

    def fused() -> None:
        for (x, r), (_, m, _) in zip(data, calls, strict=True):
            kernels.instance_norm_act(x, m.weight, m.bias, eps=m.eps, act=m.act, slope=m.slope, residual=r)

    def pytorch() -> None:
        for (x, r), (_, m, _) in zip(data, calls, strict=True):
            m._torch(x, r)

    worst = 0.0
    with torch.inference_mode():
        for (x, r), (_, m, _) in zip(data, calls, strict=True):
            got = kernels.instance_norm_act(x, m.weight, m.bias, eps=m.eps, act=m.act, slope=m.slope, residual=r)
            want = m._torch(x.float(), None if r is None else r.float())
            worst = max(worst, float((got.float() - want).abs().max()))
        graphs = [cuda_graphed(pytorch), cuda_graphed(fused)]
        times = [median_ms(lambda i, g=g: g(), torch.device("cuda"), iters=iters) for g in graphs]
    return times[0], times[1], worst


def run(args: argparse.Namespace) -> None:
    kernels = triton_kernels()
    if not torch.cuda.is_available() or kernels is None:
        raise SystemExit("bench_norm needs CUDA and Triton")
    calls = recorded_calls(args.variant)
    dtype = torch.float16 if args.variant.endswith("_half") else torch.float32
    rows = []
    for batch in args.batch:
        t_torch, t_triton, worst = _case(calls, kernels, batch, dtype, args.iters)
        elements = sum(batch * torch.Size(s[1:]).numel() for s, _, _ in calls)
        rows.append([describe(torch.device("cuda")), args.variant, batch, len(calls), f"{elements / 1e6:.1f}M",
                     f"{t_torch:.3f}", f"{t_triton:.3f}", f"{t_torch / t_triton:.1f}×", f"{worst:.2e}"])  # fmt: skip
    print(markdown_table(["device", "variant", "batch", "norm calls", "elements", "pytorch ms", "triton ms",
                          "speed-up", "max abs diff vs PyTorch fp32"], rows))  # fmt: skip


if __name__ == "__main__":
    run_standalone(__doc__, add_arguments, run)
