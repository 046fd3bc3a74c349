"""Benchmark the upscaler: every mode, RGBA 512² -> 1024² by default, on CUDA fp16 and CPU fp32.

CUDA columns: NCHW eager, channels_last eager, and channels_last replayed from a captured CUDA graph (which also
proves the call is graph-capturable). Times are medians of CUDA-event intervals after a warm-up, no host syncs in
the timed region. The CPU column is a median of a few wall-clock runs. Prints a markdown table.

Usage: ``python scripts/bench_upscaler.py [--size 512] [--factor 2.0] [--cuda-iters 200] [--cpu-iters 3]``
(``scripts/bench.py upscaler`` takes the same options).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from raven_avatar.engine.upscaler import Upscaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import add_device_arguments, cuda_graphed, median_ms, run_standalone, test_frame  # noqa: E402

logger = logging.getLogger(__name__)

#: (row label, Upscaler keyword arguments)
CASES = [
    ("bilinear", {"mode": "bilinear"}),
    ("bicubic", {"mode": "bicubic"}),
    ("lanczos", {"mode": "lanczos"}),
    ("anime4k C high", {"mode": "anime4k", "preset": "C", "quality": "high"}),
    ("anime4k C low", {"mode": "anime4k", "preset": "C", "quality": "low"}),
    ("anime4k A high", {"mode": "anime4k", "preset": "A", "quality": "high"}),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``upscaler`` benchmark."""
    parser.add_argument("--size", type=int, default=512, help="square input size (default 512)")
    parser.add_argument("--factor", type=float, default=2.0, help="upscale factor, 1.0-2.0 (default 2.0)")
    parser.add_argument("--rgb", action="store_true", help="time 3-channel frames instead of RGBA")
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Time every case and print the table."""
    channels = 3 if args.rgb else 4
    columns = []  # (header, device, dtype, channels_last, graph, iters)
    if torch.cuda.is_available() and not args.no_cuda:
        cuda = torch.device("cuda")
        columns += [
            ("cuda fp16 NCHW", cuda, torch.float16, False, False, args.cuda_iters),
            ("cuda fp16 channels_last", cuda, torch.float16, True, False, args.cuda_iters),
            ("cuda fp16 channels_last + graph", cuda, torch.float16, True, True, args.cuda_iters),
        ]
    if not args.no_cpu:
        columns.append(("cpu fp32", torch.device("cpu"), torch.float32, False, False, args.cpu_iters))
    results: dict[str, list[str]] = {label: [] for label, _ in CASES}
    notes: dict[str, str] = {}
    for header, device, dtype, channels_last, graph, iters in columns:
        image = test_frame(args.size, device, dtype, channels)
        for label, kwargs in CASES:
            up = Upscaler(factor=args.factor, device=device, dtype=dtype, channels_last=channels_last, **kwargs)
            notes[label] = up.notice or up.description
            fn = cuda_graphed(lambda up=up, image=image: up(image)) if graph else (lambda up=up, image=image: up(image))
            ms = median_ms(lambda i, fn=fn: fn(), device, iters=iters, warmup=10)
            results[label].append(f"{ms:.3f}")
            logger.info("%s %s: %.3f ms", header, label, ms)
    device_name = torch.cuda.get_device_name() if any(c[1].type == "cuda" for c in columns) else "CPU only"
    out = round(args.size * args.factor)
    kind = "RGB" if args.rgb else "RGBA"
    print(f"Upscaler, {kind} {args.size}² -> {out}², median ms per frame ({device_name}; torch {torch.__version__})\n")
    print("| mode | " + " | ".join(c[0] for c in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for label, _ in CASES:
        print(f"| {label} | " + " | ".join(results[label]) + " |")
    print()
    for label, _ in CASES:
        print(f"- {label}: {notes[label]}")


if __name__ == "__main__":
    run_standalone(__doc__, add_arguments, run)
