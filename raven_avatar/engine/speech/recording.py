"""Recording the avatar speaking: frames and audio on one clock, into one video file or a PNG sequence.

Frames are stamped with the time they were produced and audio with the time it started playing, both on the
recorder's clock, so they line up however fast the renderer runs; the frame rate written is the real one.

- ``*.mp4`` / ``*.mkv`` / ``*.webm`` / ``*.mov`` (needs PyAV, ``pip install av``): H.264 (VP9 for WebM) with
  per-frame timestamps, plus AAC (Opus for WebM, FLAC for MKV) audio. Alpha is composited over ``background``.
- any other path is a folder: ``frame_00000.png`` ... (RGBA), ``audio.wav`` (the whole recording's audio) and
  ``timing.json``: ``{"fps", "frames": [{"file", "t"}], "audio": {"file", "sample_rate", "duration"},
  "utterances": [{"start", "end"}]}`` (seconds from the first frame).

The lipsync ``offset`` is 0 while recording (:func:`record_speech` sets it): frames are stamped when rendered, so
there is no display delay to absorb.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raven_avatar.engine.export import to_srgb8, write_png
from raven_avatar.engine.fileio import atomic_path

from .audio import save_audio

log = logging.getLogger(__name__)

TIMING_FILE = "timing.json"
AUDIO_FILE = "audio.wav"
_VIDEO_FORMATS = {  # suffix -> (video codec, audio codec)
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "flac"),
    ".webm": ("libvpx-vp9", "libopus"),
}
_TIME_BASE = Fraction(1, 1000)  # frame timestamps in milliseconds


def _as_rgba8(image: Any) -> np.ndarray:
    """(H, W, 4) uint8 sRGB from a linear tensor (see ``export.to_srgb8``) or an (H, W, 3|4) uint8 array."""
    if isinstance(image, torch.Tensor):
        return to_srgb8(image)
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3|4) uint8 image or a linear RGBA tensor, got {arr.dtype} {arr.shape}")
    if arr.shape[2] == 3:
        arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return arr


class SpeechRecorder:
    """Collects timestamped frames and audio; :meth:`close` finishes the file (or folder).

    Args:
        path: a video file (by extension, needs PyAV) or a folder for the PNG sequence.
        sample_rate: of the audio added.
        clock: seconds, monotonic; shared by frames and audio.
        background: RGB colour under transparent pixels in a video file.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        sample_rate: int = 24000,
        clock: Callable[[], float] = time.monotonic,
        background: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.clock = clock
        self.background = np.asarray(background, np.float32)
        self.frame_times: list[float] = []
        self.utterances: list[tuple[float, float]] = []
        self._t0: float | None = None
        self._audio: list[tuple[float, np.ndarray]] = []
        self._lock = threading.Lock()
        self._container = self._stream = self._audio_stream = self._tmp = None
        codecs = _VIDEO_FORMATS.get(self.path.suffix.lower())
        if codecs is not None:
            try:
                import av  # noqa: F401
            except ImportError as err:
                raise RuntimeError(f"{self.path}: video needs PyAV (`pip install av`); or give a folder") from err
            self._codecs = codecs
        else:
            self._codecs = None
            self.path.mkdir(parents=True, exist_ok=True)

    def time(self) -> float:
        """Seconds since the first frame or audio (0 before any)."""
        now = self.clock()
        with self._lock:
            if self._t0 is None:
                self._t0 = now
            return now - self._t0

    def add_frame(self, image: Any, t: float | None = None) -> None:
        """Add a frame shown at ``t`` (recorder seconds; default now); images as in ``export.to_srgb8`` or uint8."""
        t = self.time() if t is None else t
        rgba = _as_rgba8(image)
        with self._lock:
            if self.frame_times and t <= self.frame_times[-1]:
                return  # a frame with no new timestamp cannot be shown
            index = len(self.frame_times)
            self.frame_times.append(t)
            if self._codecs is None:
                write_png(rgba, self.path / f"frame_{index:05d}.png")
            else:
                self._encode_frame(rgba, t)

    def add_audio(self, audio: np.ndarray, sample_rate: int, t: float | None = None) -> None:
        """Add audio that starts playing at ``t`` (recorder seconds; default now)."""
        if sample_rate != self.sample_rate:
            raise ValueError(f"audio at {sample_rate} Hz added to a {self.sample_rate} Hz recording")
        t = self.time() if t is None else t
        audio = np.asarray(audio, np.float32).reshape(-1)
        with self._lock:
            self._audio.append((t, audio))
            self.utterances.append((t, t + len(audio) / sample_rate))

    @property
    def fps(self) -> float:
        """The real frame rate: frames over the time they span."""
        n = len(self.frame_times)
        return (n - 1) / (self.frame_times[-1] - self.frame_times[0]) if n > 1 else 0.0

    def audio_track(self) -> np.ndarray:
        """All audio mixed onto one track starting at recorder time 0, padded to the last frame's end."""
        end = max([t + len(a) / self.sample_rate for t, a in self._audio] + self.frame_times[-1:] + [0.0])
        if self.frame_times and self.fps > 0:
            end = max(end, self.frame_times[-1] + 1 / self.fps)
        track = np.zeros(int(round(end * self.sample_rate)), np.float32)
        for t, audio in self._audio:
            i = int(round(t * self.sample_rate))
            track[i : i + len(audio)] += audio[: max(0, len(track) - i)]
        return track

    def _encode_frame(self, rgba: np.ndarray, t: float) -> None:
        import av

        if self._container is None:
            self._tmp = self.path.with_name(f".{self.path.name}.part{self.path.suffix}")
            self._container = av.open(str(self._tmp), "w")
            h, w = rgba.shape[:2]
            self._stream = self._container.add_stream(self._codecs[0], rate=25)
            self._stream.width, self._stream.height = w - w % 2, h - h % 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.codec_context.time_base = _TIME_BASE
            self._stream.time_base = _TIME_BASE
            self._audio_stream = self._container.add_stream(self._codecs[1], rate=self.sample_rate)
            self._audio_stream.layout = "mono"
        alpha = rgba[..., 3:4].astype(np.float32) / 255.0
        rgb = rgba[..., :3] * alpha + self.background * (1.0 - alpha)
        rgb = rgb[: self._stream.height, : self._stream.width]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb.round().astype(np.uint8)), format="rgb24")
        frame.pts = int(round(t / _TIME_BASE))
        frame.time_base = _TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _finish_video(self, track: np.ndarray) -> None:
        import av

        for packet in self._stream.encode():
            self._container.mux(packet)
        audio = self._audio_stream
        if len(track):
            size = audio.codec_context.frame_size or 1024
            for i in range(0, len(track), size):
                frame = av.AudioFrame.from_ndarray(track[None, i : i + size], format="flt", layout="mono")
                frame.sample_rate = self.sample_rate
                frame.pts = i
                for packet in audio.encode(frame):
                    self._container.mux(packet)
            for packet in audio.encode():
                self._container.mux(packet)
        self._container.close()

    def close(self) -> Path:
        """Write the audio (and timing file, or finish the video); returns the file or folder."""
        with self._lock:
            track = self.audio_track()
            if self._codecs is not None:
                if self._container is None:
                    raise RuntimeError(f"{self.path}: no frames were recorded")
                try:
                    self._finish_video(track)
                    with atomic_path(self.path) as tmp:
                        self._tmp.replace(tmp)
                finally:
                    self._tmp.unlink(missing_ok=True)
                return self.path
            save_audio(self.path / AUDIO_FILE, track, self.sample_rate)
            duration = len(track) / self.sample_rate
            timing = {
                "fps": round(self.fps, 3),
                "frames": [{"file": f"frame_{i:05d}.png", "t": round(t, 6)} for i, t in enumerate(self.frame_times)],
                "audio": {"file": AUDIO_FILE, "sample_rate": self.sample_rate, "duration": duration},
                "utterances": [{"start": round(a, 6), "end": round(b, 6)} for a, b in self.utterances],
            }
            with atomic_path(self.path / TIMING_FILE) as tmp:
                tmp.write_text(json.dumps(timing, indent=1), encoding="utf-8")
            return self.path

    def __enter__(self) -> SpeechRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def record_speech(
    speaker: Any,
    text: str,
    render: Callable[[], Any],
    path: str | Path,
    *,
    fps: float = 25.0,
    voice: str | None = None,
    speed: float = 1.0,
    tail: float = 0.3,
) -> SpeechRecorder:
    """Speak ``text`` with ``speaker`` while rendering frames with ``render()`` (paced to at most ``fps``) into
    ``path``; renders ``tail`` seconds more after the speech so the mouth is seen closing. The speaker's AV offset
    is 0 meanwhile. Returns the closed recorder (``frame_times``, ``utterances``, ``fps``)."""
    from . import tts

    ok, why = speaker.available()
    if not ok:
        raise RuntimeError(why)
    recorder = SpeechRecorder(path, sample_rate=tts.SAMPLE_RATE)
    done = threading.Event()
    offset, speaker.offset = speaker.offset, 0.0  # frames are stamped when rendered: no pipeline delay to absorb
    speaker.speak(text, voice or tts.DEFAULT_VOICE, speed, on_done=done.set, recorder=recorder)
    end: float | None = None
    next_t: float | None = None
    try:
        while end is None or recorder.time() < end:
            frame = render()
            t = recorder.time()
            recorder.add_frame(frame, t)
            next_t = (t if next_t is None else next_t) + 1.0 / fps
            time.sleep(max(0.0, next_t - recorder.time()))
            if end is None and done.is_set():
                end = recorder.time() + tail
    finally:
        speaker.stop()
        speaker.offset = offset
        recorder.close()
    if speaker.last_error:
        raise RuntimeError(speaker.last_error)
    return recorder
