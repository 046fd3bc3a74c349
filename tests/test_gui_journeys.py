"""Two users' sessions end to end, with the mouse and the keyboard only (Xvfb + xdotool on the real windows).

The scenarios are in tests/gui_scenarios.py; each runs the app in its own process (tests/gui_session.py) and
reports what it saw; this file checks the report and the files the session wrote.
"""

from __future__ import annotations

import json

import pytest
from emotion_helpers import build_tiny_model
from gui_character import make_character
from gui_helpers import run_session
from PIL import Image

from raven_avatar.engine.emotions import EMOTION_NAMES, parse_template_file

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_pose_editor_journey(tmp_path, gui_env, example_character_png):
    character = make_character(tmp_path / "character", example_character_png)
    out = tmp_path / "out"
    r = run_session("pose", "journey", out, gui_env, "--character", str(character))
    left, right = r["eyebrows"]
    assert left > 0 and right == pytest.approx(left)  # Link L/R: one drag moved both sides
    assert r["mouth_group"] == "mouth_ooo"
    assert r["output_change"] > 0.3  # the head turned and the blush cel shows in the output view
    assert r["undo_redo"]
    checker, plain, again = r["corner_std"]
    assert checker > 10 and again > 10 and plain < 2  # Ctrl+B by key: checkerboard, plain colour, checkerboard
    title, text = r["jpeg_error"]
    assert "photo.jpg" in text and "alpha" in text.lower()
    saved = out / "saved" / "journey.png"
    with Image.open(saved) as im:
        assert im.mode == "RGBA" and im.size == (512, 512)
    assert list(parse_template_file(saved.with_suffix(".json"))) == ["journey"]
    assert r["loaded_pose"] == pytest.approx(r["saved_pose"])
    sprites = [p for p in (out / "batch").glob("*.png") if not p.stem.startswith("_")]
    assert len(sprites) >= 2 and all(p.with_suffix(".json").is_file() for p in sprites)
    assert "cancelled" in r["batch_summary"]
    assert r["quit_question"] == "Unsaved edits" and r["quit"]


def test_settings_editor_journey(tmp_path, gui_env, example_character_png):
    extra = tmp_path / "files"
    make_character(extra / "character", example_character_png)
    (extra / "not_an_image.png").write_text("this is not an image")
    chain = [["vignetting", {}], ["no_such_filter", {}], ["scanlines", {"dynamic": False}]]
    model = build_tiny_model(extra / "emotion_model", list(EMOTION_NAMES))
    (extra / "one_bad_filter.json").write_text(json.dumps({"postprocessor_chain": chain, "upscale": 1.0,
                                                           "target_fps": 25, "emotion_model": str(model)}))  # fmt: skip
    r = run_session("settings", "journey", tmp_path / "out", gui_env, "--extra", str(extra))
    assert "cels:" in r["character"] and "blush1" in r["character"]
    assert r["emotions"][0] != r["emotions"][1]
    title, text = r["settings_problem"]
    assert "no_such_filter" in text and "one_bad_filter.json" in text
    assert r["chain_after_load"] == ["vignetting", "scanlines"]  # the rest of the chain applies
    felt, shown, text = r["feeling"]
    assert felt == shown and felt in text and "Top:" in text
    (w0, h0), (w1, h1) = r["sizes"]
    assert w1 > w0 and h1 > h0 and r["upscale_quality"] == "bicubic"
    title, text = r["backdrop_error"]
    assert title == "Error" and "not_an_image.png" in text
    assert r["backdrop_kept"]
    assert r["paused_view_std"] > 5 and r["paused_view_diff"] < 12  # the avatar is still shown while paused
    assert r["green_after_reload"] > 0.05  # Ctrl+R picked up the edited PNG
    assert r["encode_progress"] and any("Encod" in p for p in r["encode_progress"])
    webm = [p for p in r["recordings"] if p.endswith("recording.webm")]
    timing = [p for p in r["recordings"] if p.endswith("timing.json")]
    assert webm and timing
    info = json.loads((extra / timing[0]).read_text())
    # Truthful timing (it said "fps 25, duration 0.24" for a minute of frames): the span of the frames' own times.
    times = [f["t"] for f in info["frames"]]
    assert info["frame_count"] == len(times) >= 2 and info["target_fps"] == 25
    assert info["duration_s"] == pytest.approx(times[-1] - times[0], abs=1e-3) and 0 < info["duration_s"] < 60
    assert info["fps"] == pytest.approx((len(times) - 1) / info["duration_s"], rel=1e-3)
    assert r["reloaded_settings"] == r["saved_settings"]
