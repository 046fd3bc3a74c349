"""Export of the poser's stages (:mod:`.stages`) from our own THA3 modules to ONNX, for the CPU backends.

Each stage becomes one ONNX graph with a dynamic batch dimension, at opset :data:`OPSET` (``affine_grid`` needs 20).
:func:`sample_inputs` makes the deterministic, character-like inputs that the export traces with and that the cache
verifies each built backend on.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from ..pose import NUM_PARAMS
from .stages import STAGE_INPUTS, STAGE_NAMES, STAGE_OUTPUTS, stage_modules

OPSET = 20
#: Bumped whenever the stage graphs change (a different export invalidates every cached backend build).
EXPORT_FORMAT = 1
_CHATTY_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._dynamo", "torch.fx")
_TRACE_BATCH = 2  # torch.export specialises sizes 0 and 1, so trace with 2 to keep the batch dimension dynamic


def sample_inputs(model: nn.Module, batch: int = 1, seed: int = 0) -> dict[str, tuple[Tensor, ...]]:
    """Inputs of every stage for a smooth synthetic RGBA character and a random pose, computed with ``model``.

    The image is low-frequency colour on an opaque disc over transparency ([-1, 1], THA3's range), so the sampled
    warps and norms behave as on a real character rather than on white noise.
    """
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, 3, 16, 16, generator=gen)
    rgb = nn.functional.interpolate(rgb, size=(512, 512), mode="bilinear", align_corners=False)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 512), torch.linspace(-1, 1, 512), indexing="ij")
    alpha = ((xs**2 + (ys - 0.2) ** 2) < 0.5).float().expand(batch, 1, 512, 512)
    image = torch.cat([rgb, alpha], dim=1) * 2 - 1
    pose = torch.rand(batch, NUM_PARAMS, generator=gen)
    pose[:, 37:44] = pose[:, 37:44] * 2 - 1  # iris rotation, head/neck/body turns are signed
    stages = stage_modules(model)
    with torch.inference_mode():
        eyebrow, background = stages["decompose"](image)
        face_full = stages["face"](image, eyebrow, background, pose)
    return {
        "decompose": (image,),
        "face": (image, eyebrow, background, pose),
        "body": (face_full.clone(), pose),
    }


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_stage(model: nn.Module, name: str, inputs: tuple[Tensor, ...], path: Path) -> None:
    """Write stage ``name`` of ``model`` to ``path`` as one self-contained ONNX file, batch dimension dynamic."""
    if name not in STAGE_NAMES:
        raise ValueError(f"unknown stage {name!r}; choose one of {', '.join(STAGE_NAMES)}")
    module = stage_modules(model)[name].eval()
    args = tuple(t[:1].expand(_TRACE_BATCH, *t.shape[1:]).contiguous() for t in inputs)
    batch = torch.export.Dim("batch", min=1, max=1024)
    # The exporter reports every step on stdout, in INFO logs and in warnings about internals; the cache's own log
    # line says what happens.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet(*_CHATTY_LOGGERS):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(path), dynamo=True, opset_version=OPSET, external_data=False,
            input_names=list(STAGE_INPUTS[name]), output_names=list(STAGE_OUTPUTS[name]),
            dynamic_shapes={arg: {0: batch} for arg in STAGE_INPUTS[name]},
        )  # fmt: skip


__all__ = ["EXPORT_FORMAT", "OPSET", "export_stage", "sample_inputs"]
