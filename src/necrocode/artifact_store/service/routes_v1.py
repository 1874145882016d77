"""REST v1: ``/v1/artifacts/{spec}/{task}/{type}`` and the keyset-paginated listing.

Uploads (``PUT``) stream the body into the store; ``If-None-Match: *`` makes
one create-only (412 when the artifact exists). Like the Agent Runner's
``POST``, re-uploading the latest version's bytes stores nothing unless
``?force=true``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from ..artifact_store import ArtifactStore
from ..exceptions import InvalidInputError
from ..models import ArtifactMetadata, ArtifactType, format_time, parse_time, utc_now
from ..naming import ArtifactKey
from .auth import Principal, requires
from .deps import base_of, settings_of, store_of
from .responses import serve_artifact
from .schemas import (
    BYTES_RESPONSES,
    ArtifactOut,
    ArtifactPage,
    DeleteResult,
    ErrorBody,
    Responses,
    TagsIn,
    VersionList,
)
from .transfer import body_chunks, check_declared_size, guard_disconnect, run_store, small_body

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["artifacts"])

ARTIFACT = "/artifacts/{spec_name}/{task_id}/{artifact_type}"
MAX_PAGE = 1000
MAX_VERSION = 2**31
_UNCHANGED: Responses = {
    200: {"model": ArtifactOut, "description": "unchanged: the existing version"}
}
_ERRORS: Responses = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 412, 413, 422, 503, 507)
}

Version = Annotated[int | None, Query(ge=1, le=MAX_VERSION, description="one version")]


def _key(spec_name: str, task_id: str, artifact_type: ArtifactType) -> ArtifactKey:
    return ArtifactKey.of(spec_name, task_id, artifact_type)


@dataclass(frozen=True, slots=True)
class Target:
    """The artifact a route's path names (and the version its ``?version=`` names),
    in the store of the request."""

    store: ArtifactStore
    key: ArtifactKey
    base: str
    version: int | None = None

    @property
    def uri(self) -> str:
        return self.key.uri(self.store.root_uri, self.version)


def _artifact(
    request: Request, spec_name: str, task_id: str, artifact_type: ArtifactType
) -> Target:
    return Target(store_of(request), _key(spec_name, task_id, artifact_type), base_of(request))


def _version(target: Annotated[Target, Depends(_artifact)], version: Version = None) -> Target:
    return dataclasses.replace(target, version=version)


#: A route's artifact, from its path.
Artifact = Annotated[Target, Depends(_artifact)]
#: A route's artifact and ``?version=N`` (``None``: the latest).
Addressed = Annotated[Target, Depends(_version)]


def _custom_metadata(text: str | None, source: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{source} is not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{source} must be a JSON object")
    return data


@router.put(
    ARTIFACT,
    status_code=201,
    response_model=ArtifactOut,
    responses=_UNCHANGED | _ERRORS,
    summary="Upload (streamed body) a new version of an artifact",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_artifact(
    request: Request,
    _: Annotated[Principal, Depends(requires("write"))],
    spec_name: str,
    task_id: str,
    artifact_type: ArtifactType,
    tag: Annotated[list[str] | None, Query(description="a tag (repeatable)")] = None,
    retention_days: Annotated[int | None, Query(ge=0, le=36500)] = None,
    metadata: Annotated[str | None, Query(description="custom metadata, a JSON object")] = None,
    force: Annotated[bool, Query(description="store a new version even if unchanged")] = False,
    x_artifact_metadata: Annotated[
        str | None, Header(description="custom metadata, a JSON object")
    ] = None,
    if_none_match: Annotated[
        str | None, Header(description="'*': create only (412 if it exists)")
    ] = None,
) -> Response:
    """Stream the body into the store; ``Content-Type`` becomes the mime type."""
    key = _key(spec_name, task_id, artifact_type)
    settings = settings_of(request)
    check_declared_size(request, settings)
    custom = _custom_metadata(x_artifact_metadata, "the X-Artifact-Metadata header")
    if metadata is not None:
        custom = _custom_metadata(metadata, "the metadata parameter")
    content_type = request.headers.get("content-type")
    mime = None if content_type in (None, "", "application/octet-stream") else content_type
    create_only = if_none_match is not None and if_none_match.strip() == "*"
    store = store_of(request)
    whole = await small_body(request, settings)

    def work() -> tuple[ArtifactMetadata, bool]:
        started = utc_now()
        meta = store.upload_version(
            key.task_id,
            key.spec_name,
            key.type,
            whole if whole is not None else body_chunks(request, settings),
            custom,
            mime,
            tags=tag,
            retention_days=retention_days,
            if_changed=not force,
            if_absent=create_only,
        )
        # An unchanged upload returns the version stored before this request began.
        return meta, meta.created_at < started

    meta, unchanged = await guard_disconnect(work)
    body = ArtifactOut.of(meta, base_of(request))
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if unchanged else 201)


@router.get(
    ARTIFACT,
    response_class=Response,
    responses=BYTES_RESPONSES | _ERRORS,
    summary="The bytes of an artifact (Range, ETag and If-None-Match honoured)",
)
@router.head(
    ARTIFACT,
    response_class=Response,
    responses=BYTES_RESPONSES | _ERRORS,
    summary="Headers only: The bytes of an artifact (Range, ETag and If-None-Match honoured)",
    operation_id="get_artifact_head",
    include_in_schema=True,
)
async def get_artifact(
    request: Request,
    _: Annotated[Principal, Depends(requires("read"))],
    target: Addressed,
) -> Response:
    """Streamed bytes of the latest version or of ``?version=N``."""
    return await serve_artifact(request, target.key, target.version)


@router.delete(ARTIFACT, response_model=DeleteResult, responses=_ERRORS, summary="Delete")
async def delete_artifact(
    _: Annotated[Principal, Depends(requires("admin"))],
    target: Addressed,
) -> DeleteResult:
    """Delete every version, or only ``?version=N``."""
    return DeleteResult(deleted=await run_store(lambda: target.store.delete(target.uri)))


@router.get(ARTIFACT + "/metadata", response_model=ArtifactOut, responses=_ERRORS)
async def get_metadata(
    _: Annotated[Principal, Depends(requires("read"))],
    target: Addressed,
) -> ArtifactOut:
    """The metadata of the latest version, or of ``?version=N``."""
    return ArtifactOut.of(
        await run_store(lambda: target.store.get_metadata(target.uri)), target.base
    )


@router.get(ARTIFACT + "/versions", response_model=VersionList, responses=_ERRORS)
async def get_versions(
    _: Annotated[Principal, Depends(requires("read"))],
    target: Artifact,
) -> VersionList:
    """Every stored version, oldest first."""
    versions = await run_store(lambda: target.store.get_all_versions(target.uri))
    return VersionList(items=[ArtifactOut.of(meta, target.base) for meta in versions])


async def _tags(target: Target, change: str, tags: list[str]) -> ArtifactOut:
    store = target.store
    method = {"set": store.update_tags, "add": store.add_tags, "remove": store.remove_tags}[change]
    return ArtifactOut.of(await run_store(lambda: method(target.uri, tags)), target.base)


@router.put(ARTIFACT + "/tags", response_model=ArtifactOut, responses=_ERRORS)
async def set_tags(
    _: Annotated[Principal, Depends(requires("write"))],
    target: Addressed,
    body: TagsIn,
) -> ArtifactOut:
    """Replace the tags."""
    return await _tags(target, "set", body.tags)


@router.post(ARTIFACT + "/tags", response_model=ArtifactOut, responses=_ERRORS)
async def add_tags(
    _: Annotated[Principal, Depends(requires("write"))],
    target: Addressed,
    body: TagsIn,
) -> ArtifactOut:
    """Add tags (those present stay once)."""
    return await _tags(target, "add", body.tags)


@router.delete(ARTIFACT + "/tags", response_model=ArtifactOut, responses=_ERRORS)
async def remove_tags(
    _: Annotated[Principal, Depends(requires("write"))],
    target: Addressed,
    tag: Annotated[list[str], Query(min_length=1, description="a tag to remove (repeatable)")],
) -> ArtifactOut:
    """Remove the given tags (absent ones are ignored)."""
    return await _tags(target, "remove", tag)


@router.put(ARTIFACT + "/pin", response_model=ArtifactOut, responses=_ERRORS)
async def pin(
    _: Annotated[Principal, Depends(requires("write"))],
    target: Addressed,
) -> ArtifactOut:
    """Keep the artifact (or version) forever: cleanup never deletes it."""
    return ArtifactOut.of(await run_store(lambda: target.store.pin(target.uri)), target.base)


@router.delete(ARTIFACT + "/pin", response_model=ArtifactOut, responses=_ERRORS)
async def unpin(
    _: Annotated[Principal, Depends(requires("write"))],
    target: Addressed,
) -> ArtifactOut:
    """Let the retention policy apply again."""
    return ArtifactOut.of(await run_store(lambda: target.store.unpin(target.uri)), target.base)


# -- listing --------------------------------------------------------------------------

SortKey = tuple[datetime, str, str, str, int]


def _sort_key(meta: ArtifactMetadata) -> SortKey:
    """The order of the index's search: time, then the key (ties are broken, so total)."""
    return (meta.created_at, meta.spec_name, meta.task_id, meta.type.value, meta.version)


