"""avatar-server through real HTTP: uvicorn on 127.0.0.1 (a free port), the real THA3 poser on the CPU.

One server for the module; its avatars run on a frozen animation clock, so only a frame whose input changed (a
new character, or the first of a new batch) costs a THA3 pose (~1 s here).
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")

from server_helpers import QUIET, cel_png, decode, load_avatar, server_for_tests  # noqa: E402

from raven_avatar.client import AvatarServer, iter_parts  # noqa: E402


@pytest.fixture(scope="module")
def server(cpu_poser, tmp_path_factory):
    with server_for_tests(cpu_poser, tmp_path_factory.mktemp("data"), max_avatars=4, max_feeds=2) as live:
        yield live


@pytest.fixture(scope="module")
def url(server) -> str:
    return server[0]


@pytest.fixture
def http(url):
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client


def call(http: httpx.Client, name: str, **body) -> httpx.Response:
    return http.post(f"/api/avatar/{name}", json=body)


def status(http, instance_id) -> dict:
    r = http.get("/api/avatar/status", params={"instance_id": instance_id})
    assert r.status_code == 200, r.text
    return r.json()


def test_health_modules_filters(http):
    assert http.get("/health").status_code == 200
    assert "avatar" in http.get("/api/modules").json()["modules"]
    filters = http.get("/api/avatar/get_available_filters").json()["filters"]
    names = [name for name, _ in filters]
    assert {"bloom", "scanlines", "chromatic_aberration"} <= set(names)
    bloom = dict(filters)["bloom"]
    assert set(bloom) == {"defaults", "ranges", "docstring"}
    assert bloom["ranges"]["threshold"] == [0.0, 1.0] and bloom["ranges"]["name"] == ["!ignore"]
    noise = dict(filters)["noise"]
    assert noise["ranges"]["double_size"] == [True, False] and noise["ranges"]["channel"] == ["Y", "A"]
    assert dict(filters)["desaturate"]["ranges"]["tint_rgb"] == ["!RGB"]
    assert http.get("/docs").status_code == 200 and "/api/avatar/set_emotion" in http.get("/openapi.json").text


def test_lifecycle(http, example_character_png):
    cels = {"blush1": cel_png(), "data1": cel_png(box=(180, 200, 220, 220)), "data2": cel_png(box=(300, 200, 340, 220))}
    iid = load_avatar(http, example_character_png, cels)
    st = status(http, iid)
    assert st["character"] == "lambda_00" and st["cels"] == ["blush1", "data1", "data2"] and not st["running"]
    assert call(http, "load_animator_settings", instance_id=iid, animator_settings=QUIET).text == "OK"
    assert status(http, iid)["target_fps"] == 5
    template = {"pose": {"eye_happy_wink_left_index": 1.0}, "cels": {"blush1": 1.0}}
    assert call(http, "load_emotion_templates", instance_id=iid, emotions={"joy": template}).text == "OK"
    assert call(http, "start", instance_id=iid).text == "OK"

    with http.stream("GET", "/api/avatar/result_feed", params={"instance_id": iid}) as feed:
        assert feed.status_code == 200
        assert feed.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        chunks = feed.iter_bytes()
        first = next(chunks)
        assert first.startswith(b"--frame\r\nContent-Type: image/png\r\nContent-Length: ")
        frames = []
        for frame in iter_parts(_chain(first, chunks)):
            frames.append(frame)
            if len(frames) == 5:
                break
    for frame in frames:
        rgba = decode(frame.data)
        assert rgba.shape == (512, 512, 4) and rgba[..., 3].max() == 255 and rgba[0, 0, 3] == 0
        assert frame.crop["enabled"] is False and frame.full_size == (512, 512)
        assert {"render_ms", "render_fps", "encode_ms", "encode_fps", "wait_ms", "output_ms", "output_fps",
                "target_fps"} <= set(frame.stats)  # fmt: skip

    assert call(http, "start_talking", instance_id=iid).text == "OK"
    assert status(http, iid)["talking"] is True
    assert call(http, "stop_talking", instance_id=iid).text == "OK"
    assert status(http, iid)["talking"] is False
    assert call(http, "set_emotion", instance_id=iid, emotion_name="joy").text == "OK"
    assert status(http, iid)["emotion"] == "joy"
    assert call(http, "set_overrides", instance_id=iid, overrides={"mouth_aaa_index": 0.5}).text == "OK"
    assert call(http, "modify_overrides", instance_id=iid, action="set", overrides={"blush1": 0.7}).text == "OK"
    assert status(http, iid)["overrides"] == {"mouth_aaa_index": 0.5, "blush1": 0.7}
    assert call(http, "modify_overrides", instance_id=iid, action="unset", overrides=["mouth_aaa_index"]).text == "OK"
    assert status(http, iid)["overrides"] == {"blush1": 0.7}
    assert call(http, "set_overrides", instance_id=iid, overrides={}).text == "OK"
    assert status(http, iid)["overrides"] == {}
    assert call(http, "start_data_eyes", instance_id=iid).text == "OK"
    assert call(http, "stop_data_eyes", instance_id=iid).text == "OK"
    # Defaults again with {}.
    assert call(http, "load_emotion_templates", instance_id=iid, emotions={}).text == "OK"
    assert call(http, "load_animator_settings", instance_id=iid, animator_settings={}).text == "OK"
    assert status(http, iid)["target_fps"] == 25
    assert call(http, "stop", instance_id=iid).text == "OK"
    assert status(http, iid)["running"] is False

    # The feed ends when the avatar is unloaded.
    ended = threading.Event()
    got = []

    def watch():
        with (
            httpx.Client(base_url=str(http.base_url), timeout=120) as c,
            c.stream("GET", "/api/avatar/result_feed", params={"instance_id": iid}) as r,
        ):
            for frame in iter_parts(r.iter_bytes()):
                got.append(frame)
        ended.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    deadline = time.monotonic() + 30
    while status(http, iid)["feeds"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert call(http, "unload", instance_id=iid).text == "OK"
    assert ended.wait(30), "the feed did not end when the avatar was unloaded"
    assert http.get("/api/avatar/status", params={"instance_id": iid}).status_code == 404
    assert call(http, "unload", instance_id=iid).text == "OK"  # unknown id: still OK


def _chain(first: bytes, rest):
    yield first
    yield from rest


def test_python_client_and_frame(url, example_character_png):
    with AvatarServer(url) as server:
        assert server.health() and "avatar" in server.modules()
        avatar = server.load(example_character_png)
        avatar.load_settings(QUIET)
        avatar.start()
        frame = avatar.frame()
        assert frame.content_type == "image/png" and frame.image().size == (512, 512)
        assert frame.stats["target_fps"] == 5
        qoi_frame = avatar.frame(format="QOI")
        assert qoi_frame.content_type == "image/qoi"
        np.testing.assert_array_equal(np.asarray(qoi_frame.image()), np.asarray(frame.image()))
        avatar.set_emotion("surprise")
        assert avatar.emotion == "surprise" and "joy" in avatar.emotions
        avatar.start_talking()
        assert avatar.is_talking
        avatar.stop_talking()
        avatar.modify_overrides("set", {"mouth_ooo_index": 1.0})
        avatar.modify_overrides("unset", ["mouth_ooo_index"])
        feed = avatar.frames()
        assert next(feed).image().size == (512, 512)
        feed.close()
        with pytest.raises(Exception, match="emotion_name"):
            avatar.set_emotion("not-an-emotion")
        avatar.stop()
        avatar.unload()


def test_websocket(url, http, example_character_png):
    from websockets.sync.client import connect

    iid = load_avatar(http, example_character_png)
    call(http, "load_animator_settings", instance_id=iid, animator_settings=QUIET)
    ws_url = url.replace("http://", "ws://") + "/api/avatar/ws"
    with connect(ws_url) as ws:
        pending: list[dict] = []  # events that arrived before the reply they were waiting with

        def roundtrip(message: dict | str) -> dict:
            ws.send(message if isinstance(message, str) else json.dumps(message))
            while True:
                data = json.loads(ws.recv(timeout=120))
                if "event" not in data:
                    return data
                pending.append(data)

        def event(name: str) -> dict:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                for e in pending:
                    if e["event"] == name:
                        pending.remove(e)
                        return e
                pending.append(json.loads(ws.recv(timeout=120)))
            raise AssertionError(f"no {name!r} event")

        assert roundtrip({"call": "subscribe", "instance_ids": [iid]})["ok"] is True
        reply = roundtrip({"call": "set_emotion", "id": 7, "instance_id": iid, "emotion_name": "joy"})
        assert reply == {"reply": "set_emotion", "id": 7, "ok": True, "result": None}
        e = event("emotion")
        assert e["emotion"] == "joy" and e["instance_id"] == iid
        assert roundtrip({"call": "start_talking", "instance_id": iid})["ok"]
        assert event("talking_started")["instance_id"] == iid
        assert roundtrip({"call": "stop_talking", "instance_id": iid})["ok"]
        assert event("talking_stopped")["instance_id"] == iid
        # Bad messages get an error reply; the connection stays up.
        reply = roundtrip("{not json")
        assert reply["ok"] is False and "malformed JSON" in reply["error"]
        reply = roundtrip({"call": "set_emotion", "instance_id": iid, "emotion_name": 3})
        assert reply["ok"] is False and reply["error"].startswith("emotion_name:")
        reply = roundtrip({"call": "explode", "instance_id": iid})
        assert reply["ok"] is False and "unknown call" in reply["error"]
        reply = roundtrip({"call": "set_emotion", "instance_id": "nope", "emotion_name": "joy"})
        assert reply["ok"] is False and reply["error"].startswith("instance_id:")
        reply = roundtrip({"call": "status", "instance_id": iid})
        assert reply["ok"] and reply["result"]["emotion"] == "joy" and reply["result"]["talking"] is False
        # Frame stats are pushed while frames are rendered and taken.
        assert roundtrip({"call": "start", "instance_id": iid})["ok"]
        assert http.get("/api/avatar/frame", params={"instance_id": iid}).status_code == 200
        e = event("frame")
        assert e["instance_id"] == iid and e["width"] == 512 and "pose" in e["stats"]
    call(http, "unload", instance_id=iid)


def test_two_avatars_are_posed_in_one_batch(server, http, example_character_png, tmp_path, monkeypatch):
    from PIL import Image

    url, app = server
    poser = app.state.registry.poser
    batches: list[int] = []
    turn_body = poser.model.turn_body

    def spy(image, pose, *args, **kwargs):
        batches.append(image.shape[0])
        return turn_body(image, pose, *args, **kwargs)

    monkeypatch.setattr(poser.model, "turn_body", spy)
    mirrored = tmp_path / "mirrored.png"
    Image.open(example_character_png).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored)
    ids = [load_avatar(http, example_character_png), load_avatar(http, mirrored)]
    for iid in ids:
        call(http, "load_animator_settings", instance_id=iid, animator_settings=QUIET)
    found: dict[str, np.ndarray] = {}
    clients = [httpx.Client(base_url=url, timeout=120) for _ in ids]
    streams = [
        c.stream("GET", "/api/avatar/result_feed", params={"instance_id": i}) for c, i in zip(clients, ids, strict=True)
    ]
    feeds = [iter_parts(s.__enter__().iter_bytes()) for s in streams]
    try:
        for iid in ids:
            call(http, "start", instance_id=iid)
        deadline = time.monotonic() + 180
        # Both feeds take every frame at once, so both avatars are ready and due together after their first frame.
        while len(found) < 2 and time.monotonic() < deadline:
            for iid, feed in zip(ids, feeds, strict=True):
                frame = next(feed)
                if frame.stats.get("pose_batch") == 2:
                    found[iid] = decode(frame.data)
    finally:
        for s in streams:
            s.__exit__(None, None, None)
        for c in clients:
            c.close()
    assert len(found) == 2, f"no batched frame for both avatars; pose batches seen: {batches}"
    assert 2 in batches  # one THA3 call posed both
    a, b = found[ids[0]], found[ids[1]]
    assert not np.array_equal(a, b)  # each got its own character's row
    # The mirrored character, posed neutrally, is close to the mirrored image of the original.
    assert np.abs(a[:, ::-1, 3].astype(int) - b[..., 3].astype(int)).mean() < 8
    for iid in ids:
        call(http, "unload", instance_id=iid)
