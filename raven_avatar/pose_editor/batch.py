"""Batch export: one posed sprite per emotion, plus the templates, so other tools (and this app) load them back.

Writes into the output folder, for every emotion: ``<emotion>.png`` (512×512 RGBA, sRGB) and ``<emotion>.json``
(``{emotion: {"pose", "cels"}}``), then ``_emotions.json`` with every template (cels as a dict, so both this app's
template loader and the engine read it). Format ``sheet`` adds ``_sheet.png`` (all sprites in a near-square grid,
or ``sheet_columns`` wide) and its atlas ``_sheet.json`` (``atlas``: emotion -> cell rectangle; ``names``: the
emotion of each frame, in order; see :func:`~raven_avatar.engine.export.write_sprite_sheet`); ``apng`` and ``gif``
add each emotion's idle loop (:mod:`raven_avatar.pose_editor.loops`). Each emotion fails on its own: the rest go
on, and the result lists what failed and why. A ``cancel`` event stops between batches.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from raven_avatar.engine.character import Character
from raven_avatar.engine.emotions import EmotionTemplate, save_emotions_file
from raven_avatar.engine.export import encode_png, to_srgb8, write_sprite_sheet
from raven_avatar.engine.fileio import atomic_path
from raven_avatar.engine.wording import plural
from raven_avatar.pose_editor.render import EditorRenderer

log = logging.getLogger(__name__)

FORMATS = ("png", "sheet", "apng", "gif")
#: Sprites posed per THA3 call; batching cuts the CPU time per sprite (and GPU launch overhead).
BATCH_SIZE = 4


@dataclass
class BatchResult:
    """What a batch export wrote, what failed (emotion or file, reason), and whether it was cancelled."""

    folder: Path
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False
    total: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled

    def summary(self) -> str:
        done = sum(1 for p in self.written if p.suffix == ".png" and not p.name.startswith("_"))
        lines = [f"{done} of {plural(self.total, 'emotion')} exported to {self.folder}"]
        if self.cancelled:
            lines.append("cancelled before the end")
        lines.extend(f"failed: {name}: {reason}" for name, reason in self.failed)
        return "\n".join(lines)


def _write_bytes(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def _write_json(path: Path, data: object) -> Path:
    return _write_bytes(path, (json.dumps(data, indent=4) + "\n").encode("utf-8"))


def batch_export(
    renderer: EditorRenderer,
    character: Character,
    templates: Mapping[str, EmotionTemplate],
    folder: str | Path,
    *,
    formats: Sequence[str] = ("png",),
    output_index: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
    batch_size: int = BATCH_SIZE,
    sheet_columns: int | None = None,
) -> BatchResult:
    """Export every template in ``templates`` (name order) for ``character`` into ``folder``; see the module doc.

    ``progress(done, total, name)`` is called after each emotion. ``sheet_columns``: the sprite sheet's width in
    sprites (default: a near-square grid). Never raises for one emotion's failure; a folder that cannot be created
    is reported as a failure of every emotion.
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown export format(s) {', '.join(sorted(unknown))}; choose from {', '.join(FORMATS)}")
    folder = Path(folder)
    names = sorted(templates)
    result = BatchResult(folder, total=len(names))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        result.failed = [(n, f"cannot create {folder}: {e.strerror or e}") for n in names]
        return result
    sprites: dict[str, np.ndarray] = {}
    done = 0
    for start in range(0, len(names), max(1, batch_size)):
        if cancel is not None and cancel.is_set():
            result.cancelled = True
            break
        chunk = names[start : start + batch_size]
        try:
            images = renderer.render_many(
                character,
                [templates[n].pose_vector() for n in chunk],
                [templates[n].cels for n in chunk],
                output_index,
            )
        except Exception as e:  # a render failure fails this chunk only; say why and go on
            log.exception("batch export: rendering %s failed", ", ".join(chunk))
            result.failed.extend((n, f"render failed: {type(e).__name__}: {e}") for n in chunk)
            done += len(chunk)
            continue
        for name, image in zip(chunk, images, strict=True):
            try:
                rgba = to_srgb8(image)
                result.written.append(_write_bytes(folder / f"{name}.png", encode_png(rgba)))
                result.written.append(_write_json(folder / f"{name}.json", {name: templates[name].to_json()}))
                sprites[name] = rgba
            except (OSError, ValueError) as e:
                result.failed.append((name, f"cannot write into {folder}: {e}"))
            done += 1
            if progress is not None:
                progress(done, len(names), name)
    exported = [templates[n] for n in names if n in sprites]
    try:
        if exported:
            result.written.append(save_emotions_file(exported, folder / "_emotions.json"))
        if "sheet" in formats and sprites:
            order = [n for n in names if n in sprites]
            sheet = write_sprite_sheet(
                [sprites[n] for n in order], folder / "_sheet.png", columns=sheet_columns, names=order
            )
            result.written += [sheet, sheet.with_suffix(".json")]
    except (OSError, ValueError) as e:
        result.failed.append(("_emotions.json / sprite sheet", str(e)))
    loop_formats = [f for f in formats if f in ("apng", "gif")]
    if loop_formats and not result.cancelled:
        from raven_avatar.pose_editor.loops import export_loops

        chosen = {n: templates[n] for n in names if n in sprites}
        written, failed = export_loops(
            renderer, character, chosen, folder, loop_formats, progress=progress, cancel=cancel
        )
        result.written.extend(written)
        result.failed.extend(failed)
        result.cancelled = cancel is not None and cancel.is_set()
    return result
