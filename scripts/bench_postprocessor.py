"""Benchmark the postprocessor: each filter and the default chain, at several sizes, on CUDA fp16 and CPU fp32.

Prints a markdown table of median milliseconds per frame. On CUDA the time is measured with CUDA events around
each call after a warm-up, so it is GPU time including launch gaps, without host syncs inside the timed region.

Usage: ``python scripts/bench_postprocessor.py [--sizes 512 1024] [--filters bloom scanlines] [--cpu-iters 3]``
(``scripts/bench.py postprocessor`` takes the same options).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from raven_avatar.engine.postprocessor import DEFAULT_CHAIN, Postprocessor, filters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import add_device_arguments, median_ms, run_standalone, test_frame  # noqa: E402

logger = logging.getLogger(__name__)

DEFAULT_CHAIN_LABEL = "default chain"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``postprocessor`` benchmark."""
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 768, 1024], help="square frame sizes")
    parser.add_argument("--filters", nargs="+", default=None, help="filters to time (default: all)")
    parser.add_argument("--no-filters", action="store_true", help="time only the default chain")
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Time every case and print the table."""
    names = [] if args.no_filters else (args.filters or [s.name for s in filters()])
    cases = [(n, Postprocessor([[n, {}]])) for n in names] + [(DEFAULT_CHAIN_LABEL, None)]
    devices = []
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append((torch.device("cuda"), torch.float16, args.cuda_iters))
    if not args.no_cpu:
        devices.append((torch.device("cpu"), torch.float32, args.cpu_iters))
    if not devices:
        logger.error("nothing to time: CUDA is not available and --no-cpu was given")
        return
    columns = [(dev, dtype, size) for dev, dtype, _ in devices for size in args.sizes]
    header = [f"{dev.type} {str(dtype).removeprefix('torch.')} {size}²" for dev, dtype, size in columns]
    results: dict[str, list[str]] = {name: [] for name, _ in cases}
    with torch.inference_mode():
        for dev, dtype, iters in devices:
            for size in args.sizes:
                image = test_frame(size, dev, dtype)
                for name, pp in cases:
                    pp = pp if pp is not None else Postprocessor(DEFAULT_CHAIN)
                    ms = median_ms(lambda i, pp=pp, image=image: pp(image, i / 60.0), dev, iters=iters, warmup=10)
                    results[name].append(f"{ms:.3f}")
                    logger.info("%s %s %d: %.3f ms", dev.type, name, size, ms)
    device_name = torch.cuda.get_device_name() if any(d.type == "cuda" for d, *_ in devices) else "CPU only"
    print(f"Postprocessor, median ms per frame ({device_name}; torch {torch.__version__})\n")
    print("| filter | " + " | ".join(header) + " |")
    print("|---|" + "---:|" * len(header))
    for name, _ in cases:
        print(f"| {name} | " + " | ".join(results[name]) + " |")


if __name__ == "__main__":
    run_standalone(__doc__, add_arguments, run)
