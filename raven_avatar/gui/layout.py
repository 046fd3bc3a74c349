"""Layout arithmetic from the viewport size, in one place (no pixel constants scattered through the apps)."""

from __future__ import annotations

from dataclasses import dataclass

#: Smallest viewport the apps are laid out for.
MIN_WIDTH, MIN_HEIGHT = 1366, 768
#: Padding and spacing DearPyGui adds around windows and between columns (default style, rounded up).
PAD = 8
SPACING = 8


@dataclass(frozen=True)
class Columns:
    """Widths of a row of columns: fixed ones as given, flexible ones share the rest equally."""

    widths: tuple[int, ...]
    height: int


def columns(viewport_w: int, viewport_h: int, spec: tuple[int | None, ...], reserved_h: int = 0) -> Columns:
    """Split the viewport's width into columns; ``None`` in ``spec`` is a flexible column.

    ``reserved_h`` is the height kept for rows above or below the columns (menus, status bar).
    """
    inner = max(viewport_w, 1) - 2 * PAD - SPACING * (len(spec) - 1) - 16  # 16: the OS window frame on most WMs
    fixed = sum(s for s in spec if s is not None)
    n_flex = sum(1 for s in spec if s is None)
    flex = max(120, (inner - fixed) // n_flex) if n_flex else 0
    widths = tuple(flex if s is None else s for s in spec)
    height = max(200, viewport_h - 2 * PAD - reserved_h - 40)  # 40: title bar
    return Columns(widths, height)
