"""Search as callers ask for it: the arguments of ``ArtifactStore.search``, checked and
turned into one :class:`~.query.SearchQuery`, run, and cut into keyset pages.

:class:`SearchFilters` names the keyword filters once; ``search``,
``search_page``, ``iter_search`` and the remote client take them as
``**filters``, so a new filter is one entry here and one use below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TypedDict

from typing_extensions import Unpack

from ..exceptions import InvalidInputError
from ..models import MAX_INT64, ArtifactMetadata, ArtifactType
from ..naming import validate_name, validate_tags
from .insights import InsightFilter
from .manager import MetadataManager
from .paging import SearchPage, decode_cursor, encode_cursor
from .query import SearchQuery, SortKey

__all__ = ["SearchFilters", "check_filters", "iter_pages", "search_page", "tags_to_find"]


class SearchFilters(TypedDict, total=False):
    """The keyword filters of a search (every one optional).

    ``tags`` with ``match`` ``"all"`` (default) or ``"any"``; the content filters
    ``failed``, ``test`` (a failing test id substring), ``touches`` (a glob over
    a diff's paths) and ``has_errors``; ``sort`` (``"created"``, ``"size"``,
    ``"name"``) with ``order`` (``"oldest"``/``"newest"``) or ``reverse``.
    """

    tags: Iterable[str] | None
    match: str
    failed: bool | None
    test: str | None
    touches: str | None
    has_errors: bool | None
    order: str | None
    sort: SortKey
    reverse: bool | None


_FILTER_NAMES = frozenset(SearchFilters.__annotations__)


def check_filters(caller: str, filters: dict[str, object]) -> None:
    """``TypeError`` for a keyword that is not a filter, as Python would raise it."""
    for name in filters:
        if name not in _FILTER_NAMES:
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")


def search_page(
    metadata: MetadataManager,
    task_id: str | None,
    spec_name: str | None,
    artifact_type: ArtifactType | str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int | None,
    cursor: str | None,
    **filters: Unpack[SearchFilters],
) -> SearchPage:
    """At most ``limit`` matching latest versions after ``cursor``, and the next cursor."""
    insight = InsightFilter.build(
        failed=filters.get("failed"),
        test=filters.get("test"),
        touches=filters.get("touches"),
        has_errors=filters.get("has_errors"),
    )
    order, reverse, sort = filters.get("order"), filters.get("reverse"), filters.get("sort")
    sort = "created" if sort is None else sort
    if order not in (None, "oldest", "newest"):
        raise InvalidInputError(f"order must be 'oldest' or 'newest', got {order!r}")
    if order is not None and reverse is not None:
        raise InvalidInputError("give order or reverse, not both")
    if sort not in ("created", "size", "name"):
        raise InvalidInputError(f"sort must be created, size or name, got {sort!r}")
    if sort != "created" and insight.active:
        raise InvalidInputError("content filters sort by creation time only")
    if limit is not None and (type(limit) is not int or not 1 <= limit <= MAX_INT64):
        raise InvalidInputError(f"limit must be an integer from 1 to {MAX_INT64}, got {limit!r}")
    if reverse is None:
        reverse = order == "newest" or (order is None and insight.active)
    query = SearchQuery(
        task_id=_name("task_id", task_id),
        spec_name=_name("spec_name", spec_name),
        artifact_type=_kind(artifact_type),
        created_after=_as_utc("created_after", created_after),
        created_before=_as_utc("created_before", created_before),
        tags=validate_tags(filters.get("tags")),
        match_all_tags=_match(filters.get("match", "all")),
        # One more row than asked: is there a next page? (No room above the largest.)
        limit=None if limit is None or limit >= MAX_INT64 else limit + 1,
        insights=insight if insight.active else None,
        newest_first=bool(reverse),
        sort=sort,
        after=decode_cursor(cursor, sort, reverse) if cursor is not None else None,
    )
    found = metadata.search(query)
    if limit is None or len(found) <= limit:
        return SearchPage(found, None)
    items = found[:limit]
    return SearchPage(items, encode_cursor(items[-1], sort, reverse))


def _name(field: str, value: str | None) -> str | None:
    if value is not None:
        validate_name(field, value)
    return value


def _kind(artifact_type: ArtifactType | str | None) -> ArtifactType | None:
    if artifact_type is None:
        return None
    try:
        return ArtifactType.parse(artifact_type)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def _match(match: str) -> bool:
    if match not in ("all", "any"):
        raise InvalidInputError(f"match must be 'all' or 'any', got {match!r}")
    return match == "all"


def _as_utc(name: str, moment: datetime | None) -> datetime | None:
    """A search bound in UTC: naive datetimes are taken as UTC; anything else is refused."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        raise InvalidInputError(f"{name} must be a datetime, got {type(moment).__name__}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def iter_pages(page: Callable[[str | None], SearchPage]) -> Iterator[ArtifactMetadata]:
    """Every item of the pages ``page(cursor)`` gives, from the first (``None``) on."""
    cursor: str | None = None
    while True:
        found = page(cursor)
        yield from found.items
        if found.next_cursor is None:
            return
        cursor = found.next_cursor


def tags_to_find(tags: Iterable[str]) -> tuple[str, ...]:
    """The tags of a search by tags: valid, and at least one."""
    found = validate_tags(tags)
    if not found:
        raise InvalidInputError("search_by_tags needs at least one tag")
    return found
