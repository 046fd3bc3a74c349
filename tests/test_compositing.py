"""Alpha compositing against hand-computed values, cel stacks by name, and the animefx drivers at exact times."""

from __future__ import annotations

import pytest
import torch

from raven_avatar.engine.compositing import (
    ANIMEFX_KINDS,
    animefx_strengths,
    combine_strengths,
    composite_cels,
    default_order,
    over,
)


def _pixel(r: float, g: float, b: float, a: float) -> torch.Tensor:
    return torch.tensor([r, g, b, a], dtype=torch.float32).view(4, 1, 1)


def test_over_matches_hand_computed_values():
    top = _pixel(1.0, 0.0, 0.0, 0.5)
    bottom = _pixel(0.0, 0.0, 1.0, 0.5)
    out = over(top, bottom).flatten()
    # alpha = 0.5 + 0.5*0.5 = 0.75; rgb = (1*0.5, 0, 1*0.25) / 0.75
    torch.testing.assert_close(out, torch.tensor([2 / 3, 0.0, 1 / 3, 0.75]))


def test_over_opaque_and_transparent_cases():
    red, blue = _pixel(1, 0, 0, 1), _pixel(0, 0, 1, 1)
    clear = _pixel(0.3, 0.3, 0.3, 0.0)
    torch.testing.assert_close(over(red, blue), red)
    torch.testing.assert_close(over(clear, blue), blue)
    torch.testing.assert_close(over(blue, clear), blue)
    both_clear = over(clear, clear)
    assert torch.isfinite(both_clear).all()
    torch.testing.assert_close(both_clear, torch.zeros(4, 1, 1))


def test_over_straight_alpha_keeps_colour_of_semitransparent_onto_transparent():
    # A half-transparent green drawn on nothing stays pure green (straight alpha), alpha 0.5.
    out = over(_pixel(0, 1, 0, 0.5), _pixel(0, 0, 0, 0)).flatten()
    torch.testing.assert_close(out, torch.tensor([0.0, 1.0, 0.0, 0.5]))


def test_over_batches_and_broadcasts():
    top = torch.rand(3, 4, 5, 6)
    bottom = torch.rand(4, 5, 6)
    out = over(top, bottom)
    assert out.shape == (3, 4, 5, 6)
    torch.testing.assert_close(out[1], over(top[1], bottom))


def test_composite_cels_strength_scales_alpha_and_skips_missing_or_zero():
    base = _pixel(0, 0, 1, 1).expand(4, 2, 2).clone()
    blush = _pixel(1, 0, 0, 1).expand(4, 2, 2).clone()
    before = (base.clone(), blush.clone())
    out = composite_cels(base, {"blush1": blush}, {"blush1": 0.25, "tears1": 1.0, "sweat1": 0.0})
    # alpha 0.25 red over opaque blue: rgb = (0.25, 0, 0.75), alpha 1
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([0.25, 0.0, 0.75, 1.0]))
    torch.testing.assert_close(base, before[0])
    torch.testing.assert_close(blush, before[1])
    assert composite_cels(base, {"blush1": blush}, {"blush1": 0.0}) is base
    assert composite_cels(base, {"blush1": blush}, {"blush1": float("nan")}) is base
    torch.testing.assert_close(composite_cels(base, {"blush1": blush}, {"blush1": 5.0}), over(blush, base))


def test_composite_cels_uses_canonical_order_not_mapping_order():
    base = _pixel(0, 0, 0, 1)
    blush = _pixel(1, 0, 0, 1)
    waver = _pixel(0, 1, 0, 1)
    cels = {"blush1": blush, "waver1": waver}
    # waver1 is above blush1 in the canonical order, whatever order the strengths come in.
    out = composite_cels(base, cels, {"waver1": 1.0, "blush1": 1.0})
    torch.testing.assert_close(out, waver)
    out = composite_cels(base, cels, {"waver1": 1.0, "blush1": 1.0}, order=["waver1", "blush1"])
    torch.testing.assert_close(out, blush)


def test_default_order_puts_fx_after_supported_sorted():
    assert default_order(["fx_heart1", "waver1", "blush2", "fx_angervein1"]) == [
        "blush2",
        "waver1",
        "fx_angervein1",
        "fx_heart1",
    ]


# --- animefx drivers -------------------------------------------------------------------------------------------------

SWEAT = ["fx_sweatdrop1", "fx_sweatdrop2", "fx_sweatdrop3"]


@pytest.mark.parametrize(
    ("elapsed", "active"),
    [
        (0.0, "fx_sweatdrop1"),
        (0.099, "fx_sweatdrop1"),
        (0.1, "fx_sweatdrop2"),
        (0.2, "fx_sweatdrop3"),
        (0.29, "fx_sweatdrop3"),
    ],
)
def test_sequence_shows_each_cel_for_a_third(elapsed, active):
    s = animefx_strengths("sequence", SWEAT, elapsed, 0.3)
    assert s == {name: (1.0 if name == active else 0.0) for name in SWEAT}


