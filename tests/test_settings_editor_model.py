"""Settings editor without a window: chain editing, settings round trips, backdrop, recording, and the model's
actions over a real engine Avatar on the CPU (most tests never start its render thread)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from raven_avatar.engine import settings as settingsmod
from raven_avatar.settings_editor import backdrop as bd
from raven_avatar.settings_editor.chain_edit import EditableChain
from raven_avatar.settings_editor.recorder import TIMING_FILE, VIDEO_FILE, Recorder

REFERENCE = Path(__file__).parent / "data" / "reference"


# ------------------------------------------------------------------------------------------------ chain editing


def test_chain_round_trip_keeps_order_duplicates_and_params():
    chain = [["scanlines", {"strength": 0.2}], ["bloom", {}], ["scanlines", {"strength": 0.5, "name": "second"}]]
    edit = EditableChain.from_chain(chain)
    out = edit.to_chain()
    assert [n for n, _ in out] == ["scanlines", "bloom", "scanlines"]
    assert out[0][1]["strength"] == pytest.approx(0.2)
    assert out[2][1]["name"] == "second"
    assert EditableChain.from_chain(out).to_chain() == out


def test_chain_edits_move_duplicate_disable_and_clamp():
    edit = EditableChain.from_chain([["bloom", {}], ["vignetting", {"strength": 0.3}]])
    edit.duplicate(1)
    assert [i.name for i in edit.instances] == ["bloom", "vignetting", "vignetting"]
    assert edit.move(2, -5) == 0  # clamped at the top
    assert [i.name for i in edit.instances] == ["vignetting", "bloom", "vignetting"]
    edit.set_enabled(1, False)
    assert [n for n, _ in edit.to_chain()] == ["vignetting", "vignetting"]
    hi = edit.instances[0].param_spec("strength").range[1]
    assert edit.set_param(0, "strength", 99.0) == hi
    edit.reset_param(0, "strength")
    assert edit.instances[0].params["strength"] == edit.instances[0].param_spec("strength").default
    with pytest.raises(ValueError, match="must be one of"):
        edit.add("scanlines")
        edit.set_param(3, "channel", "nonsense")
    uids = [i.uid for i in edit.instances]
    assert len(set(uids)) == len(uids)


# ---------------------------------------------------------------------------------------------------- backdrop


def test_fit_modes_and_scene():
    img = PIL.Image.new("RGBA", (200, 100), (255, 0, 0, 255))
    cover, pos = bd.fit_image(img, 100, 100, "cover")
    assert cover.size == (200, 100) and pos == (-50, 0)
    contain, pos = bd.fit_image(img, 100, 100, "contain")
    assert contain.size == (100, 50) and pos == (0, 25)
    center, pos = bd.fit_image(img, 100, 100, "center")
    assert center.size == (200, 100)
    scene = bd.render_backdrop(img, 100, 100, fit="contain", blur=False, color=(0, 0, 1, 1))
    assert np.allclose(scene[50, 50], [1, 0, 0, 1]) and np.allclose(scene[5, 50], [0, 0, 1, 1])
    checker = bd.render_backdrop(None, 64, 64, color=(0, 0, 0, 0))
    assert checker[0, 0, 0] != checker[0, 16, 0] and np.all(checker[..., 3] == 1)


def test_over_blends_straight_alpha():
    top = np.zeros((2, 2, 4), np.float32)
    top[0, 0] = [1, 0, 0, 1]
    top[1, 1] = [1, 1, 1, 0.5]
    bottom = np.tile(np.array([0, 0, 1, 1], np.float32), (2, 2, 1))
    out = bd.over(top, bottom)
    assert np.allclose(out[0, 0], [1, 0, 0, 1]) and np.allclose(out[0, 1], [0, 0, 1, 1])
    assert out[1, 1, 3] == pytest.approx(1.0) and 0.5 < out[1, 1, 0] < 1.0  # linear-light mix is brighter than 0.5


# ---------------------------------------------------------------------------------------------------- recorder


def test_recorder_writes_frames_timing_and_real_speed_webm(tmp_path):
    rec = Recorder(tmp_path / "rec", fps=25, video=True)
    for i, t in enumerate([10.0, 10.04, 10.2]):
        frame = np.zeros((8, 6, 4), np.float32)
        frame[..., 0] = i / 2
        frame[..., 3] = 1
        rec.add(frame, t)
    timing = json.loads(rec.stop().read_text())
    assert rec.error is None
    assert [f["t"] for f in timing["frames"]] == pytest.approx([0.0, 0.04, 0.2])
    assert timing["target_fps"] == 25 and timing["fps"] == pytest.approx(10.0)  # 2 intervals in 0.2 s
    last = np.asarray(PIL.Image.open(tmp_path / "rec" / timing["frames"][2]["file"]))
    assert last.shape == (8, 6, 4) and last[0, 0, 0] == 255
    assert (tmp_path / "rec" / TIMING_FILE).exists()
    av = pytest.importorskip("av")
    encoding = rec.encoding
    assert encoding.wait(120) and encoding.error is None and not encoding.cancelled
    assert (encoding.done, encoding.total, encoding.fraction) == (6, 6, 1.0)
    assert str(encoding) == "Encoded recording.webm: 6 frames"
    with av.open(str(tmp_path / "rec" / VIDEO_FILE)) as container:
        count = sum(1 for _ in container.decode(video=0))
    assert count == 6  # 0.2 s at 25 fps: ticks 0..5, the slow third frame held, not played fast


def _opaque(value: float) -> np.ndarray:
    frame = np.full((8, 6, 4), value, np.float32)
    frame[..., 3] = 1
    return frame


def test_timing_json_tells_the_real_frame_rate_and_duration(tmp_path):
    rec = Recorder(tmp_path / "rec", fps=25, backdrop=True)
    times = [100.0, 100.04, 110.0, 130.0, 145.0, 158.0]  # a slow device: 6 frames in 58 s
    for i, t in enumerate(times):
        rec.add(_opaque(i / 5), t)
    timing = json.loads(rec.stop().read_text())
    assert rec.encoding is None  # no video asked for
    assert timing["frame_count"] == 6 and timing["duration_s"] == pytest.approx(58.0)
    assert timing["fps"] == pytest.approx(5 / 58, rel=1e-4) and timing["target_fps"] == 25
    assert timing["backdrop"] is True and timing["dropped"] == 0
    durations = [f["duration_ms"] for f in timing["frames"]]
    assert durations[:5] == [40, 9960, 20000, 15000, 13000]  # until the next frame
    assert durations[5] == round(58000 / 5)  # the last: the mean interval


def test_webm_encodes_in_the_background_and_can_be_cancelled(tmp_path):
    pytest.importorskip("av")
    rec = Recorder(tmp_path / "rec", fps=25, video=True)
    rec.add(_opaque(0.0), 0.0)
    rec.add(_opaque(1.0), 600.0)  # ten minutes held: 15001 frames to encode
    timing_path = rec.stop()  # returns while the encode runs
    encoding = rec.encoding
    encoding.cancel()
    assert encoding.wait(120) and encoding.cancelled and encoding.error is None
    assert encoding.total == 15001 and encoding.done < encoding.total
    assert str(encoding).startswith("Encoding recording.webm cancelled at ")
    assert not (tmp_path / "rec" / VIDEO_FILE).exists() and timing_path.exists()  # the PNG sequence stays


# ------------------------------------------------------------------------------------------- model over an Avatar


@pytest.fixture(scope="module")
def engine(tha3_models, example_character_png, stable_cache_dir, tmp_path_factory):
    """One real Avatar (CPU) for this module, not started, with its character copied to a scratch folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RAVEN_AVATAR_CACHE_DIR", str(stable_cache_dir))
    mp.setenv("RAVEN_AVATAR_OFFLINE", "1")
    mp.setenv("RAVEN_AVATAR_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    folder = tmp_path_factory.mktemp("character")
    character = folder / "hero.png"
    shutil.copy(example_character_png, character)
    from raven_avatar.engine import Avatar
    from raven_avatar.settings_editor.engine_link import EngineLink

    settings, _ = settingsmod.load_settings(None)
    avatar = Avatar(character, settings, device="cpu", seed=1)
    link = EngineLink(avatar)
    yield link, settings, character
    link.close()
    mp.undo()


@pytest.fixture
def model(engine, monkeypatch, tmp_path):
    from raven_avatar.settings_editor.model import EditorModel

    link, settings, _ = engine
    monkeypatch.setenv("RAVEN_AVATAR_DATA_DIR", str(tmp_path / "data"))
    m = EditorModel(link, settings=settings)
    yield m
    link.wait_idle(60)
    while not link.events.empty():
        link.events.get_nowait()


def test_save_load_round_trips_exact_chain_crop_and_backdrop(model, tmp_path):
    from raven_avatar.settings_editor.model import ActionError

    image = tmp_path / "bg.png"
    PIL.Image.new("RGB", (40, 30), (10, 200, 30)).save(image)
    model.clear_filters()
    first = model.add_filter("scanlines")
    model.set_filter_param(first, "strength", 0.33)
    model.add_filter("bloom")
    model.duplicate_filter(first)  # scanlines, scanlines, bloom (+ the disabled defaults before them)
    model.move_filter(len(model.chain) - 1, -1)  # bloom between the two scanlines
    model.set_crop(enabled=True, left=0.2, right=0.21)  # too narrow: right is pushed out to keep the gap
    model.load_backdrop(image)
    model.set_setting("backdrop_blur", False)
    model.set_setting("backdrop_fit", "contain")
    assert model.settings["crop"]["right"] == pytest.approx(0.25)
    assert model.dirty
    path = model.save_settings(tmp_path / "mine.json")
    assert not model.dirty
    saved_chain = model.chain.to_chain()
    assert [n for n, _ in saved_chain] == ["scanlines", "bloom", "scanlines"]

    model.reset_crop()
    model.clear_filters()
    problems = model.load_settings(path)
    assert problems == []
    assert model.chain.to_chain() == saved_chain
    assert model.settings["crop"] == {"enabled": True, "left": 0.2, "top": 0.0, "right": 0.25, "bottom": 1.0}
    assert model.settings["backdrop_path"] == str(image.resolve()) and model.backdrop_image is not None
    assert model.settings["backdrop_blur"] is False and model.settings["backdrop_fit"] == "contain"
    model.link.wait_idle(60)
    assert model.link.avatar.settings["postprocessor_chain"] == saved_chain  # the engine got it too
    with pytest.raises(ActionError, match="not valid JSON"):
        (tmp_path / "broken.json").write_text("{nope")
        model.load_settings(tmp_path / "broken.json")


@pytest.mark.parametrize("name", ["animator.json", "glitchyholo.json", "redsepia.json"])
def test_reference_presets_load_without_problems(model, name):
    problems = model.load_settings(REFERENCE / name)
    assert problems == []
    expected = json.loads((REFERENCE / name).read_text())["postprocessor_chain"]
    assert [n for n, _ in model.chain.to_chain()] == [n for n, _ in expected]


def test_one_bad_filter_is_skipped_and_the_rest_of_the_chain_applies(model, tmp_path):
    chain = json.loads((REFERENCE / "glitchyholo.json").read_text())["postprocessor_chain"]
    names = [n for n, _ in chain]
    path = tmp_path / "bad_filter.json"
    path.write_text(json.dumps({"target_fps": 30, "postprocessor_chain": [*chain[:2], ["sparkles", {}], *chain[2:]]}))
    problems = model.load_settings(path)
    assert [(p.key, p.source) for p in problems] == [("postprocessor_chain[2]", str(path))]
    assert "'sparkles'" in str(problems[0]) and "entry skipped" in str(problems[0])
    assert model.status == "loaded settings bad_filter.json (1 problem)"
    assert [n for n, _ in model.chain.to_chain()] == names and model.settings["target_fps"] == 30
    model.link.wait_idle(60)
    assert [n for n, _ in model.link.avatar.settings["postprocessor_chain"]] == names  # the engine got it too

    path.write_text(json.dumps({"postprocessor_chain": [["scanlines", {"strength": 0.25}], ["bloom", {"sigma": -3}]]}))
    problems = model.link.avatar.load_settings(path)  # the engine API itself, straight from the file
    assert [p.key for p in problems] == ["postprocessor_chain[1].sigma"] and "bloom" in str(problems[0])
    used = model.link.avatar.settings["postprocessor_chain"]
    assert [n for n, _ in used] == ["scanlines", "bloom"] and used[0][1]["strength"] == 0.25
    assert model.load_settings(path) == problems and "(1 problem)" in model.status
    assert model.chain.instances[1].params["sigma"] == model.chain.instances[1].param_spec("sigma").default

    assert model.load_chain_preset(REFERENCE / "redsepia.json") == []
    path.write_text(json.dumps({"postprocessor_chain": [["blom", {}], ["vignetting", {}], [7]]}))
    problems = model.load_chain_preset(path)
    assert [p.key for p in problems] == ["postprocessor_chain[0]", "postprocessor_chain[2]"]
    assert "did you mean bloom" in str(problems[0])
    assert [n for n, _ in model.chain.to_chain()] == ["vignetting"] and model.status.endswith("(2 problems)")


def test_invalid_values_are_reported_precisely(model, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"target_fps": "fast", "crop": {"left": 0.9, "right": 0.1}, "blink_speed": 1}))
    problems = model.load_settings(path)
    keys = {p.key for p in problems}
    assert {"target_fps", "crop", "blink_speed"} <= keys


