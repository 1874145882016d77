"""Pydantic models of the JSON the service sends: they document the OpenAPI schema.

Each is filled from the library's own serialisation (``ArtifactMetadata.to_dict``,
``StorageUsage.to_dict``, the reports' ``to_dict``), never field by field, so
the API shows what the records say. Only the ``uri`` differs: the service's
URL of the version instead of the store's internal URI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..models import StorageUsage
from ..naming import ArtifactKey
from ..record import ArtifactMetadata, api_fields
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


def _artifact_fields() -> dict[str, Any]:
    """The fields of :class:`ArtifactOut`: the record's public layout, then the URLs."""
    fields: dict[str, Any] = {}
    for key, kind, options in api_fields():
        fields[key] = (kind, Field(**options))
        if key == "type":
            fields["artifact_type"] = (kind, Field(description="the same as type"))
    fields["uri"] = (str, Field(description="URL of exactly this version (GET returns its bytes)"))
    fields["artifact_uri"] = (str, Field(description="URL of the artifact's latest version"))
    return fields


class _ArtifactOutBase(BaseModel):
    """One artifact version, as its metadata record says, with the service's URLs.

    The fields come from :class:`~necrocode.artifact_store.record.ArtifactMetadata`
    (see :func:`~necrocode.artifact_store.record.api_fields`): a field added to the
    record appears here, documented, without an edit.
    """

    model_config = ConfigDict(extra="forbid")

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
        return ArtifactOut.model_validate(record)


if TYPE_CHECKING:  # a model made at run time: type checkers see its base
    ArtifactOut = _ArtifactOutBase
else:
    ArtifactOut = create_model(
        "ArtifactOut",
        __base__=_ArtifactOutBase,
        __doc__=_ArtifactOutBase.__doc__,
        __module__=__name__,
        **_artifact_fields(),
    )


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
