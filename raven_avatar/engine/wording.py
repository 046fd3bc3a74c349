"""Counts in user-visible messages, in correct English: ``1 problem``, ``2 problems``, never ``1 problems``.

Example:
    >>> plural(1, "problem"), plural(3, "frame"), plural(0, "entry", "entries")
    ('1 problem', '3 frames', '0 entries')
"""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural (default: ``noun + "s"``) unless ``count`` is exactly 1."""
    return f"{count} {noun if count == 1 else plural_noun or noun + 's'}"