def encode_cursor(meta: ArtifactMetadata) -> str:
    """An opaque cursor just after ``meta`` in the listing order."""
    created, spec, task, kind, version = _sort_key(meta)
    raw = json.dumps([format_time(created), spec, task, kind, version], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    """The position a cursor names; ``InvalidInputError`` for anything not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, spec, task, kind, version = json.loads(raw)
        if not all(isinstance(v, str) for v in (created, spec, task, kind)):
            raise TypeError("cursor fields")
        if type(version) is not int:
            raise TypeError("cursor version")
        return (parse_time(created), spec, task, kind, version)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise InvalidInputError(
            f"invalid cursor {cursor[:80]!r}: pass back a next_cursor"
        ) from None


CONTENT_FILTERS = ("failed", "test", "touches", "has_errors")


def list_page(
    store: ArtifactStore,
    *,
    limit: int,
    cursor: str | None,
    order: str | None = None,
    **filters: Any,
) -> tuple[list[ArtifactMetadata], str | None]:
    """One page of the artifacts ``filters`` match, after ``cursor``.

    Keyset pagination over the index's order (created_at, then the key): each
    page is a search from the cursor's time on, minus the rows at or before the
    cursor. Artifacts uploaded meanwhile come later in that order, so the pages
    of what existed when the listing started have no gaps and no duplicates.
    ``order`` is the store's: ``"oldest"`` or ``"newest"`` first (by default
    newest first with a content filter, as ``ArtifactStore.search``); newest
    first, the pages walk back in time from the cursor instead.
    """
    after = decode_cursor(cursor) if cursor is not None else None
    for name in ("created_after", "created_before"):
        moment = filters.get(name)
        if moment is not None and moment.tzinfo is None:
            raise InvalidInputError(f"{name} must carry a timezone (e.g. 2026-11-29T10:00:00Z)")
    if order is None:
        content = any(filters.get(name) not in (None, False) for name in CONTENT_FILTERS)
        order = "newest" if content else "oldest"
    newest = order == "newest"
    if after is not None:
        if newest:  # created_before is exclusive: just past the cursor's time
            bound = after[0] + timedelta(microseconds=1)
            if filters.get("created_before") is None or filters["created_before"] > bound:
                filters["created_before"] = bound
        elif filters.get("created_after") is None or filters["created_after"] < after[0]:
            filters["created_after"] = after[0]
    room = 0
    while True:
        fetch = limit + 1 + room
        rows = store.search(limit=fetch, order=order, **filters)
        if after is None:
            kept = rows
        elif newest:
            kept = [m for m in rows if _sort_key(m) < after]
        else:
            kept = [m for m in rows if _sort_key(m) > after]
        if len(kept) > limit or len(rows) < fetch:
            break
        room = room * 2 + 64  # rows at the cursor's very timestamp took the room
    page = kept[:limit]
    return page, encode_cursor(page[-1]) if len(kept) > limit else None


@router.get("/artifacts", response_model=ArtifactPage, responses=_ERRORS, summary="List")
async def list_artifacts(
    request: Request,
    _: Annotated[Principal, Depends(requires("read"))],
    spec_name: str | None = None,
    task_id: str | None = None,
    artifact_type: ArtifactType | None = None,
    tag: Annotated[list[str] | None, Query(description="a tag (repeatable)")] = None,
    match: Literal["all", "any"] = "all",
    created_after: Annotated[datetime | None, Query(description="inclusive, with timezone")] = None,
    created_before: Annotated[
        datetime | None, Query(description="exclusive, with timezone")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    failed: Annotated[bool | None, Query(description="test reports with failures")] = None,
    test: Annotated[
        str | None, Query(max_length=512, description="a substring of a failing test id")
    ] = None,
    touches: Annotated[
        str | None, Query(max_length=512, description="a glob over a diff's changed paths")
    ] = None,
    has_errors: Annotated[
        bool | None, Query(description="logs with errors, reports with failures")
    ] = None,
    order: Annotated[
        Literal["oldest", "newest"] | None,
        Query(description="default: oldest, newest with a content filter"),
    ] = None,
) -> ArtifactPage:
    """Latest versions matching every filter, ``limit`` at a time (content filters:
    docs/insights.md)."""
    store = store_of(request)
    page, next_cursor = await run_store(
        lambda: list_page(
            store,
            limit=limit,
            cursor=cursor,
            task_id=task_id,
            spec_name=spec_name,
            artifact_type=artifact_type,
            created_after=created_after,
            created_before=created_before,
            tags=tag,
            match=match,
            failed=failed,
            test=test,
            touches=touches,
            has_errors=has_errors,
            order=order,
        )
    )
    base = base_of(request)
    return ArtifactPage(items=[ArtifactOut.of(m, base) for m in page], next_cursor=next_cursor)
