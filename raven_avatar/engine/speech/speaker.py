"""The speech front end: speak text with lipsync in the background, stop at any time, export audio.

One :class:`Speaker` per avatar. :meth:`Speaker.speak` returns at once; a synthesis thread works one sentence
ahead of playback, and a playback thread plays the sentences in order while a :class:`LipsyncDriver` moves the
avatar's mouth from the player's clock. When the speech ends or is stopped the mouth overrides are removed and the
animator eases the mouth back to the emotion's shape.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import tts
from .audio import Player, save_audio
from .lipsync import LipsyncDriver, OverrideTarget, mouth_track

log = logging.getLogger(__name__)

_AHEAD = 2  # sentences synthesized ahead of playback


class Speaker:
    """Kokoro speech with lipsync for one avatar.

    Args:
        target: receives the mouth overrides (``Animator`` or ``Avatar``); None: speech without lipsync.
        synthesizer: a :class:`tts.Synthesizer`; default: one loaded on first use from the downloaded weights.
        offset: AV offset in seconds (see :mod:`.lipsync`); can be changed at any time.
        silent: do not open an audio device (the player runs on the wall clock).
        device: sounddevice output device (None: system default).
    """

    def __init__(
        self,
        target: OverrideTarget | None = None,
        *,
        synthesizer: tts.Synthesizer | None = None,
        offset: float = 0.0,
        silent: bool = False,
        device: int | str | None = None,
    ) -> None:
        self.target = target
        self.offset = offset
        self.last_error: str | None = None
        self._synth = synthesizer
        self._silent, self._device = silent, device
        self._player: Player | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._driver: LipsyncDriver | None = None

    # -------------------------------------------------------------------------------------------- capabilities

    def available(self) -> tuple[bool, str]:
        """``(True, "")`` when speech works; else ``(False, reason with the fix)`` (e.g. weights not downloaded)."""
        return (True, "") if self._synth is not None else tts.status()

    def voices(self) -> list[str]:
        """Voice names to pass to :meth:`speak` (empty when speech is unavailable)."""
        if self._synth is not None:
            return self._synth.voices
        return tts.list_voices(tts.find_weights())

    @property
    def synthesizer(self) -> tts.Synthesizer:
        """The synthesizer, loaded on first use; ``RuntimeError`` saying how to get the weights if missing."""
        with self._lock:
            if self._synth is None:
                self._synth = tts.Synthesizer()
            return self._synth

    @property
    def player(self) -> Player:
        with self._lock:
            if self._player is None:
                self._player = Player(tts.SAMPLE_RATE, self._device, silent=self._silent)
            return self._player

    @property
    def speaking(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    # -------------------------------------------------------------------------------------------- speaking

    def speak(
        self,
        text: str,
        voice: str = tts.DEFAULT_VOICE,
        speed: float = 1.0,
        on_done: Callable[[], Any] | None = None,
        recorder: Any = None,
    ) -> None:
        """Start speaking ``text`` (stops any speech in progress); returns at once.

        ``on_done()`` runs on the speech thread when the speech ends, is stopped or fails (then
        :attr:`last_error` says why). ``recorder`` (a :class:`.recording.SpeechRecorder`) receives each sentence's
        audio at the moment it starts playing.
        """
        self.stop()
        synth = self.synthesizer
        player = self.player
        self._stop = stop = threading.Event()
        self.last_error = None
        self._thread = threading.Thread(
            target=self._run, args=(synth, player, stop, text, voice, speed, on_done, recorder), daemon=True
        )
        self._thread.start()

    def _produce(self, synth, stop, text, voice, speed, out: queue.Queue) -> None:
        try:
            for utterance in synth.synthesize(text, voice, speed):
                while not stop.is_set():
                    try:
                        out.put(utterance, timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except Exception as err:
            log.exception("speech synthesis failed")
            out.put(err)
            return
        out.put(None)

    def _run(self, synth, player, stop, text, voice, speed, on_done, recorder) -> None:
        pending: queue.Queue = queue.Queue(_AHEAD)
        producer = threading.Thread(target=self._produce, args=(synth, stop, text, voice, speed, pending), daemon=True)
        producer.start()
        driver = None
        if self.target is not None:
            driver = self._driver = LipsyncDriver(self.target, player.position, self.offset)
        try:
            while not stop.is_set():
                try:
                    item = pending.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is None:
                    break
                if isinstance(item, Exception):
                    self.last_error = f"speech synthesis failed: {item}"
                    break
                track = mouth_track(item.timeline)
                if driver is not None:
                    driver.offset = self.offset
                    self._lead_in(driver, track, stop)
                    driver.clock = player.position
                if stop.is_set():
                    break
                player.play(item.audio)
                if recorder is not None:
                    recorder.add_audio(item.audio, item.sample_rate)
                if driver is not None:
                    driver.run(track, player.playing)
                else:
                    while player.playing() and not stop.wait(0.01):
                        pass
        except Exception as err:
            log.exception("speech playback failed")
            self.last_error = f"speech playback failed: {err}"
        finally:
            stop.set()
            player.stop()
            if driver is not None:
                driver.release()
            producer.join()  # a sentence being synthesized cannot be interrupted; torch must not outlive Python
            if on_done is not None:
                try:
                    on_done()
                except Exception:
                    log.exception("speech on_done callback failed")

    @staticmethod
    def _lead_in(driver: LipsyncDriver, track, stop: threading.Event) -> None:
        """With a negative offset the mouth leads the audio: start the mouth first, then the audio, so the start
        of every sentence is shown (driving from the audio clock alone would skip its first ``-offset`` seconds)."""
        lead = max(0.0, -driver.offset)
        if lead == 0.0:
            return
        t0 = time.monotonic()
        driver.clock = lambda: time.monotonic() - t0 - lead  # runs from -lead to 0, where the audio starts
        driver.run(track, lambda: time.monotonic() - t0 < lead and not stop.is_set())

    def stop(self, wait: bool = True) -> None:
        """Stop speaking now: audio and lipsync stop at once and the mouth returns smoothly to the emotion's shape.

        With ``wait`` this also waits for a sentence still being synthesized (up to about a second on a CPU);
        a GUI can pass ``wait=False`` and watch :attr:`speaking` or ``on_done``.
        """
        self._stop.set()
        if self._driver is not None:
            self._driver.stop()
        if self._player is not None:
            self._player.stop()
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the speech is over; False on timeout."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.speaking

    def close(self) -> None:
        self.stop()
        if self._player is not None:
            self._player.close()

    # -------------------------------------------------------------------------------------------- offline

    def synthesize(self, text: str, voice: str = tts.DEFAULT_VOICE, speed: float = 1.0) -> list[tts.Utterance]:
        """All sentences of ``text``, synthesized (no playback)."""
        return list(self.synthesizer.synthesize(text, voice, speed))

    def export_audio(self, text: str, path: str | Path, voice: str = tts.DEFAULT_VOICE, speed: float = 1.0) -> Path:
        """Speak ``text`` into an audio file (``.wav``, ``.flac``, ``.ogg`` by extension), written atomically."""
        utterances = self.synthesize(text, voice, speed)
        if not utterances:
            raise ValueError(f"nothing to say in {text!r}")
        return save_audio(path, np.concatenate([u.audio for u in utterances]), tts.SAMPLE_RATE)
