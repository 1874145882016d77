"""Shared vocabulary: artifact types and the metadata record. No I/O here."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from .exceptions import IntegrityError

if TYPE_CHECKING:  # the content parsers load with the first summary, not with this module
    from .content.summary import Summary

__all__ = [
    "MAX_INT64",
    "MAX_RETENTION_DAYS",
    "PUBLIC_SCHEMA",
    "RECORD_SCHEMA",
    "ArtifactMetadata",
    "ArtifactType",
    "Codec",
    "StorageUsage",
]

Codec = Literal["none", "gzip", "zstd"]
CODECS: tuple[Codec, ...] = ("none", "gzip", "zstd")

#: Version of the metadata record layout written to storage; bumped when a field
#: changes meaning. Records keep layout 1 (``size`` = stored bytes there), so every
#: host, old or new, reads every record.
RECORD_SCHEMA = 1
#: Version of the public JSON (:meth:`ArtifactMetadata.to_dict`): 2 made ``size``
#: the original bytes and added ``stored_size``; ``original_size`` stays as a copy.
PUBLIC_SCHEMA = 2
#: The largest count (size, version, limit) the store accepts: what an index column holds.
MAX_INT64 = 2**63 - 1
#: The longest retention (about 2,700 years), so expiry dates stay computable; to keep
#: an artifact forever, pin it.
MAX_RETENTION_DAYS = 1_000_000


class ArtifactType(StrEnum):
    """The kinds of artifact an agent task produces: the one registry of types.

    Each entry is ``NAME = (value, file name, MIME type, default retention days)``;
    everything else (URIs and object names, the index, search, retention and its
    ``retention_policy.<value>`` setting, the command line's ``--type``) is derived
    from it, so a new type is one line here.
    """

    _value_: str
    #: The file name an artifact of this type has inside its task folder.
    filename: str
    #: The MIME type recorded when the uploader gives none.
    mime_type: str
    #: Days kept when neither the configuration nor the upload says otherwise.
    default_retention_days: int

    # The defaults only let ``ArtifactType("diff")`` (a lookup by value) type-check.
    def __new__(
        cls, value: str, filename: str = "", mime_type: str = "", default_retention_days: int = 0
    ) -> ArtifactType:
        member = str.__new__(cls, value)
        member._value_ = value
        member.filename = filename
        member.mime_type = mime_type
        member.default_retention_days = default_retention_days
        return member

    DIFF = ("diff", "diff.txt", "text/x-diff", 30)
    LOG = ("log", "log.txt", "text/plain", 7)
    TEST_RESULT = ("test", "test-result.json", "application/json", 14)

    @classmethod
    def from_filename(cls, filename: str) -> ArtifactType:
        """The type whose default file name is ``filename`` (``ValueError`` if none)."""
        for artifact_type in cls:
            if artifact_type.filename == filename:
                return artifact_type
        raise ValueError(f"no artifact type has the file name {filename!r}")

    @classmethod
    def parse(cls, value: ArtifactType | str) -> ArtifactType:
        """Accept an ``ArtifactType`` or its value (``"diff"``, ``"log"``, ``"test"``)."""
        if isinstance(value, ArtifactType):
            return value
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown artifact type {value!r}; expected one of: {known}") from None


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds, e.g. ``2026-11-29T01:14:03.123456+00:00``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(text: str, field_name: str = "created_at") -> datetime:
    """Parse an ISO 8601 timestamp that carries a timezone; return it in UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"{field_name}: not an ISO 8601 timestamp: {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{field_name}: timestamp has no timezone: {text!r}")
    return moment.astimezone(UTC)


_UNSET: Any = object()


