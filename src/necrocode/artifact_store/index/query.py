"""What a search asks of an index, and the sort orders both indexes share.

:class:`SearchQuery` is handed to :meth:`~.base.MetadataIndex.search` of either
index; :data:`SORT_COLUMNS` are the ORDER BY columns (the SQL of both indexes uses
the same column names), and :func:`sort_key_of` a paging cursor of one record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..models import ArtifactMetadata, ArtifactType
from .insights import InsightFilter

__all__ = ["SORT_COLUMNS", "SearchQuery", "SortKey", "sort_key_of"]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Filters of :meth:`MetadataIndex.search`; ``None`` means "any"."""

    task_id: str | None = None
    spec_name: str | None = None
    artifact_type: ArtifactType | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    tags: tuple[str, ...] = ()
    match_all_tags: bool = True
    latest_only: bool = True
    limit: int | None = None
    #: Content filters (failed tests, changed paths, log errors); see ``index/insights.py``.
    insights: InsightFilter | None = None
    newest_first: bool = False
    #: Sort key (``"created"``, ``"size"`` = original bytes, ``"name"``); ties by name.
    #: (``newest_first`` is descending order of ``sort``: newest, largest or Z first.)
    sort: SortKey = "created"
    #: Keyset paging: only rows strictly after this sort key (see :func:`sort_key_of`).
    after: tuple[Any, ...] | None = None


SortKey = Literal["created", "size", "name"]
#: The ORDER BY columns of each sort key; every ordering ends on the primary key.
SORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "created": ("a.created_at", "a.spec_name", "a.task_id", "a.type", "a.version"),
    "size": ("a.original_size", "a.spec_name", "a.task_id", "a.type", "a.version"),
    "name": ("a.spec_name", "a.task_id", "a.type", "a.version"),
}


def sort_key_of(meta: ArtifactMetadata, sort: SortKey) -> tuple[Any, ...]:
    """The values of ``meta`` in the ORDER BY columns of ``sort`` (a paging cursor)."""
    name = (meta.spec_name, meta.task_id, meta.type.value, meta.version)
    if sort == "created":
        return (meta.created_at.timestamp(), *name)
    if sort == "size":
        return (meta.size, *name)
    return name
