"""Lipsync: phonemes with times -> mouth morphs, driven by the audio clock.

The phoneme -> morph table follows the reference (Misaki IPA): each sounding phoneme opens the mouth in one of six
shapes (``aaa iii uuu eee ooo delta``) at full strength with the other five at 0; ``b m p`` close the mouth; stress
marks and light punctuation keep the current shape; ``. ! ?`` close the mouth only for a pause of at least
:data:`LONG_PAUSE` seconds. Misaki's one-letter diphthongs (``A I O W Y Q``) are split into their two vowels, each
taking half of the letter's time. The mouth-corner and smirk morphs are never touched, so the emotion's mouth
expression stays.

Timing: ``t = clock() - offset``. A negative offset drives the mouth *ahead* of the audio, to absorb the video
pipeline's latency (the reference's default is -0.8 s for its HTTP-streamed video). :class:`.speaker.Speaker`
starts the mouth ``-offset`` seconds before each sentence's audio, so no phoneme at a sentence start is skipped.

The shapes are applied as overrides through any object with ``modify_overrides(action, dict)`` (the engine's
``Animator`` and ``Avatar``); the animator's pose interpolator moves the mouth there smoothly, and removing the
overrides at the end (:meth:`LipsyncDriver.release`) lets the mouth return smoothly to the emotion's own shape.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ..pose import MOUTH_OPEN_KEYS
from .tts import Phoneme

MOUTH_KEYS = MOUTH_OPEN_KEYS  # the morphs lipsync drives (all mouth-open shapes)
CLOSED: dict[str, float] = dict.fromkeys(MOUTH_KEYS, 0.0)
LONG_PAUSE = 0.5  # seconds: a sentence-end pause at least this long closes the mouth
TICK = 0.01  # seconds between lipsync updates

_CLOSE, _KEEP, _MAYBE_CLOSE = "!close", "!keep", "!maybe_close"
_GROUPS = {
    _CLOSE: "bmp",
    "mouth_aaa_index": "jkɡŋɹðθɑʌa",
    "mouth_iii_index": "viɪ",
    "mouth_uuu_index": "uʊ",
    "mouth_eee_index": "flnstTzʒɛɾe",
    "mouth_ooo_index": "wʃʤʧɔɒo",
    "mouth_delta": "dhəɜᵊæᵻɚɐ",  # ɚ ɐ: espeak-ng's r-coloured and open schwas
    _KEEP: "ːˈˌ,;:",
    _MAYBE_CLOSE: ".!?",
}
PHONEME_TO_MORPH: dict[str, str] = {p: morph for morph, chars in _GROUPS.items() for p in chars}
DIPHTHONGS = {"A": "eɪ", "I": "aɪ", "W": "aʊ", "Y": "ɔɪ", "O": "oʊ", "Q": "əʊ"}


def shape(morph: str) -> dict[str, float]:
    """The six mouth overrides for one open-mouth morph at full strength."""
    return {key: float(key == morph) for key in MOUTH_KEYS}


@dataclass(frozen=True)
class MouthEvent:
    """From ``start`` to ``end`` (seconds) the mouth takes ``shape`` (six overrides)."""

    start: float
    end: float
    shape: dict[str, float]


def mouth_track(timeline: Iterable[Phoneme], long_pause: float = LONG_PAUSE) -> list[MouthEvent]:
    """Mouth events for a phoneme timeline; times without an event keep the current shape."""
    events: list[MouthEvent] = []
    for p in timeline:
        parts = DIPHTHONGS.get(p.symbol, p.symbol)
        step = (p.end - p.start) / len(parts)
        for i, symbol in enumerate(parts):
            start, end = p.start + i * step, p.start + (i + 1) * step
            morph = PHONEME_TO_MORPH.get(symbol)
            if morph is None or morph == _KEEP:
                continue  # unknown symbols and spaces leave a gap: no change
            if morph == _MAYBE_CLOSE and end - start < long_pause:
                continue
            events.append(MouthEvent(start, end, CLOSED if morph in (_CLOSE, _MAYBE_CLOSE) else shape(morph)))
    return events


def shape_at(track: list[MouthEvent], t: float) -> dict[str, float] | None:
    """The shape at time ``t``: an event's shape, ``CLOSED`` after the track, ``None`` (keep) otherwise."""
    if track and t >= track[-1].end:
        return CLOSED
    i = bisect.bisect_right([e.start for e in track], t) - 1
    if i >= 0 and t < track[i].end:
        return track[i].shape
    return None


class OverrideTarget(Protocol):
    def modify_overrides(self, action: str, overrides: dict[str, float] | Iterable[str]) -> None: ...


class LipsyncDriver:
    """Moves a target's mouth along mouth tracks as an audio clock advances.

    Args:
        target: anything with ``modify_overrides("set" | "unset", ...)`` (``Animator``, ``Avatar``).
        clock: seconds into the audio now playing (e.g. ``Player.position``).
        offset: AV offset in seconds; the mouth shows the phoneme at ``clock() - offset`` (negative: mouth early).

    Only changes are sent to the target (not every tick). Thread-safe: :meth:`stop` may come from any thread.
    """

    def __init__(self, target: OverrideTarget, clock: Callable[[], float], offset: float = 0.0) -> None:
        self.target = target
        self.clock = clock
        self.offset = offset
        self._sent: dict[str, float] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def update(self, track: list[MouthEvent]) -> dict[str, float] | None:
        """One tick: apply the shape due now (if it changed); returns the shape in force (None before any)."""
        wanted = shape_at(track, self.clock() - self.offset)
        with self._lock:
            if wanted is not None and wanted != self._sent and not self._stop.is_set():
                self.target.modify_overrides("set", wanted)
                self._sent = wanted
            return self._sent

    def run(self, track: list[MouthEvent], playing: Callable[[], bool], tick: float = TICK) -> bool:
        """Drive ``track`` while ``playing()``; returns False when :meth:`stop` ended it early.

        The mouth stays under lipsync control afterwards (closed after the track): call :meth:`release` when the
        whole speech is over, so consecutive sentences do not flicker back to the emotion's mouth in between.
        """
        while playing() and not self._stop.is_set():
            self.update(track)
            self._stop.wait(tick)
        if not self._stop.is_set():
            self.update(track)
        return not self._stop.is_set()

    def stop(self) -> None:
        """End :meth:`run` now and release the mouth."""
        self._stop.set()
        self.release()

    def release(self) -> None:
        """Hand the mouth back to the animator (it moves smoothly back to the emotion's shape)."""
        with self._lock:
            if self._sent is not None:
                self.target.modify_overrides("unset", list(MOUTH_KEYS))
                self._sent = None

    def reset(self) -> None:
        """Allow :meth:`run` again after :meth:`stop`."""
        self._stop.clear()


def wall_clock(start: float | None = None) -> Callable[[], float]:
    """Seconds since ``start`` (default: now) on the monotonic clock."""
    t0 = time.monotonic() if start is None else start
    return lambda: time.monotonic() - t0
