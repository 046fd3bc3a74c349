"""``engine.cudagraph.Replayer``: graph replays equal eager calls, sizes are captured once steady, a function that
cannot be captured keeps working eagerly. The CUDA tests run on a GPU machine (CI has none)."""

from __future__ import annotations

import logging

import pytest
import torch

from raven_avatar.engine.cudagraph import Replayer

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _blur(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1) * 2 + x.sin()


def test_on_the_cpu_it_is_the_function():
    calls = []
    replay = Replayer(lambda x: calls.append(1) or _blur(x), torch.device("cpu"))
    x = torch.rand(1, 2, 8, 8)
    outs = [replay(x) for _ in range(5)]
    assert len(calls) == 5 and replay.captured == 0
    assert all(torch.equal(o, _blur(x)) for o in outs)


@needs_cuda
def test_a_size_is_captured_once_steady_and_replays_equal_eager_calls():
    dev = torch.device("cuda")
    replay = Replayer(_blur, dev, steady=3, keep=2)
    gen = torch.Generator().manual_seed(0)
    sizes = [8, 8, 8, 8, 8, 12, 8, 12, 12, 12, 12, 16, 16, 16, 8]
    for n in sizes:
        x = torch.rand(1, 2, n, n, generator=gen).to(dev)
        assert torch.equal(replay(x), _blur(x)), n
    # 8 steady from its 3rd call; 12 from its 3rd call in a row; 16 evicts 8 (two kept); the last 8 runs eagerly
    assert replay.captured == 2 and not replay.failed


@needs_cuda
def test_a_function_that_cannot_be_captured_keeps_running_eagerly(caplog):
    dev = torch.device("cuda")
    replay = Replayer(lambda x: x * float(x.sum()), dev, steady=1)  # float(): a host sync, not capturable
    x = torch.rand(4, device=dev)
    with caplog.at_level(logging.WARNING):
        out = replay(x)
    assert replay.failed and "capture" in caplog.text
    assert torch.equal(out, x * float(x.sum()))
    assert torch.equal(replay(x + 1), (x + 1) * float((x + 1).sum()))
