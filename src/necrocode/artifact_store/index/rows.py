"""Decoding index rows fast: the record text an index row holds, back into metadata.

Every small download and every search decodes rows. The row's text was written by
:meth:`ArtifactMetadata.to_json` from a record that was validated first, so the
checks of :meth:`ArtifactMetadata.from_json` are not needed again, and neither is
the per-field work of the dataclasses' ``__init__`` (19 ``object.__setattr__``
calls for the metadata, more for a summary: about half of the decode). This module
fills the slots of new objects directly instead.

It depends on the record layout (:data:`~..models.RECORD_SCHEMA`) and on the field
names of the classes it fills. Both are checked: the field names once, at import
(a class that gained or lost a field turns the fast path off), the layout per row
(anything unexpected, a missing key or a wrong type, falls back to
:meth:`ArtifactMetadata.from_trusted_json`, which falls back to the full checks).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime
from json import JSONDecodeError
from json import loads as json_loads
from typing import TYPE_CHECKING, Any

from ..exceptions import ArtifactStoreError
from ..models import CODECS, RECORD_SCHEMA, ArtifactMetadata, ArtifactType

if TYPE_CHECKING:
    from ..content.summary import Summary

__all__ = ["KnownRecords", "decode_record"]

_Setters = tuple[Callable[[Any, Any], None], ...]

#: The field names this module fills, per class, in the order the values are given.
_METADATA_FIELDS = (
    "uri", "task_id", "spec_name", "type", "size", "checksum", "created_at", "compressed",
    "stored_size", "mime_type", "tags", "version", "metadata", "codec", "object_key",
    "retention_days", "pinned", "summary", "summary_reason",
)  # fmt: skip
_SUMMARY_FIELDS = {
    "Summary": ("kind", "parser_version", "test", "diff", "log", "capped"),
    "TestSummary": (
        "format", "success", "passed", "failed", "skipped", "errors", "duration", "failing",
    ),
    "DiffSummary": ("files_changed", "added", "removed", "binary_files", "files"),
    "ChangedFile": ("path", "status", "added", "removed", "binary", "old_path"),
    "LogSummary": ("lines", "error_lines", "warning_lines", "tracebacks", "first_error_line"),
}  # fmt: skip

_TYPES = {kind.value: kind for kind in ArtifactType}
_new = object.__new__


def _setters(cls: type[Any], names: tuple[str, ...]) -> _Setters | None:
    """The slot setters of ``cls`` in ``names`` order; ``None`` if its fields differ."""
    if tuple(f.name for f in fields(cls)) != names:
        return None
    return tuple(getattr(cls, name).__set__ for name in names)


_METADATA_SETTERS = _setters(ArtifactMetadata, _METADATA_FIELDS)


@functools.cache
def _summary_setters() -> dict[str, tuple[type[Any], _Setters]] | None:
    """The summary classes and their setters; imported at the first summary (the content
    package is large, and the command line's start-up does not need it)."""
    from ..content import summary  # noqa: PLC0415 - see the docstring

    found = {}
    for name, names in _SUMMARY_FIELDS.items():
        cls = getattr(summary, name)
        setters = _setters(cls, names)
        if setters is None:
            return None
        found[name] = (cls, setters)
    return found


def _fill(cls: type[Any], setters: _Setters, values: tuple[Any, ...]) -> Any:
    obj = _new(cls)
    for set_slot, value in zip(setters, values, strict=True):
        set_slot(obj, value)
    return obj


def _summary(data: dict[str, Any]) -> Summary | None:
    """A summary from its ``to_dict`` layout (``KeyError``/``TypeError`` if it differs);
    ``None`` if the summary classes changed (the caller takes the slow path)."""
    classes = _summary_setters()
    if classes is None:
        return None

    def make(name: str, values: tuple[Any, ...]) -> Any:
        return _fill(*classes[name], values)

    t, d, g = data.get("test"), data.get("diff"), data.get("log")
    test = None
    if t is not None:
        test = make(
            "TestSummary",
            (
                t["format"], t["success"], t["passed"], t["failed"], t["skipped"],
                t["errors"], t["duration"], tuple(t["failing"]),
            ),
        )  # fmt: skip
    diff = None
    if d is not None:
        files = tuple(
            make(
                "ChangedFile",
                (f["path"], f["status"], f["added"], f["removed"], f["binary"], f["old_path"]),
            )
            for f in d["files"]
        )
        diff = make(
            "DiffSummary", (d["files_changed"], d["added"], d["removed"], d["binary_files"], files)
        )
    log = None
    if g is not None:
        log = make(
            "LogSummary",
            (
                g["lines"], g["error_lines"], g["warning_lines"], g["tracebacks"],
                g["first_error_line"],
            ),
        )  # fmt: skip
    summary: Summary = make(
        "Summary", (data["kind"], data["parser_version"], test, diff, log, data["capped"])
    )
    return summary


def _fast(text: str | bytes) -> ArtifactMetadata | None:
    data = json_loads(text)
    if data["schema"] != RECORD_SCHEMA or data["codec"] not in CODECS:
        return None
    created_at = datetime.fromisoformat(data["created_at"])
    if created_at.tzinfo is not UTC:  # format_time writes "+00:00", parsed as UTC
        return None
    summary_data = data.get("summary")
    summary = None
    if summary_data is not None:
        summary = _summary(summary_data)
        if summary is None:
            return None
    values = (
        data["uri"],
        data["task_id"],
        data["spec_name"],
        _TYPES[data["type"]],
        data["original_size"],
        data["checksum"],
        created_at,
        data["compressed"],
        data["size"],
        data["mime_type"],
        tuple(data["tags"]),
        data["version"],
        data["metadata"],
        data["codec"],
        data["object_key"],
        data["retention_days"],
        data["pinned"],
        summary,
        data.get("summary_reason"),
    )
    meta: ArtifactMetadata = _fill(ArtifactMetadata, _METADATA_SETTERS, values)  # type: ignore[arg-type]
    return meta


def decode_record(text: str | bytes) -> ArtifactMetadata:
    """The metadata of an index row's record text (see the module docstring)."""
    if _METADATA_SETTERS is not None:
        try:
            meta = _fast(text)
        except (KeyError, TypeError, ValueError, AttributeError, JSONDecodeError):
            meta = None
        if meta is not None:
            return meta
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

    def __init__(self, index: object) -> None:
        self._page_of: Callable[[Any, int], list[tuple[str, str, str, int, str]]] | None = getattr(
            index, "record_page", None
        )
        self._rows: list[tuple[str, str, str, int, str]] = []
        self._at = 0
        self._last: tuple[str, str, str, int] | None = None
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
