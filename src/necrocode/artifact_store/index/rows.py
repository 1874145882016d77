"""Reading index rows: the record text a row holds, back into metadata, and the
rows of a whole walk read in pages beside it (:class:`KnownRecords`).

Every small download and every search decodes rows. The row's text was written by
:meth:`ArtifactMetadata.to_json` from a record that was validated first, so the
checks of :meth:`ArtifactMetadata.from_json` are not needed again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..exceptions import ArtifactStoreError
from ..models import ArtifactMetadata

__all__ = ["KnownRecords", "decode_record"]


def decode_record(text: str | bytes) -> ArtifactMetadata:
    """The metadata of an index row's record text, trusted: it was validated before it
    was written (:meth:`ArtifactMetadata.from_trusted_json`, a typed msgspec decode)."""
    return ArtifactMetadata.from_trusted_json(text)


#: Rows fetched per page by :class:`KnownRecords`.
PAGE_ROWS = 2000


class KnownRecords:
    """The index's record texts, read in key order beside a walk of the backend.

    ``verify_all`` and ``rebuild_index`` read every record from the backend (the
    source of truth); a record whose bytes are exactly its index row's text needs
    no second validation (:meth:`~.manager.MetadataManager.load_known`). A local
    walk lists artifacts in the index's key order, so the rows are one merge away:
    a page of :data:`PAGE_ROWS` at a time, never a query per artifact. A walk in
    another order (object-store keys sort ``-`` before ``/``) only finds fewer
    rows; an index without pages, or one that fails, finds none. Either way each
    record is then fully checked, so the index can never vouch for a record.
    """

    def __init__(self, index: object, start: tuple[str, str, str, int] | None = None) -> None:
        """``start``: read only the rows after this key (a worker's part of the walk)."""
        self._page_of: Callable[[Any, int], list[tuple[str, str, str, int, str]]] | None = getattr(
            index, "record_page", None
        )
        self._rows: list[tuple[str, str, str, int, str]] = []
        self._at = 0
        self._last = start
        self._done = self._page_of is None

    def _row(self) -> tuple[str, str, str, int, str] | None:
        if self._at == len(self._rows):
            if self._done or self._page_of is None:
                return None
            try:
                self._rows = self._page_of(self._last, PAGE_ROWS)
            except ArtifactStoreError:  # a damaged index: every record is checked fully
                self._rows = []
            self._at = 0
            if len(self._rows) < PAGE_ROWS:
                self._done = True
            if not self._rows:
                return None
            self._last = self._rows[-1][:4]
        return self._rows[self._at]

    def texts(self, spec_name: str, task_id: str, type_value: str) -> dict[int, str]:
        """``{version: record text}`` of one artifact (empty if the rows are elsewhere)."""
        target = (spec_name, task_id, type_value)
        found: dict[int, str] = {}
        while (row := self._row()) is not None:
            key = row[:3]
            if key > target:
                break
            if key == target:
                found[row[3]] = row[4]
            self._at += 1
        return found
