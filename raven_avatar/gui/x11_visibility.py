"""Is our window minimised or hidden? DearPyGui does not say, so ask the X server directly (Linux/X11 only).

A window counts as hidden when it is not viewable (unmapped, e.g. minimised by a window manager) or its ``WM_STATE``
is Iconic. On other platforms, or without an X display, :class:`WindowVisibility` answers ``True`` (visible) and
the caller's own checks (a zero-size viewport) remain.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

_IS_VIEWABLE = 2
_ICONIC_STATE = 3


class _XWindowAttributes(ctypes.Structure):
    _fields_ = [
        ("x", ctypes.c_int),
        ("y", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("border_width", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("visual", ctypes.c_void_p),
        ("root", ctypes.c_ulong),
        ("class_", ctypes.c_int),
        ("bit_gravity", ctypes.c_int),
        ("win_gravity", ctypes.c_int),
        ("backing_store", ctypes.c_int),
        ("backing_planes", ctypes.c_ulong),
        ("backing_pixel", ctypes.c_ulong),
        ("save_under", ctypes.c_int),
        ("colormap", ctypes.c_ulong),
        ("map_installed", ctypes.c_int),
        ("map_state", ctypes.c_int),
        ("all_event_masks", ctypes.c_long),
        ("your_event_mask", ctypes.c_long),
        ("do_not_propagate_mask", ctypes.c_long),
        ("override_redirect", ctypes.c_int),
        ("screen", ctypes.c_void_p),
    ]


def _load_x11() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY"):
        return None
    name = ctypes.util.find_library("X11")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.XOpenDisplay.restype = ctypes.c_void_p
    lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    lib.XDefaultRootWindow.restype = ctypes.c_ulong
    lib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    lib.XQueryTree.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.POINTER(ctypes.c_ulong)),
        ctypes.POINTER(ctypes.c_uint),
    ]
    lib.XFetchName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_char_p)]
    lib.XFree.argtypes = [ctypes.c_void_p]
    lib.XGetWindowAttributes.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(_XWindowAttributes)]
    lib.XInternAtom.restype = ctypes.c_ulong
    lib.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.XGetWindowProperty.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_long,
        ctypes.c_long,
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.c_void_p),
    ]
    return lib


class WindowVisibility:
    """Finds the top-level window titled ``title`` once, then answers :meth:`visible` cheaply."""

    def __init__(self, title: str):
        self.title = title.encode("utf-8")
        self._x = _load_x11()
        self._display = self._x.XOpenDisplay(None) if self._x else None
        self._window: int | None = None
        self._wm_state = self._x.XInternAtom(self._display, b"WM_STATE", 0) if self._display else 0

    def _find(self, window: int, depth: int = 0) -> int | None:
        x = self._x
        name = ctypes.c_char_p()
        if x.XFetchName(self._display, window, ctypes.byref(name)) and name.value is not None:
            found = name.value == self.title
            x.XFree(name)
            if found:
                return window
        if depth > 3:
            return None
        root, parent = ctypes.c_ulong(), ctypes.c_ulong()
        children, count = ctypes.POINTER(ctypes.c_ulong)(), ctypes.c_uint()
        if not x.XQueryTree(self._display, window, root, parent, children, count):
            return None
        try:
            for i in range(count.value):
                hit = self._find(children[i], depth + 1)
                if hit is not None:
                    return hit
        finally:
            if children:
                x.XFree(children)
        return None

    @property
    def window(self) -> int | None:
        if self._window is None and self._display:
            self._window = self._find(self._x.XDefaultRootWindow(self._display))
        return self._window

    def visible(self) -> bool:
        """False when the window is unmapped (minimised, hidden) or iconic; True when unknown."""
        window = self.window
        if window is None:
            return True
        attrs = _XWindowAttributes()
        if not self._x.XGetWindowAttributes(self._display, window, ctypes.byref(attrs)):
            return True
        if attrs.map_state != _IS_VIEWABLE:
            return False
        return self._state() != _ICONIC_STATE

    def _state(self) -> int | None:
        actual_type, fmt = ctypes.c_ulong(), ctypes.c_int()
        n, after, data = ctypes.c_ulong(), ctypes.c_ulong(), ctypes.c_void_p()
        ok = self._x.XGetWindowProperty(
            self._display, self.window, self._wm_state, 0, 2, 0, 0, actual_type, fmt, n, after, data
        )
        if ok != 0 or not data.value:
            return None
        try:
            return ctypes.cast(data, ctypes.POINTER(ctypes.c_long))[0] if n.value else None
        finally:
            self._x.XFree(data)
