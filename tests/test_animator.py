import math
import random
import statistics
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
from quiet import QUIET  # everything random switched off

from raven_avatar.engine import pose
from raven_avatar.engine.animator import Animator, fps_corrected_step, smooth_transition

I = {key: pose.param(key).index for key in pose.KEYS}  # noqa: E741
WINK_L, MOUTH_AAA, HEAD_X = I["eye_wink_left_index"], I["mouth_aaa_index"], I["head_x_index"]
IRIS_X, IRIS_Y, BREATHING = I["iris_rotation_x_index"], I["iris_rotation_y_index"], I["breathing_index"]

# The schema's blink defaults (QUIET switches blinking off).
DEFAULT_BLINKS = {"blink_probability": 0.03}


@dataclass
class Template:  # the shape of emotions.EmotionTemplate: any object with .pose and .cels works
    pose: dict = field(default_factory=dict)
    cels: dict = field(default_factory=dict)


TEMPLATES = {
    "neutral": Template(),
    "happy": Template(
        {"eye_happy_wink_left_index": 1.0, "mouth_raised_corner_left_index": 0.8, "head_x_index": 0.8}, {}
    ),
    "surprise": {"pose": {"eye_surprised_left_index": 1.0, "eyebrow_raised_left_index": 1.0}, "cels": {"waver1": 0.5}},
    "confusion": Template({"eyebrow_troubled_left_index": 0.6}, {"sweat1": 0.4}),
    "shy": Template({}, {"blush1": 1.0, "sweat2": 0.5}),
    "sad": {"pose": {}, "cels": [["tears3", 1.0], ["blush1", 0.2]]},  # the reference's pair-list form
}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(settings=None, *, seed=0, **kwargs):
    clock = Clock()
    return Animator({**QUIET, **(settings or {})}, TEMPLATES, seed=seed, clock=clock, **kwargs), clock


def run(anim, clock, seconds, fps, start=None):
    """Advance at a steady frame rate; frame times are computed, not accumulated, so they land on exact times."""
    start = clock.now if start is None else start
    states = []
    for k in range(1, round(seconds * fps) + 1):
        clock.now = start + k / fps
        states.append(anim.advance())
    return states


def onsets(states, index=WINK_L, level=0.999):
    """Times at which a morph jumps to 1 (blink starts); ``level`` 0.5 also counts a blink that a slow frame rate
    only catches while the eyes reopen."""
    times, previous = [], 0.0
    for s in states:
        value = float(s.pose[index])
        if value >= level and previous < level:
            times.append(s.t)
        previous = value
    return times


def shut_fraction(states):
    return sum(float(s.pose[WINK_L]) >= 0.5 for s in states) / len(states)


# ------------------------------------------------------------------------------------------------ interpolation


def test_fps_corrected_step_composes():
    assert fps_corrected_step(0.3, 1 / 25) == pytest.approx(0.3)
    one = fps_corrected_step(0.3, 0.1)
    half = fps_corrected_step(0.3, 0.05)
    assert 1 - (1 - half) ** 2 == pytest.approx(one)
    assert fps_corrected_step(1.0, 0.001) == 1.0 and fps_corrected_step(0.3, 0.0) == 0.0


@pytest.mark.parametrize("fps", [12, 25, 60, "irregular"])
def test_interpolation_follows_the_same_curve_in_wall_time(fps):
    anim, clock = make({"pose_interpolator_step": 0.05})
    anim.advance()
    anim.set_emotion("happy")
    if fps == "irregular":  # jittery frame times between 5 and 80 ms, landing on the whole seconds
        rng, times, t = random.Random(3), [], 0.0
        for mark in (1.0, 2.0):
            while t < mark:
                t = min(t + rng.uniform(0.005, 0.08), mark)
                times.append(t)
    else:
        times = [k / fps for k in range(1, 2 * fps + 1)]
    at = {}
    for t in times:
        clock.now = t
        state = anim.advance()
        at[round(t, 9)] = state.pose
    for t in (1.0, 2.0):
        remaining = 0.95 ** (25 * t)  # 5% of the way per 1/25 s
        expected = 0.8 * (1 - remaining)
        assert float(at[t][HEAD_X]) == pytest.approx(expected, abs=2e-4)
        assert float(at[t][I["eye_happy_wink_left_index"]]) == pytest.approx(1 - remaining, abs=2e-4)
        assert float(at[t][BREATHING]) == pytest.approx(math.sin(math.pi * t / 4.0) ** 2, abs=1e-5)


