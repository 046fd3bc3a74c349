"""Text for the apps: laid out for a width in pixels (long paths break at their separators, not in mid-word, as
ImGui would cut them), and tooltips."""

from __future__ import annotations

import re

import dearpygui.dearpygui as dpg

_CHAR_PX = 8.5  # average glyph width of the 16 px UI font, until DearPyGui can measure (after the first frame)


def text_width(text: str) -> float:
    size = dpg.get_text_size(text) if text else None
    if size and size[0] > 0:
        return float(size[0])
    return len(text) * _CHAR_PX


def _pieces(word: str, width: float) -> list[str]:
    """A word too long for a line, split after path separators (and, as a last resort, anywhere)."""
    parts = [p for p in re.split(r"(?<=[/\\])", word) if p]
    out: list[str] = []
    for part in parts:
        while text_width(part) > width and len(part) > 1:
            n = max(1, int(len(part) * width / text_width(part)))
            out.append(part[:n])
            part = part[n:]
        out.append(part)
    return out


def fit_lines(text: str, width: float) -> str:
    """``text`` with line breaks so that no line is wider than ``width`` px; existing breaks are kept."""
    if width <= 0:
        return text
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if text_width(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
                line = ""
            for piece in _pieces(word, width):
                candidate = line + piece
                if line and text_width(candidate) > width:
                    lines.append(line)
                    line = piece
                else:
                    line = candidate
        lines.append(line)
    return "\n".join(lines)


def tooltip(parent: int | str, text: str) -> None:
    """Show ``text`` (wrapped) while the mouse rests on ``parent``; nothing for an empty text."""
    if text:
        with dpg.tooltip(parent):
            dpg.add_text(text, wrap=420)
