"""Writing frames to files: linear tensors to sRGB 8-bit; PNG, APNG, GIF, WebM (VP9 + alpha), PNG sequences with
timing, sprite sheets.

Every writer here is atomic (temporary file, fsync, rename): an interrupted export never leaves a half-written
file where a good one was. Animations are streamed (:class:`FrameWriter`): one frame in memory at a time.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .fileio import AtomicFile, StagedFolder, atomic_path
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


def _frame_end_ms(k: int, fps: float, unit_ms: int) -> int:
    return round((k + 1) * 1000.0 / fps / unit_ms) * unit_ms


def frame_duration(k: int, fps: float, unit_ms: int = 1) -> int:
    """Display time in ms of frame ``k``, a multiple of ``unit_ms``; see :func:`frame_durations`."""
    start = _frame_end_ms(k - 1, fps, unit_ms) if k else 0
    return max(_frame_end_ms(k, fps, unit_ms) - start, unit_ms)


def frame_durations(count: int, fps: float, unit_ms: int = 1) -> list[int]:
    """Per-frame display times in ms, multiples of ``unit_ms``, whose running sum never drifts from ``k / fps``.

    GIF counts in 10 ms units and APNG writers in whole ms, so 1/30 s cannot be stored exactly; rounding the
    cumulative end times (instead of each duration) keeps every frame within half a unit of its true time.
    """
    if count < 0 or not fps > 0:
        raise ValueError(f"need count >= 0 and fps > 0, got {count}, {fps}")
    return [frame_duration(k, fps, unit_ms) for k in range(count)]


def _check_frames(frames: list[np.ndarray]) -> tuple[int, int]:
    if not frames:
        raise ValueError("no frames to write")
    shape = frames[0].shape
    for i, f in enumerate(frames):
        _check_frame(i, f, shape)
    return shape[1], shape[0]


def _check_frame(i: int, f: np.ndarray, shape: tuple[int, ...]) -> None:
    if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 4 or f.shape != shape:
        raise ValueError(f"frame {i}: expected (H, W, 4) uint8 like frame 0 {shape}, got {f.shape} {f.dtype}")


def _write_atomic(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


class FrameWriter:
    """An animation written frame by frame: only the current frame is in memory, whatever the clip's length.

    ``add`` each (H, W, 4) uint8 sRGB RGBA frame (all the same size), then ``close``; the file is built in a
    temporary file beside ``path`` and renamed onto it at the end, so an interrupted export leaves the old file.
    As a context manager, an exception discards the partial file. Subclasses: :class:`ApngWriter`,
    :class:`GifWriter`, :class:`WebmWriter`.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a finite number > 0, got {fps!r}")
        self.path, self.fps, self.count = Path(path), float(fps), 0
        self._shape: tuple[int, ...] | None = None
        self._out = AtomicFile(self.path)

    def add(self, rgba: np.ndarray) -> None:
        if self._shape is None:
            _check_frame(0, rgba, rgba.shape)
            self._shape = rgba.shape
            self._start(rgba.shape[1], rgba.shape[0])
        _check_frame(self.count, rgba, self._shape)
        self._frame(rgba, self.count)
        self.count += 1

    def close(self) -> Path:
        """Finish the file and move it into place; ``ValueError`` if no frame was added."""
        if self.count == 0:
            self.abort()
            raise ValueError("no frames to write")
        try:
            self._finish()
        except BaseException:
            self.abort()
            raise
        return self._out.commit()

    def abort(self) -> None:
        """Forget the frames written so far (``path`` is untouched)."""
        self._abort()
        self._out.discard()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _start(self, width: int, height: int) -> None:
        raise NotImplementedError

    def _frame(self, rgba: np.ndarray, index: int) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