def test_speed_multiplier_scales_animation_time():
    fast, fast_clock = make({"animation_speed": 2.0, "pose_interpolator_step": 0.05})
    slow, slow_clock = make({"pose_interpolator_step": 0.05})
    for anim in (fast, slow):
        anim.advance()
        anim.set_emotion("happy")
    a = run(fast, fast_clock, 1.0, 25)[-1]
    b = run(slow, slow_clock, 2.0, 25)[-1]
    assert a.t == pytest.approx(2.0) and b.t == pytest.approx(2.0)
    assert (a.pose - b.pose).abs().max() < 1e-5


# -------------------------------------------------------------------------------------------------------- blinks


@pytest.mark.parametrize("fps", [12, 60])
def test_blink_spacing_statistics(fps):
    anim, clock = make({"blink_probability": 0.03, "blink_interval_min": 2.0, "blink_interval_max": 5.0})
    times = onsets(run(anim, clock, 600.0, fps), level=0.5)  # at 12 FPS a 40 ms blink is often seen reopening
    gaps = [b - a for a, b in pairwise(times)]
    # Gate U(2, 5) s (mean 3.5) plus a wait of about 1 / (25 * 0.03) = 1.33 s for the per-frame chance.
    assert min(gaps) >= 2.0 - 1 / fps  # seen to the frame
    assert 4.3 < statistics.mean(gaps) < 5.4, statistics.mean(gaps)
    assert 100 < len(times) < 150 and anim.blink_count == len(times)


BLINKY = {"blink_probability": 0.2, "blink_interval_min": 0.5, "blink_interval_max": 1.5, "blink_hold_duration": 0.3}


@pytest.mark.parametrize(("settings", "minutes", "tolerance"), [({}, 30, 0.2), (BLINKY, 10, 0.05)])
def test_blinks_keep_their_real_time_rate_and_duration_at_any_frame_rate(settings, minutes, tolerance):
    """A CPU renders a frame a second or slower: blinks must not come faster or last longer in wall time."""
    seen = {}
    for fps in (60, 5, 1):
        anim, clock = make({**DEFAULT_BLINKS, **settings})
        states = run(anim, clock, 60.0 * (5 if fps == 60 else minutes), fps)
        seen[fps] = (anim.blink_count / (states[-1].t / 60), shut_fraction(states))
    (rate, shut) = seen[60]
    duty = (settings.get("blink_hold_duration", 0.04) + 0.078) * rate / 60  # shut, then >= 0.5 while reopening
    assert shut == pytest.approx(duty, rel=0.2), seen
    for fps in (5, 1):
        assert seen[fps][0] == pytest.approx(rate, rel=0.05), seen  # blinks per minute
        assert seen[fps][1] == pytest.approx(shut, rel=tolerance), seen  # share of frames with shut eyes
    assert seen[1][1] < 0.05 or settings  # at 1 FPS nearly every frame shows open eyes


EVERY_3_1_S = {"blink_probability": 1.0, "blink_interval_min": 3.1, "blink_interval_max": 3.1,
               "blink_hold_duration": 0.25}  # fmt: skip


def test_a_blink_shuts_the_eyes_for_its_hold_duration_in_wall_time():
    anim, clock = make(EVERY_3_1_S)
    states = run(anim, clock, 30.0, 60)
    runs, length = [], 0
    for s in states:
        if float(s.pose[WINK_L]) >= 0.999:
            length += 1
        elif length:
            runs, length = [*runs, length], 0
    assert len(runs) == 10 and all(15 <= n <= 16 for n in runs), runs  # 0.25 s at 60 FPS, whatever the phase
    anim, clock = make(EVERY_3_1_S)
    slow = run(anim, clock, 30.0, 0.5)  # a frame every 2 s
    assert sum(float(s.pose[WINK_L]) >= 0.5 for s in slow) <= 3 and anim.blink_count == 10  # 10 blinks, mostly unseen


