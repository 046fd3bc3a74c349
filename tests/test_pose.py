import math

import pytest
import torch

from raven_avatar.engine import pose


def test_45_params_in_tha3_order_with_reference_keys():
    assert pose.NUM_PARAMS == 45
    assert pose.KEYS[0] == "eyebrow_troubled_left_index"
    assert pose.KEYS[26] == "mouth_aaa_index"
    assert pose.KEYS[31] == "mouth_delta"
    assert pose.KEYS[36] == "mouth_smirk"
    assert pose.KEYS[44] == "breathing_index"
    assert len(set(pose.KEYS)) == 45
    assert [p.index for p in pose.PARAMS] == list(range(45))


def test_categories_ranges_and_stage_slices():
    assert all(p.category is pose.Category.EYEBROW for p in pose.PARAMS[pose.EYEBROW_SLICE])
    assert pose.param("head_x").low == -1.0 and pose.param("head_x_index").high == 1.0
    assert pose.param("breathing_index").low == 0.0
    assert {p.category for p in pose.PARAMS[pose.BODY_SLICE]} == {
        pose.Category.FACE_ROTATION,
        pose.Category.BODY_ROTATION,
        pose.Category.BREATHING,
    }
    assert pose.param("eye_wink_left_index").arity == 2 and pose.param("mouth_aaa").arity == 1


def test_dict_roundtrip_and_missing_keys_are_zero():
    vec, problems = pose.pose_from_dict({"head_x_index": 0.5, "mouth_aaa": 1.0})
    assert problems == []
    d = pose.pose_to_dict(vec)
    assert list(d) == list(pose.KEYS)
    assert d["head_x_index"] == 0.5 and d["mouth_aaa_index"] == 1.0
    assert sum(abs(v) for v in d.values()) == 1.5
    vec2, _ = pose.pose_from_dict(d)
    assert torch.equal(vec, vec2)


def test_bad_values_are_reported_not_fatal():
    vec, problems = pose.pose_from_dict(
        {"head_x_index": 3.0, "nope": 1, "eye_wink_left_index": math.nan, "mouth_aaa_index": "x"}
    )
    assert vec[pose.param("head_x").index] == 1.0
    assert vec[pose.param("eye_wink_left").index] == 0.0
    text = "\n".join(problems)
    assert "clamped" in text and "'nope'" in text and "not finite" in text and "not a number" in text


def test_sanitize_tensor_and_wrong_shape():
    t = torch.zeros(2, 45)
    t[0, 39] = -5.0
    t[1, 3] = float("nan")
    out, problems = pose.sanitize_pose(t)
    assert out[0, 39] == -1.0 and out[1, 3] == 0.0 and len(problems) == 2
    with pytest.raises(ValueError, match="45"):
        pose.sanitize_pose(torch.zeros(44))
    with pytest.raises(KeyError, match="bogus"):
        pose.param("bogus")