def test_sequence_ends_at_duration_and_is_off_before_trigger():
    assert animefx_strengths("sequence", SWEAT, 0.3, 0.3) == dict.fromkeys(SWEAT, 0.0)
    assert animefx_strengths("sequence", SWEAT, 5.0, 0.3) == dict.fromkeys(SWEAT, 0.0)
    assert animefx_strengths("sequence", SWEAT, -0.01, 0.3) == dict.fromkeys(SWEAT, 0.0)


def test_sequence_with_fadeout_fades_linearly():
    s = animefx_strengths("sequence_with_fadeout", SWEAT, 0.15, 0.3)
    assert s == {"fx_sweatdrop1": 0.0, "fx_sweatdrop2": pytest.approx(0.5), "fx_sweatdrop3": 0.0}
    s = animefx_strengths("sequence_with_fadeout", SWEAT, 0.0, 0.3)
    assert s["fx_sweatdrop1"] == 1.0


def test_sequence_with_repeated_names():
    notice = ["fx_notice1", "fx_notice2", "fx_notice1", "fx_notice2"]
    frames = [animefx_strengths("sequence", notice, t, 0.25) for t in (0.0, 0.0625, 0.125, 0.1875, 0.24)]
    assert [max(f, key=f.get) for f in frames] == ["fx_notice1", "fx_notice2", "fx_notice1", "fx_notice2", "fx_notice2"]
    assert all(set(f) == {"fx_notice1", "fx_notice2"} for f in frames)


def test_cycle_loops_at_fps_until_duration():
    vein = ["fx_angervein1", "fx_angervein2"]
    # 6 fps: frames change every 1/6 s, alternating.
    expect = ["fx_angervein1", "fx_angervein2", "fx_angervein1", "fx_angervein2", "fx_angervein1", "fx_angervein2"]
    for k, name in enumerate(expect):
        s = animefx_strengths("cycle", vein, k / 6 + 0.01, 1.0, fps=6)
        assert s == {n: (1.0 if n == name else 0.0) for n in vein}, k
    assert animefx_strengths("cycle", vein, 1 / 6, 1.0, fps=6)["fx_angervein2"] == 1.0  # exactly on the boundary
    assert animefx_strengths("cycle", vein, 1.0, 1.0, fps=6) == dict.fromkeys(vein, 0.0)


def test_cycle_with_fadeout():
    vein = ["fx_angervein1", "fx_angervein2"]
    s = animefx_strengths("cycle_with_fadeout", vein, 0.75, 1.0, fps=6)  # frame 4 -> cel 1, fade 0.25
    assert s == {"fx_angervein1": pytest.approx(0.25), "fx_angervein2": 0.0}


def test_disabled_and_invalid():
    assert animefx_strengths("sequence", SWEAT, 0.1, 0.0) == dict.fromkeys(SWEAT, 0.0)
    assert animefx_strengths("cycle", [], 0.1, 1.0, fps=6) == {}
    with pytest.raises(ValueError, match="valid kinds: " + ", ".join(ANIMEFX_KINDS)):
        animefx_strengths("fadeout", SWEAT, 0.1, 1.0)
    with pytest.raises(ValueError, match="fps"):
        animefx_strengths("cycle", SWEAT, 0.1, 1.0)


def test_overlapping_effects_combine_by_max():
    # Anger triggered at t=0, annoyance at t=0.5: both play at t=0.6, nothing is cut off.
    vein = animefx_strengths("cycle_with_fadeout", ["fx_angervein1", "fx_angervein2"], 0.6, 1.0, fps=6)
    cloud = animefx_strengths("cycle_with_fadeout", ["fx_blackcloud1", "fx_blackcloud2"], 0.1, 1.0, fps=6)
    combined = combine_strengths([vein, cloud])
    assert combined["fx_angervein2"] == pytest.approx(0.4)  # frame 3 at 6 fps, fade 0.4
    assert combined["fx_blackcloud1"] == pytest.approx(0.9)
    # The same effect re-triggered: the stronger (newer) instance wins per cel.
    a = animefx_strengths("sequence_with_fadeout", SWEAT, 0.25, 0.3)
    b = animefx_strengths("sequence_with_fadeout", SWEAT, 0.05, 0.3)
    combined = combine_strengths([a, b])
    assert combined["fx_sweatdrop1"] == pytest.approx(5 / 6)
    assert combined["fx_sweatdrop3"] == pytest.approx(1 / 6)
    assert combine_strengths([]) == {}