def test_blink_closes_then_reopens_smoothly():
    anim, clock = make({"blink_probability": 1.0, "blink_interval_min": 10.0, "blink_interval_max": 10.0})
    anim.advance()  # the first frame has no elapsed time
    states = run(anim, clock, 1.0, 25)
    winks = [float(s.pose[WINK_L]) for s in states]
    assert winks[0] == 1.0  # shut for one 1/25 s frame (blink_hold_duration 0.04 s) ...
    assert winks[1] == pytest.approx(0.7, abs=1e-6)  # ... then reopening at the interpolator's pace
    assert winks[2] == pytest.approx(0.49, abs=1e-6)
    assert onsets(states) == [states[0].t]


def test_a_reopened_eye_is_exactly_open_so_idle_frames_can_skip_the_face_stage():
    """The reopening curve only approaches 0: the eye values used to differ by 1e-9 from frame to frame for ever
    after a blink, so the poser reran its face stage on most idle frames (the CPU's largest idle cost)."""
    anim, clock = make({"blink_probability": 1.0, "blink_interval_min": 10.0, "blink_interval_max": 10.0})
    anim.advance()
    states = run(anim, clock, 4.0, 25)  # one blink, then nothing else moves the eyes
    tail = [s.pose[pose.FACE_SLICE].tolist() for s in states[40:]]  # 1.6 s on: open (the float tail lasted 4 s)
    assert all(face == tail[0] for face in tail)
    assert float(states[-1].pose[WINK_L]) == 0.0


def test_confusion_window_allows_rapid_blinks():
    anim, clock = make({"blink_probability": 0.03, "blink_confusion_duration": 10.0})
    anim.advance()
    windows, states = [], []
    for _ in range(12):  # 15 s of confusion, then 15 s neutral, twelve times
        anim.set_emotion("confusion")
        windows.append(clock.now + 1 / 25)
        states += run(anim, clock, 15.0, 25)
        anim.set_emotion("neutral")
        states += run(anim, clock, 15.0, 25)
    times = onsets(states)

    def in_window(t):
        return any(w <= t < w + 10.0 for w in windows)

    rapid = [b - a for a, b in pairwise(times) if in_window(a) and in_window(b)]
    normal = [b - a for a, b in pairwise(times) if not in_window(b)]
    assert rapid and min(rapid) < 2.0 and sum(g < 2.0 for g in rapid) > len(rapid) / 3
    assert normal and min(normal) >= 2.0


def test_idle_motion_and_talking_keep_one_timeline_at_any_frame_rate():
    """Sway targets, saccades and mouth changes happen at moments in animation time, so a slow frame rate sees the
    same moments (sampled) instead of fewer, later events."""
    settings = {"saccade_enabled": True, "saccade_strength": 0.3, "sway_macro_strength": 0.6, "talking_fps": 7.37}
    seen = {}
    for fps in (60, 1):
        anim, clock = make(settings)
        anim.start_talking()
        anim.advance()  # t = 0 at clock 0
        states = run(anim, clock, 120.0, fps)[fps - 1 :: fps]  # the frames at whole seconds
        seen[fps] = [[float(s.pose[i]) for i in (IRIS_X, IRIS_Y, HEAD_X, MOUTH_AAA)] for s in states]
    assert len(seen[60]) == len(seen[1]) == 120
    for axis, name in enumerate(("iris x", "iris y", "head x", "mouth")):
        same = sum(abs(a[axis] - b[axis]) < 2e-3 for a, b in zip(seen[60], seen[1], strict=True))
        # Where they differ, a saccade or sway target changed just before that second (60 FPS is still moving).
        assert same >= 100, (name, same)
    assert sum(a[3] == b[3] for a, b in zip(seen[60], seen[1], strict=True)) >= 118  # mouth values are not smoothed


# ---------------------------------------------------------------------------------------------------------- sway


