"""The apps' look: a readable font when the system has one, rounded frames, and a few named colours."""

from __future__ import annotations

import logging
from pathlib import Path

import dearpygui.dearpygui as dpg

log = logging.getLogger(__name__)

#: Common places of a clear sans-serif TTF; the first that exists is used, else DearPyGui's built-in font.
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:/Windows/Fonts/segoeui.ttf",
)
OK_COLOUR = (120, 220, 120)
WARN_COLOUR = (240, 200, 90)
ERROR_COLOUR = (240, 110, 110)


def apply_theme(font_size: int = 16) -> None:
    """Bind the global theme and font; call once after ``create_context``."""
    with dpg.theme() as theme, dpg.theme_component(dpg.mvAll):
        dpg.add_theme_style(dpg.mvStyleVar_FrameRounding, 4)
        dpg.add_theme_style(dpg.mvStyleVar_WindowRounding, 6)
        dpg.add_theme_style(dpg.mvStyleVar_ChildRounding, 6)
        dpg.add_theme_style(dpg.mvStyleVar_GrabRounding, 4)
        dpg.add_theme_style(dpg.mvStyleVar_ItemSpacing, 6, 4)
        dpg.add_theme_style(dpg.mvStyleVar_FramePadding, 6, 3)
    dpg.bind_theme(theme)
    font = next((Path(p) for p in _FONT_CANDIDATES if Path(p).is_file()), None)
    if font is None:
        log.info("no system TTF font found; using DearPyGui's built-in font")
        return
    with dpg.font_registry():
        dpg.bind_font(dpg.add_font(str(font), font_size))
