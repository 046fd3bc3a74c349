"""Frame pipeline, render thread and Avatar on the CPU with the real THA3 weights.

THA3 costs seconds per frame on a small CPU, so most tests freeze the animation clock: the pose then stays the same
from frame to frame and the poser's stage reuse makes every frame after the first nearly free, while everything
around the pose (cels, crop, upscale, postprocessing, host copy, thread handoff) still runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import sys
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from raven_avatar.engine import Avatar, Pipeline, render_still
from raven_avatar.engine.character import load_character
from raven_avatar.engine.pipeline import STAGES

PLAIN = {"postprocessor_chain": [], "upscale": 1.0}


@pytest.fixture(scope="module")
def poser(cpu_poser):
    return cpu_poser


@pytest.fixture(scope="module")
def character_png(example_character_png, tmp_path_factory):
    """lambda_00 in a folder of its own, with a blush cel (a translucent red band over the face)."""
    folder = tmp_path_factory.mktemp("aria")
    png = folder / "aria.png"
    shutil.copy(example_character_png, png)
    cel = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    ImageDraw.Draw(cel).rectangle((180, 150, 330, 260), fill=(255, 0, 0, 160))
    cel.save(folder / "aria_blush1.png")
    return png


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch, stable_cache_dir):
    monkeypatch.setenv("RAVEN_AVATAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(stable_cache_dir))
    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")


def test_pipeline_frames_shapes_ranges_alpha_and_cel_reuse(poser, character_png):
    character = load_character(character_png)
    assert character.report.cels == ["blush1"]
    pipe = Pipeline(poser, PLAIN)
    pipe.set_character(character)
    pose = torch.zeros(45)

    frame = pipe.render(pose)
    assert (frame.width, frame.height) == (512, 512)
    assert frame.rgba_f32.dtype == np.float32 and frame.rgba_f32.shape == (512 * 512 * 4,)
    assert np.isfinite(frame.rgba_f32).all() and frame.rgba_f32.min() >= 0.0 and frame.rgba_f32.max() <= 1.0
    rgba = frame.rgba_f32.reshape(512, 512, 4)
    # The background stays transparent, the body is opaque.
    assert rgba[5, 5, 3] == 0.0 and rgba[400, 256, 3] > 0.99
    assert set(STAGES) <= set(frame.stats) and frame.stats["pose"] > 0
    # uint8 export: the same pixels, rounded.
    src = np.asarray(Image.open(character_png).convert("RGBA")).astype(int)
    assert frame.rgba_u8.shape == (512, 512, 4) and frame.rgba_u8.dtype == np.uint8
    assert np.abs(frame.rgba_u8.astype(int) - src).mean() < 4  # zero pose ~ the input image

    # Same strengths -> the same blended tensor -> the poser skips every stage.
    blushed = pipe.render(pose, {"blush1": 0.7})
    assert pipe.session.last_stages == "full"
    again = pipe.render(pose, {"blush1": 0.7, "tears1": 0.5})  # no tears cel: nothing to blend
    assert pipe.session.last_stages == "none"
    np.testing.assert_array_equal(blushed.rgba_u8, again.rgba_u8)
    face = (slice(160, 250), slice(190, 320))
    redder = blushed.rgba_u8[face][..., 0].astype(int) - frame.rgba_u8[face][..., 0].astype(int)
    assert redder.mean() > 5

    # Crop, upscale and the direct uint8 path, on the same pose (no THA3 work).
    pipe.configure({**PLAIN, "crop": {"enabled": True, "left": 0.25, "top": 0.0, "right": 0.75, "bottom": 0.5},
                    "upscale": 2.0, "upscale_quality": "bilinear"})  # fmt: skip
    big = pipe.render(pose, {"blush1": 0.7})
    assert pipe.session.last_stages == "none"
    assert (big.width, big.height) == (512, 512) and big.full_size == (1024, 1024)
    assert big.crop == (0.25, 0.0, 0.75, 0.5)
    u8 = pipe.render(pose, {"blush1": 0.7}, output="u8")
    assert u8.rgba_f32 is None
    np.testing.assert_array_equal(u8.rgba_u8, big.rgba_u8)

    # Live frames reuse a ring of three buffers; owned frames do not.
    arrays = [pipe.render(pose, {"blush1": 0.7}).rgba_f32 for _ in range(4)]
    assert np.shares_memory(arrays[0], arrays[3]) and not np.shares_memory(arrays[0], arrays[1])
    owned = pipe.render(pose, {"blush1": 0.7}, owned=True)
    assert not any(np.shares_memory(owned.rgba_f32, a) for a in arrays)


GREY = {"crop": {"enabled": False}, "upscale": 1.5, "upscale_quality": "bicubic",
        "postprocessor_chain": [["desaturate", {"strength": 1.0}]]}  # fmt: skip


def _colourfulness(rgba: np.ndarray) -> float:
    opaque = rgba[..., 3] == 255
    return float(np.abs(rgba[opaque][:, 0].astype(int) - rgba[opaque][:, 2].astype(int)).mean())


def test_render_still_without_an_avatar(poser, character_png):
    grey = render_still(load_character(character_png), torch.zeros(45), poser=poser, settings=GREY)
    assert (grey.width, grey.height) == (768, 768) and grey.index == 0
    source = np.asarray(Image.open(character_png).convert("RGBA"))
    assert _colourfulness(grey.rgba_u8) < 2 < _colourfulness(source)


@pytest.fixture
def avatar(poser, character_png):
    av = Avatar(character_png, PLAIN, poser=poser, seed=3, clock=lambda: 0.0)
    yield av
    av.close()


def test_avatar_renders_pauses_and_consumes(avatar):
    assert avatar.latest_frame() is None and not avatar.running
    avatar.start()
    first = avatar.wait_frame(timeout=120)
    assert first is not None and first.index == 1, avatar.last_error
    assert first.emotion == "neutral" and (first.width, first.height) == (512, 512)
    second = avatar.wait_frame(after=1, timeout=30)
    assert second.index == 2 and avatar.latest_frame() is second  # polling again gives the same frame

    # Nobody takes frames -> nothing more is rendered.
    threading.Event().wait(0.5)
    assert avatar.stats["frames"] == 3
    # Paused: not even the pending one is taken over; the index stops.
    avatar.pause()
    threading.Event().wait(0.2)
    stopped_at = avatar.stats["frames"]
    for _ in range(5):
        avatar.latest_frame()
        threading.Event().wait(0.1)
    assert avatar.stats["frames"] == stopped_at and avatar.paused
    avatar.resume()
    assert avatar.wait_frame(after=stopped_at, timeout=30).index == stopped_at + 1
    stats = avatar.stats
    assert stats["fps"] > 0 and stats["errors"] == 0 and stats["pose"] >= 0 and stats["target_fps"] == 25


def test_a_frame_listener_takes_each_frame_as_it_is_published(avatar):
    """A GUI that sleeps between frames is woken by the listener and takes the frame at once, so the renderer starts
    the next frame without waiting for the GUI's next polling turn; a failing listener does not stop rendering."""
    taken: list[int] = []
    woken = threading.Event()

    def take() -> None:
        frame = avatar.latest_frame()  # on the render thread, right after publishing: the slot is free again
        taken.append(frame.index)
        if len(taken) >= 3:
            woken.set()

    def broken() -> None:
        raise RuntimeError("listener bug")

    avatar.add_frame_listener(broken)
    avatar.add_frame_listener(take)
    avatar.start()
    assert woken.wait(180), avatar.last_error
    assert taken[:3] == [1, 2, 3]  # nobody polled: every frame was taken by the listener
    assert avatar.running and avatar.stats["errors"] == 0
    avatar.remove_frame_listener(take)
    avatar.remove_frame_listener(broken)
    n = len(taken)
    threading.Event().wait(0.5)
    assert len(taken) <= n + 1  # removed: at most the frame in flight was still reported


