"""Module-level work for the worker-process tests (a worker imports it by name)."""

from __future__ import annotations

import os
import time

from necrocode.artifact_store import StorageError

_STATE: dict[str, object] = {}


def start(offset: int) -> None:
    _STATE["offset"] = offset


def shifted(n: int) -> tuple[int, int]:
    """``n`` plus the start offset, and the worker's pid; some items fail or are slow."""
    if n % 10 == 7:
        raise StorageError(f"item {n} is on a failing disk")
    if n == 99:
        raise ValueError("a bug in the work")
    time.sleep((n % 3) * 0.002)  # later items often finish first
    offset = _STATE["offset"]
    assert isinstance(offset, int)
    return n + offset, os.getpid()
