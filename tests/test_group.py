"""Engine batching: one PoseSession poses a list of images (one per pose row) exactly like single calls; a
RenderGroup renders avatars that are due together with one batched THA3 call; characters from in-memory images."""

from __future__ import annotations

import numpy as np
import pytest
import quiet
import torch
from PIL import Image

from raven_avatar.engine import Avatar, RenderGroup
from raven_avatar.engine.character import CharacterError, character_from_images, load_character

QUIET = {**quiet.QUIET, "postprocessor_chain": []}


@pytest.mark.slow
def test_pose_list_of_images_matches_single_calls(cpu_poser, example_character_png):
    image = load_character(example_character_png).image
    mirrored = image.flip(-1).contiguous()
    poses = torch.zeros(2, 45)
    poses[0, 12] = 1.0  # an eye morph on the first row only
    poses[1, 40] = 0.5  # and a body turn on the second
    batched = cpu_poser.session().pose([image, mirrored], poses)
    one = cpu_poser.session().pose(image, poses[0])
    two = cpu_poser.session().pose(mirrored, poses[1])
    assert batched.shape == (2, 4, 512, 512)
    torch.testing.assert_close(batched[0:1], one, atol=2e-4, rtol=0)
    torch.testing.assert_close(batched[1:2], two, atol=2e-4, rtol=0)
    with pytest.raises(ValueError, match="one single image per pose row"):
        cpu_poser.session().pose([image, mirrored], poses[:1])


def test_render_group_poses_due_avatars_in_one_call(cpu_poser, example_character_png, monkeypatch):
    calls: list[int] = []
    turn_body = cpu_poser.model.turn_body

    def spy(image, pose, *args, **kwargs):
        calls.append(image.shape[0])
        return turn_body(image, pose, *args, **kwargs)

    monkeypatch.setattr(cpu_poser.model, "turn_body", spy)
    group = RenderGroup(cpu_poser)
    frozen = lambda: 0.0  # noqa: E731  (poses repeat: only the first batch poses)
    avatars = [
        Avatar(example_character_png, QUIET, group=group, seed=i, clock=frozen, warm_up=False, output="u8")
        for i in range(2)
    ]
    # Both join before the group's thread looks at them: they are due together at once.
    with group.condition:
        for a in avatars:
            a.start()
    frames = [a.wait_frame(timeout=300) for a in avatars]
    for a in avatars:
        a.stop()
    assert all(f is not None for f in frames), [a.last_error for a in avatars]
    assert calls[0] == 2 and [f.stats["pose_batch"] for f in frames] == [2, 2]
    assert frames[0].rgba_u8.shape == (512, 512, 4) and frames[0].rgba_f32 is None
    np.testing.assert_array_equal(frames[0].rgba_u8, frames[1].rgba_u8)  # same character, same pose
    assert group.members == [] and not avatars[0].running


def _png(path, arr: np.ndarray, mode: str = "RGBA"):
    Image.fromarray(arr, mode).save(path, "PNG")
    return path


def test_character_from_images(example_character_png, tmp_path):
    cel = np.zeros((512, 512, 4), np.uint8)
    cel[100:200, 100:200] = (255, 0, 0, 128)
    blush, star = _png(tmp_path / "a", cel), _png(tmp_path / "b", cel)
    c = character_from_images("hero", example_character_png, {"blush1": blush, "fx_star1": star})
    assert c.path is None and c.name == "hero" and list(c.cels) == ["blush1"]
    assert c.report.fx_cels["fx_star1"] == "character" and "fx_heart1" in c.fx_cels
    torch.testing.assert_close(c.image, load_character(example_character_png).image)
    with pytest.raises(ValueError, match="unknown cel name"):
        character_from_images("hero", example_character_png, {"../etc": blush})
    with pytest.raises(CharacterError, match="no alpha channel"):
        character_from_images("flat", _png(tmp_path / "c", np.zeros((64, 64, 3), np.uint8), "RGB"))
    junk = tmp_path / "junk"
    junk.write_bytes(b"junk")
    with pytest.raises(CharacterError, match="junk: cannot read"):
        character_from_images("hero", example_character_png, {"blush2": junk})
