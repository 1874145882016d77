"""The embedded index of one host: the SQLite index of :mod:`..metadata_index`
behind the :class:`~.base.MetadataIndex` seam."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .. import metadata_index
from .base import IndexKey

__all__ = ["SQLiteIndex"]


class SQLiteIndex(metadata_index.MetadataIndex):
    """SQLite cache of every record, shared by the processes of one machine only."""

    shared = False

    def describe(self) -> str:
        """``sqlite <path of the index file>``."""
        return f"sqlite {self.path}"

    def rebuild_progress(self) -> set[IndexKey]:
        """Nothing: a SQLite rebuild is one transaction, so there is never one to resume."""
        return set()

    @contextlib.contextmanager
    def claim(self, job: str, item: str) -> Iterator[bool]:
        """Always granted: one host only, and its processes exclude each other by the
        artifact locks."""
        yield True
