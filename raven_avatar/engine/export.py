"""Writing frames to files: linear tensors to sRGB 8-bit; PNG, APNG, GIF, WebM (VP9 + alpha), PNG sequences with
timing, sprite sheets.

Every writer here is atomic (temporary file, fsync, rename): an interrupted export never leaves a half-written
file where a good one was.
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .fileio import atomic_path
from .postprocessor.colorspace import linear_to_srgb


def to_srgb8(image: torch.Tensor) -> np.ndarray:
    """A linear RGBA image (4, H, W) or (1, 4, H, W) in [0, 1] as an (H, W, 4) uint8 sRGB array."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 4:
        raise ValueError(f"expected an RGBA image (4, H, W), got shape {tuple(image.shape)}")
    srgb = linear_to_srgb(image.detach().float().clamp(0, 1))
    return (srgb * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def encode_png(rgba: np.ndarray, *, compress_level: int = 6) -> bytes:
    """PNG bytes of an (H, W, 4) uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def write_png(rgba: np.ndarray | torch.Tensor, path: str | Path) -> Path:
    """Write an RGBA image atomically; a tensor is taken as linear light (see :func:`to_srgb8`)."""
    array = to_srgb8(rgba) if isinstance(rgba, torch.Tensor) else rgba
    data = encode_png(array)  # encode first: a failure leaves nothing behind
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------------------ animations


def frame_durations(count: int, fps: float, unit_ms: int = 1) -> list[int]:
    """Per-frame display times in ms, multiples of ``unit_ms``, whose running sum never drifts from ``k / fps``.

    GIF counts in 10 ms units and APNG writers in whole ms, so 1/30 s cannot be stored exactly; rounding the
    cumulative end times (instead of each duration) keeps every frame within half a unit of its true time.
    """
    if count < 0 or not fps > 0:
        raise ValueError(f"need count >= 0 and fps > 0, got {count}, {fps}")
    ends = [round((k + 1) * 1000.0 / fps / unit_ms) * unit_ms for k in range(count)]
    return [max(end - start, unit_ms) for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def _check_frames(frames: list[np.ndarray]) -> tuple[int, int]:
    if not frames:
        raise ValueError("no frames to write")
    shape = frames[0].shape
    for i, f in enumerate(frames):
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 4 or f.shape != shape:
            raise ValueError(f"frame {i}: expected (H, W, 4) uint8 like frame 0 {shape}, got {f.shape} {f.dtype}")
    return shape[1], shape[0]


def _write_atomic(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_apng(frames: list[np.ndarray], path: str | Path, fps: float, *, loop: int = 0) -> Path:
    """An animated PNG of (H, W, 4) uint8 sRGB RGBA frames (full alpha), each replacing the last."""
    _check_frames(frames)
    images = [Image.fromarray(f, "RGBA") for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="PNG", save_all=True, append_images=images[1:], duration=frame_durations(len(frames), fps),
        loop=loop, disposal=1, blend=0, compress_level=6,
    )  # fmt: skip
    return _write_atomic(Path(path), buf.getvalue())


def _gif_frame(rgba: np.ndarray) -> Image.Image:
    """Palette frame: 255 colours from the visible pixels, index 255 transparent where alpha < 50 %."""
    rgb = Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB")
    pal = rgb.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    idx = np.asarray(pal).copy()
    idx[rgba[..., 3] < 128] = 255
    out = Image.fromarray(idx, "P")
    palette = pal.getpalette()[: 255 * 3]
    out.putpalette(palette + [0] * (768 - len(palette)))
    out.info["transparency"] = 255
    return out


def write_gif(frames: list[np.ndarray], path: str | Path, fps: float, *, loop: int = 0) -> Path:
    """An animated GIF (1-bit transparency at alpha 50 %, 255 colours per frame, timing in 10 ms steps)."""
    _check_frames(frames)
    images = [_gif_frame(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=frame_durations(len(frames), fps, 10),
        loop=loop, disposal=2, transparency=255, optimize=False,
    )  # fmt: skip
    return _write_atomic(Path(path), buf.getvalue())


class PngSequenceWriter:
    """A folder of ``frame_00000.png``... plus ``timing.json``: each frame's file, time and duration.

    Frames are written as they come (each file atomically); ``timing.json`` is written by :meth:`close`, so a folder
    with a timing file is complete. Its fields tell what really happened, from the frames' times:

    - ``frames``: per frame ``file``, ``t`` (seconds) and ``duration_ms`` (until the next frame; the last frame
      gets the mean frame interval), rounded so that their running sum never drifts from the times;
    - ``frame_count``; ``duration_s``: last frame time minus first; ``fps``: the measured frame rate,
      ``(frame_count - 1) / duration_s`` (``null`` with fewer than two frames);
    - ``target_fps``: the rate asked for (the writer's ``fps``; frames without a time are placed at ``index / fps``).
    """

    TIMING_FILE = "timing.json"

    def __init__(self, folder: str | Path, fps: float, *, compress_level: int = 6):
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.compress_level = compress_level
        self.frames: list[dict] = []

    def add(self, rgba: np.ndarray, t: float | None = None) -> Path:
        """Write the next frame; ``t``: its time in seconds (default ``index / fps``)."""
        index = len(self.frames)
        name = f"frame_{index:05d}.png"
        _write_atomic(self.folder / name, encode_png(rgba, compress_level=self.compress_level))
        self.frames.append({"file": name, "t": index / self.fps if t is None else float(t)})
        return self.folder / name

    def close(self, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``timing.json`` (with the fields of ``extra`` added) atomically; returns its path."""
        times = [f["t"] for f in self.frames]
        span = times[-1] - times[0] if times else 0.0
        measured = round((len(times) - 1) / span, 6) if len(times) > 1 and span > 0 else None
        interval = 1.0 / (measured or self.fps)  # how long the last frame is shown
        marks = [round((t - times[0]) * 1000.0) for t in times] + [round((span + interval) * 1000.0)]
        frames = [{**f, "duration_ms": b - a} for f, (a, b) in zip(self.frames, pairwise(marks), strict=False)]
        doc = {
            "fps": measured,
            "target_fps": self.fps,
            "frame_count": len(frames),
            "duration_s": round(span, 6),
            **(extra or {}),
            "frames": frames,
        }
        return _write_atomic(self.folder / self.TIMING_FILE, (json.dumps(doc, indent=1) + "\n").encode())


def sheet_columns(count: int) -> int:
    """Columns of a near-square grid for ``count`` sprites: ``ceil(sqrt(count))`` (2 -> 2, 5 -> 3, 28 -> 6)."""
    return max(1, math.ceil(math.sqrt(count)))


def write_sprite_sheet(
    frames: list[np.ndarray],
    path: str | Path,
    *,
    columns: int | None = None,
    names: list[str] | None = None,
) -> Path:
    """All frames on one PNG grid, row-major, plus the atlas ``<stem>.json`` beside it; returns the PNG path.

    ``columns`` defaults to a near-square grid (:func:`sheet_columns`); more columns than frames are cut to one
    row. The atlas holds ``image``, ``frame_width``, ``frame_height``, ``columns``, ``rows``, ``frames`` (each
    frame's ``[x, y, w, h]``, in order), ``names`` (default ``frame_00000``, ...) and ``atlas``:
    ``{name: {"x", "y", "w", "h"}}``. Both files are written atomically.
    """
    width, height = _check_frames(frames)
    n = len(frames)
    if columns is not None and columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    names = list(names) if names is not None else [f"frame_{k:05d}" for k in range(n)]
    if len(names) != n or len(set(names)) != n:
        raise ValueError(f"need {n} distinct names for {n} frames, got {len(names)} ({len(set(names))} distinct)")
    columns = min(columns or sheet_columns(n), n)
    rows = math.ceil(n / columns)
    sheet = np.zeros((rows * height, columns * width, 4), dtype=np.uint8)
    rects = []
    for i, f in enumerate(frames):
        y, x = (i // columns) * height, (i % columns) * width
        sheet[y : y + height, x : x + width] = f
        rects.append([x, y, width, height])
    path = Path(path)
    _write_atomic(path, encode_png(sheet))
    atlas = {name: dict(zip("xywh", rect, strict=True)) for name, rect in zip(names, rects, strict=True)}
    doc = {
        "image": path.name, "frame_width": width, "frame_height": height, "columns": columns, "rows": rows,
        "frames": rects, "names": names, "atlas": atlas,
    }  # fmt: skip
    _write_atomic(path.with_suffix(".json"), (json.dumps(doc, indent=1) + "\n").encode())
    return path


def write_webm(
    frames: Sequence[np.ndarray],
    path: str | Path,
    fps: float,
    *,
    crf: int = 20,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Path | None:
    """A VP9 WebM with an alpha channel (``yuva420p``), as browsers and OBS play it; needs PyAV (``pip install av``).

    ``crf``: 0 (best) .. 63; 20 is visually lossless for avatars. Frame times are exact multiples of ``1/fps``.
    ``frames`` may be any sequence (read one at a time); ``progress(done, total)`` is called after each frame is
    encoded; once ``cancel`` is set, encoding stops, nothing is written and ``None`` is returned.
    """
    width, height = _check_frames(frames)
    if width % 2 or height % 2:
        raise ValueError(f"WebM (yuva420p) needs an even frame size, got {width}x{height}")
    try:
        import av
    except ImportError as e:
        raise RuntimeError("writing WebM needs PyAV: pip install av") from e
    from fractions import Fraction

    rate = Fraction(fps).limit_denominator(1001)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuva420p"
        # auto-alt-ref must be off for alpha; b:v 0 makes crf a pure quality target.
        stream.options = {"crf": str(crf), "b:v": "0", "auto-alt-ref": "0", "deadline": "good", "cpu-used": "4"}
        for done, rgba in enumerate(frames, 1):
            if cancel is not None and cancel.is_set():
                return None
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba), format="rgba")):
                container.mux(packet)
            if progress is not None:
                progress(done, len(frames))
        for packet in stream.encode():
            container.mux(packet)
    return _write_atomic(Path(path), buf.getvalue())
