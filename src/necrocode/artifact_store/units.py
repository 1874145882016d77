"""Byte counts for people: one unit system (binary: KiB, MiB, GiB) everywhere.

Used by the command line's tables, progress and notes and by the store's own
messages (quota warnings and errors), so a number reads the same in both.
"""

from __future__ import annotations

__all__ = ["format_size"]

KiB = 1024
_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_size(size: int | None) -> str:
    """``1536`` -> ``"1.5 KiB"``; ``None`` -> ``"-"``."""
    if size is None:
        return "-"
    value = float(size)
    for unit in _SIZE_UNITS:
        if value < KiB or unit == _SIZE_UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= KiB
    raise AssertionError("unreachable")  # pragma: no cover
