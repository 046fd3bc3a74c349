"""The raven_avatar engine: posing, animation and frame processing, with no GUI imports.

Everything here runs headless (scripts, servers, tests) on the CPU or a CUDA GPU. The public API (see
``docs/API.md``)::

    from raven_avatar.engine import Avatar
    avatar = Avatar("characters/aria.png", device="auto")
    avatar.start()
    frame = avatar.latest_frame()

Importing this package is cheap: the names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Avatar": "raven_avatar.engine.avatar",
    "resolve_settings": "raven_avatar.engine.avatar",
    "Frame": "raven_avatar.engine.pipeline",
    "Pipeline": "raven_avatar.engine.pipeline",
    "STAGES": "raven_avatar.engine.pipeline",
    "render_still": "raven_avatar.engine.pipeline",
    "pose_batch": "raven_avatar.engine.pipeline",
    "Renderer": "raven_avatar.engine.renderer",
    "RenderGroup": "raven_avatar.engine.group",
    "RenderError": "raven_avatar.engine.renderer",
    "Animator": "raven_avatar.engine.animator",
    "Character": "raven_avatar.engine.character",
    "CharacterError": "raven_avatar.engine.character",
    "load_character": "raven_avatar.engine.character",
    "character_from_images": "raven_avatar.engine.character",
    "load_templates": "raven_avatar.engine.emotions",
    "load_settings": "raven_avatar.engine.settings",
    "load_poser": "raven_avatar.engine.poser",
    "EmotionClassifier": "raven_avatar.engine.emotion_text",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
