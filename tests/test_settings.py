import json
import math
from pathlib import Path

import pytest

from raven_avatar.engine import settings as S

REFERENCE = Path(__file__).parent / "data" / "reference"
REFERENCE_PRESETS = ["animator.json", "glitchyholo.json", "redsepia.json"]


@pytest.fixture(autouse=True)
def _dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("RAVEN_AVATAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("name", REFERENCE_PRESETS)
def test_reference_presets_load_unchanged(name):
    raw = json.loads((REFERENCE / name).read_text())
    assert S.validate(raw) == []
    loaded, problems = S.load_settings(REFERENCE / name)
    assert problems == []
    assert loaded["postprocessor_chain"] == raw["postprocessor_chain"]
    assert loaded["animefx"] == [[n, {**p, "enabled": p.get("enabled", True)}] for n, p in raw["animefx"]]
    for key, value in raw.items():
        if key not in ("crop", "animefx", "postprocessor_chain"):
            assert loaded[key] == value, key
    assert loaded["crop"] == raw["crop"]
    assert set(loaded) == set(S.BY_KEY)


def test_glitchyholo_keeps_its_extras():
    loaded, _ = S.load_settings(REFERENCE / "glitchyholo.json")
    assert (loaded["format"], loaded["upscale"], loaded["upscale_quality"]) == ("QOI", 2.0, "bicubic")
    noise = dict(loaded["postprocessor_chain"])["noise"]
    assert noise["name"] is None and noise["channel"] == "Y"


def test_shipped_defaults_and_presets_are_valid():
    shipped = S.read_settings_file(S.shipped_settings_path())
    assert set(shipped) == set(S.BY_KEY)
    assert S.validate(shipped) == []
    found = S.presets()
    assert {"calm", "lively", "retro_crt"} <= set(found)
    for path in found.values():
        raw = S.read_settings_file(path)
        assert S.validate(raw) == [], path
        loaded, problems = S.load_settings(path)
        assert problems == [] and all(loaded[k] == S._normalize(S.BY_KEY[k], v) for k, v in raw.items())


def test_schema_is_complete_gui_data():
    reference_keys = set(json.loads((REFERENCE / "glitchyholo.json").read_text())) | {
        "data_eyes_fps",
        "data_eyes_fadeout_duration",
        "metrics_enabled",
        "backdrop_path",
        "backdrop_blur",
    }
    assert reference_keys <= set(S.BY_KEY)
    assert S.validate(S.defaults()) == []
    for s in S.SCHEMA:
        assert s.kind in S.KINDS and s.doc and s.group in S.GROUPS, s.key
        if s.kind in ("int", "float"):
            assert s.low < s.high and s.low <= s.default <= s.high, s.key
        if s.kind == "choice":
            assert s.default in s.choices, s.key
    assert [s.key for s in S.settings_in("crop")] == ["crop"]
    assert sum(len(S.settings_in(g)) for g in S.GROUPS) == len(S.SCHEMA)


@pytest.mark.parametrize(
    "settings, key, why",
    [
        ({"target_fsp": 25}, "target_fsp", "did you mean target_fps"),
        ({"target_fps": True}, "target_fps", "integer"),  # bool is not an int
        ({"animefx_enabled": 1}, "animefx_enabled", "true or false"),  # an int is not a bool
        ({"target_fps": 24.5}, "target_fps", "integer"),
        ({"target_fps": "25"}, "target_fps", "integer"),
        ({"pose_interpolator_step": 2.0}, "pose_interpolator_step", "range"),
        ({"blink_probability": math.nan}, "blink_probability", "finite"),
        ({"upscale_quality": "ultra"}, "upscale_quality", "one of"),
        ({"talking_morph": "head_x_index"}, "talking_morph", "one of"),
        ({"talking_morph": 3}, "talking_morph", "morph name"),
        ({"sway_morphs": ["head_x_index", "hed_y_index"]}, "sway_morphs[1]", "head_y_index"),
        ({"sway_morphs": ["head_x_index", "head_x"]}, "sway_morphs", "twice"),
        ({"crop": {"enabled": True, "left": 0.6, "right": 0.4}}, "crop", "left < right"),
        ({"crop": {"lft": 0.1}}, "crop.lft", "unknown crop field"),
        ({"crop": {"top": -0.1}}, "crop.top", "range"),
        ({"crop": {"enabled": "yes"}}, "crop.enabled", "true or false"),
        ({"crop": [0, 0, 1, 1]}, "crop", "object"),
        ({"blink_interval_min": 6.0, "blink_interval_max": 3.0}, "blink_interval_min", "larger than"),
        ({"postprocessor_chain": [["bloom"]]}, "postprocessor_chain[0]", "[filter_name, {params}]"),
        ({"postprocessor_chain": {"bloom": {}}}, "postprocessor_chain", "[filter_name, {params}]"),
        ({"backdrop_color": [1, 2, 0]}, "backdrop_color", "0..1"),
        ({"backdrop_color": [1, 0]}, "backdrop_color", "[r, g, b]"),
        ({"backdrop_path": 5}, "backdrop_path", "path"),
        ({"animefx": {"heart": {}}}, "animefx", "list"),
        ({"animefx": [["heart"]]}, "animefx[0]", "[name, {params}]"),
        ({"animefx": [["x", {"emotions": ["joy"], "type": "bounce", "duration": 1, "cels": ["fx_a"]}]]},
         "animefx[0].type", "one of"),
        ({"animefx": [["x", {"emotions": ["joy"], "type": "sequence", "cels": ["fx_a"]}]]},
         "animefx[0].duration", "missing"),
        ({"animefx": [["x", {"emotions": ["joy"], "type": "cycle", "duration": 1, "cels": ["fx_a"]}]]},
         "animefx[0].fps", "fps > 0"),
        ({"animefx": [["x", {"emotions": "joy", "type": "sequence", "duration": 1, "cels": ["fx_a"]}]]},
         "animefx[0].emotions", "list"),
        ({"animefx": [["x", {"emotions": ["joy"], "type": "sequence", "duration": -1, "cels": ["fx_a"]}]]},
         "animefx[0].duration", "range"),
        ({"animefx": [["x", {"emotions": [], "type": "sequence", "duration": 1, "cels": [], "colour": 1}]]},
         "animefx[0].colour", "unknown field"),
        ({"animefx": [["x", {"emotions": [], "type": "sequence", "duration": 1, "cels": [], "enabled": 1}]]},
         "animefx[0].enabled", "true or false"),
    ],
)  # fmt: skip
def test_validation_names_key_value_and_why(settings, key, why):
    problems = S.validate(settings, source="my.json")
    matching = [p for p in problems if p.key == key]
    assert matching, problems
    problem = matching[0]
    assert why in problem.why
    assert problem.source == "my.json" and "my.json" in str(problem)
    if key in settings:  # the offending value itself comes back (NaN compares by identity)
        assert problem.value is settings[key] or problem.value == settings[key]


def test_validation_of_a_non_object():
    (problem,) = S.validate([1, 2])
    assert problem.key == "" and problem.value == [1, 2] and "object" in problem.why


def test_integral_float_passes_for_int_and_is_normalised():
    assert S.validate({"target_fps": 30.0}) == []
    merged, problems = S.merge({"target_fps": 30.0}, {})
    assert problems == [] and merged["target_fps"] == 30 and isinstance(merged["target_fps"], int)


def test_merge_order_user_then_shipped_then_builtin():
    user = {"talking_fps": 20, "blink_probability": 7.0, "crop": {"enabled": True, "left": 0.25}}
    shipped = {"talking_fps": 15.0, "blink_probability": 0.05, "breathing_cycle_duration": 6.0}
    builtin = {**S.defaults(), "sway_macro_strength": 0.5}
    merged, problems = S.merge(user, shipped, builtin, sources=("u.json", "s.json", "b"))
    assert merged["talking_fps"] == 20.0  # user wins
    assert merged["blink_probability"] == 0.05  # invalid user value passed over, shipped used ...
    assert [(p.key, p.value, p.source) for p in problems] == [("blink_probability", 7.0, "u.json")]  # ... and reported
    assert merged["breathing_cycle_duration"] == 6.0  # shipped
    assert merged["sway_macro_strength"] == 0.5  # builtin layer
    assert merged["crop"] == {"enabled": True, "left": 0.25, "top": 0.0, "right": 1.0, "bottom": 1.0}
    assert set(merged) == set(S.BY_KEY) and S.validate(merged) == []


def test_merge_resets_a_min_max_pair_that_clashes_only_after_merging():
    merged, problems = S.merge({"sway_interval_min": 30.0}, {"sway_interval_max": 20.0})
    assert (merged["sway_interval_min"], merged["sway_interval_max"]) == (5.0, 10.0)
    assert [p.key for p in problems] == ["sway_interval_min"] and "after merging" in problems[0].why


def test_merge_normalises_morph_aliases():
    merged, _ = S.merge({"sway_morphs": ["head_x", "body_z_index"], "talking_morph": "mouth_ooo"}, {})
    assert merged["sway_morphs"] == ["head_x_index", "body_z_index"]
    assert merged["talking_morph"] == "mouth_ooo_index"


def test_load_settings_default_user_file(tmp_path):
    shipped = S.read_settings_file(S.shipped_settings_path())
    loaded, problems = S.load_settings()
    assert problems == [] and loaded == S.merge(shipped, {})[0]

    user_file = S.user_settings_path()
    user_file.parent.mkdir(parents=True)
    user_file.write_text(json.dumps({"talking_fps": 9, "bogus": 1}))
    loaded, problems = S.load_settings()
    assert loaded["talking_fps"] == 9.0
    assert [(p.key, p.source) for p in problems] == [("bogus", str(user_file))]

    user_file.write_text("{not json")
    loaded, problems = S.load_settings()  # a broken user file does not stop the app ...
    assert loaded == S.merge(shipped, {})[0]
    assert len(problems) == 1 and str(user_file) in str(problems[0]) and "JSON" in problems[0].why
    assert user_file.read_text() == "{not json"  # ... and is left for the user to fix


def test_load_settings_explicit_path_errors_name_the_file(tmp_path):
    with pytest.raises(S.SettingsError, match="missing.json.*not found"):
        S.load_settings(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(S.SettingsError, match="bad.json.*JSON object"):
        S.load_settings(bad)
    bad.write_text('{"a": ')
    with pytest.raises(S.SettingsError, match="bad.json.*not valid JSON"):
        S.load_settings(bad)


def test_save_load_roundtrip_with_backup(tmp_path):
    path = tmp_path / "sub" / "mine.json"
    first, _ = S.load_settings()
    assert S.save_settings(first, path) is None  # nothing to back up yet
    loaded, problems = S.load_settings(path)
    assert problems == [] and loaded == first

    assert S.save_settings(first, path) is None  # unchanged: no backup, no rewrite
    second = {**first, "talking_fps": 18.0, "crop": {**first["crop"], "enabled": True, "left": 0.1}}
    backup = S.save_settings(second, path)
    assert backup is not None and backup.parent == path.parent / "backups"
    assert json.loads(backup.read_text()) == first
    assert S.load_settings(path)[0] == second
    assert not list(path.parent.glob("*.tmp"))

    with pytest.raises(ValueError, match="talking_fps"):
        S.save_settings({**second, "talking_fps": -1}, path)
    assert S.load_settings(path)[0] == second  # a refused save leaves the file alone


def test_save_keeps_only_the_newest_backups(tmp_path):
    path = tmp_path / "p.json"
    for fps in range(1, 8):
        S.save_settings({"target_fps": fps}, path, keep_backups=3)
    backups = sorted((tmp_path / "backups").glob("p-*.json"))
    assert [json.loads(b.read_text())["target_fps"] for b in backups] == [4, 5, 6]


def test_chain_problems_come_from_the_postprocessor():
    chain = [["bloom", {"threshold": 7.0}], ["no_such_filter", {}], ["noise", {"name": None, "strength": 0.3}]]
    problems = S.validate({"postprocessor_chain": chain}, source="c.json")
    by_key = {p.key: p for p in problems}
    assert set(by_key) == {"postprocessor_chain[0].threshold", "postprocessor_chain[1]"}
    assert (
        by_key["postprocessor_chain[0].threshold"].value == 7.0
        and "bloom" in by_key["postprocessor_chain[0].threshold"].why
    )
    assert (
        "no_such_filter" in by_key["postprocessor_chain[1]"].why and by_key["postprocessor_chain[1]"].source == "c.json"
    )


def test_a_bad_filter_is_skipped_alone_and_a_bad_parameter_takes_its_default(tmp_path):
    chain = [
        ["scanlines", {"strength": 0.2}],
        ["no_such_filter", {"strength": 1.0}],
        ["bloom", {"threshold": 7.0, "exposure": 0.5}],
        ["vignetting", {"strength": 0.3}],
    ]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"target_fps": 30, "postprocessor_chain": chain}))
    loaded, problems = S.load_settings(path)
    got = loaded["postprocessor_chain"]
    assert [name for name, _ in got] == ["scanlines", "bloom", "vignetting"]  # every valid filter, in order
    assert got[0][1]["strength"] == 0.2 and got[2][1]["strength"] == 0.3
    bloom_defaults = dict(S.defaults()["postprocessor_chain"])  # the shipped chain's bloom has no parameters set
    assert bloom_defaults["bloom"] == {}
    assert got[1][1]["exposure"] == 0.5 and got[1][1]["threshold"] != 7.0  # only the bad parameter reset
    assert loaded["target_fps"] == 30
    assert [(p.key, p.source) for p in problems] == [
        ("postprocessor_chain[1]", str(path)),
        ("postprocessor_chain[2].threshold", str(path)),
    ]
    skipped, reset = (str(p) for p in problems)
    assert "'no_such_filter'" in skipped and "entry skipped" in skipped and str(path) in skipped
    assert "'bloom'" in reset and "7.0" in reset and "default" in reset
    again, _ = S.merge({"postprocessor_chain": got}, {})
    assert again["postprocessor_chain"] == got and S.validate({"postprocessor_chain": got}) == []


def test_a_chain_that_is_not_a_list_falls_back_to_the_next_layer():
    merged, problems = S.merge({"postprocessor_chain": {"bloom": {}}}, {"postprocessor_chain": [["bloom", {}]]})
    assert merged["postprocessor_chain"] == [["bloom", {}]]
    assert [p.key for p in problems] == ["postprocessor_chain"]
