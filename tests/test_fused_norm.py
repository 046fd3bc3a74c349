"""The fused InstanceNorm + activation kernels (Triton) and where they are used.

CI has no GPU: the kernels run on CPU tensors through Triton's interpreter (``TRITON_INTERPRET=1``) and are compared
with ``nn.InstanceNorm2d`` + the activation; the module rewrite is checked on the CPU through its PyTorch path; and
the CPU poser must never reach for Triton. ``scripts/cuda_checks.py`` and ``scripts/bench_norm.py`` check the same
on a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from raven_avatar.engine.poser import fused
from raven_avatar.engine.poser.blocks import (
    ResizeEncoderDecoder,
    ResizeUNet,
    ResnetBlock,
    conv_block,
    down_block,
    transposed_up_block,
)  # fmt: skip
from raven_avatar.engine.poser.networks import EyebrowDecomposer

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed (the `test` extra has it on Linux)")


@pytest.fixture(scope="module")
def interpreted_cases() -> list[dict]:
    """The kernels run under Triton's interpreter in a subprocess (the mode is fixed when Triton is imported)."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    script = Path(__file__).with_name("triton_interp_check.py")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


@needs_triton
def test_kernel_matches_instance_norm_and_activation(interpreted_cases):
    cases = [c for c in interpreted_cases if c.get("op") == "instance_norm_act"]
    # every shape (both kernel paths) x fp32/fp16 x none/ReLU/LeakyReLU x with/without a residual
    assert len(cases) == 5 * 2 * 3 * 2
    for case in cases:
        tol = 8e-3 if case["dtype"] == "torch.float16" else 2e-5  # fp16: half a step of outputs up to ~16
        assert case["err"] < tol, case


@needs_triton
def test_depthwise_transposed_conv_and_upsample_kernels_match_pytorch(interpreted_cases):
    ups = [c for c in interpreted_cases if c.get("op") == "depthwise_up2x"]
    copies = [c for c in interpreted_cases if c.get("op") == "upsample2x_cat"]
    assert len(ups) == 4 and len(copies) == 8  # 2 shapes (odd and even sizes) x 2 dtypes (x with/without a skip)
    for case in ups:
        assert case["err"] < (1e-2 if case["dtype"] == "torch.float16" else 1e-5), case
    for case in copies:
        assert case["err"] == 0.0, case  # a copy: exact


@needs_triton
def test_kernel_refuses_what_it_cannot_index(interpreted_cases):
    refused = {c["refused"]: c["error"] for c in interpreted_cases if "refused" in c}
    assert "contiguous" in refused["layout"] and "residual" in refused["residual"]


def test_fused_blocks_equal_the_plain_ones_on_the_cpu():
    """The rewrite keeps every block's function (PyTorch path; merged heads included) and the weight-file keys."""
    torch.manual_seed(0)
    blocks = nn.Sequential(
        conv_block(4, 8, 3, separable=True, leaky=True),
        down_block(8, 16, separable=True, leaky=False),
        ResnetBlock(16, separable=True, leaky=True),
        transposed_up_block(16, 8, separable=True, leaky=True),
    )
    small = {"start": 8, "bottleneck_size": 16, "num_bottleneck": 2, "max_channels": 32, "separable": True}
    models = (
        (blocks, torch.randn(2, 4, 32, 32)),
        (EyebrowDecomposer(separable=True), torch.randn(1, 4, 128, 128)),  # transposed-conv decoder
        (ResizeEncoderDecoder(64, 4, **small), torch.randn(1, 4, 64, 64)),  # the rotator's nn.Upsample decoder
        (ResizeUNet(64, 4, **small), torch.randn(2, 4, 64, 64)),  # the editor's upsample + skip decoder
    )
    for model, x in models:
        for m in model.modules():  # non-trivial affine weights
            if isinstance(m, nn.InstanceNorm2d):
                nn.init.uniform_(m.weight, 0.5, 1.5)
                nn.init.normal_(m.bias)
        keys = set(model.state_dict())
        with torch.inference_mode():
            want = model(x)
            n_norms = sum(isinstance(m, nn.InstanceNorm2d) for m in model.modules())
            n_ups = sum(isinstance(m, (nn.ConvTranspose2d, nn.Upsample, fused.UpsampleCat)) for m in model.modules())
            n_heads = sum(bool(getattr(m, "HEADS", ())) for m in model.modules())  # merged sibling heads
            assert fused.fuse(model) == n_norms + n_ups + n_heads
            replaced = (nn.InstanceNorm2d, nn.ReLU, nn.LeakyReLU, nn.ConvTranspose2d, nn.Upsample)
            assert not any(isinstance(m, replaced) for m in model.modules())
            assert all(m.triton for m in model.modules() if isinstance(m, fused.UpsampleCat))
            got = model(x)
        assert set(model.state_dict()) == keys
        for a, b in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,),
                        strict=True):  # fmt: skip
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_cpu_poser_never_tries_triton(cpu_poser, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the CPU path reached for Triton")

    monkeypatch.setattr(fused, "triton_kernels", forbidden)
    monkeypatch.setattr(fused, "kernels_work", forbidden)
    assert cpu_poser.triton_modules == 0
    assert not any(isinstance(m, fused.NormAct) for m in cpu_poser.model.modules())
    session = cpu_poser.session()
    out = session.pose(torch.rand(4, 512, 512), torch.rand(45))
    assert out.shape == (1, 4, 512, 512) and torch.isfinite(out).all()
    # A fused module given CPU tensors (a model moved back to the CPU after a GPU OOM) runs PyTorch's ops.
    norm = fused.NormAct(torch.ones(3), torch.zeros(3), act=fused.ACT_RELU)
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(norm(x), torch.relu(nn.functional.instance_norm(x)))


def test_triton_needs_cuda_and_can_be_turned_off(cpu_poser, monkeypatch):
    from raven_avatar.engine.poser import Poser

    with pytest.raises(ValueError, match="CUDA"):
        Poser(cpu_poser.model, variant="separable_float", device=torch.device("cpu"), dtype=torch.float32,
              triton=True)  # fmt: skip
    monkeypatch.setenv(fused.TRITON_ENV, "0")
    fused.triton_kernels.cache_clear()
    try:
        assert not fused.triton_available()
    finally:
        monkeypatch.delenv(fused.TRITON_ENV)
        fused.triton_kernels.cache_clear()
    assert fused.triton_available() == HAS_TRITON