def test_micro_sway_does_not_drift():
    neutral_head = {**TEMPLATES, "neutral": Template({"head_x_index": 0.3})}
    clock = Clock()
    anim = Animator({**QUIET, "sway_micro_strength": 0.02}, neutral_head, clock=clock)
    states = run(anim, clock, 600.0, 25)
    head = [float(s.pose[HEAD_X]) for s in states]
    # The interpolated value stays within the noise band around the target for ten minutes: a random walk
    # (the reference's accumulating noise) would leave it within seconds (sigma ~0.18 after 10 s).
    assert max(abs(h - 0.3) for h in head) <= 0.02 + 1e-6
    first, last = head[: 25 * 60], head[-25 * 60 :]
    assert 0.002 < statistics.pstdev(first) < 0.02
    assert statistics.pstdev(last) == pytest.approx(statistics.pstdev(first), rel=0.25)
    assert abs(statistics.mean(last) - 0.3) < 0.003


def test_macro_sway_bounds_over_ten_minutes():
    templates = {**TEMPLATES, "neutral": Template({"head_y_index": 0.8})}
    clock = Clock()
    settings = {**QUIET, "sway_macro_strength": 0.6, "sway_micro_strength": 0.01}
    anim = Animator(settings, templates, clock=clock)
    states = run(anim, clock, 600.0, 25)
    for key in ("head_x_index", "neck_z_index", "body_y_index", "body_z_index"):
        values = [float(s.pose[I[key]]) for s in states]
        assert max(abs(v) for v in values) <= 0.61 + 1e-6, key
        assert max(values) - min(values) > 0.5, key  # it really sways
    head_y = [float(s.pose[I["head_y_index"]]) for s in states]  # |template| > strength: sway only towards centre
    assert 0.19 - 1e-6 <= min(head_y) < 0.4 and 0.7 < max(head_y) <= 0.81 + 1e-6
    assert float(states[0].pose[I["eye_wink_left_index"]]) == 0.0


# ------------------------------------------------------------------------------------------------------ overrides


def test_overrides_really_suppress_blinking():
    settings = {"blink_probability": 1.0, "blink_interval_min": 0.5, "blink_interval_max": 0.5}
    anim, clock = make(settings)
    assert len(onsets(run(anim, clock, 10.0, 25))) >= 15
    anim.set_overrides({"eye_wink_left_index": 0.0, "eye_wink_right": 0.0})
    states = run(anim, clock, 30.0, 25)[25:]
    assert max(float(s.pose[I["eye_wink_left_index"]]) for s in states) < 1e-3
    assert max(float(s.pose[I["eye_wink_right_index"]]) for s in states) < 1e-3
    assert anim.overrides == {"eye_wink_left_index": 0.0, "eye_wink_right_index": 0.0}
    anim.modify_overrides("unset", ["eye_wink_left_index", "eye_wink_right_index"])
    assert onsets(run(anim, clock, 10.0, 25))  # blinking is back


def test_overrides_suppress_talking_and_release_smoothly():
    anim, clock = make()
    anim.start_talking()
    free = [float(s.pose[MOUTH_AAA]) for s in run(anim, clock, 10.0, 25)]
    assert statistics.pstdev(free) > 0.2  # generic talking flaps the mouth

    anim.modify_overrides("set", {"mouth_aaa_index": 0.25})
    states = run(anim, clock, 10.0, 25)
    assert all(abs(float(s.pose[MOUTH_AAA]) - 0.25) < 1e-3 for s in states[25:])
    assert all(float(s.pose[I["mouth_ooo_index"]]) == 0.0 for s in states)  # talking still holds the others shut

    anim.stop_talking()
    anim.set_overrides({"eyebrow_raised_left_index": 1.0})
    run(anim, clock, 3.0, 25)
    anim.clear_overrides()
    after = [float(s.pose[I["eyebrow_raised_left_index"]]) for s in run(anim, clock, 0.12, 25)]
    assert after == pytest.approx([0.7, 0.49, 0.343], abs=1e-6)  # eased back, not snapped


def test_cel_override_and_bad_overrides():
    anim, clock = make()
    anim.advance()
    anim.set_overrides({"blush1": 1.0})
    states = run(anim, clock, 2.0, 25)
    assert states[0].cels["blush1"] == pytest.approx(0.3) and states[-1].cels["blush1"] == 1.0
    with pytest.raises(ValueError, match="blush1"):
        anim.modify_overrides("set", {"blush4": 1.0})
    with pytest.raises(ValueError, match="head_x_index"):
        anim.modify_overrides("set", {"head_xx_index": 0.5})
    with pytest.raises(ValueError, match="finite"):
        anim.set_overrides({"head_x_index": math.nan})
    with pytest.raises(ValueError, match="action"):
        anim.modify_overrides("toggle", {})
    anim.modify_overrides("set", {"head_x_index": 5.0})
    assert anim.overrides["head_x_index"] == 1.0  # clamped to the parameter's range


