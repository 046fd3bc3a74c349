"""Recording the live avatar: a PNG sequence with real frame times, written by a background thread, and optionally
a WebM (VP9 with alpha) made from it at the end.

Each engine frame is written once (``frame_00000.png`` ...) through :class:`~raven_avatar.engine.export.
PngSequenceWriter` (staged beside the folder and moved in when stopping, so the folder never mixes two
recordings); ``timing.json`` lists every file with the time (seconds since the first recorded frame) at which
the engine produced it. The WebM is resampled onto a steady ``fps`` grid from those times (a slow device repeats
frames rather than playing fast), so it plays at real speed.
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import PIL.Image

from raven_avatar.engine.export import PngSequenceWriter, write_webm

logger = logging.getLogger(__name__)

TIMING_FILE = PngSequenceWriter.TIMING_FILE
VIDEO_FILE = "recording.webm"
_MAX_QUEUED = 64  # frames waiting for the disk; more are dropped (and counted) rather than eating memory


def _to_u8(rgba: np.ndarray) -> np.ndarray:
    if rgba.dtype == np.uint8:
        return rgba
    return (np.clip(rgba, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class Recorder:
    """Writes frames handed to :meth:`add` into ``folder``; :meth:`stop` finishes the files.

    Args:
        folder: created if missing.
        fps: the target frame rate (written to ``timing.json``; the WebM's frame rate).
        backdrop: whether the frames include the backdrop (recorded in ``timing.json`` by the caller's choice).
        video: also write ``recording.webm`` when stopping (needs PyAV).
    """

    def __init__(self, folder: str | Path, *, fps: float, backdrop: bool = False, video: bool = False):
        self.folder = Path(folder)
        self.writer = PngSequenceWriter(self.folder, fps, compress_level=1)
        self.fps = fps
        self.backdrop = backdrop
        self.video = video
        self.times: list[float] = []  # of the frames queued, relative to the first
        self.dropped = 0
        self.error: str | None = None
        self._t0: float | None = None
        self._queue: queue.Queue = queue.Queue(_MAX_QUEUED)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    @property
    def count(self) -> int:
        return len(self.times)

    def add(self, rgba: np.ndarray, t: float) -> None:
        """Queue one frame ((H, W, 4) float sRGB in [0, 1], or uint8) produced at time ``t`` (seconds)."""
        if self._t0 is None:
            self._t0 = t
        try:
            self._queue.put_nowait((rgba, t - self._t0))
        except queue.Full:
            self.dropped += 1
            return
        self.times.append(t - self._t0)

    def stop(self) -> Path:
        """Write what is queued, ``timing.json`` and the WebM (if asked); returns the timing file's path."""
        self._queue.put(None)
        self._thread.join()
        path = self.writer.close({"dropped": self.dropped} if self.dropped else None)
        if self.video and self.writer.frames:
            try:
                write_webm(_Resampled(self.folder, self.writer.frames, self.fps), self.folder / VIDEO_FILE, self.fps)
            except (RuntimeError, ValueError, OSError) as exc:
                self.error = f"{self.folder / VIDEO_FILE}: {exc}"
        return path

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            rgba, t = item
            try:
                self.writer.add(_to_u8(rgba), round(t, 6))
            except OSError as exc:
                self.error = f"{self.folder}: {exc}"
                logger.error("recording: %s", self.error)


class _Resampled(Sequence):
    """The recorded frames on a steady ``fps`` grid: tick k shows the newest frame made at or before ``k / fps``.

    Frames are read back from the PNG files when asked for (one cached), so a long recording needs no memory; odd
    sizes are padded by a transparent pixel (VP9 with alpha needs even sizes).
    """

    def __init__(self, folder: Path, frames: list[dict], fps: float):
        self.folder, self.frames, self.fps = folder, frames, fps
        self.times = [f["t"] for f in frames]
        self.length = max(1, int(self.times[-1] * fps) + 1)
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> np.ndarray:  # type: ignore[override]
        if not 0 <= k < self.length:
            raise IndexError(k)
        i = max(0, bisect.bisect_right(self.times, k / self.fps + 1e-9) - 1)
        if self._cached is None or self._cached[0] != i:
            with PIL.Image.open(self.folder / self.frames[i]["file"]) as img:
                rgba = np.asarray(img.convert("RGBA"))
            h, w = rgba.shape[:2]
            if h % 2 or w % 2:
                rgba = np.pad(rgba, ((0, h % 2), (0, w % 2), (0, 0)))
            self._cached = (i, rgba)
        return self._cached[1]