class ApngWriter(FrameWriter):
    """An animated PNG (full alpha, each frame replacing the last, timing in ms), streamed to disk.

    Each frame is compressed as a PNG by Pillow and its image data re-wrapped as an APNG frame; the frame count in
    the header is filled in by :meth:`close`.
    """

    _PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

    def __init__(self, path: str | Path, fps: float, *, loop: int = 0, compress_level: int = 6) -> None:
        super().__init__(path, fps)
        self.loop, self.compress_level = loop, compress_level
        self._file = None
        self._seq = 0

    def _start(self, width: int, height: int) -> None:
        self._file = open(self._out.tmp, "wb")  # noqa: SIM115 - open until close() or abort()
        self._size = (width, height)

    def _frame(self, rgba: np.ndarray, index: int) -> None:
        chunks = _png_chunks(encode_png(rgba, compress_level=self.compress_level))
        data = [body for kind, body in chunks if kind == b"IDAT"]
        f = self._file
        if index == 0:
            f.write(self._PNG_SIGNATURE)
            f.write(_chunk(b"IHDR", next(body for kind, body in chunks if kind == b"IHDR")))
            self._actl_at = f.tell()
            f.write(_chunk(b"acTL", struct.pack(">II", 0, self.loop)))
        w, h = self._size
        # fcTL: sequence, size, offset, delay (ms / 1000), dispose op 1 (background), blend op 0 (source).
        fctl = struct.pack(">IIIIIHHBB", self._seq, w, h, 0, 0, frame_duration(index, self.fps), 1000, 1, 0)
        f.write(_chunk(b"fcTL", fctl))
        self._seq += 1
        for body in data:
            if index == 0:
                f.write(_chunk(b"IDAT", body))
            else:
                f.write(_chunk(b"fdAT", struct.pack(">I", self._seq) + body))
                self._seq += 1

    def _finish(self) -> None:
        f = self._file
        f.write(_chunk(b"IEND", b""))
        f.seek(self._actl_at)
        f.write(_chunk(b"acTL", struct.pack(">II", self.count, self.loop)))
        f.close()

    def _abort(self) -> None:
        if self._file is not None:
            self._file.close()


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


def _gif_image_block(data: bytes) -> tuple[bytes, bytes, int | None]:
    """From a one-frame GIF: (image descriptor with its colour table made local, LZW data, transparent index)."""
    packed = data[10]
    table = data[13 : 13 + 3 * 2 ** ((packed & 7) + 1)] if packed & 0x80 else b""
    pos, transparent = 13 + len(table), None
    while data[pos] == 0x21:  # extensions: keep only the transparency of the graphic control extension
        label, pos = data[pos + 1], pos + 2
        if label == 0xF9 and data[pos + 1] & 1:
            transparent = data[pos + 4]
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    if data[pos] != 0x2C:
        raise ValueError("unexpected GIF layout from Pillow")
    desc, flags, pos = bytearray(data[pos : pos + 10]), data[pos + 9], pos + 10
    if flags & 0x80:  # already a local table
        size = 3 * 2 ** ((flags & 7) + 1)
        table, pos = data[pos : pos + size], pos + size
    else:
        desc[9] = 0x80 | (flags & 0x40) | (packed & 7)
    start = pos
    pos += 1  # LZW minimum code size
    while data[pos]:
        pos += data[pos] + 1
    return bytes(desc) + table, data[start : pos + 1], transparent


class GifWriter(FrameWriter):
    """An animated GIF (1-bit transparency at alpha 50 %, 255 colours per frame, timing in 10 ms steps), streamed."""

    def __init__(self, path: str | Path, fps: float, *, loop: int = 0) -> None:
        super().__init__(path, fps)
        self.loop = loop
        self._file = None

    def _start(self, width: int, height: int) -> None:
        self._file = open(self._out.tmp, "wb")  # noqa: SIM115 - open until close() or abort()
        self._file.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0))
        self._file.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", self.loop) + b"\x00")

    def _frame(self, rgba: np.ndarray, index: int) -> None:
        buf = io.BytesIO()
        _gif_frame(rgba).save(buf, format="GIF", transparency=255, optimize=False)
        descriptor, lzw, transparent = _gif_image_block(buf.getvalue())
        delay = frame_duration(index, self.fps, 10) // 10
        # Graphic control: disposal 2 (restore to background), transparency flag and index.
        flags = (2 << 2) | (transparent is not None)
        self._file.write(b"\x21\xf9\x04" + struct.pack("<BHB", flags, delay, transparent or 0) + b"\x00")
        self._file.write(descriptor + lzw)

    def _finish(self) -> None:
        self._file.write(b"\x3b")
        self._file.close()

    def _abort(self) -> None:
        if self._file is not None:
            self._file.close()


