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


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
