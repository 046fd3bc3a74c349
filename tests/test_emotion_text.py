"""Emotion from text: the classifier on a tiny random DistilBERT (built here, no download), label mapping, the
Hugging Face cache lookup, the offline message, the command line and the settings."""

from __future__ import annotations

import shutil

import pytest
import torch

pytest.importorskip("transformers")

from emotion_helpers import build_tiny_model  # noqa: E402

from raven_avatar.engine import emotion_text as et  # noqa: E402
from raven_avatar.engine import settings as S  # noqa: E402
from raven_avatar.engine.download import OfflineError  # noqa: E402
from raven_avatar.engine.emotions import EMOTION_NAMES  # noqa: E402

LABELS = list(reversed(EMOTION_NAMES))  # not sorted: the labels must come from the model's config


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_goemotions"), LABELS)


@pytest.fixture(scope="module")
def clf(tiny_model):
    return et.EmotionClassifier(tiny_model, device="cpu")


def test_all_labels_scored_in_model_order(clf):
    assert clf.labels == LABELS and clf.device.type == "cpu" and clf.notice is None
    scores = clf.classify("Thank you so much, I love it!")
    assert list(scores) == LABELS
    assert all(0.0 <= v <= 1.0 for v in scores.values()) and sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert len({et.top(clf.classify(t), 1)[0][0] for t in ("wow!", "i hate this.", "why?", "thank you")}) > 1


def test_scores_are_the_pipelines(clf):
    texts = ["Thank you so much, I love it!", "why", "wow " * 100]
    for text, scores in zip(texts, clf.raw_scores(texts), strict=True):
        answer = clf.pipeline(text, top_k=None, truncation=True)
        assert scores == pytest.approx({d["label"]: d["score"] for d in answer}, abs=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_give_the_eager_scores(tiny_model):
    eager = et.EmotionClassifier(tiny_model, "cuda", cuda_graphs=False)
    graphed = et.EmotionClassifier(tiny_model, "cuda")
    assert graphed.cuda_graphs and not eager.cuda_graphs
    for texts in (["wow"], ["I can not believe it worked!", "why", "No. No."], ["wow " * 30], ["yes"] * 5, ["no"]):
        for a, b in zip(eager.raw_scores(texts), graphed.raw_scores(texts), strict=True):
            assert a == pytest.approx(b, abs=1e-5)
    assert len(graphed._graphs) == 4  # (1, 16), (4, 16), (1, 32) and (8, 16); the last ["no"] replays (1, 16)


def test_batch_equals_one_by_one(clf):
    texts = ["I can not believe it worked!", "why", "No. No. No, this is terrible."]
    batch = clf.classify(texts)
    assert isinstance(batch, list) and len(batch) == 3
    for text, scores in zip(texts, batch, strict=True):
        one = clf.classify(text)
        assert scores == pytest.approx(one, abs=1e-5)  # padding in the batch changes nothing
    assert clf.classify([]) == []
    with pytest.raises(TypeError):
        clf.classify([1, 2])


def test_last_sentences_weigh_most(clf):
    sentences = ["I am so happy.", "This is terrible!", "Why?", "Thank you."]
    text = " ".join(sentences)
    raw = clf.raw_scores(sentences)
    w = [1 / 7, 2 / 7, 4 / 7]  # recency 0.5 over the last three
    expected = {lab: sum(wi * r[lab] for wi, r in zip(w, raw[1:], strict=True)) for lab in LABELS}
    assert clf.classify(text, last=3, recency=0.5) == pytest.approx(expected, abs=1e-5)
    assert clf.classify(text, last=1) == pytest.approx(raw[-1], abs=1e-5)
    equal = {lab: sum(r[lab] for r in raw) / 4 for lab in LABELS}
    assert clf.classify(text, last=10, recency=1.0) == pytest.approx(equal, abs=1e-5)
    assert et.recency_weights(3, 0.0) == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        clf.classify(text, recency=1.5)


def test_long_text_is_truncated_not_an_error(clf):
    assert len(clf.classify("wow " * 500)) == 28  # one 500-word "sentence": more tokens than the model's 64


def test_label_table_maps_other_classifiers_and_overrides():
    table = et.label_table({"Sad": "grief"})
    scores, dropped = et.to_templates({"happy": 0.5, "sad": 0.3, "Anger": 0.15, "boredom": 0.05}, table)
    assert scores == pytest.approx({"joy": 0.5, "grief": 0.3, "anger": 0.15, "boredom": 0.05})
    assert list(scores) == ["joy", "grief", "anger", "boredom"]  # best first
    scores, dropped = et.to_templates({"happy": 0.4, "joy": 0.2, "boredom": 0.4}, table, known={"joy", "neutral"})
    assert scores == pytest.approx({"joy": 0.6}) and dropped == ["boredom"]  # labels for one template add up
    assert all(et.LABEL_TO_TEMPLATE[name] == name for name in EMOTION_NAMES)


def test_classification_json_is_the_reference_shape(clf):
    answer = et.classification_json(clf.classify("wow"))
    items = answer["classification"]
    assert set(answer) == {"classification"} and len(items) == 28
    assert all(set(i) == {"label", "score"} and isinstance(i["score"], float) for i in items)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)


