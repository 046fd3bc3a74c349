"""The poser's CPU backends: which one runs the stages, and the cache of their exported models.

Backends: ``pytorch`` (always there; the parity oracle and the fallback), ``onnxruntime`` and ``openvino`` (the
``cpu-fast`` extra). On first use of a backend, the three stages (:mod:`.stages`) are exported from our own THA3
modules (:mod:`.export`), converted to the backend's format and **verified** against PyTorch on the
:func:`~.export.sample_inputs` (max abs difference ≤ :data:`VERIFY_TOLERANCE` per stage output), then cached in
``user_cache_dir()/poser_cpu/<variant>/<backend>/`` with a ``manifest.json`` holding the build key (variant, a
fingerprint of the weights and of the network code, export format and opset, the versions of torch, onnx and the
backend) and the SHA-256 of every file. A build whose key differs from the current one (a library upgrade, other
weights, changed network code) is **rebuilt**; a file that fails its hash is reported and rebuilt. Building shows
a progress bar on a terminal and takes about a minute on two cores, once.

Choosing: ``cpu_backend`` given to :func:`~.poser.load_poser`, else ``$RAVEN_AVATAR_CPU_BACKEND``, else ``auto``.
``auto`` takes the only fast backend installed, or, with both, times the body stage (the one every animated frame
runs) on each and on PyTorch once per machine (CPU model, thread count, library versions) and remembers the
fastest in ``user_cache_dir()/poser_cpu/choice.json``. A backend that is asked for but not installed, or that fails
to build or verify, falls back to PyTorch with a notice. Threads: the cores this process may use
(:func:`~raven_avatar.engine.device.available_cpu_cores`: affinity mask and cgroup quota), unless given.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..device import available_cpu_cores
from ..download import file_sha256, locked
from ..fileio import atomic_write_json
from ..paths import user_cache_dir
from .backends import RUNTIMES, Runtime, StageFn, importable
from .export import EXPORT_FORMAT, OPSET, export_stage, sample_inputs
from .stages import STAGE_NAMES, stage_modules

log = logging.getLogger(__name__)

CPU_BACKENDS = ("pytorch", *RUNTIMES)
CPU_BACKEND_CHOICES = ("auto", *CPU_BACKENDS)
CPU_BACKEND_ENV = "RAVEN_AVATAR_CPU_BACKEND"
#: Largest max abs difference from PyTorch allowed per stage output when a build is verified.
VERIFY_TOLERANCE = 1e-2
INSTALL_HINT = "pip install 'raven-avatar[cpu-fast]'"
_EXPORTER_MODULES = ("onnx", "onnxscript")  # torch.onnx.export(dynamo=True) needs both


class BackendError(RuntimeError):
    """A CPU backend could not be built, verified or loaded."""


def cache_root() -> Path:
    return user_cache_dir() / "poser_cpu"


def installed(backend: str) -> bool:
    """Whether ``backend`` can run here: PyTorch always; a fast one needs its runtime plus the exporter's modules."""
    if backend == "pytorch":
        return True
    return RUNTIMES[backend].available() and all(importable(m) for m in _EXPORTER_MODULES)


def requested_backend(cpu_backend: str | None = None) -> str:
    """The backend asked for: ``cpu_backend``, else ``$RAVEN_AVATAR_CPU_BACKEND``, else ``auto``; validated."""
    spec = (cpu_backend or os.environ.get(CPU_BACKEND_ENV) or "auto").strip().lower()
    if spec not in CPU_BACKEND_CHOICES:
        raise ValueError(f"unknown CPU backend {spec!r}; choose one of {', '.join(CPU_BACKEND_CHOICES)}")
    return spec


class CpuStages:
    """The three stages loaded on one fast CPU backend; :meth:`run` has the same signature as the PyTorch modules."""

    def __init__(self, backend: str, fns: dict[str, StageFn], folder: Path, threads: int):
        self.backend, self.folder, self.threads = backend, folder, threads
        self._fns = fns

    def run(self, stage: str, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        arrays = [t.detach().to("cpu", torch.float32).contiguous().numpy() for t in inputs]
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in self._fns[stage](arrays))


# -- the cache ------------------------------------------------------------------------------------------------------


