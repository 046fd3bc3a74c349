"""Recording the live avatar: a PNG sequence with real frame times, written by a background thread, and optionally
a WebM (VP9 with alpha) made from it at the end.

Each engine frame is written once (``frame_00000.png`` ...) through :class:`~raven_avatar.engine.export.
PngSequenceWriter` (staged beside the folder and moved in when stopping, so the folder never mixes two
recordings); ``timing.json`` lists every file with the time (seconds since the first recorded frame) at which
the engine produced it, the measured ``fps`` and ``duration_s`` from those times, the ``target_fps`` asked for, and
``backdrop`` and ``dropped`` (frames the disk could not keep up with). The WebM is resampled onto a steady
``target_fps`` grid from those times (a slow device repeats frames rather than playing fast), so it plays at real
speed; it is encoded by a background thread after :meth:`Recorder.stop`, which reports its progress through an
:class:`Encoding` the GUI polls (and may cancel).
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
from raven_avatar.engine.wording import plural

logger = logging.getLogger(__name__)

TIMING_FILE = PngSequenceWriter.TIMING_FILE
VIDEO_FILE = "recording.webm"
_MAX_QUEUED = 64  # frames waiting for the disk; more are dropped (and counted) rather than eating memory


def _to_u8(rgba: np.ndarray) -> np.ndarray:
    if rgba.dtype == np.uint8:
        return rgba
    return (np.clip(rgba, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class Encoding:
    """Progress of one WebM encode, read by the GUI while a background thread writes it.

    ``done`` of ``total`` frames are encoded; ``finished`` turns true at the end, whether the file was written,
    ``error`` (a message naming the file) was set, or :meth:`cancel` stopped it (``cancelled``; nothing written).
    """

    def __init__(self, path: Path, total: int):
        self.path, self.total = path, total
        self.done = 0
        self.error: str | None = None
        self.written = False
        self._cancel = threading.Event()
        self._finished = threading.Event()

    def start(self, frames: Sequence[np.ndarray], fps: float) -> None:
        """Encode ``frames`` at ``fps`` into :attr:`path` in a new (non-daemon) thread."""
        threading.Thread(target=self._run, args=(frames, fps), name="recorder-webm").start()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def cancelled(self) -> bool:
        return self.finished and not self.written and self.error is None

    @property
    def fraction(self) -> float:
        """0..1, for a progress bar."""
        return self.done / self.total if self.total else 1.0

    def cancel(self) -> None:
        """Stop encoding soon (between two frames); no file is written."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until finished (or ``timeout`` seconds); returns :attr:`finished`."""
        return self._finished.wait(timeout)

    def __str__(self) -> str:
        name = self.path.name
        if not self.finished:
            return f"Encoding {name}: {self.done}/{self.total} frames"
        if self.error is not None:
            return f"Encoding {name} failed: {self.error}"
        if self.cancelled:
            return f"Encoding {name} cancelled at {self.done}/{self.total} frames"
        return f"Encoded {name}: {plural(self.total, 'frame')}"

    def _run(self, frames: Sequence[np.ndarray], fps: float) -> None:
        def progress(done: int, _total: int) -> None:
            self.done = done

        try:
            self.written = write_webm(frames, self.path, fps, progress=progress, cancel=self._cancel) is not None
        except Exception as exc:  # a background thread: every failure must reach the user, not just the log
            self.error = f"{self.path}: {exc}"
            logger.error("recording: %s", self.error, exc_info=not isinstance(exc, (RuntimeError, ValueError, OSError)))
        finally:
            self._finished.set()


class Recorder:
    """Writes frames handed to :meth:`add` into ``folder``; :meth:`stop` finishes the files.

    Args:
        folder: created if missing.
        fps: the target frame rate (``target_fps`` in ``timing.json``; the WebM's frame rate).
        backdrop: whether the frames include the backdrop (``backdrop`` in ``timing.json``).
        video: also write ``recording.webm`` after stopping (needs PyAV), in the background: see :attr:`encoding`.
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
        self.encoding: Encoding | None = None  # set by stop() when a WebM is being made
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
        """Write what is queued and ``timing.json``; returns the timing file's path.

        With ``video``, the WebM encode then starts in a background thread and :attr:`encoding` reports on it. The
        thread is not a daemon: a process that exits meanwhile waits for the file (or for :meth:`Encoding.cancel`).
        """
        self._queue.put(None)
        self._thread.join()
        path = self.writer.close({"backdrop": self.backdrop, "dropped": self.dropped})
        if self.video and self.writer.frames:
            frames = _Resampled(self.folder, self.writer.frames, self.fps)
            self.encoding = Encoding(self.folder / VIDEO_FILE, len(frames))
            self.encoding.start(frames, self.fps)
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
