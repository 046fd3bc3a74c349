"""``avatar-render clip --text``: sentences on the clip clock, the emotion following them, the mouth following the
spoken phonemes; with a tiny random classifier (no download) and, for speech, utterances with known phonemes."""

from __future__ import annotations

import json
import re
from itertools import groupby

import numpy as np
import pytest

pytest.importorskip("transformers")

from emotion_helpers import build_tiny_model  # noqa: E402

from raven_avatar.cli import text_timeline as tt  # noqa: E402
from raven_avatar.cli.render import main  # noqa: E402
from raven_avatar.engine import emotion_text as et  # noqa: E402
from raven_avatar.engine.animator import Animator  # noqa: E402
from raven_avatar.engine.emotions import EMOTION_NAMES, load_templates  # noqa: E402
from raven_avatar.engine.speech.tts import SAMPLE_RATE, Phoneme, Utterance  # noqa: E402

TEXT = "Thank you so much! Why? This is terrible."
EAGER = {"emotion_neutral_threshold": 0.0, "emotion_margin": 0.0, "emotion_hold_time": 0.0,
         "emotion_device": "cpu", "blink_probability": 0.0}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_goemotions"), list(EMOTION_NAMES), seed=3)


@pytest.fixture(scope="module")
def expected(tiny_model):
    """The emotion after each sentence: the classifier's best label for the text up to it."""
    clf = et.EmotionClassifier(tiny_model, "cpu")
    sentences = et.split_sentences(TEXT)
    return [et.top(clf.classify(" ".join(sentences[: i + 1])), 1)[0][0] for i in range(len(sentences))]


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedSynth:
    """Utterances of known length whose phonemes are one open "a" (0.1-0.4 s) and a closing "m" after it."""

    def synthesize(self, text, voice, speed=1.0):
        for sentence in et.split_sentences(text):
            timeline = [Phoneme("a", 0.1, 0.4), Phoneme("m", 0.4, 0.6)]
            yield Utterance(sentence, "am", np.full(int(0.6 * SAMPLE_RATE), 0.1, np.float32), timeline)


def test_silent_lines_are_timed_by_reading_speed():
    lines = tt.silent_lines(TEXT)
    assert [line.text for line in lines] == ["Thank you so much!", "Why?", "This is terrible."]
    assert lines[0].start == tt.LEAD and lines[0].end - lines[0].start == pytest.approx(18 / tt.READING_RATE)
    assert lines[1].end - lines[1].start == tt.MIN_LINE  # "Why?" is short
    assert all(b.start == pytest.approx(a.end + tt.GAP) for a, b in zip(lines, lines[1:], strict=False))
    assert tt.duration(lines) == pytest.approx(lines[-1].end + tt.TAIL)
    assert tt.line_at(lines, lines[1].start + 0.01) is lines[1] and tt.line_at(lines, 0.0) is None


def test_driver_follows_the_text_and_moves_the_mouth(tiny_model, expected):
    clock = Clock()
    settings = {**EAGER, "emotion_model": str(tiny_model)}
    animator = Animator(settings, load_templates(None), seed=0, clock=clock)
    driver = tt.TextDriver(animator, clock, TEXT, synth=ScriptedSynth())
    assert driver.spoken and [line.end - line.start for line in driver.lines] == pytest.approx([0.6] * 3)
    seen, mouths = [], []  # the emotions shown during the sentences, in order
    for k in range(int(driver.duration * 20)):
        clock.now = k / 20
        driver.step()
        line = tt.line_at(driver.lines, clock.now)
        if line is not None and line.start + 0.15 <= clock.now < line.start + 0.35:
            mouths.append(animator.overrides.get("mouth_aaa_index"))  # the "a" is being said
        if line is not None:
            seen.append(animator.emotion)
    assert [k for k, _ in groupby(seen)] == [k for k, _ in groupby(expected)]  # each sentence's emotion, in order
    assert mouths and all(m == 1.0 for m in mouths)
    audio = tt.audio_track(driver.lines, driver.duration)
    start = int(driver.lines[1].start * SAMPLE_RATE)
    assert audio[start + 10] == pytest.approx(0.1) and audio[start - 10] == 0.0


@pytest.mark.slow
def test_clip_with_text(tmp_path, tiny_model, expected, offline_models, example_character_png, caplog):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({**EAGER, "emotion_model": str(tiny_model), "postprocessor_chain": []}))
    out = tmp_path / "clip"
    args = ["clip", "--character", str(example_character_png), "--text", "Why? This is terrible.", "--fps", "0.5",
            "--output", str(out), "--settings", str(settings), "--device", "cpu", "--no-voice"]  # fmt: skip
    caplog.set_level("INFO")
    assert main(args) == 0
    timing = json.loads((out / "timing.json").read_text())
    lines = tt.silent_lines("Why? This is terrible.")
    assert timing["frame_count"] == round(tt.duration(lines) * 0.5) == 2  # the clip lasts as long as the text
    changes = [m[1] for r in caplog.records if (m := re.fullmatch(r"\d+\.\d\d s: (\w+)", r.getMessage()))]
    clf = et.EmotionClassifier(tiny_model, "cpu")
    both = et.top(clf.classify("Why? This is terrible."), 1)[0][0]  # the second frame (t = 2 s) is after both
    assert changes == [both] and not (out / "audio.wav").exists()
