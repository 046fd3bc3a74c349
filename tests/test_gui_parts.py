"""The GUI's parts: typed paths, remembered folders, line breaking of paths; the window shell's native libraries."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from raven_avatar.gui.filedialog import resolve
from raven_avatar.gui.folders import FolderMemory, writable_default


def test_typed_paths_resolve_like_a_shell(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    here = tmp_path / "here"
    # An absolute path stays absolute (the old dialog joined it onto the current folder).
    assert resolve("/tmp/x/a.png", here) == Path("/tmp/x/a.png")
    assert resolve("~/pics/a.png", here) == tmp_path / "home" / "pics" / "a.png"
    assert resolve("  sub/a.png ", here) == here / "sub" / "a.png"


def test_folders_are_remembered_per_kind_and_across_runs(tmp_path):
    memory_file = tmp_path / "data" / "gui_folders.json"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    memory = FolderMemory(memory_file)
    memory.remember("character", a)
    memory.remember("export", b)
    again = FolderMemory(memory_file)
    assert again.get("character") == a.resolve() and again.get("export") == b.resolve()
    assert again.get("settings", fallback=a) == a  # never used: the fallback
    b.rmdir()
    assert again.get("export", fallback=a) == a  # a folder that vanished is not proposed


def test_a_damaged_memory_file_only_loses_the_folders(tmp_path):
    path = tmp_path / "gui_folders.json"
    path.write_text("{not json")
    assert FolderMemory(path).get("character") == Path.home()


def test_saving_never_starts_in_the_model_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(cache))
    default_character_folder = cache / "tha3" / "characters"
    default_character_folder.mkdir(parents=True)
    assert writable_default(default_character_folder) == Path.home()
    mine = tmp_path / "my_characters"
    mine.mkdir()
    assert writable_default(mine) == mine
    memory = FolderMemory(tmp_path / "m.json")
    assert memory.get("save", default_character_folder, for_saving=True) == Path.home()


def test_long_paths_break_at_separators():
    dpg = pytest.importorskip("dearpygui.dearpygui")
    from raven_avatar.gui.text import fit_lines

    dpg.create_context()
    try:
        text = "Saved /home/someone/characters/aria/exports/sprites/aria_joy.png and aria_joy.json"
        lines = fit_lines(text, 200).split("\n")
        assert len(lines) > 1
        assert all(len(line) * 8.5 <= 200 + 1 for line in lines)
        # No word is cut in the middle: every break falls after a "/" or at a space.
        for line in lines[:-1]:
            assert line.endswith("/") or " " in text[text.index(line) + len(line) : text.index(line) + len(line) + 1]
    finally:
        dpg.destroy_context()


@pytest.mark.gui
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")
def test_triton_imported_late_on_a_worker_thread_does_not_crash_the_window(xvfb_env):
    """Triton (shipped with CUDA builds of PyTorch) segfaulted when transformers imported it on a worker thread
    after Mesa's software OpenGL was up: the settings editor died when the emotion classifier loaded."""
    script = textwrap.dedent("""
        import threading
        from raven_avatar.gui.shell import Shell
        shell = Shell("triton check", size=(400, 300), min_size=(200, 150))
        shell.show()
        for _ in range(3):
            shell.frame(busy=True)
        worker = threading.Thread(target=lambda: __import__("triton"))
        worker.start()
        worker.join()
        shell.frame(busy=True)
        shell.close()
        print("alive")
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=xvfb_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "alive" in proc.stdout, (proc.returncode, proc.stderr[-3000:])


@pytest.mark.gui
def test_a_call_for_a_closed_window_fails_at_once_instead_of_hanging(xvfb_env):
    """A worker (or a test's driver) that asked the GUI thread for something just as the window closed used to
    wait forever: the queued call never ran. That hid the real failure of a journey behind a silent exit."""
    script = textwrap.dedent("""
        import time
        from raven_avatar.gui.shell import Shell
        shell = Shell("closing", size=(400, 300), min_size=(200, 150))
        shell.show()
        shell.frame(busy=True)
        queued = shell.call(lambda: "never ran")
        shell.close()
        late = shell.call(lambda: "never ran")
        print("settled at once:", queued.done(), late.done())
        for future in (queued, late):
            try:
                future.result(5)
            except RuntimeError as e:
                print("failed:", e)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=xvfb_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "settled at once: True True" in proc.stdout, proc.stdout
    assert proc.stdout.count("failed: the closing window has closed") == 2, proc.stdout


@pytest.mark.gui
def test_a_wake_while_the_window_draws_is_not_lost(xvfb_env):
    """A worker that finished while the window was drawing (a pose render, an avatar frame, a call for the GUI
    thread) posted GLFW's empty event then; it was lost often enough that the loop slept until its next timeout
    (up to 2 s; each call of a test's robot waited ~0.25 s on average). Here the timeout is 30 s: a lost wake shows
    as a call not answered within 10 s."""
    script = textwrap.dedent("""
        import threading
        import time
        import raven_avatar.gui.shell as shellmod
        shellmod.IDLE_WAKE_S = 30.0
        shell = shellmod.Shell("wake", size=(400, 300), min_size=(200, 150))
        shell.show()
        answered = []
        def worker():
            time.sleep(1.0)  # no input for a while: the loop waits for events between frames
            try:
                for _ in range(30):
                    shell.call(lambda: None).result(10)
                    answered.append(1)
            finally:
                answered.append(None)
        threading.Thread(target=worker, daemon=True).start()
        deadline = time.monotonic() + 60
        while None not in answered and time.monotonic() < deadline:
            shell.frame()
        print(f"answered {answered.count(1)} of 30")
        shell.close()
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=xvfb_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "answered 30 of 30" in proc.stdout, proc.stdout