def test_a_frame_rendered_before_a_settings_change_is_not_handed_out(avatar):
    avatar.start()
    taken = avatar.wait_frame(timeout=120)
    assert taken is not None, avatar.last_error
    deadline = time.monotonic() + 60
    while avatar.stats["frames"] <= taken.index and time.monotonic() < deadline:  # an untaken 512² frame exists
        threading.Event().wait(0.05)
    assert avatar.stats["frames"] > taken.index
    avatar.load_settings({**PLAIN, "upscale": 1.5, "upscale_quality": "bilinear"})
    frame = avatar.wait_frame(after=taken.index, timeout=120)
    assert (frame.width, frame.height) == (768, 768)
    assert frame.index > taken.index + 1  # the stale frame's index was skipped, not reused


def test_a_failing_frame_is_reported_and_rendering_goes_on(avatar, monkeypatch, caplog):
    session = avatar.pipeline.session
    real_pose = session.pose
    calls = {"n": 0}

    def flaky(image, pose):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected failure")
        return real_pose(image, pose)

    monkeypatch.setattr(session, "pose", flaky)
    avatar.start()
    first = avatar.wait_frame(timeout=120)
    good = first.rgba_f32.copy()
    second = avatar.wait_frame(after=first.index, timeout=30)
    assert second is not None and second.index == 2  # the failed attempt did not take an index
    assert avatar.last_error is not None and "injected failure" in avatar.last_error.message
    assert "RuntimeError" in avatar.last_error.traceback and avatar.stats["errors"] == 1
    assert "injected failure" in caplog.text
    np.testing.assert_array_equal(second.rgba_f32, good)
    assert avatar.running


