"""Search indexes behind one seam (:class:`MetadataIndex`); SQLite is the embedded one."""

from __future__ import annotations

from .base import IndexKey, MetadataIndex, SearchQuery, UsageRow, UsageSums
from .sqlite import SQLiteIndex

__all__ = [
    "INDEX_FILENAME",
    "IndexKey",
    "MetadataIndex",
    "SQLiteIndex",
    "SearchQuery",
    "UsageRow",
    "UsageSums",
]

#: The SQLite index's file inside the state folder.
INDEX_FILENAME = "index.sqlite3"