def _weights_fingerprint(model: nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def _code_fingerprint() -> str:
    """SHA-256 over the source of the modules that define the exported graphs: an edit there invalidates builds."""
    from . import blocks, export, fused, model, networks, stages

    h = hashlib.sha256()
    for module in (blocks, fused, networks, model, stages, export):  # fused: UpsampleCat's PyTorch path is exported
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


def _versions(runtime: Runtime) -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "onnx": str(importlib.import_module("onnx").__version__),
        runtime.name: runtime.version(),
    }


def build_key(model: nn.Module, variant: str, runtime: Runtime) -> dict[str, object]:
    """What a cached build must match to be used."""
    return {
        "format": EXPORT_FORMAT,
        "opset": OPSET,
        "variant": variant,
        "backend": runtime.name,
        "weights": _weights_fingerprint(model),
        "code": _code_fingerprint(),
        "versions": _versions(runtime),
    }


def _read_manifest(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _stale_reason(folder: Path, runtime: Runtime, key: dict[str, object]) -> str | None:
    """Why the build in ``folder`` cannot be used (None: it can)."""
    manifest = _read_manifest(folder)
    if manifest is None:
        return "not built yet" if not folder.exists() else f"{folder / 'manifest.json'} is missing or unreadable"
    old = manifest.get("key", {})
    changed = [k for k in key if old.get(k) != key[k]]
    if changed:
        if "versions" in changed:
            was, now = old.get("versions", {}), key["versions"]
            return "library versions changed: " + ", ".join(
                f"{lib} {was.get(lib)} → {v}"
                for lib, v in now.items()
                if was.get(lib) != v  # type: ignore[union-attr]
            )
        return f"{', '.join(changed)} changed"
    hashes = manifest.get("files", {})
    for stage in STAGE_NAMES:
        for name in runtime.files(stage):
            path = folder / name
            if not path.is_file():
                return f"{path} is missing"
            if file_sha256(path) != hashes.get(name):
                return f"{path} does not match its SHA-256 in the manifest (corrupt or modified)"
    return None


def _build(model: nn.Module, runtime: Runtime, folder: Path, key: dict[str, object], progress: bool) -> None:
    from tqdm.auto import tqdm

    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    samples = sample_inputs(model)
    bar = tqdm(STAGE_NAMES, desc=f"THA3 for {runtime.name}", unit="stage", disable=None if progress else True,
               leave=False)  # fmt: skip
    started = time.monotonic()
    for stage in bar:
        bar.set_postfix_str(stage)
        exported = tmp / f"{stage}.export.onnx"
        export_stage(model, stage, samples[stage], exported)
        runtime.build(exported, tmp, stage)
    bar.close()
    _verify(model, runtime, tmp, samples)
    files = {name: file_sha256(tmp / name) for stage in STAGE_NAMES for name in runtime.files(stage)}
    atomic_write_json(tmp / "manifest.json", {"key": key, "files": files, "built": time.strftime("%Y-%m-%d %H:%M")})
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    log.info("built THA3 for %s in %s (%.0f s)", runtime.name, folder, time.monotonic() - started)


def _verify(model: nn.Module, runtime: Runtime, folder: Path, samples: dict[str, tuple[Tensor, ...]]) -> None:
    """Run every built stage on the samples and compare with PyTorch; raise :class:`BackendError` when off."""
    stages = stage_modules(model)
    for stage in STAGE_NAMES:
        with torch.inference_mode():
            expected = stages[stage](*samples[stage])
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = runtime.load(folder, stage, available_cpu_cores())([t.contiguous().numpy() for t in samples[stage]])
        for want, have in zip(expected, got, strict=True):
            diff = float(np.abs(want.numpy() - have).max())
            if not diff <= VERIFY_TOLERANCE:  # also catches NaN
                raise BackendError(
                    f"{runtime.name} build of stage {stage!r} differs from PyTorch by {diff:.3g} (allowed "
                    f"{VERIFY_TOLERANCE}); not using it"
                )


def load_cpu_stages(
    model: nn.Module, variant: str, backend: str, *, threads: int | None = None, progress: bool = True
) -> CpuStages:
    """The stages of ``model`` on ``backend`` (``onnxruntime`` or ``openvino``), built and verified if needed.

    Raises :class:`BackendError` when the backend is not installed or its build fails or does not verify.
    """
    runtime = RUNTIMES.get(backend)
    if runtime is None:
        raise ValueError(f"unknown CPU runtime {backend!r}; choose one of {', '.join(RUNTIMES)}")
    if not installed(backend):
        raise BackendError(f"{backend} is not installed ({INSTALL_HINT})")
    threads = threads or available_cpu_cores()
    folder = cache_root() / variant / runtime.name
    key = build_key(model, variant, runtime)
    with locked(folder.parent / f"{runtime.name}.lock"):
        reason = _stale_reason(folder, runtime, key)
        if reason is not None:
            log.warning("building THA3 for %s (%s): exporting the stages once, about a minute", backend, reason)
            try:
                _build(model, runtime, folder, key, progress)
            except BackendError:
                raise
            except Exception as e:  # the exporter and the runtimes raise all kinds of errors
                raise BackendError(f"could not build THA3 for {backend}: {type(e).__name__}: {e}") from e
        try:
            fns = {stage: runtime.load(folder, stage, threads) for stage in STAGE_NAMES}
        except Exception as e:
            raise BackendError(f"could not load the {backend} build in {folder}: {type(e).__name__}: {e}") from e
    return CpuStages(backend, fns, folder, threads)


# -- choosing -------------------------------------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time_body(fn: Callable[[tuple[Tensor, ...]], object], inputs: tuple[Tensor, ...], runs: int = 3) -> float:
    fn(inputs)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(inputs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def choose_backend(model: nn.Module, variant: str, *, threads: int, progress: bool = True) -> str:
    """``auto``: the fastest backend installed here for ``variant`` on ``threads`` threads (see the module doc)."""
    fast = [b for b in RUNTIMES if installed(b)]
    if not fast:
        log.info("THA3 runs on PyTorch on the CPU; %s makes it about twice as fast", INSTALL_HINT)
        return "pytorch"
    if len(fast) == 1:
        return fast[0]
    machine = " | ".join(
        [_cpu_name(), f"{threads} threads", variant, f"torch {torch.__version__}",
         *(f"{b} {RUNTIMES[b].version()}" for b in fast)]
    )  # fmt: skip
    path = cache_root() / "choice.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    entry = known.get(machine)
    if isinstance(entry, dict) and entry.get("backend") in CPU_BACKENDS and installed(entry["backend"]):
        return entry["backend"]
    log.warning("choosing the fastest CPU backend for THA3 on this machine (once): %s", ", ".join(fast))
    inputs = sample_inputs(model)["body"]
    body = stage_modules(model)["body"]

    def pytorch(x: tuple[Tensor, ...]) -> object:
        with torch.inference_mode():
            return body(*x)

    timings = {"pytorch": _time_body(pytorch, inputs)}
    for backend in fast:
        try:
            stages = load_cpu_stages(model, variant, backend, threads=threads, progress=progress)
        except BackendError as e:
            log.warning("%s", e)
            continue
        timings[backend] = _time_body(lambda x, s=stages: s.run("body", x), inputs)
    best = min(timings, key=timings.__getitem__)
    log.warning("CPU backend for THA3: %s (body stage ms: %s)", best,
                ", ".join(f"{b} {ms:.0f}" for b, ms in timings.items()))  # fmt: skip
    known[machine] = {"backend": best, "body_ms": {b: round(ms, 1) for b, ms in timings.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, known)
    return best


def resolve_cpu_backend(
    model: nn.Module,
    variant: str,
    cpu_backend: str | None = None,
    *,
    threads: int | None = None,
    progress: bool = True,
) -> tuple[CpuStages | None, str | None]:
    """The stages to run on the CPU (None: PyTorch) and a notice when the request could not be met."""  # fmt: skip
    threads = threads or available_cpu_cores()
    spec = requested_backend(cpu_backend)
    backend = choose_backend(model, variant, threads=threads, progress=progress) if spec == "auto" else spec
    if backend == "pytorch":
        return None, None
    try:
        return load_cpu_stages(model, variant, backend, threads=threads, progress=progress), None
    except BackendError as e:
        notice = f"{e}; THA3 runs on PyTorch instead (slower)"
        log.warning(notice)
        return None, notice


__all__ = [
    "CPU_BACKENDS", "CPU_BACKEND_CHOICES", "CPU_BACKEND_ENV", "BackendError", "CpuStages", "choose_backend",
    "installed", "load_cpu_stages", "requested_backend", "resolve_cpu_backend",
]  # fmt: skip
