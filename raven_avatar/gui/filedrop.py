"""Files dropped onto the window from the desktop's file manager.

DearPyGui has no file-drop event, but its extension module exports GLFW's C API, so the drop callback is set on
the viewport's GLFW window through ``ctypes``. GLFW calls it on the render (main) thread while polling events; the
paths are only queued there, and :meth:`FileDrop.take` hands them to the app's frame loop.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_DROP_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p))


class FileDrop:
    """Collects dropped paths. :meth:`install` after ``show_viewport``, on the main thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[list[Path]] = []
        self._callback = _DROP_FN(self._dropped)  # kept alive as long as GLFW may call it
        self.installed = False

    def _dropped(self, _window: int, count: int, paths: ctypes.Array) -> None:
        try:
            dropped = [Path(paths[i].decode("utf-8", "surrogateescape")) for i in range(count)]
        except Exception:  # never let an exception cross into C
            log.exception("could not read the dropped paths")
            return
        with self._lock:
            self._pending.append(dropped)

    def install(self) -> bool:
        """Hook the current GLFW window; returns False (with a log line) where that is not possible."""
        try:
            import dearpygui._dearpygui as core

            lib = ctypes.CDLL(core.__file__)
            lib.glfwGetCurrentContext.restype = ctypes.c_void_p
            lib.glfwSetDropCallback.argtypes = [ctypes.c_void_p, _DROP_FN]
            lib.glfwSetDropCallback.restype = ctypes.c_void_p
            window = lib.glfwGetCurrentContext()
            if not window:
                log.info("file drop unavailable: no current GLFW window on this thread")
                return False
            lib.glfwSetDropCallback(window, self._callback)
        except (OSError, AttributeError) as e:
            log.info("file drop unavailable on this platform: %s", e)
            return False
        self.installed = True
        return True

    def take(self) -> list[list[Path]]:
        """The drops since the last call, oldest first (each a list of paths)."""
        with self._lock:
            drops, self._pending = self._pending, []
        return drops

    def inject(self, paths: list[Path]) -> None:
        """Queue a drop as if GLFW had reported it (for tests)."""
        with self._lock:
            self._pending.append([Path(p) for p in paths])
