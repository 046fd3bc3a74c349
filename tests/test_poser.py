"""The public Poser: stage reuse, sessions, input checking, device selection (CPU, real weights)."""

from __future__ import annotations

import logging

import pytest
import torch

from raven_avatar.engine.device import resolve_device
from raven_avatar.engine.pose import param
from raven_avatar.engine.poser import load_poser


@pytest.fixture(scope="module")
def poser(cpu_poser):
    return cpu_poser


@pytest.fixture(scope="module")
def image():
    g = torch.Generator().manual_seed(0)
    img = torch.zeros(4, 512, 512)
    img[:, 64:448, 128:384] = torch.rand(4, 384, 256, generator=g) * 0.5 + 0.25
    img[3, 64:448, 128:384] = 1.0
    return img


def full_pose(poser, image, pose):
    with torch.inference_mode():
        return (poser.model(image.unsqueeze(0) * 2 - 1, pose.unsqueeze(0)) * 0.5 + 0.5).clamp(0, 1)


def test_stage_reuse_gives_the_same_image_as_a_full_recompute(poser, image):
    session = poser.session()
    pose = torch.zeros(45)
    out = session.pose(image, pose)
    assert out.shape == (1, 4, 512, 512) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert session.last_stages == "full"

    body = pose.clone()
    body[param("breathing").index] = 0.8
    body[param("head_x").index] = 0.3
    out_body = session.pose(image, body)
    assert session.last_stages == "body"
    assert torch.equal(out_body, full_pose(poser, image, body))
    assert not torch.equal(out_body, out)

    again = session.pose(image, body.clone())
    assert session.last_stages == "none" and again is out_body

    face = body.clone()
    face[param("mouth_aaa").index] = 1.0
    assert torch.equal(session.pose(image, face), full_pose(poser, image, face))
    assert session.last_stages == "face"


def test_changing_the_image_in_place_is_noticed(poser, image):
    session = poser.session()
    img = image.clone()
    pose = torch.zeros(45)
    session.pose(img, pose)
    img[:3] *= 0.5  # e.g. cels re-blended into the same buffer
    out = session.pose(img, pose)
    assert session.last_stages == "full"
    assert torch.equal(out, full_pose(poser, img, pose))


def test_sessions_sharing_one_poser_keep_their_own_state(poser, image):
    a, b = poser.session(), poser.session()
    other = image.flip(-1).contiguous()
    pose = torch.zeros(45)
    out_a = a.pose(image, pose)
    out_b = b.pose(other, pose)
    assert a.pose(image, pose) is out_a and a.last_stages == "none"
    assert b.pose(other, pose) is out_b and b.last_stages == "none"
    assert not torch.equal(out_a, out_b)


def test_batched_posing_matches_single_poses(poser, image):
    poses = torch.zeros(2, 45)
    poses[1, param("head_y").index] = -0.5
    batch = poser.session().pose(image, poses)
    assert batch.shape == (2, 4, 512, 512)
    assert float((batch[1:] - full_pose(poser, image, poses[1])).abs().max()) < 1e-5


def test_bad_inputs_give_clear_errors(poser, image):
    s = poser.session()
    with pytest.raises(ValueError, match="512"):
        s.pose(torch.zeros(4, 256, 256), torch.zeros(45))
    with pytest.raises(ValueError, match="RGBA"):
        s.pose(torch.zeros(3, 512, 512), torch.zeros(45))
    with pytest.raises(TypeError, match="float"):
        s.pose(torch.zeros(4, 512, 512, dtype=torch.uint8), torch.zeros(45))
    with pytest.raises(ValueError, match="45"):
        s.pose(image, torch.zeros(44))
    with pytest.raises(TypeError, match="torch.Tensor"):
        s.pose(image.numpy(), torch.zeros(45))
    with pytest.raises(ValueError, match="batch"):
        s.pose(torch.zeros(3, 4, 512, 512), torch.zeros(2, 45))


def test_nan_and_out_of_range_pose_values_are_sanitised_and_reported_once(poser, image, caplog):
    s = poser.session()
    bad = torch.zeros(45)
    bad[0] = float("nan")
    bad[param("head_x").index] = 7.0
    clean = torch.zeros(45)
    clean[param("head_x").index] = 1.0
    with caplog.at_level(logging.WARNING):
        out = s.pose(image, bad)
        s.pose(image, bad.tolist())  # plain lists are accepted too
    assert torch.isfinite(out).all()
    assert torch.equal(out, full_pose(poser, image, clean))
    assert sum("non-finite" in r.message for r in caplog.records) == 1
    assert sum("clamped" in r.message for r in caplog.records) == 1


def test_device_selection_falls_back_with_a_notice():
    assert resolve_device("cpu") == (torch.device("cpu"), None)
    if not torch.cuda.is_available():
        dev, notice = resolve_device("cuda:0")
        assert dev.type == "cpu" and "CUDA is not available" in notice
        assert resolve_device("auto") == (torch.device("cpu"), None)
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_unknown_variant_and_half_on_cpu(tha3_models, monkeypatch):
    monkeypatch.setenv("RAVEN_AVATAR_MODELS_DIR", str(tha3_models.parent))
    with pytest.raises(ValueError, match="separable_float"):
        load_poser("separable_quarter", device="cpu")
    if not torch.cuda.is_available():
        poser = load_poser(device="cuda")
        assert poser.device.type == "cpu" and "CUDA" in poser.notice


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_half_poser_keeps_the_rotator_encoder_in_float32_and_stays_close_to_float32(
    tha3_models, example_character_png, monkeypatch
):
    """fp16 within 3.2e-02 of fp32 on the final image (issue 16), with the body rotator's encoder in float32."""
    from raven_avatar.engine.character import load_character
    from raven_avatar.engine.poser.model import FLOAT32_MODULES

    monkeypatch.setenv("RAVEN_AVATAR_MODELS_DIR", str(tha3_models.parent))
    half, full = load_poser("separable_half", "cuda"), load_poser("separable_float", "cuda")
    kept = {p.dtype for name in FLOAT32_MODULES for p in half.model.get_submodule(name).parameters()}
    assert kept == {torch.float32}
    assert half.model.two_algo_face_body_rotator.grid_change_creator.weight.dtype == torch.float16
    assert half.model.editor.grid_change_creator.weight.dtype == torch.float16
    image = load_character(example_character_png).image.cuda()
    poses = torch.rand(6, 45, generator=torch.Generator().manual_seed(5))
    poses[:, 37:44] = poses[:, 37:44] * 2 - 1
    worst = max(float((half.pose(image, p).float() - full.pose(image, p)).abs().max()) for p in poses)
    assert worst < 3.2e-2
