"""Argument types shared by the ``avatar-render`` subcommands: bad values are usage errors (exit 2, one line)."""

from __future__ import annotations

import argparse
import math


def positive_number(text: str) -> float:
    """A finite number > 0 (``inf``, ``nan``, 0 and negatives are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value
