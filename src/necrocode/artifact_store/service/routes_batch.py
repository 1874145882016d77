"""REST v1 ``POST /v1/batch``: several small artifacts in one request, one shared commit.

The body is a JSON manifest whose items carry their bytes in base64 (a task's
diff, log and test result are kilobytes); the store's ``upload_many`` stores
them together, each all-or-nothing on its own. The answer is 200 with one
result per item, in order: ``status`` 201 (stored), 200 (unchanged: the latest
version already had these bytes) or the status the item's error would have on
its own ``PUT`` (422 for a bad name, 507 for the quota...), with the usual
``{"code", "message"}`` error. A malformed manifest as a whole is a 422 and
stores nothing. The Agent Runner protocol (``POST /artifacts``) is unchanged.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ..exceptions import ArtifactStoreError, InvalidInputError
from ..models import ArtifactType, utc_now
from ..pipeline.batch import UploadItem, UploadResult
from .auth import Principal, requires
from .deps import base_of, settings_of, store_of
from .errors import status_for
from .schemas import ArtifactOut, ErrorBody, ErrorDetail, Responses
from .transfer import check_declared_size, guard_disconnect, too_large

__all__ = ["MAX_BATCH_ITEMS", "BatchIn", "BatchItemIn", "BatchOut", "BatchResultOut", "router"]

router = APIRouter(prefix="/v1", tags=["artifacts"])

#: Items one request may carry.
MAX_BATCH_ITEMS = 100
_ERRORS: Responses = {status: {"model": ErrorBody} for status in (400, 401, 403, 413, 422)}


class BatchItemIn(BaseModel):
    """One artifact of a batch: its name, its bytes (base64) and ``PUT``'s options."""

    model_config = ConfigDict(extra="forbid")

    spec_name: str
    task_id: str
    artifact_type: ArtifactType
    content_base64: str = Field(description="the artifact's bytes, base64 (RFC 4648)")
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = Field(default=None, description="custom metadata")
    mime_type: str | None = None
    retention_days: int | None = Field(default=None, ge=0, le=36500)
    if_absent: bool = Field(default=False, description="create only (412 if it exists)")
    force: bool = Field(default=False, description="store a new version even if unchanged")


class BatchIn(BaseModel):
    """The manifest of ``POST /v1/batch``."""

    model_config = ConfigDict(extra="forbid")

    items: list[BatchItemIn] = Field(max_length=MAX_BATCH_ITEMS)


class BatchResultOut(BaseModel):
    """What became of one item: ``artifact`` when stored, else ``error``."""

    index: int
    status: int = Field(description="201 stored, 200 unchanged, else the item's error status")
    artifact: ArtifactOut | None = None
    error: ErrorDetail | None = None


class BatchOut(BaseModel):
    """One result per item, in the order of the manifest."""

    results: list[BatchResultOut]


def _decoded(item: BatchItemIn) -> bytes | InvalidInputError:
    try:
        return base64.b64decode(item.content_base64, validate=True)
    except (binascii.Error, ValueError):
        return InvalidInputError(
            f"content_base64 of {item.spec_name}/{item.task_id}/{item.artifact_type.value}"
            " is not valid base64"
        )


def _upload_item(item: BatchItemIn, content: bytes) -> UploadItem:
    return UploadItem(
        item.task_id,
        item.spec_name,
        item.artifact_type,
        content,
        metadata=item.metadata,
        mime_type=item.mime_type,
        tags=tuple(item.tags),
        retention_days=item.retention_days,
        if_changed=not item.force,
        if_absent=item.if_absent,
    )


def _error_result(index: int, exc: Exception) -> BatchResultOut:
    if isinstance(exc, ArtifactStoreError):
        status, code = status_for(exc)
        message = exc.message
    else:  # the item's own content failed; not a store fault (cannot happen for bytes)
        status, code, message = 400, "bad_request", str(exc)
    return BatchResultOut(index=index, status=status, error=ErrorDetail(code=code, message=message))


@router.post(
    "/batch",
    response_model=BatchOut,
    responses=_ERRORS,
    summary="Upload several artifacts in one request (one shared commit)",
)
async def upload_batch(
    request: Request,
    _: Annotated[Principal, Depends(requires("write"))],
    batch: BatchIn,
) -> BatchOut:
    """Store every item of the manifest with one ``upload_many``; one result per item."""
    settings = settings_of(request)
    check_declared_size(request, settings)
    decoded = [_decoded(item) for item in batch.items]
    if sum(len(d) for d in decoded if isinstance(d, bytes)) > settings.max_upload_size:
        raise too_large(settings.max_upload_size)
    store = store_of(request)
    items = [
        (i, _upload_item(batch.items[i], d)) for i, d in enumerate(decoded) if isinstance(d, bytes)
    ]

    def work() -> tuple[list[UploadResult], Any]:
        started = utc_now()
        return store.upload_many([item for _, item in items]), started

    stored, started = await guard_disconnect(work)
    base = base_of(request)
    results: list[BatchResultOut] = []
    by_index = {index: result for (index, _), result in zip(items, stored, strict=True)}
    for index, content in enumerate(decoded):
        if isinstance(content, InvalidInputError):
            results.append(_error_result(index, content))
            continue
        result = by_index[index]
        if result.error is not None:
            results.append(_error_result(index, result.error))
            continue
        meta = result.unwrap()
        status = 200 if meta.created_at < started else 201
        results.append(
            BatchResultOut(index=index, status=status, artifact=ArtifactOut.of(meta, base))
        )
    return BatchOut(results=results)