# --------------------------------------------------------------------------------------------------------- cels


def test_cel_strengths_interpolate_by_name_across_different_cel_sets():
    anim, clock = make()
    anim.advance()
    anim.set_emotion("shy")
    first = run(anim, clock, 1 / 25, 25)[0].cels
    assert first["blush1"] == pytest.approx(0.3) and first["sweat2"] == pytest.approx(0.15)
    assert first["tears3"] == 0.0  # cels of other templates are known, at 0
    run(anim, clock, 2.0, 25)
    anim.set_emotion("sad")  # different names, different order, pair-list form
    cels = run(anim, clock, 1 / 25, 25)[0].cels
    assert cels["blush1"] == pytest.approx(1.0 + 0.3 * (0.2 - 1.0))
    assert cels["sweat2"] == pytest.approx(0.35)
    assert cels["tears3"] == pytest.approx(0.3)
    anim.set_emotion("neutral")  # no cels at all
    end = run(anim, clock, 3.0, 25)[-1].cels
    assert all(v == 0.0 for v in end.values())


def test_eye_waver_alternates_while_the_template_has_waver1():
    anim, clock = make({"eye_waver_fps": 12.0, "pose_interpolator_step": 1.0})
    anim.set_emotion("surprise")
    states = run(anim, clock, 1.0, 120)
    pattern = [(s.cels["waver1"], s.cels["waver2"]) for s in states]
    assert all((a == 0.5) != (b == 0.5) and a + b == 0.5 for a, b in pattern)
    switches = sum(p != q for p, q in pairwise(pattern))
    assert switches == pytest.approx(12, abs=1)
    anim.set_emotion("neutral")
    assert run(anim, clock, 0.5, 120)[-1].cels["waver1"] == 0.0

    off, clock = make({"eye_waver_fps": 0.0})
    off.set_emotion("surprise")
    assert all(s.cels["waver1"] == s.cels["waver2"] == 0.0 for s in run(off, clock, 1.0, 25))


def test_data_eyes_cycle_and_fade():
    anim, clock = make({"data_eyes_fps": 10.0, "data_eyes_fadeout_duration": 0.5}, data_cel_count=3)
    assert all(run(anim, clock, 0.1, 100)[-1].cels[f"data{k}"] == 0.0 for k in (1, 2, 3))
    anim.start_data_eyes()
    states = run(anim, clock, 0.6, 100)
    shown = [next(k for k in (1, 2, 3) if s.cels[f"data{k}"] == 1.0) for s in states]
    # 0.01 s after the start the first frame shows; each cel for 0.1 s, then round again
    assert shown[:9] == [1] * 9 and shown[9:19] == [2] * 10 and shown[19:29] == [3] * 10 and shown[29] == 1
    anim.stop_data_eyes()
    fade = [max(s.cels[f"data{k}"] for k in (1, 2, 3)) for s in run(anim, clock, 0.7, 100)]
    assert all(b <= a + 1e-12 for a, b in pairwise(fade))  # monotone
    assert fade[0] > 0.99 and fade[-1] == 0.0 and 0.3 < fade[25] < 0.7
    assert max(a - b for a, b in pairwise(fade)) < 0.06  # smooth: no step

    none, clock = make()
    none.start_data_eyes()  # no data cels: nothing happens
    assert not any(name.startswith("data") for name in run(none, clock, 0.2, 25)[-1].cels)
    none.set_data_cel_count(2)
    none.start_data_eyes()
    assert run(none, clock, 0.04, 25)[-1].cels["data1"] == 1.0


# ------------------------------------------------------------------------------------------------------ animefx