@dataclass(frozen=True, slots=True, init=False)
class ArtifactMetadata:
    """Everything the store knows about one version of one artifact.

    One vocabulary everywhere: ``size`` is the number of bytes that were
    uploaded (the original), ``stored_size`` the bytes the backend holds (after
    compression); ``checksum`` (``sha256:<hex>``) describes the uploaded bytes.
    ``object_key`` is where the stored bytes live inside the backend.
    ``summary`` is what the store understood of the content (failed tests,
    changed files, log errors); ``None`` with ``summary_reason`` when the content
    did not parse, ``None`` with no reason when it was never summarised.

    ``original_size`` is a deprecated alias of ``size``. Code written before
    the rename, which constructs ``ArtifactMetadata(size=<stored>,
    original_size=<original>)``, still builds the right object: given
    ``original_size``, ``size`` is read in its old meaning (stored bytes).
    """

    uri: str
    task_id: str
    spec_name: str
    type: ArtifactType
    size: int
    checksum: str
    created_at: datetime
    compressed: bool
    stored_size: int
    mime_type: str
    tags: tuple[str, ...]
    version: int
    metadata: dict[str, Any]
    codec: Codec
    object_key: str
    retention_days: int | None
    pinned: bool
    summary: Summary | None
    summary_reason: str | None

    def __init__(
        self,
        uri: str,
        task_id: str,
        spec_name: str,
        type: ArtifactType,
        size: int,
        checksum: str,
        created_at: datetime,
        compressed: bool,
        stored_size: int = _UNSET,
        mime_type: str = _UNSET,
        tags: tuple[str, ...] = (),
        version: int = 1,
        metadata: dict[str, Any] | None = None,
        codec: Codec = "none",
        object_key: str = "",
        retention_days: int | None = None,
        pinned: bool = False,
        summary: Summary | None = None,
        summary_reason: str | None = None,
        *,
        original_size: int = _UNSET,
    ) -> None:
        if original_size is not _UNSET:  # the names before the rename (see above)
            if stored_size is not _UNSET:
                raise TypeError("give size and stored_size, or (deprecated) original_size")
            size, stored_size = original_size, size
        if stored_size is _UNSET or mime_type is _UNSET:
            raise TypeError("ArtifactMetadata needs stored_size and mime_type")
        values = (
            uri, task_id, spec_name, type, size, checksum, created_at, compressed,
            stored_size, mime_type, tags, version, {} if metadata is None else metadata,
            codec, object_key, retention_days, pinned, summary, summary_reason,
        )  # fmt: skip
        for name, value in zip(_FIELD_NAMES, values, strict=True):
            object.__setattr__(self, name, value)

    @property
    def original_size(self) -> int:
        """Deprecated alias of :attr:`size` (the bytes uploaded)."""
        return self.size

    @property
    def version_uri(self) -> str:
        """The URI of exactly this version (``<uri>?version=<n>``)."""
        return f"{self.uri}?version={self.version}"

    def with_changes(self, **changes: Any) -> ArtifactMetadata:
        """A copy with the given fields replaced."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The public JSON-ready dict (layout :data:`PUBLIC_SCHEMA`).

        :meth:`from_dict` restores an equal object. ``original_size`` repeats
        ``size`` for readers of layout 1.
        """
        data = self._record_dict()
        data.update(schema=PUBLIC_SCHEMA, size=self.size, stored_size=self.stored_size)
        return data

    def _record_dict(self) -> dict[str, Any]:
        """The stored record's layout (:data:`RECORD_SCHEMA`: ``size`` is stored bytes).

        ``summary``/``summary_reason`` appear once the content was summarised (or
        found unparseable): a record never summarised keeps the 0.1.0 layout.
        """
        data = {
            "schema": RECORD_SCHEMA,
            "uri": self.uri,
            "task_id": self.task_id,
            "spec_name": self.spec_name,
            "type": self.type.value,
            "size": self.stored_size,
            "checksum": self.checksum,
            "created_at": format_time(self.created_at),
            "compressed": self.compressed,
            "original_size": self.size,
            "mime_type": self.mime_type,
            "tags": list(self.tags),
            "version": self.version,
            "metadata": self.metadata,
            "codec": self.codec,
            "object_key": self.object_key,
            "retention_days": self.retention_days,
            "pinned": self.pinned,
        }
        if self.summary is not None or self.summary_reason is not None:
            data["summary"] = None if self.summary is None else self.summary.to_dict()
            data["summary_reason"] = self.summary_reason
        return data

    def to_json(self) -> str:
        """The stored record as compact JSON text (keys sorted, so records diff cleanly)."""
        return json.dumps(self._record_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> ArtifactMetadata:
        """Build from :meth:`to_dict` output; a malformed record raises ``IntegrityError``."""
        try:
            return cls._from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise IntegrityError(f"malformed metadata record: {reason}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> ArtifactMetadata:
        """Parse a record written by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IntegrityError(f"malformed metadata record: not JSON ({exc})") from exc
        return cls.from_dict(data)

    @classmethod
    def from_trusted_json(cls, text: str | bytes) -> ArtifactMetadata:
        """Parse JSON that this library wrote from an already validated record.

        For the search index's rows: every row was validated before it was
        written, so the field checks of :meth:`from_json` (half the cost of a
        small download) are skipped. Anything unexpected falls back to
        :meth:`from_json`, which reports exactly what is wrong.
        """
        with contextlib.suppress(KeyError, TypeError, ValueError):
            meta = cls._from_trusted_dict(json.loads(text))
            if meta is not None:
                return meta
        return cls.from_json(text)

    @classmethod
    def _from_trusted_dict(cls, data: Any) -> ArtifactMetadata | None:
        if data["schema"] != RECORD_SCHEMA or data["codec"] not in CODECS:
            return None
        created_at = datetime.fromisoformat(data["created_at"])
        if created_at.tzinfo is not UTC:  # format_time writes "+00:00", parsed as UTC
            return None
        return cls(
            data["uri"],
            data["task_id"],
            data["spec_name"],
            ArtifactType(data["type"]),
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
            None
            if (summary := data.get("summary")) is None
            else _summary_class().from_trusted_dict(summary),
            data.get("summary_reason"),
        )

    @classmethod
    def _from_dict(cls, data: Any) -> ArtifactMetadata:
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        # Without a "schema" key (the service's JSON), stored_size marks layout 2.
        schema = data.get("schema", PUBLIC_SCHEMA if "stored_size" in data else RECORD_SCHEMA)
        if schema not in (RECORD_SCHEMA, PUBLIC_SCHEMA):
            raise ValueError(f"unsupported record schema {schema!r}")
        # Layout 1 (records): size = stored, original_size = uploaded; layout 2: size, stored_size.
        size_key, stored_key = (
            ("original_size", "size") if schema == RECORD_SCHEMA else ("size", "stored_size")
        )
        codec = _expect(data, "codec", str, default="none")
        if codec not in CODECS:
            raise ValueError(f"codec: unknown codec {codec!r}")
        tags = _expect(data, "tags", list, default=[])
        if not all(isinstance(tag, str) for tag in tags):
            raise TypeError("tags: every tag must be a string")
        custom = _expect(data, "metadata", dict, default={})
        retention = data.get("retention_days")
        if retention is not None and (type(retention) is not int or retention < 0):
            raise ValueError(f"retention_days: expected a non-negative integer, got {retention!r}")
        if retention is not None and retention > MAX_RETENTION_DAYS:
            # Written before the range was checked: a retention this long means "forever"
            # either way, and the record stays readable.
            retention = MAX_RETENTION_DAYS
        checksum = _expect(data, "checksum", str)
        if not checksum.startswith("sha256:") or len(checksum) != 71:
            raise ValueError(f"checksum: expected 'sha256:<64 hex digits>', got {checksum!r}")
        return cls(
            uri=_expect(data, "uri", str),
            task_id=_expect(data, "task_id", str),
            spec_name=_expect(data, "spec_name", str),
            type=ArtifactType.parse(_expect(data, "type", str)),
            size=_expect_count(data, size_key),
            checksum=checksum,
            created_at=parse_time(_expect(data, "created_at", str)),
            compressed=_expect(data, "compressed", bool),
            stored_size=_expect_count(data, stored_key),
            mime_type=_expect(data, "mime_type", str),
            tags=tuple(tags),
            version=_expect_count(data, "version", minimum=1),
            metadata=custom,
            codec=codec,
            object_key=_expect(data, "object_key", str, default=""),
            retention_days=retention,
            pinned=_expect(data, "pinned", bool, default=False),
            summary=_summary_of(data.get("summary")),
            summary_reason=_expect(data, "summary_reason", str, default=None)
            if data.get("summary_reason") is not None
            else None,
        )


_FIELD_NAMES = tuple(f.name for f in fields(ArtifactMetadata))
_MISSING: Any = object()


def _summary_of(data: Any) -> Summary | None:
    return None if data is None else _summary_class().from_dict(data)


def _summary_class() -> type[Summary]:
    """:class:`~.content.summary.Summary`, imported when a record carries one."""
    from .content.summary import Summary  # noqa: PLC0415 - see the TYPE_CHECKING import

    return Summary


def _expect(data: dict[str, Any], key: str, kind: type[Any], default: Any = _MISSING) -> Any:
    if key not in data:
        if default is _MISSING:
            raise KeyError(key)
        return default
    value = data[key]
    # bool is an int subclass: a record saying "size": true is malformed.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise TypeError(f"{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _expect_count(data: dict[str, Any], key: str, minimum: int = 0) -> int:
    value: int = _expect(data, key, int)
    if value < minimum:
        raise ValueError(f"{key}: must be >= {minimum}, got {value}")
    if value > MAX_INT64:
        raise ValueError(f"{key}: must be <= {MAX_INT64}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class StorageUsage(Mapping[str, Any]):
    """Bytes and counts held by the store (or by one spec or type).

    ``stored_bytes`` counts every version's stored (compressed) bytes, which is
    what the quota limits; ``original_bytes`` counts the uploaded bytes.
    ``quota_bytes`` and ``fraction_used`` are ``None`` without a quota.

    Also readable as a mapping (``usage["total_size_bytes"]``): the keys of
    :meth:`to_dict` plus those of the reference API (``total_size_bytes``,
    ``total_size_mb``, ``total_size_gb``, ``quota_max_gb``,
    ``quota_used_percent``, ``quota_warning``).
    """

    artifact_count: int
    version_count: int
    stored_bytes: int
    original_bytes: int
    quota_bytes: int | None = None
    #: The quota fraction past which usage is worth a warning (``quota_warning``).
    warn_threshold: float | None = None

    def _fields(self) -> dict[str, Any]:
        fraction = self.fraction_used
        return {
            **self.to_dict(),
            "total_size_bytes": self.stored_bytes,
            "total_size_mb": round(self.stored_bytes / 2**20, 4),
            "total_size_gb": round(self.stored_bytes / 2**30, 6),
            "quota_max_gb": None if self.quota_bytes is None else self.quota_bytes / 2**30,
            "quota_used_percent": 0.0 if fraction is None else round(fraction * 100, 2),
            "quota_warning": (
                fraction is not None
                and self.warn_threshold is not None
                and fraction >= self.warn_threshold
            ),
        }

    def __getitem__(self, key: str) -> Any:
        return self._fields()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

    @property
    def fraction_used(self) -> float | None:
        """``stored_bytes / quota_bytes``, or ``None`` without a quota."""
        return None if not self.quota_bytes else self.stored_bytes / self.quota_bytes

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "artifact_count": self.artifact_count,
            "version_count": self.version_count,
            "stored_bytes": self.stored_bytes,
            "original_bytes": self.original_bytes,
            "quota_bytes": self.quota_bytes,
            "fraction_used": self.fraction_used,
        }
