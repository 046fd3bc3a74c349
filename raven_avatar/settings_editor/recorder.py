"""Recording the live avatar to a PNG sequence with a timing file, written by a background thread.

Each engine frame is written once, as ``frame_00000.png`` ..., and ``timing.json`` lists every file with the time
(seconds since the first recorded frame) the engine produced it, so a video can be assembled at the real pace::

    {"fps": 25, "frames": [{"file": "frame_00000.png", "t": 0.0}, ...], "size": [w, h], "backdrop": false}
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from pathlib import Path

import numpy as np

from raven_avatar.engine.download import atomic_path
from raven_avatar.engine.export import encode_png

logger = logging.getLogger(__name__)

TIMING_FILE = "timing.json"
_MAX_QUEUED = 64  # frames waiting for the disk; more are dropped (and counted) rather than eating memory


class Recorder:
    """Writes frames handed to :meth:`add` into ``folder``; :meth:`stop` finishes the queue and the timing file."""

    def __init__(self, folder: str | Path, *, fps: float, backdrop: bool = False):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.backdrop = backdrop
        self.frames: list[dict] = []
        self.dropped = 0
        self.error: str | None = None
        self._t0: float | None = None
        self._size: tuple[int, int] | None = None
        self._queue: queue.Queue = queue.Queue(_MAX_QUEUED)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def add(self, rgba: np.ndarray, t: float) -> None:
        """Queue one frame ((H, W, 4) float sRGB in [0, 1], or uint8) produced at time ``t`` (seconds)."""
        if self._t0 is None:
            self._t0 = t
        name = f"frame_{len(self.frames) + self.dropped:05d}.png"
        try:
            self._queue.put_nowait((name, rgba))
        except queue.Full:
            self.dropped += 1
            return
        self._size = (rgba.shape[1], rgba.shape[0])
        self.frames.append({"file": name, "t": round(t - self._t0, 6)})

    def stop(self) -> Path:
        """Write what is queued and the timing file; returns the timing file's path."""
        self._queue.put(None)
        self._thread.join()
        path = self.folder / TIMING_FILE
        data = {
            "fps": self.fps,
            "size": list(self._size) if self._size else None,
            "backdrop": self.backdrop,
            "dropped": self.dropped,
            "frames": self.frames,
        }
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        return path

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            name, rgba = item
            try:
                if rgba.dtype != np.uint8:
                    rgba = (np.clip(rgba, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
                (self.folder / name).write_bytes(encode_png(rgba, compress_level=1))
            except OSError as exc:
                self.error = f"{self.folder / name}: {exc}"
                logger.error("recording: %s", self.error)
