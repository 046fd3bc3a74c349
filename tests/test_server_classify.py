"""Emotion from text through the server: the reference's /api/classify endpoints and the per-avatar calls, over
real HTTP and the WebSocket, with a tiny random go-emotions classifier built in the test (no download)."""

from __future__ import annotations

import json

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("transformers")

from emotion_helpers import build_tiny_model  # noqa: E402
from server_helpers import QUIET, load_avatar, server_for_tests  # noqa: E402

from raven_avatar.engine import emotion_text as et  # noqa: E402
from raven_avatar.engine.emotions import EMOTION_NAMES  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_goemotions"), list(EMOTION_NAMES))


@pytest.fixture(scope="module")
def server(cpu_poser, tmp_path_factory, tiny_model):
    classifier = et.EmotionClassifier(tiny_model, device="cpu")
    with server_for_tests(cpu_poser, tmp_path_factory.mktemp("data"), classifier=classifier) as live:
        yield live


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server[0], timeout=300) as client:
        yield client


def test_classify_answers_the_reference_shape(http):
    assert "classify" in http.get("/api/modules").json()["modules"]
    labels = http.get("/api/classify/labels").json()["labels"]
    assert sorted(labels) == sorted(EMOTION_NAMES)
    r = http.post("/api/classify", json={"text": "I am so happy, thank you! Really."})
    assert r.status_code == 200, r.text
    rows = r.json()["classification"]
    assert {row["label"] for row in rows} == set(labels) and all(set(row) == {"label", "score"} for row in rows)
    scores = [row["score"] for row in rows]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-3)
    for bad in ({}, {"text": ""}, {"text": 42}, {"text": "x" * 20_001}):
        r = http.post("/api/classify", json=bad)
        assert r.status_code == 400 and "text" in r.json()["error"], (bad, r.text)  # the reference: 400


def test_avatar_takes_the_emotion_of_a_text_and_follows_a_stream(http, example_character_png, tiny_model, server):
    iid = load_avatar(http, example_character_png)
    settings = {**QUIET, "emotion_model": str(tiny_model), "emotion_hold_time": 0.0, "emotion_margin": 0.0,
                "emotion_neutral_threshold": 0.0}  # fmt: skip
    assert http.post("/api/avatar/load_animator_settings",
                     json={"instance_id": iid, "animator_settings": settings}).status_code == 200  # fmt: skip
    r = http.post("/api/avatar/set_emotion_from_text", json={"instance_id": iid, "text": "Wow, I love this!"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["emotion"] in EMOTION_NAMES and 0.0 <= answer["score"] <= 1.0
    assert http.get("/api/avatar/status", params={"instance_id": iid}).json()["emotion"] == answer["emotion"]
    r = http.post("/api/avatar/set_emotion_from_text", json={"instance_id": "nope", "text": "hi"})
    assert r.status_code == 404 and "instance_id" in r.json()["error"]

    # Streaming text over the WebSocket: chunks of a reply, then done.
    pytest.importorskip("websockets")
    from websockets.sync.client import connect

    ws_url = server[0].replace("http://", "ws://") + "/api/avatar/ws"
    with connect(ws_url) as ws:
        for n, chunk in enumerate(["I can't ", "believe it ", "worked. ", "Thank you so much!"]):
            ws.send(json.dumps({"call": "follow_text", "id": n, "instance_id": iid, "chunk": chunk, "done": n == 3}))
            reply = json.loads(ws.recv())
            while "event" in reply:  # events may come between the replies
                reply = json.loads(ws.recv())
            assert reply["reply"] == "follow_text" and reply["ok"], reply
    http.post("/api/avatar/unload", json={"instance_id": iid})


def test_classify_without_a_model_says_what_to_do(cpu_poser, tmp_path_factory):
    with server_for_tests(cpu_poser, tmp_path_factory.mktemp("data2"), emotion_model=str(tmp_path_factory.mktemp(
            "empty") / "no_model")) as (url, _app), httpx.Client(base_url=url, timeout=60) as client:  # fmt: skip
        assert "classify" not in client.get("/api/modules").json()["modules"]
        r = client.post("/api/classify", json={"text": "hello"})
        assert r.status_code == 503 and "emotion model" in r.json()["error"]
