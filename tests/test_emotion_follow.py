"""The emotion follower: when it classifies streamed text, and its hysteresis (hold time, margin, neutral fallback),
with scripted scores and a fake clock; then the background follower of an avatar-like target and of a real Avatar."""

from __future__ import annotations

import threading

import pytest

from raven_avatar.engine import settings as S
from raven_avatar.engine.emotion_follow import EmotionFollower, FollowParams, TextEmotion
from raven_avatar.engine.emotions import EMOTION_NAMES


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Script:
    """Deterministic scores: the scores of the last keyword found in the text (``neutral`` mush otherwise)."""

    TABLE = {
        "yay": {"joy": 0.8, "excitement": 0.15, "neutral": 0.05},
        "yaay": {"excitement": 0.45, "joy": 0.40, "neutral": 0.15},  # close to "yay": must not flip
        "boo": {"sadness": 0.7, "grief": 0.2, "neutral": 0.1},
        "meh": {"neutral": 0.12, "joy": 0.10, "sadness": 0.10, "confusion": 0.10},  # nothing is confident
    }

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, text: str) -> dict[str, float]:
        self.calls.append(text)
        words = [w.strip(".!?, \n") for w in text.split()]
        found = [w for w in words if w in self.TABLE]
        return dict(self.TABLE[found[-1]]) if found else {"neutral": 0.5, "joy": 0.1}


def make(hold=2.0, margin=0.1, threshold=0.2, interval=0.5):
    clock, script, applied = FakeClock(), Script(), []
    follower = EmotionFollower(
        script, applied.append, params=FollowParams(interval, hold, margin, threshold), clock=clock
    )
    return follower, clock, script, applied


def test_classifies_at_sentence_ends_not_every_chunk():
    f, clock, script, applied = make()
    for chunk in ["Well", " yay", " that", " works"]:
        assert f.feed(chunk) is None
    assert script.calls == []  # no sentence end yet, interval not over (the clock did not move)
    assert f.feed("!") is None and script.calls == []  # "!" may be followed by more ("!!", "!)")
    assert f.feed(" And") == "joy" and len(script.calls) == 1 and applied == ["joy"]
    f.feed(" then.")
    f.feed("\n")  # a sentence end straddling two chunks counts once
    assert len(script.calls) == 2
    f.feed("Dr")
    f.feed(". Who")  # "." + white space: classified (an abbreviation costs one extra classification, no harm)
    assert len(script.calls) == 3


def test_interval_classifies_a_long_sentence_while_it_streams():
    f, clock, script, applied = make(interval=0.5)
    f.feed("so yay")
    clock.now += 0.25
    assert f.poll() is None and script.calls == []
    assert f.next_due() == 100.5
    clock.now += 0.25
    assert f.poll() == "joy" and len(script.calls) == 1
    assert f.poll() is None and len(script.calls) == 1  # nothing new: nothing to classify
    f2, clock2, script2, _ = make(interval=0.0)
    f2.feed("so yay")
    clock2.now += 60
    assert f2.poll() is None and script2.calls == [] and f2.next_due() is None  # 0: only at sentence ends


def test_end_of_stream_classifies_the_rest_and_starts_afresh():
    f, clock, script, applied = make()
    f.feed("I say yay")
    assert f.end() == "joy"
    clock.now += 10
    f.feed("and then. ")
    assert script.calls[-1] == "and then. "  # the previous reply's text is gone
    assert f.end() is None and len(script.calls) == 2  # nothing unclassified left: no classification


def test_no_flicker_between_close_labels():
    f, clock, script, applied = make(hold=0.0, margin=0.1)
    f.feed("yay. ")
    for k in range(20):  # alternating close scores, time passing
        clock.now += 1.0
        f.feed("yaay. " if k % 2 == 0 else "yay. ")
    assert applied == ["joy"]  # excitement (0.45) never beat joy (0.40 then) by the 0.1 margin
    clock.now += 1.0
    f.feed("boo. ")
    assert applied == ["joy", "sadness"]


def test_hold_time_delays_a_change_then_takes_it_if_still_wanted():
    f, clock, script, applied = make(hold=2.0, margin=0.0)
    f.feed("yay. ")
    assert applied == ["joy"]
    clock.now += 0.5
    assert f.feed("boo. ") is None  # held
    assert f.next_due() == pytest.approx(102.0)
    clock.now += 1.0
    assert f.poll() is None and applied == ["joy"]
    clock.now += 0.5  # 2 s after the change to joy
    assert f.poll() == "sadness" and applied == ["joy", "sadness"]


def test_a_held_change_is_dropped_when_the_text_turns_back():
    f, clock, script, applied = make(hold=2.0, margin=0.0)
    f.feed("yay. ")
    clock.now += 0.5
    f.feed("boo. ")
    clock.now += 0.5
    f.feed("yay again. ")  # joy is wanted again before the hold time ended
    clock.now += 5.0
    assert f.poll() is None and applied == ["joy"] and f.next_due() is None


