"""Pydantic models of the JSON the service sends: they document the OpenAPI schema.

Each is filled from the library's own serialisation (``ArtifactMetadata.to_dict``,
``StorageUsage.to_dict``, the reports' ``to_dict``), never field by field, so
the API shows what the records say. Only the ``uri`` differs: the service's
URL of the version instead of the store's internal URI.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..models import ArtifactMetadata, StorageUsage
from ..naming import ArtifactKey
from .links import artifact_url, meta_url

__all__ = [
    "BYTES_RESPONSES",
    "ArtifactOut",
    "ArtifactPage",
    "DeleteResult",
    "ErrorBody",
    "HealthOut",
    "QuotaOut",
    "Responses",
    "TagsIn",
    "UsageOut",
    "UsageReport",
    "VersionList",
]


#: The ``responses`` argument of a route (OpenAPI documentation of its statuses).
Responses = dict[int | str, dict[str, Any]]


BYTES_RESPONSES: Responses = {
    200: {"content": {"application/octet-stream": {}}, "description": "the bytes"},
    206: {"description": "the requested range"},
    304: {"description": "not modified (If-None-Match)"},
}


class ErrorDetail(BaseModel):
    """What went wrong: a stable snake_case ``code`` and a one-line ``message``."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """The one error shape of every 4xx/5xx response."""

    error: ErrorDetail


class ArtifactOut(BaseModel):
    """One artifact version, as its metadata record says, with the service's URLs."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(description="URL of exactly this version (GET returns its bytes)")
    artifact_uri: str = Field(description="URL of the artifact's latest version")
    spec_name: str
    task_id: str
    artifact_type: Literal["diff", "log", "test"]
    type: Literal["diff", "log", "test"]
    version: int = Field(ge=1)
    size: int = Field(ge=0, description="bytes uploaded (the original)")
    stored_size: int = Field(ge=0, description="bytes stored (after compression)")
    original_size: int = Field(ge=0, description="the same as size (kept for older clients)")
    checksum: str = Field(description="sha256:<hex> of the uploaded bytes")
    created_at: str = Field(description="ISO 8601, UTC")
    compressed: bool
    codec: Literal["none", "gzip", "zstd"]
    mime_type: str
    tags: list[str]
    metadata: dict[str, Any] = Field(description="custom metadata (the uploader's extra keys)")
    retention_days: int | None
    pinned: bool
    summary: dict[str, Any] | None = Field(
        default=None, description="what the store understood of the content (see insights)"
    )
    summary_reason: str | None = Field(
        default=None, description="why there is no summary, when there is none"
    )

    @classmethod
    def of(cls, meta: ArtifactMetadata, base: str) -> ArtifactOut:
        """The API view of ``meta`` for a service reachable at ``base``."""
        record = meta.to_dict()
        record.pop("schema")
        record.pop("object_key")
        record["uri"] = meta_url(base, meta)
        record["artifact_uri"] = artifact_url(
            base, ArtifactKey(meta.spec_name, meta.task_id, meta.type)
        )
        record["artifact_type"] = record["type"]
        return cls.model_validate(record)


class ArtifactPage(BaseModel):
    """One page of a listing; pass ``next_cursor`` back as ``cursor`` for the next."""

    items: list[ArtifactOut]
    next_cursor: str | None


class VersionList(BaseModel):
    """Every stored version of one artifact, oldest first."""

    items: list[ArtifactOut]


class DeleteResult(BaseModel):
    """How many artifacts (or versions) a delete removed."""

    deleted: int = Field(ge=0)


class TagsIn(BaseModel):
    """The tags to set or add."""

    tags: list[str] = Field(max_length=64)


class UsageOut(BaseModel):
    """Counts and bytes of the store, a spec or a type."""

    artifact_count: int
    version_count: int
    stored_bytes: int
    original_bytes: int
    quota_bytes: int | None
    fraction_used: float | None

    @classmethod
    def of(cls, usage: StorageUsage) -> UsageOut:
        """The API view of ``usage``."""
        return cls.model_validate(usage.to_dict())


class QuotaOut(BaseModel):
    """The store's quota (``max_size_gb: null``: none)."""

    max_size_gb: float | None
    warn_threshold: float


class UsageReport(BaseModel):
    """Usage of the whole store, per spec and per type, and the quota."""

    total: UsageOut
    quota: QuotaOut
    by_spec: dict[str, UsageOut]
    by_type: dict[str, UsageOut]


class HealthOut(BaseModel):
    """``GET /health``."""

    status: Literal["ok"]
    version: str
    backend: str
