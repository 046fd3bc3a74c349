"""Timing helpers shared by the benchmark scripts: median latency with CUDA events or a host clock."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_ms(fn: Callable[[int], object], device: torch.device, *, iters: int, warmup: int = 3) -> float:
    """Median milliseconds of ``fn(i)`` over ``iters`` runs after ``warmup`` runs.

    On CUDA each run is bracketed by events (device timeline, including launch gaps the host causes); on the CPU by
    ``time.perf_counter``. ``fn`` gets the run index so it can vary its input (fresh poses, fresh images).
    """
    for i in range(warmup):
        fn(-1 - i)
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for i in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(i)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for i in range(iters):
            t0 = time.perf_counter()
            fn(i)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def median_ms_pair(
    a: Callable[[int], object], b: Callable[[int], object], device: torch.device, *, iters: int, warmup: int = 3
) -> tuple[float, float]:
    """Median milliseconds of ``a(i)`` and of ``b(i)``, host clock, the calls alternating (a, b, a, b, ...).

    On a shared machine the load changes over seconds; alternating puts the same share of it on both sides.
    """
    if device.type == "cuda":
        raise ValueError("median_ms_pair times on the host clock; use median_ms on CUDA")
    for i in range(warmup):
        a(-1 - i)
        b(-1 - i)
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(iters):
        for fn, out in ((a, times[0]), (b, times[1])):
            t0 = time.perf_counter()
            fn(i)
            out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def add_device_arguments(parser, *, cuda_iters: int = 200, cpu_iters: int = 3) -> None:
    """The options every benchmark shares: runs per case on each device, and skipping a device."""
    parser.add_argument("--cuda-iters", type=int, default=cuda_iters, help="timed runs per case on CUDA")
    parser.add_argument("--cpu-iters", type=int, default=cpu_iters, help="timed runs per case on the CPU")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU runs")
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA runs")


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def test_frame(size: int, device: torch.device, dtype: torch.dtype, channels: int = 4) -> torch.Tensor:
    """A character-like frame: smooth colours, some highlights, an opaque disc on a transparent background."""
    gen = torch.Generator().manual_seed(0)
    img = torch.rand((1, 4, size // 16, size // 16), generator=gen)
    img = torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    img[:, 3] = ((xs**2 + ys**2) < 0.6).float()
    return img[:, :channels].to(device=device, dtype=dtype)


def cuda_graphed(fn: Callable[[], object]) -> Callable[[], None]:
    """Capture ``fn()`` (which must read only static tensors) in a CUDA graph; returns its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def run_standalone(doc: str | None, add_arguments: Callable, run: Callable) -> None:
    """``main()`` of a benchmark module run as a script: its options, warnings-level logging, run."""
    import argparse
    import logging

    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING)
    run(parser.parse_args())
