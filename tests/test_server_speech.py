"""``POST /api/avatar/speak`` on a real server with a real (tiny, randomly initialised) Kokoro model: WAV +
phoneme timeline with lipsync on the avatar, server-side playback, and the clear error without speech."""

from __future__ import annotations

import base64
import io
import time
import wave

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("kokoro")
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:dropout option adds dropout:UserWarning"),
]

from server_helpers import load_avatar, server_for_tests  # noqa: E402
from test_speech import one_thread, tiny_synthesizer  # noqa: E402, F401  (one_thread: an autouse fixture)

MOUTH = {"mouth_aaa_index", "mouth_iii_index", "mouth_uuu_index", "mouth_eee_index", "mouth_ooo_index"}


def test_speak_with_lipsync(cpu_poser, example_character_png, tmp_path):
    synth = tiny_synthesizer(tmp_path)
    with (
        server_for_tests(cpu_poser, tmp_path / "data", synthesizer=synth) as (url, _),
        httpx.Client(base_url=url, timeout=120) as http,
    ):
        assert "tts" in http.get("/api/modules").json()["modules"]
        iid = load_avatar(http, example_character_png)
        r = http.post("/api/avatar/speak", json={"instance_id": iid, "text": "Hello there. How are you?",
                                                  "voice": "test_a", "play": False})  # fmt: skip
        assert r.status_code == 200, r.text
        answer = r.json()
        with wave.open(io.BytesIO(base64.b64decode(answer["wav_base64"]))) as w:
            assert w.getframerate() == answer["sample_rate"] == 24000 and w.getnchannels() == 1
            assert abs(w.getnframes() / w.getframerate() - answer["duration"]) < 0.01
        phonemes = answer["phonemes"]
        assert len(answer["sentences"]) == 2 and phonemes
        assert all(a["end"] <= b["start"] + 1e-6 for a, b in zip(phonemes, phonemes[1:], strict=False))
        # The avatar lipsyncs on the server's clock meanwhile: mouth overrides come and go.
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = http.get("/api/avatar/status", params={"instance_id": iid}).json()
            seen |= set(st["overrides"]) & MOUTH
            if seen and not st["speaking"]:
                break
            time.sleep(0.01)
        assert seen, "no mouth override was set during speech"
        assert not (set(st["overrides"]) & MOUTH)  # released when the speech ended
        # play: true answers at once and plays on the server (silently here, on the wall clock).
        r = http.post("/api/avatar/speak", json={"instance_id": iid, "text": "Hi.", "voice": "test_b"})
        assert r.status_code == 200 and r.json() == {"playing": True, "voice": "test_b"}
        assert http.post("/api/avatar/stop_speaking", json={"instance_id": iid}).json() == {"stopped": True}
        r = http.post("/api/avatar/speak", json={"instance_id": iid, "text": "Hi.", "voice": "nobody"})
        assert r.status_code == 400 and r.json()["error"].startswith("voice: unknown voice")


def test_speak_without_speech_says_why(cpu_poser, example_character_png, tmp_path, monkeypatch):
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(tmp_path / "empty-cache"))  # no Kokoro weights here
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    with server_for_tests(cpu_poser, tmp_path / "data") as (url, _), httpx.Client(base_url=url, timeout=60) as http:
        assert "tts" not in http.get("/api/modules").json()["modules"]
        iid = load_avatar(http, example_character_png)
        r = http.post("/api/avatar/speak", json={"instance_id": iid, "text": "Hello."})
        assert r.status_code == 503
        assert r.json()["error"].startswith("speech: ") and "download" in r.json()["error"]