class WebmWriter(FrameWriter):
    """A VP9 WebM with an alpha channel (``yuva420p``), as browsers and OBS play it, encoded as frames come.

    Needs PyAV (``pip install av``). ``crf``: 0 (best) .. 63; 20 is visually lossless for avatars. Frame times are
    exact multiples of ``1/fps``.
    """

    def __init__(self, path: str | Path, fps: float, *, crf: int = 20) -> None:
        super().__init__(path, fps)
        try:
            import av
        except ImportError as e:
            raise RuntimeError("writing WebM needs PyAV: pip install av") from e
        self._av, self.crf = av, crf
        self._container = None

    def _start(self, width: int, height: int) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"WebM (yuva420p) needs an even frame size, got {width}x{height}")
        from fractions import Fraction

        self._container = self._av.open(str(self._out.tmp), mode="w", format="webm")
        stream = self._container.add_stream("libvpx-vp9", rate=Fraction(self.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuva420p"
        # auto-alt-ref must be off for alpha; b:v 0 makes crf a pure quality target.
        stream.options = {"crf": str(self.crf), "b:v": "0", "auto-alt-ref": "0", "deadline": "good", "cpu-used": "4"}
        self._stream = stream

    def _frame(self, rgba: np.ndarray, index: int) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba), format="rgba")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _finish(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def _abort(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()


def _write_all(writer: FrameWriter, frames: Iterable[np.ndarray]) -> Path:
    with writer:
        for f in frames:
            writer.add(f)
    return writer.path


def write_apng(frames: Iterable[np.ndarray], path: str | Path, fps: float, *, loop: int = 0) -> Path:
    """An animated PNG of (H, W, 4) uint8 sRGB RGBA frames (full alpha), each replacing the last (see
    :class:`ApngWriter`; frames may be any iterable, consumed one at a time)."""
    return _write_all(ApngWriter(path, fps, loop=loop), frames)


def write_gif(frames: Iterable[np.ndarray], path: str | Path, fps: float, *, loop: int = 0) -> Path:
    """An animated GIF (1-bit transparency at alpha 50 %, 255 colours per frame, timing in 10 ms steps)."""
    return _write_all(GifWriter(path, fps, loop=loop), frames)


def write_webm(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: float,
    *,
    crf: int = 20,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Path | None:
    """A VP9 WebM with alpha; see :class:`WebmWriter` (needs PyAV).

    ``progress(done, total)`` is called after each frame is encoded (``total``: ``len(frames)`` for a sequence,
    else 0); once ``cancel`` is set, encoding stops, nothing is written and ``None`` is returned.
    """
    if progress is None and cancel is None:
        return _write_all(WebmWriter(path, fps, crf=crf), frames)
    total = len(frames) if isinstance(frames, Sequence) else 0
    writer = WebmWriter(path, fps, crf=crf)
    try:
        for done, rgba in enumerate(frames, 1):
            if cancel is not None and cancel.is_set():
                writer.abort()
                return None
            writer.add(rgba)
            if progress is not None:
                progress(done, total)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


class PngSequenceWriter:
    """A folder of ``frame_00000.png``... plus ``timing.json``: each frame's file, time and duration.

    Frames are written into a hidden staging folder beside ``folder`` as they come; :meth:`close` writes
    ``timing.json`` and moves the set into ``folder``, the timing file last (:class:`~raven_avatar.engine.fileio.
    StagedFolder`). So a folder with a timing file always holds one whole clip: an interrupted write leaves the
    previous clip as it was, and earlier frames beyond the new clip's length are removed. As a context manager, an
    exception discards the staged frames. The timing file's fields tell what really happened, from the frames' times:

    - ``frames``: per frame ``file``, ``t`` (seconds) and ``duration_ms`` (until the next frame; the last frame
      gets the mean frame interval), rounded so that their running sum never drifts from the times;
    - ``frame_count``; ``duration_s``: last frame time minus first; ``fps``: the measured frame rate,
      ``(frame_count - 1) / duration_s`` (``null`` with fewer than two frames);
    - ``target_fps``: the rate asked for (the writer's ``fps``; frames without a time are placed at ``index / fps``).
    """

    TIMING_FILE = "timing.json"

    def __init__(self, folder: str | Path, fps: float, *, compress_level: int = 6):
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a finite number > 0, got {fps!r}")
        self.folder = Path(folder)
        self.fps = fps
        self.compress_level = compress_level
        self.frames: list[dict] = []
        self._stage = StagedFolder(self.folder, marker=self.TIMING_FILE, replaces="frame_*.png")

    def add(self, rgba: np.ndarray, t: float | None = None) -> Path:
        """Write the next frame; ``t``: its time in seconds (default ``index / fps``). Returns its staged path."""
        index = len(self.frames)
        name = f"frame_{index:05d}.png"
        (self._stage.path / name).write_bytes(encode_png(rgba, compress_level=self.compress_level))
        self.frames.append({"file": name, "t": index / self.fps if t is None else float(t)})
        return self._stage.path / name

    def close(self, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``timing.json`` (with the fields of ``extra`` added) and move the clip into the folder; returns the
        timing file."""
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
        (self._stage.path / self.TIMING_FILE).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        return self._stage.publish() / self.TIMING_FILE

    def abort(self) -> None:
        """Forget the frames written so far (the folder is untouched)."""
        self._stage.abort()

    def __enter__(self) -> PngSequenceWriter:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None:
            self.abort()


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
