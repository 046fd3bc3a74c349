"""What both apps' windows share: the DearPyGui context, viewport, callbacks, dialogs, hotkeys and the frame loop.

The frame loop draws only when something can have changed. Under software OpenGL one DearPyGui frame costs tens
of milliseconds of CPU, and on a CPU-only machine THA3 needs those cores, so between frames the shell sleeps in
GLFW until input arrives, another thread calls :meth:`Shell.wake` (a render finished), or the app's own deadline
passes. After input it keeps drawing for a moment (:data:`ACTIVE_S`) so that ImGui can settle hovers and popups.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import importlib.util
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dearpygui.dearpygui as dpg
import numpy as np

from raven_avatar.gui import glfw
from raven_avatar.gui.callbacks import Callbacks
from raven_avatar.gui.dialogs import Dialogs
from raven_avatar.gui.filedrop import FileDrop
from raven_avatar.gui.folders import FolderMemory
from raven_avatar.gui.hotkeys import HotkeyTable
from raven_avatar.gui.theme import apply_theme

log = logging.getLogger(__name__)

MAX_FPS = 60.0  # never draw faster (vsync may be off, e.g. under Xvfb)
ACTIVE_S = 0.6  # keep drawing this long after the last input
IDLE_WAKE_S = 2.0  # with nothing to do, still look around this often


def load_triton_before_opengl() -> None:
    """Load Triton's native library now, before the window's OpenGL, if Triton is installed.

    Triton bundles its own LLVM. Loaded after Mesa's software OpenGL (llvmpipe, also built on LLVM) it crashes the
    process (a segfault inside the import), and that import happens late and on a worker thread: transformers imports
    ``torch._dynamo``, which imports Triton, when the emotion classifier loads. Loaded first, both coexist. Every
    CUDA build of PyTorch on Linux ships Triton; this costs ~0.2 s and nothing where Triton is absent.
    """
    if importlib.util.find_spec("triton") is None:
        return
    try:
        importlib.import_module("triton")
    except Exception as exc:  # a broken Triton is the GPU path's problem, not the window's
        log.debug("triton could not be imported: %s", exc)


class Shell:
    """One app window. ``Shell(title, ...)``, build widgets, :meth:`show`, then call :meth:`frame` in a loop."""

    def __init__(self, title: str, *, size: tuple[int, int], min_size: tuple[int, int],
                 folders: FolderMemory | None = None):  # fmt: skip
        self.title = title
        load_triton_before_opengl()
        dpg.create_context()
        dpg.configure_app(manual_callback_management=True)
        apply_theme()
        self.callbacks = Callbacks(self._control_failed)
        self.dialogs = Dialogs(self.callbacks, folders)
        self.hotkeys = HotkeyTable(self.dialogs, self.callbacks)
        x, y, w, h = glfw.fit_window(size, min_size, glfw.work_area())
        dpg.create_viewport(title=title, width=w, height=h, x_pos=x, y_pos=y, min_width=min_size[0],
                            min_height=min_size[1], disable_close=True)  # fmt: skip
        self.filedrop = FileDrop()
        self.frames = 0  # frames drawn
        self.shown = False
        self._calls: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future]] = queue.Queue()
        self._closed = threading.Event()  # the loop has ended: calls fail at once instead of waiting forever
        self._last_input = time.monotonic()
        self._last_frame = 0.0
        self._mouse: tuple[float, float] | None = None
        #: Set when a :meth:`drive` function has returned (the app's loop then ends); its exception, if any.
        self.driver_done = False
        self.driver_error: BaseException | None = None
        self._driver: threading.Thread | None = None

    def _control_failed(self, error: BaseException, what: str) -> None:
        self.dialogs.error(f"Something went wrong ({what}): {type(error).__name__}: {error}\n"
                           "Nothing was lost; the details are in the log.")  # fmt: skip

    def show(self) -> None:
        """Create the window on screen (once; widgets may be added before or after)."""
        if self.shown:
            return
        self.shown = True
        self.hotkeys.install()
        dpg.setup_dearpygui()
        dpg.show_viewport()
        if not self.filedrop.install():
            log.warning("drag and drop is not available here; use the Load buttons and hotkeys")

    # -- other threads ------------------------------------------------------------------------------------------------

    def call(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        """Run ``fn`` on the GUI thread before the next frame; the future holds its result (for tests, workers)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._calls.put((fn, future))
        if self._closed.is_set():
            self._fail_calls()
        else:
            glfw.wake()
        return future

    def _fail_calls(self) -> None:
        while True:
            try:
                _fn, future = self._calls.get_nowait()
            except queue.Empty:
                return
            future.set_exception(RuntimeError(f"the {self.title} window has closed"))

    def drive(self, driver: Callable[[], None]) -> None:
        """Run ``driver()`` on its own thread while the app's loop runs (tests, scripted demos, screenshots);
        when it returns, :attr:`driver_done` is set and the loop should end."""

        def run() -> None:
            try:
                driver()
            except BaseException as e:
                log.exception("driver failed")
                self.driver_error = e
            finally:
                self.driver_done = True
                self.wake()

        self._driver = threading.Thread(target=run, name="driver", daemon=True)
        self._driver.start()

    def wake(self) -> None:
        """Make the GUI thread draw soon (any thread: a render or a download finished)."""
        glfw.wake()

    def _run_calls(self) -> bool:
        ran = False
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                return ran
            ran = True
            try:
                future.set_result(fn())
            except BaseException as e:
                future.set_exception(e)

    # -- the loop -----------------------------------------------------------------------------------------------------

    def frame(self, busy: bool = False, next_deadline: float | None = None, before_draw: Callable[[], bool] | None
              = None) -> bool:  # fmt: skip
        """Wait until there is a reason to draw, then run callbacks and draw one frame; whether it drew.

        ``busy``: something animates or progresses (draw at up to :data:`MAX_FPS`). ``next_deadline``: a
        ``time.monotonic()`` at which the app wants to look again even without input (its next avatar frame).
        ``before_draw()`` runs after the callbacks; it returns whether the app changed something on screen.
        """
        now = time.monotonic()
        active = busy or now - self._last_input < ACTIVE_S
        if active:
            time.sleep(max(0.0, self._last_frame + 1.0 / MAX_FPS - now))
        else:
            deadline = now + IDLE_WAKE_S if next_deadline is None else min(next_deadline, now + IDLE_WAKE_S)
            if glfw.wait_events(max(0.0, deadline - now)):
                self._last_input = time.monotonic()
        calls = self._run_calls()
        jobs = dpg.get_callback_queue()
        if jobs:
            self._last_input = time.monotonic()
        dpg.run_callbacks(jobs)
        changed = before_draw() if before_draw is not None else False
        opened = self.dialogs.tick()
        mouse = tuple(dpg.get_mouse_pos(local=False))
        if mouse != self._mouse:
            self._mouse = mouse
            self._last_input = time.monotonic()
        now = time.monotonic()
        wanted = active or calls or jobs or changed or opened or now - self._last_input < ACTIVE_S
        if not wanted and now - self._last_frame < IDLE_WAKE_S:
            return False
        dpg.render_dearpygui_frame()
        self.frames += 1
        self._last_frame = time.monotonic()
        return True

    def running(self) -> bool:
        return dpg.is_dearpygui_running()

    def close(self) -> None:
        """Destroy the window (after giving a :meth:`drive` function a moment to finish its report)."""
        self._closed.set()
        self._fail_calls()
        if self._driver is not None:
            self._driver.join(10)
        dpg.destroy_context()

    # -- screenshots --------------------------------------------------------------------------------------------------

    def screenshot(self, path: Path) -> None:
        """Save the whole window as a PNG after the next frame (call on the GUI thread; keeps drawing until done)."""
        box: dict[str, Any] = {}
        dpg.output_frame_buffer(callback=self.callbacks.value(box.setdefault, "buf"))
        for _ in range(30):
            dpg.render_dearpygui_frame()
            dpg.run_callbacks(dpg.get_callback_queue())
            if "buf" in box:
                break
        if "buf" not in box:
            raise RuntimeError("DearPyGui returned no frame buffer")
        from PIL import Image

        from raven_avatar.engine.fileio import atomic_path

        with atomic_path(Path(path)) as tmp:
            Image.fromarray(framebuffer_to_u8(box["buf"]), "RGBA").save(tmp, format="PNG")


def framebuffer_to_u8(buf: Any) -> np.ndarray:
    """A DearPyGui frame buffer (``mvBuffer``, float RGBA) as an (H, W, 4) uint8 array."""
    w, h = buf.get_width(), buf.get_height()
    arr = np.frombuffer(buf, dtype=np.float32, count=w * h * 4).reshape(h, w, 4)
    return (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
