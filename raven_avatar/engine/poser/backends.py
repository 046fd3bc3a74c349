"""CPU runtimes for the exported poser stages: ONNX Runtime and OpenVINO, behind one small interface.

A :class:`Runtime` turns a stage's exported ONNX file into its own on-disk format (:meth:`Runtime.build`), and loads
that into a callable running on NumPy arrays (:meth:`Runtime.load`) with a given number of threads. Both are
optional dependencies (the ``cpu-fast`` extra); :meth:`Runtime.available` says whether one can be imported.
Building, caching and choosing between them is :mod:`.cpu_backend`'s job.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

StageFn = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


def importable(module: str) -> bool:
    """Whether ``module`` can be imported here (optional dependencies)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


class Runtime:
    """One CPU inference library. Subclasses name the Python module and implement :meth:`build` and :meth:`load`."""

    name = ""
    module = ""

    def available(self) -> bool:
        """Whether the library can be imported here."""
        return importable(self.module)

    def version(self) -> str:
        return str(importlib.import_module(self.module).__version__)

    def files(self, stage: str) -> tuple[str, ...]:
        """Names of the files :meth:`build` writes for ``stage``."""
        raise NotImplementedError

    def build(self, onnx_file: Path, folder: Path, stage: str) -> None:
        """Turn ``onnx_file`` (consumed) into :meth:`files` ``(stage)`` inside ``folder``."""
        raise NotImplementedError

    def load(self, folder: Path, stage: str, threads: int) -> StageFn:
        """A function from the stage's inputs (float32, C-contiguous) to its outputs."""
        raise NotImplementedError


class OnnxRuntime(Runtime):
    name, module = "onnxruntime", "onnxruntime"

    def files(self, stage: str) -> tuple[str, ...]:
        return (f"{stage}.onnx",)

    def build(self, onnx_file: Path, folder: Path, stage: str) -> None:
        os.replace(onnx_file, folder / f"{stage}.onnx")

    def load(self, folder: Path, stage: str, threads: int) -> StageFn:
        ort = importlib.import_module(self.module)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Each stage has its own session and thread pool: spinning threads of one would starve the next one.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(folder / f"{stage}.onnx"), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run(inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
            return session.run(None, dict(zip(names, inputs, strict=True)))

        return run


class OpenVino(Runtime):
    name, module = "openvino", "openvino"

    def files(self, stage: str) -> tuple[str, ...]:
        return (f"{stage}.xml", f"{stage}.bin")

    def build(self, onnx_file: Path, folder: Path, stage: str) -> None:
        ov = importlib.import_module(self.module)
        model = ov.convert_model(str(onnx_file))
        ov.save_model(model, str(folder / f"{stage}.xml"), compress_to_fp16=False)  # keep float32 weights
        onnx_file.unlink()

    def load(self, folder: Path, stage: str, threads: int) -> StageFn:
        ov = importlib.import_module(self.module)
        config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": threads,
            # f32, not the bf16 that CPUs with AMX default to: bf16 moves the final image by up to 34/255.
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "CACHE_DIR": str(folder / "compiled"),  # OpenVINO keys its compiled blobs by its own version
        }
        compiled = ov.Core().compile_model(str(folder / f"{stage}.xml"), "CPU", config)
        request = compiled.create_infer_request()
        outputs = compiled.outputs

        def run(inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
            result = request.infer(list(inputs))  # copies its outputs: the next call may reuse the request
            return [result[o] for o in outputs]

        return run


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (OnnxRuntime(), OpenVino())}

__all__ = ["RUNTIMES", "importable", "OnnxRuntime", "OpenVino", "Runtime", "StageFn"]