def test_neutral_when_no_label_is_confident():
    f, clock, script, applied = make(hold=1.0, margin=0.5, threshold=0.2)
    f.feed("yay. ")
    clock.now += 2.0
    assert f.feed("meh. ") == "neutral"  # best 0.12 < 0.2: neutral, and no margin needed to fall back
    assert applied == ["joy", "neutral"]
    clock.now += 2.0
    f.feed("yay. ")  # 0.8 vs neutral's 0.05: beats the 0.5 margin
    assert applied[-1] == "joy"


def test_an_emotion_set_elsewhere_is_held_too():
    f, clock, script, applied = make(hold=3.0, margin=0.0)
    f.note("anger")
    clock.now += 1.0
    f.feed("yay. ")
    assert applied == [] and f.emotion == "anger"
    clock.now += 2.0
    assert f.poll() == "joy"


def test_follow_params_come_from_the_settings():
    params = FollowParams.from_settings(S.defaults() | {"emotion_classify_interval_ms": 250, "emotion_hold_time": 4})
    assert params == FollowParams(interval=0.25, hold=4, margin=0.1, neutral_threshold=0.2)


# ------------------------------------------------------------------------------------ the background follower


class Target:
    """What TextEmotion drives: an avatar's settings, emotions, emotion and set_emotion."""

    def __init__(self, **settings) -> None:
        self.settings = S.defaults() | settings
        self.emotions = ["joy", "neutral", "sadness"]
        self.emotion = "neutral"
        self.set_calls: list[str] = []

    def set_emotion(self, name: str) -> None:
        if name not in self.emotions:
            raise ValueError(name)
        self.emotion = name
        self.set_calls.append(name)


class ScriptClassifier:
    """Script scores by label; ``gate`` (an Event), when given, blocks each classification until set."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.script, self.gate = Script(), gate
        self.started = threading.Event()

    def classify(self, text, *, last, recency):
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        return {"Happy": 0.05, **self.script(text)}


def test_background_follower_changes_the_emotion():
    target = Target(emotion_hold_time=0.0, emotion_label_map={"happy": "joy"})
    te = TextEmotion(target, classifier=ScriptClassifier())
    for chunk in ["Oh", " boo", ". It", " broke"]:
        te.follow(chunk)
    assert te.wait(30)
    assert target.set_calls == ["sadness"] and te.last_error is None
    te.follow(" but yay", done=True)
    assert te.wait(30) and target.emotion == "joy"
    assert te.scores("yay")["joy"] == pytest.approx(0.85)  # "Happy" mapped to joy through the label map
    te.close()


def test_follow_returns_while_the_classifier_works():
    gate = threading.Event()
    classifier = ScriptClassifier(gate)
    target = Target(emotion_hold_time=0.0)
    te = TextEmotion(target, classifier=classifier)
    te.follow("boo. ")
    assert classifier.started.wait(30)
    te.follow("more text. ")  # returns although a classification is in progress
    assert not te.wait(0.01) and target.set_calls == []
    gate.set()
    assert te.wait(30) and target.emotion == "sadness"
    te.close()


def test_background_follower_survives_a_missing_classifier(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    target = Target(emotion_model=str(tmp_path / "no_model_here"))
    te = TextEmotion(target)
    te.follow("boo. ", done=True)
    assert te.wait(30)
    assert "no_model_here" in te.last_error and target.set_calls == []
    with pytest.raises(Exception, match="no_model_here"):
        te.set_from_text("boo")
    te.classifier = ScriptClassifier()
    target.settings["emotion_hold_time"] = 0.0
    te.follow("boo. ", done=True)
    assert te.wait(30) and te.last_error is None and target.emotion == "sadness"
    te.close()


def test_a_model_provided_after_a_failure_is_used_without_a_restart(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from emotion_helpers import build_tiny_model

    import raven_avatar.engine.emotion_follow as ef

    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    folder = tmp_path / "model"
    target = Target(emotion_model=str(folder), emotion_device="cpu", emotion_neutral_threshold=0.0)
    target.emotions = list(EMOTION_NAMES)
    te = TextEmotion(target)
    with pytest.raises(Exception, match="not a model folder"):
        te.set_from_text("wow")
    build_tiny_model(folder, list(EMOTION_NAMES))  # e.g. the user ran the download command meanwhile
    with pytest.raises(Exception, match="not a model folder"):
        te.set_from_text("wow")  # not retried at once: streamed chunks must not each retry
    monkeypatch.setattr(ef, "_RETRY_AFTER", 0.0)
    emotion, score = te.set_from_text("wow")
    assert emotion in EMOTION_NAMES and target.emotion == emotion and 0 < score <= 1


def test_set_from_text_is_immediate_and_falls_back_to_neutral():
    target = Target(emotion_hold_time=60.0)
    te = TextEmotion(target, classifier=ScriptClassifier())
    assert te.set_from_text("boo") == ("sadness", pytest.approx(0.7))
    assert te.set_from_text("meh") == ("neutral", pytest.approx(0.12))  # no hold for explicit requests
    te.follow("yay. ", done=True)
    assert te.wait(30) and target.emotion == "neutral"  # but the follower holds what was set
