"""Problem lists for people: however many things are wrong, a log or a dialog shows a few lines, not millions.

Example:
    >>> capped([f"unknown key k{i}" for i in range(5)], limit=2)
    ['unknown key k0', 'unknown key k1', '... and 3 more']
"""

from __future__ import annotations

from collections.abc import Sequence

#: How many lines of one list are shown by default.
LIMIT = 20


def capped(lines: Sequence[str], limit: int = LIMIT) -> list[str]:
    """The first ``limit`` lines, then one ``... and N more`` line if there were more."""
    if len(lines) <= limit:
        return list(lines)
    return [*lines[:limit], f"... and {len(lines) - limit} more"]
