"""The response of ``GET <artifact URL>``: raw bytes, or the viewer's page for a browser.

Content negotiation lives in :func:`wants_html` alone. A viewer registers
itself as ``app.state.viewer`` (see :data:`Viewer`); without one, or when the
client does not prefer HTML, the raw bytes are sent. Responses carry
``Vary: Accept`` either way, so caches keep the two apart.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from ..naming import ArtifactKey
from .deps import base_of, store_of
from .links import (
    INCLUDE_METADATA_HEADER,
    MAX_METADATA_HEADER,
    METADATA_HEADER,
    VERSION_HEADER,
)
from .schemas import ArtifactOut
from .transfer import (
    close_quietly,
    etag_matches,
    etag_of,
    parse_range,
    read_ahead,
    reader_chunks,
    run_store,
)

__all__ = ["Viewer", "serve_artifact", "wants_html"]

#: ``viewer(request, key, version)`` -> the HTML page of that artifact version.
Viewer = Callable[[Request, ArtifactKey, int | None], Awaitable[Response]]


def _quality(accept: str, wanted: str) -> float | None:
    """The q-value ``accept`` gives exactly ``wanted`` (``None`` if not listed)."""
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() != wanted:
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value)
                except ValueError:
                    return 0.0
        return 1.0
    return None


def wants_html(request: Request) -> bool:
    """Whether the client prefers an HTML page to the raw bytes.

    True when ``Accept`` names ``text/html`` explicitly with a q-value at least
    that of ``*/*`` (a browser's navigation); ``*/*`` alone (``requests``,
    curl) or ``?raw=1`` mean the bytes.
    """
    if request.query_params.get("raw") in ("1", "true"):
        return False
    accept = request.headers.get("accept", "")
    html = _quality(accept, "text/html")
    if html is None or html <= 0:
        return False
    anything = _quality(accept, "*/*") or 0.0
    return html >= anything


async def serve_artifact(request: Request, key: ArtifactKey, version: int | None) -> Response:
    """The artifact's bytes (whole, or the requested range), or the viewer's page."""
    viewer: Viewer | None = getattr(request.app.state, "viewer", None)
    if viewer is not None and request.method == "GET" and wants_html(request):
        page = await viewer(request, key, version)
        page.headers["Vary"] = "Accept"
        return page
    store = store_of(request)
    uri = key.uri(store.root_uri, version)
    headers = {"Vary": "Accept", "Accept-Ranges": "bytes"}
    if request.method == "HEAD":
        meta = await run_store(lambda: store.get_metadata(uri))
    else:
        # A range cannot be verified (the hash needs every byte): only its size is.
        verify = False if "range" in request.headers else None
        reader = await run_store(lambda: store.open(uri, verify_checksum=verify))
        meta = reader.metadata
    headers["ETag"] = etag_of(meta)
    headers[VERSION_HEADER] = str(meta.version)
    if request.headers.get(INCLUDE_METADATA_HEADER) == "1":
        # The metadata of exactly the bytes sent, in one answer (RemoteArtifactStore
        # asks for it: a second request could find the version replaced already).
        record = json.dumps(
            ArtifactOut.of(meta, base_of(request)).model_dump(mode="json"),
            ensure_ascii=True,  # header-safe: ASCII, control characters escaped
            separators=(",", ":"),
        )
        if len(record) <= MAX_METADATA_HEADER:
            headers[METADATA_HEADER] = record
    headers["Cache-Control"] = (
        "no-cache" if version is None else "private, max-age=31536000, immutable"
    )
    if request.query_params.get("download") in ("1", "true"):
        headers["Content-Disposition"] = f'attachment; filename="{meta.type.filename}"'
    if etag_matches(request.headers.get("if-none-match"), meta):
        if request.method != "HEAD":
            close_quietly(reader)
        return Response(status_code=304, headers=headers)
    try:
        wanted = parse_range(request.headers.get("range"), meta.original_size)
    except Exception:
        if request.method != "HEAD":
            close_quietly(reader)
        raise
    status, start, length = 200, 0, meta.original_size
    if wanted is not None:
        status, start, length = 206, wanted.first, wanted.length
        headers["Content-Range"] = wanted.content_range()
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=meta.mime_type)
    if wanted is None and "range" in request.headers:
        # The range was ignored: send the whole version, verified after all.
        close_quietly(reader)
        reader = await run_store(lambda: store.open(meta.version_uri))
    chunks = reader_chunks(reader, start, length if wanted is not None else None)
    return StreamingResponse(
        read_ahead(chunks),
        status_code=status,
        headers=headers,
        media_type=meta.mime_type,
        background=BackgroundTask(close_quietly, reader),
    )
