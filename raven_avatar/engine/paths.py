"""Where things live: user data and cache directories, and the shipped assets.

User-writable state never goes inside the installed package. ``RAVEN_AVATAR_DATA_DIR`` and
``RAVEN_AVATAR_CACHE_DIR`` override the platform defaults (tests and portable installs use them).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

APP_NAME = "raven-avatar"


def _platform_dir(kind: str) -> Path:
    import platformdirs

    return Path(getattr(platformdirs, f"user_{kind}_dir")(APP_NAME, appauthor=False))


def user_data_dir() -> Path:
    """Edited emotion templates, settings and presets."""
    env = os.environ.get("RAVEN_AVATAR_DATA_DIR")
    return Path(env) if env else _platform_dir("data")


def user_cache_dir() -> Path:
    """Downloaded and derived model files; safe to delete."""
    env = os.environ.get("RAVEN_AVATAR_CACHE_DIR")
    return Path(env) if env else _platform_dir("cache")


def asset_path(*parts: str) -> Path:
    """A file or folder shipped in ``raven_avatar/assets`` (works from a wheel or a checkout)."""
    return Path(str(resources.files("raven_avatar").joinpath("assets", *parts)))
