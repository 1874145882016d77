"""The NecroCode Agent Runner's protocol, exactly as its ``requests`` client speaks it.

- ``POST /artifacts``: ``multipart/form-data`` with ``file``, ``type`` (``diff``,
  ``log``, ``test``) and ``metadata`` (a JSON string with ``spec_name``,
  ``task_id`` and any extra keys, kept as custom metadata) -> ``{"uri": ...}``
  plus the version's metadata. The same bytes again (a retry) store nothing
  and return the existing version's URI; ``?force=true`` stores a new version.
- ``GET <uri>`` -> the bytes; ``GET /artifacts/metadata?uri=<uri>`` -> the metadata.
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from ..exceptions import InvalidInputError
from ..models import ArtifactMetadata, ArtifactType, utc_now
from ..naming import ArtifactKey
from .auth import Principal, requires
from .deps import base_of, known_bases, settings_of, store_of
from .errors import ApiError
from .links import key_from_url
from .multipart import MultipartUpload, boundary_of
from .responses import serve_artifact
from .schemas import BYTES_RESPONSES, ArtifactOut, ErrorBody, Responses
from .transfer import body_chunks, check_declared_size, guard_disconnect, run_store, small_body

__all__ = ["router"]

router = APIRouter(tags=["agent runner"])

_UNCHANGED: Responses = {
    200: {"model": ArtifactOut, "description": "unchanged: the existing version"}
}
_ERRORS: Responses = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 413, 422, 503, 507)
}


def _runner_metadata(text: str | None) -> tuple[str, str, dict[str, Any]]:
    """``spec_name``, ``task_id`` and the extra keys of the ``metadata`` field."""
    if text is None:
        raise InvalidInputError("missing form field 'metadata' (a JSON object as a string)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"form field 'metadata' is not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise InvalidInputError("form field 'metadata' must be a JSON object")
    extra = dict(data)
    spec, task = extra.pop("spec_name", None), extra.pop("task_id", None)
    for name, value in (("spec_name", spec), ("task_id", task)):
        if not isinstance(value, str):
            raise InvalidInputError(f"metadata.{name} is required and must be a string")
    return spec, task, extra


@router.post(
    "/artifacts",
    status_code=201,
    response_model=ArtifactOut,
    responses=_UNCHANGED | _ERRORS,
    summary="Upload an artifact (multipart form: file, type, metadata)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "type", "metadata"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "type": {"type": "string", "enum": [t.value for t in ArtifactType]},
                            "metadata": {
                                "type": "string",
                                "description": "JSON object: spec_name, task_id, extra keys",
                            },
                        },
                    }
                }
            },
        }
    },
)
async def upload_form(
    request: Request,
    _: Annotated[Principal, Depends(requires("write"))],
    force: Annotated[bool, Query(description="store a new version even if unchanged")] = False,
) -> Response:
    """Store the form's ``file`` as the ``type`` artifact of ``metadata``'s spec and task."""
    settings = settings_of(request)
    check_declared_size(request, settings)
    boundary = boundary_of(request.headers.get("content-type"))
    store = store_of(request)
    whole = await small_body(request, settings)

    def work() -> tuple[ArtifactMetadata, bool]:
        body = iter((whole,)) if whole is not None else body_chunks(request, settings)
        form = MultipartUpload(body, boundary)
        try:
            fields = form.fields(("type", "metadata"))
            if "type" not in fields:
                raise InvalidInputError("missing form field 'type' (diff, log or test)")
            spec, task, extra = _runner_metadata(fields.get("metadata"))
            key = ArtifactKey.of(spec, task, fields["type"])
            if not form.has_file():
                raise InvalidInputError("missing form field 'file'")
            started = utc_now()
            meta = store.upload_version(
                key.task_id,
                key.spec_name,
                key.type,
                form.file_chunks(),
                extra,
                if_changed=not force,
            )
            # The file part ended at its boundary and is stored: whatever trails it
            # is read for the connection's sake, and a mistake there changes nothing.
            with contextlib.suppress(ApiError):
                form.finish()
        finally:
            form.close()
        # An unchanged upload returns the version stored before this request began.
        return meta, meta.created_at < started

    meta, unchanged = await guard_disconnect(work)
    body = ArtifactOut.of(meta, base_of(request))
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if unchanged else 201)


@router.get(
    "/artifacts/metadata",
    response_model=ArtifactOut,
    responses=_ERRORS,
    summary="The metadata of the artifact version a returned URI names",
)
async def metadata_of_uri(
    request: Request,
    _: Annotated[Principal, Depends(requires("read"))],
    uri: Annotated[str, Query(description="a URI this service returned", max_length=4096)],
) -> ArtifactOut:
    """The version's metadata, including its custom (extra) keys."""
    key, version = key_from_url(uri, known_bases(request))
    store = store_of(request)
    meta = await run_store(lambda: store.get_metadata(key.uri(store.root_uri, version)))
    return ArtifactOut.of(meta, base_of(request))


@router.get(
    "/artifacts/{spec_name}/{task_id}/{artifact_type}",
    responses=BYTES_RESPONSES | _ERRORS,
    response_class=Response,
    summary="The bytes of an artifact (the latest version, or ?version=N)",
)
@router.head(
    "/artifacts/{spec_name}/{task_id}/{artifact_type}",
    responses=BYTES_RESPONSES | _ERRORS,
    response_class=Response,
    summary="Headers only: The bytes of an artifact (the latest version, or ?version=N)",
    operation_id="artifact_bytes_head",
    include_in_schema=True,
)
async def artifact_bytes(
    request: Request,
    _: Annotated[Principal, Depends(requires("read"))],
    spec_name: str,
    task_id: str,
    artifact_type: ArtifactType,
    version: Annotated[int | None, Query(ge=1, le=2**31)] = None,
) -> Response:
    """Raw bytes (``Range``, ``ETag``/``If-None-Match`` honoured), or a browser's page."""
    key = ArtifactKey.of(spec_name, task_id, artifact_type)
    return await serve_artifact(request, key, version)
