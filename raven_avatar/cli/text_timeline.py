"""``avatar-render clip --text``: the text's sentences laid out on the clip's animation clock.

With speech, each sentence is synthesized (Kokoro) and lasts as long as its audio, with its mouth track; without,
each sentence is shown for its reading time. During the clip, each sentence is fed to an emotion follower when it
starts (so the emotion follows the text with the settings' hysteresis, in animation time), and the mouth follows the
spoken sentence's phonemes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.animator import Animator
from ..engine.emotion_follow import FollowParams, TextEmotion
from ..engine.speech import tts
from ..engine.speech.audio import save_audio
from ..engine.speech.lipsync import LipsyncDriver, MouthEvent, mouth_track
from ..engine.speech.tts import SAMPLE_RATE, Utterance, split_sentences

log = logging.getLogger("raven_avatar.cli.clip")

READING_RATE = 15.0  # characters per second of a silent sentence (about 180 words per minute)
MIN_LINE = 1.0  # s, shortest silent sentence
GAP = 0.3  # s between two sentences
LEAD = 0.5  # s before the first sentence
TAIL = 0.7  # s after the last sentence


@dataclass
class Line:
    """One sentence (or part of a long one) from ``start`` to ``end`` seconds of the clip."""

    text: str
    start: float
    end: float
    audio: np.ndarray | None = None  # float32 mono at SAMPLE_RATE, when spoken
    track: list[MouthEvent] = field(default_factory=list)


def spoken_lines(utterances: Iterable[Utterance]) -> list[Line]:
    """Synthesized sentences one after the other, each as long as its audio."""
    lines, t = [], LEAD
    for u in utterances:
        lines.append(Line(u.text, t, t + u.duration, u.audio, mouth_track(u.timeline)))
        t += u.duration + GAP
    return lines


def silent_lines(text: str) -> list[Line]:
    """Sentences timed at :data:`READING_RATE`."""
    lines, t = [], LEAD
    for sentence in split_sentences(text):
        duration = max(MIN_LINE, len(sentence) / READING_RATE)
        lines.append(Line(sentence, t, t + duration))
        t += duration + GAP
    return lines


def duration(lines: list[Line]) -> float:
    """The clip length that shows every line and a short tail."""
    return (lines[-1].end if lines else 0.0) + TAIL


def line_at(lines: list[Line], t: float) -> Line | None:
    """The line being said at ``t`` (None between lines)."""
    return next((line for line in lines if line.start <= t < line.end), None)


def audio_track(lines: list[Line], seconds: float) -> np.ndarray:
    """All spoken lines' audio on one track of ``seconds``."""
    track = np.zeros(int(round(seconds * SAMPLE_RATE)), np.float32)
    for line in lines:
        if line.audio is not None:
            i = int(round(line.start * SAMPLE_RATE))
            piece = line.audio[: max(0, len(track) - i)]
            track[i : i + len(piece)] += piece
    return track


def synthesizer(speak: bool = True) -> tts.Synthesizer | None:
    """Kokoro, when speech is installed and its weights are there; else None (and the reason is logged)."""
    if not speak:
        return None
    ok, why = tts.status()
    if not ok:
        log.info("the clip is silent: %s", why)
        return None
    return tts.Synthesizer()


class TextDriver:
    """Drives an animator through the text: call :meth:`step` before each frame, at the clip's clock time.

    The sentences are fed to an emotion follower (the ``emotion_*`` settings of the animator) when the clip reaches
    them; spoken sentences move the mouth along their phonemes. The classifier is loaded here, so a missing model
    fails before any frame is rendered.
    """

    def __init__(
        self,
        animator: Animator,
        clock: Callable[[], float],
        text: str,
        *,
        voice: str | None = None,
        speak: bool = True,
        synth: tts.Synthesizer | None = None,
    ) -> None:
        self.clock = clock
        synth = synth or synthesizer(speak)
        self.lines = spoken_lines(synth.synthesize(text, voice or tts.DEFAULT_VOICE)) if synth else []
        self.spoken = bool(self.lines)
        self.lines = self.lines or silent_lines(text)
        self.emotion = TextEmotion(animator, clock=clock)
        self.emotion.follower.params = FollowParams.from_settings(animator.settings)
        self.emotion.classifier  # noqa: B018 - loads it
        self.mouth = LipsyncDriver(animator, clock)
        self._next = 0
        self._track: list[MouthEvent] = []

    @property
    def duration(self) -> float:
        return duration(self.lines)

    def step(self) -> None:
        """Start the sentences whose time came, let the emotion follow, move the mouth."""
        now, follower = self.clock(), self.emotion.follower
        before = follower.emotion
        while self._next < len(self.lines) and self.lines[self._next].start <= now:
            line = self.lines[self._next]
            if self._next == 0 or line.text != self.lines[self._next - 1].text:  # a long sentence comes in parts
                follower.feed(line.text + "\n")
            self.mouth.clock = lambda start=line.start: self.clock() - start
            self._track, self._next = line.track, self._next + 1
        follower.poll()
        if follower.emotion != before:
            log.info("%.2f s: %s", now, follower.emotion)
        if self.spoken and self._next:
            self.mouth.update(self._track)

    def write_audio(self, output: Path, kind: str, seconds: float) -> Path | None:
        """The speech as WAV: ``audio.wav`` in a folder output, else beside the file; None when silent."""
        if not self.spoken:
            return None
        path = output / "audio.wav" if kind == "folder" else output.with_suffix(".wav")
        return save_audio(path, audio_track(self.lines, seconds), SAMPLE_RATE)
