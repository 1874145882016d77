"""Pages of search results and the opaque cursors that continue them.

A cursor is the sort key of the last item of a page (keyset paging), with the
sort it belongs to, as URL-safe base64 of compact JSON. It is not a secret and
not signed: a tampered cursor can only select other rows of the same query.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InvalidInputError
from ..models import ArtifactMetadata
from .query import SortKey, sort_key_of

__all__ = ["DEFAULT_PAGE_SIZE", "SearchPage", "decode_cursor", "encode_cursor"]

#: Rows :meth:`ArtifactStore.iter_search` fetches per query.
DEFAULT_PAGE_SIZE = 500
_KEY_LENGTHS = {"created": 5, "size": 5, "name": 4}


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of results; ``next_cursor`` is ``None`` on the last page."""

    items: list[ArtifactMetadata] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(last: ArtifactMetadata, sort: SortKey, reverse: bool) -> str:
    """The cursor of the page that follows ``last``."""
    data = {"s": sort, "r": bool(reverse), "k": list(sort_key_of(last, sort))}
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: SortKey, reverse: bool) -> tuple[Any, ...]:
    """The sort key a cursor carries; ``InvalidInputError`` if it is not one of this query's."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key = data["k"]
        ok = (
            isinstance(key, list)
            and len(key) == _KEY_LENGTHS[data["s"]]
            and all(isinstance(part, str | int | float) for part in key)
        )
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise InvalidInputError(f"{cursor!r} is not a search cursor")
    if data["s"] != sort or data["r"] != bool(reverse):
        raise InvalidInputError(
            f"the cursor belongs to sort={data['s']!r}, reverse={data['r']}, "
            f"not sort={sort!r}, reverse={bool(reverse)}"
        )
    return tuple(key)