def test_hot_swaps_while_running(avatar, character_png, tmp_path):
    avatar.start()
    frame = avatar.wait_frame(timeout=120)
    stop = threading.Event()
    seen: list[tuple[int, int, int]] = []
    torn: list[int] = []

    def consume():
        while not stop.is_set():
            f = avatar.wait_frame(after=seen[-1][0] if seen else 0, timeout=0.2)
            if f is not None:
                if f.rgba_f32.size != f.width * f.height * 4:  # a frame of mixed sizes
                    torn.append(f.index)
                seen.append((f.index, f.width, f.height))

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        problems = avatar.load_settings({**PLAIN, "upscale": 1.25, "upscale_quality": "bilinear", "target_fps": 30})
        assert problems == []
        problems = avatar.load_settings({**PLAIN, "upscale": 7.0})
        assert [p.key for p in problems] == ["upscale"]  # not applied: the shipped value (1.0) is used
        assert avatar.settings["upscale"] == 1.0
        avatar.load_settings({**PLAIN, "upscale": 1.25, "upscale_quality": "bilinear"})
        avatar.load_templates({"grin": {"pose": {"mouth_aaa_index": 1.0}, "cels": {"blush1": 1.0}}})
        avatar.set_emotion("grin")
        other = tmp_path / "other.png"
        shutil.copy(character_png, other)
        avatar.load_character(other)
        assert avatar.character.report.cels == []  # other.png has no cels
        deadline = threading.Event()
        for _ in range(600):
            if seen and seen[-1][1] == 640 and avatar.stats["frames"] > frame.index + 2:
                break
            deadline.wait(0.1)
    finally:
        stop.set()
        consumer.join()
    assert avatar.last_error is None and torn == []
    sizes = {(w, h) for _, w, h in seen}
    assert (640, 640) in sizes and sizes <= {(512, 512), (640, 640)}
    assert "grin" in avatar.emotions and avatar.emotion == "grin"
    assert avatar.stats["target_fps"] == 25  # the last settings loaded had none: the shipped value


