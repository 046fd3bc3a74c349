"""avatar-server refuses bad requests with a clear 4xx ``{"error": ...}`` naming the field (503 past the feed limit),
and keeps serving; API keys on and off; the command line."""

from __future__ import annotations

import io
import json
import socket
import struct
import time
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")

from server_helpers import QUIET, decode, load_avatar, server_for_tests  # noqa: E402


@pytest.fixture(scope="module")
def server(cpu_poser, tmp_path_factory):
    with server_for_tests(cpu_poser, tmp_path_factory.mktemp("data"), max_avatars=2, max_feeds=2) as live:
        yield live


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server[0], timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def avatar(http, example_character_png):
    iid = load_avatar(http, example_character_png)
    http.post("/api/avatar/load_animator_settings", json={"instance_id": iid, "animator_settings": QUIET})
    http.post("/api/avatar/start", json={"instance_id": iid})
    return iid


def png(arr: np.ndarray, mode: str = "RGBA") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG")
    return buf.getvalue()


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims a huge image (a decompression bomb)."""
    data = png(np.zeros((8, 8, 4), np.uint8))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return data[:8] + chunk + data[8 + 25 :]


def upload(name: str, data: bytes):
    return (name, (f"{name}.png", data, "image/png"))


def expect(response: httpx.Response, status: int, field: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) >= {"error"} and body["error"].startswith(field), body


def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(http, avatar, example_character_png):
    base = example_character_png.read_bytes()
    iid = avatar
    post = http.post
    cases = [
        # (response, status, field the error names)
        (
            post("/api/avatar/set_emotion", content=b"{nope", headers={"content-type": "application/json"}),
            400,
            "body: malformed JSON",
        ),
        (post("/api/avatar/set_emotion", json={"instance_id": iid, "emotion_name": 5}), 400, "emotion_name"),
        (post("/api/avatar/set_emotion", json={"emotion_name": "joy"}), 400, "instance_id"),
        (post("/api/avatar/set_emotion", json={"instance_id": "nope", "emotion_name": "joy"}), 404, "instance_id"),
        (post("/api/avatar/set_emotion", json={"instance_id": iid, "emotion_name": "glee"}), 400, "emotion_name"),
        (post("/api/avatar/set_emotion", json=[iid]), 400, "body"),
        (post("/api/avatar/set_overrides", json={"instance_id": iid, "overrides": "x"}), 400, "overrides"),
        (post("/api/avatar/set_overrides", json={"instance_id": iid, "overrides": {"horn": 1}}), 400, "overrides"),
        (
            post("/api/avatar/set_overrides", json={"instance_id": iid, "overrides": {"blush1": "a"}}),
            400,
            "overrides.blush1",
        ),
        (
            post("/api/avatar/modify_overrides", json={"instance_id": iid, "action": "flip", "overrides": {}}),
            400,
            "action",
        ),
        (
            post("/api/avatar/modify_overrides", json={"instance_id": iid, "action": "set", "overrides": ["x"]}),
            400,
            "overrides",
        ),
        (
            post(
                "/api/avatar/load_animator_settings",
                json={"instance_id": iid, "animator_settings": {"target_fps": "fast"}},
            ),
            400,
            "animator_settings.target_fps",
        ),
        (
            post("/api/avatar/load_animator_settings", json={"instance_id": iid, "animator_settings": {"bogus": 1}}),
            400,
            "animator_settings.bogus",
        ),
        (
            post(
                "/api/avatar/load_animator_settings",
                json={"instance_id": iid, "animator_settings": {"postprocessor_chain": [["nofilter", {}]]}},
            ),
            400,
            "animator_settings.postprocessor_chain",
        ),
        (
            post("/api/avatar/load_emotion_templates", json={"instance_id": iid, "emotions": {"../../x": {}}}),
            400,
            "emotions.../../x",
        ),
        (
            post(
                "/api/avatar/load_emotion_templates",
                json={"instance_id": iid, "emotions": {"joy": {"pose": {"third_eye": 1}}}},
            ),
            400,
            "emotions",
        ),
        (post("/api/avatar/load", json={"file": "x.png"}), 400, "body"),
        (post("/api/avatar/load", files=[upload("blush1", base)]), 400, "file"),
        (post("/api/avatar/load", files=[upload("file", b"this is not an image")]), 400, "file"),
        (post("/api/avatar/load", files=[upload("file", png(np.zeros((64, 64, 3), np.uint8), "RGB"))]), 400, "file"),
        (post("/api/avatar/load", files=[upload("file", base), upload("horns", base)]), 400, "cels"),
        (
            post("/api/avatar/load", files=[upload("file", base), upload("blush1", b"\x89PNG\r\n\x1a\n broken")]),
            400,
            "blush1",
        ),
        (post("/api/avatar/load", files=[upload("file", np.random.bytes(50 * 1024 * 1024))]), 413, "file"),
        (post("/api/avatar/load", files=[upload("file", bomb_png())]), 413, "file"),
        (
            post("/api/avatar/load", files=[upload("file", base)] + [upload(f"fx_x{i}", b"x") for i in range(60)]),
            400,
            "files",
        ),
        (post("/api/avatar/reload", files=[upload("file", base)]), 400, "json"),
        (post("/api/avatar/reload", files=[("json", (None, "{bad")), upload("file", base)]), 400, "json"),
        (http.get("/api/avatar/result_feed", params={"instance_id": "nope"}), 404, "instance_id"),
        (http.get("/api/avatar/result_feed", params={"instance_id": iid, "format": "GIF"}), 400, "format"),
        (http.get("/api/avatar/result_feed"), 400, "instance_id"),
        (http.get("/api/avatar/frame", params={"instance_id": "nope"}), 404, "instance_id"),
        (http.get("/api/avatar/set_emotion"), 405, "/api/avatar/set_emotion"),
        (http.get("/api/nothing"), 404, "no such endpoint"),
        (
            post("/api/avatar/set_emotion", content=b"[" * 2_000_000, headers={"content-type": "application/json"}),
            413,
            "body",
        ),
        (http.get("/overlay", params={"backdrop": "red;}</style><script>"}), 400, "backdrop"),
        (http.get("/overlay", params={"scale": "-1"}), 400, "scale"),
        (post("/api/avatar/speak", json={"instance_id": iid, "text": ""}), 400, "text"),
    ]
    for response, status, field in cases:
        expect(response, status, field)
    assert len(cases) >= 25
    # Unloading an unknown id is fine (the reference's semantics).
    assert post("/api/avatar/unload", json={"instance_id": "nope"}).text == "OK"


def test_feed_limit_and_disconnect_mid_frame(server, http, avatar):
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    feeds = lambda: http.get("/api/avatar/status", params={"instance_id": avatar}).json()["feeds"]  # noqa: E731

    # A client that hangs up in the middle of a frame frees its slot.
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.sendall(f"GET /api/avatar/result_feed?instance_id={avatar} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = b""
        while b"--frame\r\n" not in got or len(got) < 2000:  # inside the first frame's bytes
            got += s.recv(1000)
    deadline = time.monotonic() + 30
    while feeds() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert feeds() == 0

    with (
        httpx.Client(base_url=url, timeout=120) as c1,
        httpx.Client(base_url=url, timeout=120) as c2,
        c1.stream("GET", "/api/avatar/result_feed", params={"instance_id": avatar}) as f1,
        c2.stream("GET", "/api/avatar/result_feed", params={"instance_id": avatar}) as f2,
    ):
        assert f1.status_code == f2.status_code == 200
        expect(http.get("/api/avatar/result_feed", params={"instance_id": avatar}), 503, "instance_id")
    deadline = time.monotonic() + 30
    while feeds() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert feeds() == 0
    # Still serving: a fresh frame of the avatar.
    r = http.get("/api/avatar/frame", params={"instance_id": avatar})
    assert r.status_code == 200 and decode(r.content).shape == (512, 512, 4)


def test_max_avatars(http, avatar, example_character_png):
    second = load_avatar(http, example_character_png)
    r = http.post("/api/avatar/load", files=[upload("file", example_character_png.read_bytes())])
    expect(r, 429, "max_avatars")
    http.post("/api/avatar/unload", json={"instance_id": second})
    assert http.get("/health").status_code == 200


def test_api_key(cpu_poser, tmp_path):
    with server_for_tests(cpu_poser, tmp_path / "data", api_key="s3cret") as (url, _):
        with httpx.Client(base_url=url, timeout=60) as http:
            assert http.get("/health").status_code == 200  # open
            expect(http.get("/api/modules"), 401, "Authorization")
            expect(http.get("/api/modules", headers={"Authorization": "Bearer wrong"}), 401, "Authorization")
            assert http.get("/api/modules", headers={"Authorization": "Bearer s3cret"}).status_code == 200
            assert http.get("/api/modules", headers={"Authorization": "s3cret"}).status_code == 200  # the reference's
            expect(http.get("/api/modules", params={"key": "s3cret"}), 401, "Authorization")  # not for API calls
            # ?key= where a browser or OBS opens the URL itself (404: past the key check, no such avatar).
            expect(http.get("/api/avatar/result_feed", params={"instance_id": "x", "key": "s3cret"}), 404,
                   "instance_id")  # fmt: skip
            assert http.get("/overlay", params={"key": "s3cret"}).status_code == 200
            expect(http.get("/overlay"), 401, "Authorization")
            r = http.post("/api/avatar/unload", json={"instance_id": "x"}, headers={"Authorization": "Bearer s3cret"})
            assert r.text == "OK"
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        ws_url = url.replace("http://", "ws://") + "/api/avatar/ws"
        with pytest.raises(InvalidStatus):
            connect(ws_url).close()
        with connect(ws_url + "?key=s3cret") as ws:
            ws.send(json.dumps({"call": "status", "instance_id": "x"}))
            assert json.loads(ws.recv(timeout=30))["error"].startswith("instance_id")


def test_command_line(tmp_path, monkeypatch, capsys):
    from raven_avatar.server.cli import build_parser, config_from_args

    help_text = build_parser().format_help()
    for option in ("--host", "--port", "--device", "--variant", "--character", "--settings", "--max-avatars",
                   "--api-key-file"):  # fmt: skip
        assert option in help_text
    monkeypatch.setenv("RAVEN_AVATAR_DATA_DIR", str(tmp_path / "data"))
    local = config_from_args(build_parser().parse_args([]))
    assert (local.host, local.port, local.device, local.max_avatars, local.api_key) == (
        "127.0.0.1", 5100, "auto", 8, None
    )  # fmt: skip
    public = config_from_args(build_parser().parse_args(["--host", "0.0.0.0"]))
    key_file = tmp_path / "data" / "server_api_key"
    assert public.api_key and key_file.read_text().strip() == public.api_key
    assert public.api_key in capsys.readouterr().out
    again = config_from_args(build_parser().parse_args(["--host", "0.0.0.0"]))
    assert again.api_key == public.api_key  # generated once
    own = tmp_path / "key.txt"
    own.write_text("mine\n")
    assert config_from_args(build_parser().parse_args(["--api-key-file", str(own)])).api_key == "mine"


def test_optional_modules_are_listed_when_available(cpu_poser, tmp_path):
    from fastapi import APIRouter

    from raven_avatar.server.modules import ServerModule

    router = APIRouter()

    @router.get("/api/extra/labels")
    async def labels() -> dict:
        return {"labels": ["joy"]}

    modules = [ServerModule("extra", router=router), ServerModule("broken", available=lambda: 1 / 0)]
    with (
        server_for_tests(cpu_poser, tmp_path / "data", modules=modules) as (url, _),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        listed = http.get("/api/modules").json()["modules"]
        assert listed[0] == "avatar" and "extra" in listed and "broken" not in listed
        assert http.get("/api/extra/labels").json() == {"labels": ["joy"]}
