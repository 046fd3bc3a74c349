"""The few GLFW calls DearPyGui does not expose: sleeping until input arrives, waking the GUI thread, the screen size.

DearPyGui links GLFW statically and exports its C API, so these are reached through ``ctypes`` on the extension
module (as :mod:`raven_avatar.gui.filedrop` does). Where a symbol is missing, each call degrades: ``wait_events``
sleeps, ``wake`` does nothing, ``work_area`` returns ``None``.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
import time

log = logging.getLogger(__name__)
# wake() and wait_events() share this state. A wake while the GUI thread is not waiting (it is drawing, and
# DearPyGui's frame polls GLFW's events, which eats an empty event) is remembered as pending, and the next wait
# returns at once; only a thread that is waiting gets an empty event posted.
_lock = threading.Lock()
_pending = False  # a wake() since the last wait_events() began or ended
_waiting = False  # the GUI thread is inside glfwWaitEventsTimeout


@functools.lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL | None:
    try:
        import dearpygui._dearpygui as core

        lib = ctypes.CDLL(core.__file__)
        lib.glfwWaitEventsTimeout.argtypes = [ctypes.c_double]
        lib.glfwPostEmptyEvent.argtypes = []
        lib.glfwInit.restype = ctypes.c_int
        lib.glfwGetPrimaryMonitor.restype = ctypes.c_void_p
        lib.glfwGetMonitorWorkarea.argtypes = [ctypes.c_void_p, *([ctypes.POINTER(ctypes.c_int)] * 4)]
        return lib
    except (OSError, AttributeError) as e:
        log.info("GLFW calls unavailable (%s); the GUI loop polls instead of waiting for input", e)
        return None


def wait_events(timeout: float) -> bool:
    """Sleep until an input event (or :func:`wake`) arrives, at most ``timeout`` s; whether *input* ended it early.

    A :func:`wake` ends the wait too but is not input (a new avatar frame must not count as the user's activity,
    which keeps the loop drawing at full rate for a moment). The events are processed as DearPyGui's own poll would
    (ImGui's GLFW callbacks queue them for the next frame). Call on the GUI (main) thread only, after the viewport is
    shown.
    """
    lib = _lib()
    if lib is None:
        time.sleep(timeout)
        return False
    global _pending, _waiting
    with _lock:
        if _pending:
            _pending = False
            return False
        _waiting = True
    start = time.monotonic()
    lib.glfwWaitEventsTimeout(ctypes.c_double(max(0.0, timeout)))
    early = time.monotonic() - start < timeout * 0.9
    with _lock:
        _waiting = False
        woken, _pending = _pending, False
    return early and not woken


def wake() -> None:
    """Wake a :func:`wait_events` from any thread (a worker finished, a file arrived)."""
    global _pending
    lib = _lib()
    if lib is None:
        return
    with _lock:
        _pending = True
        if _waiting:
            lib.glfwPostEmptyEvent()


def work_area() -> tuple[int, int, int, int] | None:
    """``(x, y, width, height)`` of the primary monitor minus panels and docks, or ``None`` when unknown.

    Initialises GLFW if DearPyGui has not yet (it tolerates that: a second ``glfwInit`` does nothing).
    """
    lib = _lib()
    if lib is None or not lib.glfwInit():
        return None
    monitor = lib.glfwGetPrimaryMonitor()
    if not monitor:
        return None
    x, y, w, h = (ctypes.c_int() for _ in range(4))
    lib.glfwGetMonitorWorkarea(monitor, ctypes.byref(x), ctypes.byref(y), ctypes.byref(w), ctypes.byref(h))
    if w.value <= 0 or h.value <= 0:
        return None
    return x.value, y.value, w.value, h.value


def fit_window(
    preferred: tuple[int, int], minimum: tuple[int, int], area: tuple[int, int, int, int] | None
) -> tuple[int, int, int, int]:
    """``(x, y, width, height)`` of a window as large as ``preferred`` but inside ``area``, centred in it.

    ``area`` comes from :func:`work_area`; 40 px are kept for the window manager's title bar and frame. The window
    is never smaller than ``minimum`` (then it is placed at the area's corner).
    """
    if area is None:
        return 60, 40, *preferred
    ax, ay, aw, ah = area
    w = max(minimum[0], min(preferred[0], aw - 8))
    h = max(minimum[1], min(preferred[1], ah - 40))
    return ax + max(0, (aw - w) // 2), ay + max(0, (ah - 40 - h) // 2), w, h