def test_render_still_on_a_running_avatar(avatar):
    """A still poses through its own session of the shared poser: the live view is not disturbed."""
    avatar.start()
    live = avatar.wait_frame(timeout=120)
    before = live.rgba_f32.copy()
    still = avatar.render_still({"head_x_index": 1.0}, emotion="neutral")
    assert (still.width, still.height) == (512, 512) and still.index == 0
    assert np.abs(still.rgba_u8.astype(int) - live.rgba_u8.astype(int))[..., 3].sum() > 1000  # the head turned
    after = avatar.wait_frame(after=live.index, timeout=30)
    assert avatar.pipeline.session.last_stages == "none"  # the live session still reuses its last pose
    np.testing.assert_array_equal(after.rgba_f32, before)

    # The same pose again (no THA3 work) with output settings: upscaled and greyed, or upscaled only.
    grey = avatar.render_still({"head_x_index": 1.0}, settings=GREY)
    colour = avatar.render_still({"head_x_index": 1.0}, settings=GREY, postprocess=False)
    assert (grey.width, grey.height) == (768, 768) == (colour.width, colour.height)
    assert _colourfulness(grey.rgba_u8) < 2 < _colourfulness(colour.rgba_u8)
    with pytest.raises(ValueError, match="unknown emotion"):
        avatar.render_still(emotion="no_such_emotion")
    assert avatar.last_error is None


def _rss_mb(avatar: Avatar) -> float:
    """Resident memory between two frames (a frame in progress holds THA3's activations, ~100 MB on the CPU)."""
    with avatar.renderer.frame_boundary(), open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_soak_60s_with_emotion_changes_keeps_memory_flat(poser, character_png):
    """A minute of real-time animation on the CPU (a frame every second or so), switching emotion every 5 s.

    glibc raises its mmap threshold as large blocks are freed, after which THA3's CPU activations come from the
    heap, whose high-water mark climbs in ~50 MB steps for a while (the heap is reused, not leaked). A fixed
    threshold makes large blocks go back to the system when freed, so resident memory measures live memory.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (glibc)
    emotions = ["joy", "anger", "surprise", "sadness", "confusion", "neutral"]
    with Avatar(character_png, {"target_fps": 25}, poser=poser, seed=11) as avatar:
        avatar.set_emotion("joy")  # with animefx: the steady state's allocations are all made before the baseline
        avatar.start()
        frame = avatar.wait_frame(timeout=120)
        frame = avatar.wait_frame(after=frame.index, timeout=120)
        baseline = _rss_mb(avatar)
        start = time.monotonic()
        switched = start
        times = [frame.t]
        while time.monotonic() - start < 60:
            if time.monotonic() - switched >= 5:
                avatar.set_emotion(emotions[len(times) % len(emotions)])
                switched = time.monotonic()
            f = avatar.wait_frame(after=frame.index, timeout=1.0)
            if f is not None:
                frame = f
                times.append(f.t)
        growth = _rss_mb(avatar) - baseline
        assert avatar.last_error is None
        assert frame.index >= 5 and times == sorted(times)
        # Animation time follows the wall clock, however few frames the CPU manages.
        assert frame.t > 30
    assert growth < 32, f"memory grew by {growth:.0f} MB over the soak"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_frames_with_the_replayed_upscaler_equal_eager_frames(character_png):
    """The pipeline replays its upscaler from CUDA graphs: frames (upscaled, postprocessed) equal eager ones."""
    from raven_avatar.engine.poser import load_poser
    from raven_avatar.engine.settings import defaults
    from raven_avatar.engine.upscaler import Upscaler

    poser = load_poser("separable_half", "cuda", progress=False)
    settings = {**defaults(), "upscale": 2.0, "upscale_quality": "bicubic"}
    graphed, eager = Pipeline(poser, settings), Pipeline(poser, settings)
    eager.configure(settings, upscaler=Upscaler(2.0, "bicubic", device="cuda", dtype=poser.dtype))
    character = load_character(character_png)
    graphed.set_character(character)
    eager.set_character(character)
    poses = torch.rand(8, 45, generator=torch.Generator().manual_seed(1)) * 0.6
    for i, pose in enumerate(poses):
        a = graphed.render(pose, {"blush1": 0.5}, t=i / 25, owned=True)
        b = eager.render(pose, {"blush1": 0.5}, t=i / 25, owned=True)
        assert a.rgba_f32.shape == (1024 * 1024 * 4,)
        np.testing.assert_array_equal(a.rgba_f32, b.rgba_f32)
    assert graphed._upscaler._replayer.captured == 1