def test_emotion_stepping_and_template_overlay(model, tmp_path):
    names = model.emotions()
    assert names[0] == "neutral" and len(names) > 10
    assert model.step_emotion(to="last") == names[-1]
    assert model.step_emotion(-1) == names[-2]
    assert model.step_emotion(to="first") == "neutral"
    assert model.step_emotion(-1) == "neutral"  # stays at the top
    extra = tmp_path / "extra.json"
    data = json.loads((REFERENCE / "surprise.json").read_text())
    extra.write_text(json.dumps({"zzz_custom": data["surprise"]}))
    model.load_templates(extra)
    model.link.wait_idle(60)
    assert "zzz_custom" in model.emotions()
    model.set_emotion("zzz_custom")
    assert model.emotion == "zzz_custom"
    from raven_avatar.settings_editor.model import ActionError

    with pytest.raises(ActionError):
        model.set_emotion("no_such_emotion")
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(ActionError, match="no emotion templates"):
        model.load_templates(tmp_path / "empty.json")


def test_file_watch_reloads_character_and_user_templates(model, engine, tmp_path):
    link, _, character = engine
    clock = [100.0]
    model.clock = lambda: clock[0]

    def tick(seconds: float) -> None:
        clock[0] += seconds
        model.tick()

    tick(0.3)  # first look at the files
    img = PIL.Image.open(character)
    img.load()
    img.save(character)  # rewritten: new mtime
    tick(0.3)  # change seen
    tick(0.6)  # quiet long enough: reload queued
    assert link.wait_idle(60)
    tick(0.3)
    assert any(e.kind == "character" and "reloaded" in e.message for e in model.events)

    folder = tmp_path / "data" / "emotions"
    folder.mkdir(parents=True)
    data = json.loads((REFERENCE / "surprise.json").read_text())
    (folder / "zzwatched.json").write_text(json.dumps({"zzwatched": data["surprise"]}))
    tick(0.3)
    tick(0.6)
    assert link.wait_idle(60)
    assert "zzwatched" in model.emotions()


