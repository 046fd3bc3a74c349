"""Capturing a CUDA graph the safe way: warm up on a side stream, then capture in ``thread_local`` mode.

``capture(fn, device)`` runs ``fn`` a few times on a side stream (cuDNN/cuBLAS pick their algorithms, lazy buffers
get allocated), then records one call into a :class:`torch.cuda.CUDAGraph`. ``thread_local`` capture means GPU work
that other threads do meanwhile (the render thread, another avatar) cannot break the capture. ``fn`` must read only
tensors that stay in place (static inputs): replaying the graph re-runs it on whatever those tensors hold then, and
writes into the same output tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def capture(fn: Callable[[], T], device: torch.device, *, warmup: int = 2) -> tuple[torch.cuda.CUDAGraph, T]:
    """``(graph, outputs)``: ``graph.replay()`` recomputes ``outputs`` in place from ``fn``'s static inputs."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        outputs = fn()
    return graph, outputs
