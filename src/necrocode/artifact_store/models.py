"""Shared vocabulary: artifact types, times, sizes and usage. No I/O here.

The metadata record, :class:`ArtifactMetadata`, is defined in :mod:`.record` and
importable from here too: it is loaded on first use (PEP 562), because its schema
loads msgspec, which the command line's ``--help`` and ``--version`` do not need.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the record's schema loads msgspec: with the first record, not at start-up
    from .record import ArtifactMetadata

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
    if moment.tzinfo is not UTC:  # every record's time is UTC already: skip the conversion
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def parse_time(text: str, field_name: str = "created_at") -> datetime:
    """Parse an ISO 8601 timestamp that carries a timezone; return it in UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"{field_name}: not an ISO 8601 timestamp: {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{field_name}: timestamp has no timezone: {text!r}")
    return moment.astimezone(UTC)


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


def __getattr__(name: str) -> Any:
    """``ArtifactMetadata``, loaded with :mod:`.record` on first use (see the docstring)."""
    if name == "ArtifactMetadata":
        from .record import ArtifactMetadata  # noqa: PLC0415 - the lazy import itself

        return ArtifactMetadata
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
