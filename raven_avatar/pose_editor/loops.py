"""Idle loops: a few seconds of each emotion as the live avatar shows it (breathing, blinking, sway, animefx),
written as APNG or GIF next to the batch-exported sprites.

The animation comes from the engine's :class:`~raven_avatar.engine.animator.Animator` on a simulated clock, so a
loop looks like the settings editor's live view with the default animator settings; frames are posed in batches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from raven_avatar.engine.animator import Animator
from raven_avatar.engine.character import Character
from raven_avatar.engine.compositing import composite_cels
from raven_avatar.engine.emotions import EmotionTemplate
from raven_avatar.engine.export import to_srgb8, write_apng, write_gif
from raven_avatar.pose_editor.render import EditorRenderer

LOOP_FORMATS = {"apng": (".apng", write_apng), "gif": (".gif", write_gif)}
FPS = 12.0
SECONDS = 3.0


def idle_frames(
    renderer: EditorRenderer,
    character: Character,
    templates: Mapping[str, EmotionTemplate],
    emotion: str,
    *,
    fps: float = FPS,
    seconds: float = SECONDS,
    batch_size: int = 4,
    cancel: threading.Event | None = None,
) -> list:
    """The idle animation of ``emotion`` as ``(H, W, 4)`` uint8 sRGB frames (animefx drawn over the posed image)."""
    now = [0.0]
    animator = Animator({}, templates, seed=0, clock=lambda: now[0], emotion=emotion)
    states = []
    for i in range(max(1, round(fps * seconds))):
        now[0] = i / fps
        states.append(animator.advance())
    frames = []
    for start in range(0, len(states), batch_size):
        if cancel is not None and cancel.is_set():
            break
        chunk = states[start : start + batch_size]
        posed = renderer.render_many(character, [s.pose for s in chunk], [s.cels for s in chunk])
        for state, image in zip(chunk, posed, strict=True):
            if state.fx and character.fx_cels:
                image = composite_cels(image, {k: v.to(image) for k, v in character.fx_cels.items()}, state.fx)
            frames.append(to_srgb8(image.to(torch.float32)))
    return frames


def write_loop(frames: list, folder: Path, emotion: str, fmt: str, fps: float = FPS) -> Path:
    """Write one emotion's loop as ``<emotion>.apng`` or ``<emotion>.gif`` (atomic)."""
    suffix, writer = LOOP_FORMATS[fmt]
    return writer(frames, folder / f"{emotion}{suffix}", fps)


def export_loops(
    renderer: EditorRenderer,
    character: Character,
    templates: Mapping[str, EmotionTemplate],
    folder: Path,
    formats: list[str],
    *,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Idle loops of every emotion in the given formats; returns (written files, (emotion, reason) failures)."""
    written: list[Path] = []
    failed: list[tuple[str, str]] = []
    names = sorted(templates)
    for i, name in enumerate(names, start=1):
        if cancel is not None and cancel.is_set():
            break
        try:
            frames = idle_frames(renderer, character, templates, name, cancel=cancel)
            for fmt in formats:
                written.append(write_loop(frames, folder, name, fmt))
        except Exception as e:  # one emotion's failure is reported, the others go on
            failed.append((f"{name} loop", f"{type(e).__name__}: {e}"))
        if progress is not None:
            progress(i, len(names), f"{name} loop")
    return written, failed