def test_model_found_in_the_hugging_face_cache(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-goemotions"
    shutil.copytree(tiny_model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    assert et.find_model("someone/tiny-goemotions", cache_dir=tmp_path / "hub") == repo / "snapshots" / commit
    clf = et.EmotionClassifier("someone/tiny-goemotions", "cpu", cache_dir=tmp_path / "hub")
    assert clf.labels == LABELS


def test_offline_and_not_cached_says_what_to_run(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    with pytest.raises(OfflineError) as err:
        et.EmotionClassifier(et.DEFAULT_MODEL, "cpu", cache_dir=tmp_path)
    message = str(err.value)
    assert et.DEFAULT_MODEL in message and "not downloaded" in message
    assert f"python -m raven_avatar.engine.emotion_text download --model {et.DEFAULT_MODEL}" in message
    with pytest.raises(OfflineError, match="not a model folder"):
        et.EmotionClassifier(tmp_path / "nothing_here", "cpu")
    assert et.main(["download"]) == 1 and "offline mode" in caplog.text
    assert et.main(["where", "--model", str(tmp_path / "nothing_here")]) == 1
    assert "not downloaded" in capsys.readouterr().out


def test_command_line_classifies(tiny_model, capsys):
    assert et.main(["classify", "--model", str(tiny_model), "--device", "cpu", "Thank you!"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and lines[0].split()[0] in LABELS


def test_settings_schema_has_the_emotion_parameters():
    group = {s.key for s in S.settings_in("emotion_text")}
    assert {"emotion_model", "emotion_hold_time", "emotion_margin", "emotion_neutral_threshold",
            "emotion_classify_interval_ms", "emotion_label_map"} <= group  # fmt: skip
    assert S.BY_KEY["emotion_model"].default == et.DEFAULT_MODEL
    assert S.validate({"emotion_label_map": {"happy": "joy", "LABEL_3": "sad-ish"}}) == []
    bad = S.validate({"emotion_label_map": {"happy": "../joy"}, "emotion_margin": 2.0})
    assert [p.key for p in bad] == ["emotion_label_map.happy", "emotion_margin"]
    assert [p.key for p in S.validate({"emotion_label_map": ["joy"]})] == ["emotion_label_map"]


def test_avatar_takes_the_emotion_from_text(tiny_model, clf, cpu_poser, example_character_png, offline_models):
    from raven_avatar.engine import Avatar

    eager = {"emotion_model": str(tiny_model), "emotion_device": "cpu", "emotion_neutral_threshold": 0.0,
             "emotion_margin": 0.0, "emotion_hold_time": 0.0}  # fmt: skip
    texts = ["Thank you so much!", "Why? This is terrible.", "wow", "i hate this."]
    expected = {t: et.top(clf.classify(t), 1)[0] for t in texts}
    assert len({label for label, _ in expected.values()}) > 1
    avatar = Avatar(example_character_png, eager, poser=cpu_poser, seed=0)
    for text in texts:
        label, score = avatar.set_emotion_from_text(text)
        assert (label, score) == (expected[text][0], pytest.approx(expected[text][1], abs=1e-5))
        assert avatar.emotion == label
    for text in texts:  # streamed word by word
        words = text.split(" ")
        for i, word in enumerate(words):
            avatar.follow_text(word if i == 0 else " " + word)
        avatar.follow_text("", done=True)
        assert avatar.text_emotion.wait(60) and avatar.text_emotion.last_error is None
        assert avatar.emotion == expected[text][0]
    avatar.load_settings({**eager, "emotion_neutral_threshold": 1.0})
    assert avatar.set_emotion_from_text("wow") == ("neutral", pytest.approx(clf.classify("wow")["neutral"], abs=1e-5))
    avatar.close()
