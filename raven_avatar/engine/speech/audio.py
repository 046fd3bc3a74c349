"""Audio out: playback whose position is the lipsync clock, and WAV/FLAC export.

:class:`Player` plays one mono float clip at a time through ``sounddevice``; :meth:`Player.position` is the time of
the sample now leaving the speakers (from PortAudio's DAC timestamps), which is what the mouth must follow. Without
an output device (or sounddevice/PortAudio missing, or ``RAVEN_AVATAR_NO_AUDIO=1``) it logs one clear message and
plays silently on the wall clock, so lipsync and recording still run.

:func:`save_audio` picks the format from the extension: ``.wav`` (soundfile, or the standard ``wave`` module as
16-bit PCM), ``.flac`` and ``.ogg`` (need the ``soundfile`` package).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import wave
from pathlib import Path

import numpy as np

from raven_avatar.engine.fileio import atomic_path

log = logging.getLogger(__name__)

NO_AUDIO_ENV = "RAVEN_AVATAR_NO_AUDIO"
_SOUNDFILE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def _open_stream(sample_rate: int, callback, device):
    """A started sounddevice output stream, or the reason there is none."""
    if os.environ.get(NO_AUDIO_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return None, f"{NO_AUDIO_ENV} is set"
    try:
        import sounddevice as sd

        stream = sd.OutputStream(samplerate=sample_rate, channels=1, dtype="float32", callback=callback, device=device)
        stream.start()
        return stream, ""
    except Exception as err:  # OSError (no PortAudio), sounddevice.PortAudioError (no device), ...
        return None, str(err) or type(err).__name__


class Player:
    """Plays clips one at a time; silent on the wall clock when there is no output device.

    Args:
        sample_rate: of every clip played.
        device: sounddevice output device (None: system default).
        silent: never open a device (tests, headless recording).
    """

    def __init__(self, sample_rate: int, device: int | str | None = None, *, silent: bool = False) -> None:
        self.sample_rate = sample_rate
        self._lock = threading.Lock()
        self._clip = np.zeros(0, np.float32)
        self._next = 0  # next sample index handed to PortAudio
        self._dac: tuple[int, float] | None = None  # (sample index, DAC time) of the latest callback
        self._end_dac = 0.0  # DAC time at which the last sample handed over is heard
        self._started = 0.0  # wall-clock start of the clip (silent mode)
        self._done = threading.Event()
        self._done.set()
        self._stream = None
        self.reason = "silent mode requested" if silent else ""
        if not silent:
            self._stream, self.reason = _open_stream(sample_rate, self._callback, device)
        if self._stream is None:
            log.warning("no audio output (%s): speech plays silently; lipsync follows the wall clock", self.reason)

    @property
    def silent(self) -> bool:
        return self._stream is None

    def _callback(self, outdata, frames, time_info, status) -> None:
        with self._lock:
            chunk = self._clip[self._next : self._next + frames]
            outdata[: len(chunk), 0] = chunk
            outdata[len(chunk) :, 0] = 0.0
            if len(chunk):
                dac = time_info.outputBufferDacTime  # some host APIs report 0: estimate from the latency
                if dac <= 0 and self._stream is not None:
                    dac = self._stream.time + self._stream.latency
                self._dac = (self._next, dac)
                self._end_dac = dac + len(chunk) / self.sample_rate
            self._next += len(chunk)

    def play(self, audio: np.ndarray) -> None:
        """Start playing a mono float clip (replacing any clip still playing); returns at once."""
        with self._lock:
            self._clip = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
            self._next = 0
            self._dac = None
            self._end_dac = float("inf")
            self._started = time.monotonic()
            (self._done.clear if len(self._clip) else self._done.set)()

    def position(self) -> float:
        """Seconds into the current clip of the sample being heard now (0 before it starts)."""
        with self._lock:
            if self._stream is None:
                return min(time.monotonic() - self._started, len(self._clip) / self.sample_rate)
            if self._dac is None:
                return 0.0
            index, dac_time = self._dac
            now = self._stream.time
        return max(0.0, min(index + (now - dac_time) * self.sample_rate, len(self._clip))) / self.sample_rate

    def playing(self) -> bool:
        """True until the current clip has been heard to its end (or :meth:`stop`)."""
        if not self._done.is_set():
            with self._lock:
                if self._stream is None:
                    over = time.monotonic() - self._started >= len(self._clip) / self.sample_rate
                else:
                    over = self._next >= len(self._clip) and self._stream.time >= self._end_dac
            if over:
                self._done.set()
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the clip is over; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.playing():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._done.wait(0.01)
        return True

    def stop(self) -> None:
        """Silence now."""
        with self._lock:
            self._clip = np.zeros(0, np.float32)
            self._next = 0
            self._done.set()

    def close(self) -> None:
        self.stop()
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def _to_int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio atomically; format from the extension (``.wav``, ``.flac``, ``.ogg``)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _SOUNDFILE_FORMATS:
        raise ValueError(f"{path}: unsupported audio extension {ext!r}; use .wav, .flac or .ogg")
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    try:
        import soundfile
    except (ImportError, OSError) as err:
        if ext != ".wav":
            raise RuntimeError(f"{path}: writing {ext} needs the soundfile package; `pip install soundfile`") from err
        soundfile = None
    with atomic_path(path) as tmp:
        if soundfile is not None:
            subtype = "VORBIS" if ext == ".ogg" else "PCM_16"
            soundfile.write(tmp, audio, sample_rate, format=_SOUNDFILE_FORMATS[ext], subtype=subtype)
        else:
            with wave.open(str(tmp), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(sample_rate)
                w.writeframes(_to_int16(audio).tobytes())
    return path


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 audio and its sample rate (WAV via ``wave`` when soundfile is missing)."""
    path = Path(path)
    try:
        import soundfile
    except (ImportError, OSError):
        if path.suffix.lower() != ".wav":
            raise RuntimeError(f"{path}: reading {path.suffix} needs the soundfile package") from None
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise ValueError(f"{path}: only 16-bit WAV can be read without soundfile") from None
            data = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
            return data.mean(axis=1).astype(np.float32) / 32767.0, w.getframerate()
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), rate