def test_animefx_timing_and_overlap():
    anim, clock = make({"animefx_enabled": True})
    anim.advance()
    anim.set_emotion("surprise")  # notice: sequence of 4 cels over 0.25 s
    frames = {}
    for k in range(1, 50):
        clock.now = k / 100
        if k == 12:
            anim.set_emotion("confusion")  # question: 3 cels over 0.25 s, starting at 0.12
        frames[k] = anim.advance().fx
    assert frames[1] == {"fx_notice1": 1.0}
    assert frames[8] == {"fx_notice2": 1.0}  # 0.07 s after the trigger: second quarter
    both = frames[20]  # the new trigger did not cut the running effect off
    assert both == {"fx_notice2": 1.0, "fx_question1": 1.0}
    assert frames[26] == {"fx_question2": 1.0}  # notice ended 0.25 s after its trigger
    assert frames[36] == {"fx_question3": 1.0} and frames[37] == {}
    anim.set_emotion("confusion")  # already there: no re-trigger
    clock.now = 0.6
    assert anim.advance().fx == {}


def test_animefx_fadeout_disable_and_initial_emotion():
    effect = ["glow", {"emotions": ["shy"], "type": "cycle_with_fadeout", "fps": 4.0, "duration": 2.0,
                       "cels": ["fx_glow1", "fx_glow2"]}]  # fmt: skip
    anim, clock = make({"animefx_enabled": True, "animefx": [effect]}, emotion="shy")
    states = run(anim, clock, 2.5, 10, start=-0.1)
    assert states[0].fx == {"fx_glow1": 1.0}  # the starting emotion counts as entered
    assert states[5].fx == {"fx_glow1": pytest.approx(0.75)}  # 0.5 s: linear fade, cycling at 4 FPS
    assert states[8].fx == {"fx_glow2": pytest.approx(0.6)}
    assert states[-1].fx == {}

    anim.set_emotion("neutral")
    anim.advance()
    anim.update_settings({**QUIET, "animefx": [effect]})  # animefx_enabled False
    anim.set_emotion("shy")
    assert all(s.fx == {} for s in run(anim, clock, 1.0, 10))


# ------------------------------------------------------------------------------------------------------- saccades


def test_saccades_stay_in_range_and_can_be_disabled():
    templates = {**TEMPLATES, "neutral": Template({"iris_rotation_x_index": 0.5})}
    clock = Clock()
    on = {**QUIET, "saccade_enabled": True, "saccade_strength": 0.2}
    anim = Animator(on, templates, clock=clock)
    states = run(anim, clock, 60.0, 25)
    xs = [float(s.pose[IRIS_X]) - 0.5 for s in states]
    ys = [float(s.pose[IRIS_Y]) for s in states]
    assert max(math.hypot(x, y) for x, y in zip(xs, ys, strict=True)) <= 0.2 + 1e-5
    moves = sum(1 for a, b in pairwise(xs) if abs(b - a) > 0.01)
    assert 8 <= moves <= 60 * 3  # one target every 1-4 s, each reached within a few frames
    assert statistics.pstdev(ys) > 0.02

    anim.update_settings({**on, "saccade_enabled": False})
    after = run(anim, clock, 10.0, 25)
    assert all(float(s.pose[IRIS_X]) == pytest.approx(0.5, abs=1e-6) for s in after[10:])
    assert all(float(s.pose[IRIS_Y]) == 0.0 for s in after[10:])

    off = Animator({**QUIET}, templates, clock=Clock())
    assert float(off.advance().pose[IRIS_X]) == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------ talk & breathe


def test_generic_talking_rate_and_stop():
    anim, clock = make({"talking_fps": 12.0})
    anim.start_talking()
    values = [float(s.pose[MOUTH_AAA]) for s in run(anim, clock, 10.0, 60)]
    changes = sum(a != b for a, b in pairwise(values))
    assert 40 < changes <= 121
    assert sum(v == 0.0 for v in values) > len(values) / 5 and sum(v == 1.0 for v in values) > len(values) / 5
    anim.stop_talking()
    last = values[-1]
    closing = [float(s.pose[MOUTH_AAA]) for s in run(anim, clock, 0.08, 25)]
    assert closing == pytest.approx([0.7 * last, 0.49 * last], abs=1e-4)


