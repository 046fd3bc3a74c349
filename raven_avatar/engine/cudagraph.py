"""Capturing a CUDA graph the safe way: warm up on a side stream, then capture in ``thread_local`` mode.

``capture(fn, device)`` runs ``fn`` a few times on a side stream (cuDNN/cuBLAS pick their algorithms, lazy buffers
get allocated), then records one call into a :class:`torch.cuda.CUDAGraph`. ``thread_local`` capture means GPU work
that other threads do meanwhile (the render thread, another avatar) cannot break the capture. ``fn`` must read only
tensors that stay in place (static inputs): replaying the graph re-runs it on whatever those tensors hold then, and
writes into the same output tensors. :class:`Replayer` wraps a function of one tensor that way, graph per shape.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")
logger = logging.getLogger(__name__)


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


class Replayer:
    """``fn(x)`` replayed from CUDA graphs, one per input shape, for a per-frame call that launches many kernels.

    Launching a network's kernels one by one costs the host more time than the GPU needs to run them (the upscaler:
    ~1.9 ms of launches for ~1.0 ms of GPU work at 1024²), so the frame waits for Python. A graph replay is one
    launch. A shape is captured only after it came ``steady`` times in a row (a crop box being dragged changes the
    shape every frame and runs eagerly meanwhile); the ``keep`` most recent shapes keep their graphs. The output of a
    replayed call is the graph's own tensor: the next call overwrites it. If a capture fails, ``fn`` runs eagerly
    from then on (logged once).
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device, *, steady: int = 3,
                 keep: int = 2):  # fmt: skip
        self.fn = fn
        self.device = device
        self.steady = steady
        self.keep = keep
        self.failed = False
        self._graphs: OrderedDict[tuple, tuple[torch.Tensor, torch.cuda.CUDAGraph, torch.Tensor]] = OrderedDict()
        self._last: tuple | None = None
        self._run = 0

    @property
    def captured(self) -> int:
        """How many input shapes have a graph now."""
        return len(self._graphs)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, *key: object) -> torch.Tensor:
        """``fn(x)``; ``key``: anything else the result depends on (a graph is kept per shape and key)."""
        if self.device.type != "cuda" or self.failed or torch.cuda.is_current_stream_capturing():
            return self.fn(x)
        full_key = (tuple(x.shape), x.dtype, x.device, *key)
        entry = self._graphs.get(full_key)
        if entry is None:
            self._run = self._run + 1 if full_key == self._last else 1
            self._last = full_key
            if self._run < self.steady:
                return self.fn(x)
            static = x.clone()
            try:
                graph, out = capture(lambda: self.fn(static), self.device)
            except RuntimeError:
                self.failed = True
                logger.warning("CUDA graph capture of %s failed; it runs without graphs", self.fn, exc_info=True)
                return self.fn(x)
            entry = self._graphs[full_key] = (static, graph, out)
            while len(self._graphs) > self.keep:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(full_key)
        static, graph, out = entry
        static.copy_(x)
        graph.replay()
        return out