def test_broken_character_reports_an_error_event(model, tmp_path):
    from raven_avatar.settings_editor.model import ActionError

    with pytest.raises(ActionError, match="not found"):
        model.load_character(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    before = model.character_path()
    model.load_character(bad)
    assert model.link.wait_idle(60)
    model.tick()
    assert any(e.error and "bad.png" in e.message for e in model.events)
    assert model.character_path() == before  # the previous character stays


def test_backdrop_can_share_the_postprocessor_look(model, tmp_path):
    image = tmp_path / "bg.png"
    PIL.Image.new("RGB", (64, 48), (120, 160, 200)).save(image)
    model.load_backdrop(image)
    model.set_setting("backdrop_blur", False)
    model.clear_filters()
    model.add_filter("monochrome_display")
    plain = model.render_backdrop(64, 48)
    version = model.backdrop_version
    model.set_backdrop_through_postprocessor(True)
    assert model.backdrop_version > version  # the GUI re-renders it
    styled = model.render_backdrop(64, 48)
    assert np.allclose(plain[20, 30, :3], [120 / 255, 160 / 255, 200 / 255], atol=0.01)
    assert np.ptp(styled[20, 30, :3]) < 0.02  # monochrome: the channels agree
    model.set_postprocessor_enabled(False)
    assert np.allclose(model.render_backdrop(64, 48), plain)


def test_backdrop_blur_amount_is_a_setting_that_changes_the_scene(model, tmp_path):
    image = tmp_path / "stripes.png"
    stripes = np.zeros((100, 200, 3), np.uint8)
    stripes[:, ::20] = 255
    PIL.Image.fromarray(stripes).save(image)
    model.load_backdrop(image)
    model.set_setting("backdrop_blur", True)
    model.set_setting("backdrop_blur_amount", 2.0)
    light = model.render_backdrop(200, 100)
    version = model.backdrop_version
    model.set_setting("backdrop_blur_amount", 40.0)
    assert model.backdrop_version > version  # the GUI re-renders it
    heavy = model.render_backdrop(200, 100)
    assert np.ptp(heavy[50, 40:80, 0]) < np.ptp(light[50, 40:80, 0]) / 2  # stripes washed out
    model.set_setting("backdrop_blur_amount", 500.0)  # sliders clamp to the schema's range
    assert model.settings["backdrop_blur_amount"] == 60.0
    model.set_backdrop_through_postprocessor(True)
    path = tmp_path / "look.json"
    model.save_settings(path)
    model.set_setting("backdrop_blur_amount", 5.0)
    model.set_backdrop_through_postprocessor(False)
    assert model.load_settings(path) == []
    assert model.settings["backdrop_blur_amount"] == 60.0 and model.settings["backdrop_postprocess"] is True


def test_files_are_opened_by_what_they_hold(model, tmp_path):
    from raven_avatar.settings_editor.model import ActionError

    opaque = tmp_path / "scene.jpg"
    PIL.Image.new("RGB", (32, 24), (200, 10, 10)).save(opaque)
    rgba_but_opaque = tmp_path / "scene_rgba.png"
    PIL.Image.new("RGBA", (32, 24), (0, 10, 200, 255)).save(rgba_but_opaque)
    transparent = tmp_path / "someone.png"
    PIL.Image.new("RGBA", (32, 24), (0, 0, 0, 0)).save(transparent)
    templates = tmp_path / "more_emotions.json"
    templates.write_text((REFERENCE / "surprise.json").read_text())
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert model.classify_file(opaque) == "backdrop"
    assert model.classify_file(rgba_but_opaque) == "backdrop"
    assert model.classify_file(transparent) == "character"
    assert model.classify_file(REFERENCE / "redsepia.json") == "settings"
    assert model.classify_file(templates) == "templates"
    with pytest.raises(ActionError, match="not an image"):
        model.classify_file(text)
    assert model.open_file(rgba_but_opaque) == "backdrop"
    assert model.settings["backdrop_path"] == str(rgba_but_opaque.resolve())
    model.settings["backdrop_path"] = "dusk.png"  # a shipped backdrop, by name
    model._load_backdrop_from_settings()
    assert model.backdrop_image is not None


def test_model_reports_the_webm_encode_until_it_is_done(model, tmp_path):
    from raven_avatar.settings_editor.model import ActionError

    pytest.importorskip("av")
    model.start_recording(tmp_path / "rec", video=True)
    for k in range(4):
        model.recorder.add(_opaque(k / 3), 5.0 + k * 0.04)  # what tick() hands it from engine frames
    model.stop_recording()
    encoding = model.encoding
    assert encoding is not None and encoding.total == 4
    assert model.status.startswith("Encoding recording.webm: ") and model.status.endswith("/4 frames")
    with pytest.raises(ActionError, match="still encoding"):
        model.start_recording(tmp_path / "rec2")
    assert encoding.wait(120)
    model.tick()
    assert model.encoding is None and model.status == "Encoded recording.webm: 4 frames"
    assert not [e for e in model.events if e.error]
    assert (tmp_path / "rec" / VIDEO_FILE).stat().st_size > 0


@pytest.mark.slow
def test_screenshot_and_recording_from_live_frames(model, tmp_path):
    link = model.link
    link.avatar.start()
    try:
        deadline = time.monotonic() + 120
        while model.frame is None and time.monotonic() < deadline:
            model.tick()
            time.sleep(0.05)
        assert model.frame is not None
        shot = model.screenshot(tmp_path / "shot.png")
        rgba = np.asarray(PIL.Image.open(shot))
        assert rgba.shape[2] == 4 and rgba[..., 3].min() == 0 and rgba[..., 3].max() > 200  # transparent around
        model.set_setting("backdrop_color", [0.0, 0.0, 1.0, 1.0])
        opaque = np.asarray(PIL.Image.open(model.screenshot(tmp_path / "shot2.png", with_backdrop=True)))
        assert opaque[..., 3].min() == 255 and tuple(opaque[0, 0, :3]) == (0, 0, 255)

        model.start_recording(tmp_path / "rec")
        times = []
        start_index = model.frame.index
        while len(times) < 2 and time.monotonic() < deadline:
            model.tick()
            if model.frame.index > start_index and (not times or model.frame.t != times[-1]):
                times.append(model.frame.t)
            time.sleep(0.05)
        timing = json.loads(model.stop_recording().read_text())
    finally:
        link.avatar.pause()
    recorded = [f["t"] for f in timing["frames"]]
    assert len(recorded) >= 2
    assert recorded == sorted(recorded) and recorded[0] == 0.0
    assert recorded[1] == pytest.approx(times[1] - times[0], abs=1e-5)  # the engine's frame times, not wall-clock
    for f in timing["frames"]:
        assert (tmp_path / "rec" / f["file"]).exists()


def test_a_backdrop_that_is_not_an_image_is_an_action_error_and_keeps_the_old_one(model, tmp_path):
    from raven_avatar.settings_editor.model import ActionError

    good = tmp_path / "bg.png"
    PIL.Image.new("RGB", (64, 48), (120, 160, 200)).save(good)
    model.load_backdrop(good)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    version = model.backdrop_version
    with pytest.raises(ActionError, match="notes.png"):  # was a BackdropError that ended the app
        model.load_backdrop(bad)
    assert model.backdrop_version == version and model.settings["backdrop_path"] == str(good.resolve())