def test_breathing_has_no_phase_glitch():
    anim, clock = make({"breathing_cycle_duration": 4.0})
    states = run(anim, clock, 12.0, 25)
    for s in states[::7]:
        assert float(s.pose[BREATHING]) == pytest.approx(math.sin(math.pi * s.t / 4.0) ** 2, abs=1e-5)
    anim.update_settings({**QUIET, "breathing_cycle_duration": 2.0})
    values = [float(s.pose[BREATHING]) for s in states[-1:] + run(anim, clock, 4.0, 25)]
    assert max(abs(b - a) for a, b in pairwise(values)) < 0.07  # changing the period does not jump


# ------------------------------------------------------------------------------------------------ time and swaps


def test_pause_resume_does_not_jump():
    paused, clock = make({"pose_interpolator_step": 0.05})
    steady, steady_clock = make({"pose_interpolator_step": 0.05})
    for anim in (paused, steady):
        anim.advance()
        anim.set_emotion("happy")
    before = run(paused, clock, 1.0, 25)[-1]
    paused.pause()
    clock.now += 100.0
    assert paused.advance() is before and paused.paused  # frozen
    paused.resume()
    clock.now += 0.04
    after = paused.advance()
    assert after.t == pytest.approx(1.04)
    expected = run(steady, steady_clock, 1.04, 25)[-1]  # as if the pause had never happened
    assert (after.pose - expected.pose).abs().max() < 1e-6


def test_emotions_and_hot_swaps():
    anim, clock = make()
    with pytest.raises(ValueError, match="surprise"):
        anim.set_emotion("suprise")
    anim.advance()
    anim.set_emotion("happy")
    run(anim, clock, 1.0, 25)
    assert anim.emotion == "happy"

    pose_before = anim.advance().pose  # a frame at the same clock time: nothing moves
    anim.update_settings({**QUIET, "pose_interpolator_step": 0.1})
    assert anim.advance().pose.equal(pose_before)  # settings swap keeps the pose

    anim.set_templates({"neutral": Template(), "angry": Template({"eyebrow_angry_left_index": 1.0})})
    assert anim.emotion == "neutral" and anim.emotions == ["angry", "neutral"]
    state = anim.advance()
    assert state.emotion == "neutral" and state.pose.equal(pose_before)  # no jump on the swap itself
    assert float(run(anim, clock, 3.0, 25)[-1].pose[HEAD_X]) == pytest.approx(0.0, abs=1e-3)

    with pytest.raises(ValueError, match="invalid animator settings"):
        anim.update_settings({"talking_fps": 0})
    with pytest.raises(ValueError, match="no emotion templates"):
        anim.set_templates({})


def test_deterministic_given_seed_and_clock():
    def trace(seed):
        anim, clock = make({"blink_probability": 0.05, "sway_macro_strength": 0.6, "saccade_enabled": True}, seed=seed)
        anim.start_talking()
        return [s.pose for s in run(anim, clock, 20.0, 25)]

    a, b, c = trace(1), trace(1), trace(2)
    assert all(x.equal(y) for x, y in zip(a, b, strict=True))
    assert not all(x.equal(y) for x, y in zip(a, c, strict=True))


def test_smooth_transition_ends():
    assert smooth_transition(-1) == 0.0 and smooth_transition(2) == 1.0
    assert smooth_transition(0.5) == pytest.approx(0.5)
    xs = [k / 100 for k in range(101)]
    values = [smooth_transition(x) for x in xs]
    assert all(b >= a for a, b in pairwise(values))


def test_real_emotion_templates_and_template_set():
    from raven_avatar.engine.emotions import TemplateSet, template_from_json

    raw = {
        "neutral": {"pose": {}, "cels": {}},
        "surprise": {"pose": {"eyebrow_raised_left_index": 1.0}, "cels": [["waver1", 0.5]]},
    }
    templates = {name: template_from_json(name, entry) for name, entry in raw.items()}
    clock = Clock()
    anim = Animator(QUIET, TemplateSet(templates, dict.fromkeys(templates, "factory"), []), clock=clock)
    anim.advance()
    anim.set_emotion("surprise")
    state = run(anim, clock, 2.0, 25)[-1]
    assert float(state.pose[I["eyebrow_raised_left_index"]]) == 1.0
    assert max(state.cels["waver1"], state.cels["waver2"]) == 0.5
    assert set(state.cels) >= {"blush1", "tears3", "data1", "waver1", "waver2"}  # all 16 cels, by name
