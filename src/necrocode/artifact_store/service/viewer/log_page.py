"""The log viewer: the page, and the lines / info / search endpoints its script calls.

The page carries only the log's head (read straight from the store); the script
asks for other ranges as the reader scrolls or jumps, and keeps only what is on
screen in the DOM. Anything past the head is served from the spool
(:mod:`.logspool`), started in the background when the page opens.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ...exceptions import InvalidInputError
from ...models import ArtifactMetadata
from .core import artifact_api_href
from .loglines import head_lines
from .logscan import log_info, styled_lines
from .state import Viewer

__all__ = ["HEAD_LINES", "MAX_RANGE", "log_context", "log_info_data", "log_lines", "log_search"]

#: Lines shown before the script takes over (and in the JSON twin).
HEAD_LINES = 200
#: Most lines one request may ask for.
MAX_RANGE = 2000
#: Most search hits per request.
MAX_HITS = 500


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidInputError(f"{name} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise InvalidInputError(f"{name} must be between {low} and {high}, got {value}")
    return value


def log_context(viewer: Viewer, request: Request, meta: ArtifactMetadata) -> dict[str, Any]:
    """The log part of an artifact page: head lines, endpoints, what is known so far."""
    head, more = head_lines(viewer.store, meta.version_uri, HEAD_LINES)
    ready = viewer.lines.peek(meta)
    if ready is None and more:
        viewer.lines.start(viewer.store, meta)
    info: dict[str, Any]
    if ready is not None:
        info = log_info(ready)
    elif not more:  # the whole log is in the head: nothing to spool
        info = {
            "ready": True,
            "total_lines": len(head),
            "total_bytes": meta.original_size,
            "sections": [],
            "errors": [],
            "warnings": [],
            "error_count": None,
            "warning_count": None,
            "tracebacks": None,
        }
    else:
        info = {"ready": False, "total_bytes": meta.original_size}
    return {
        "head": styled_lines(1, head),
        "head_complete": not more,
        "info": info,
        "view": "tail" if request.query_params.get("view") == "tail" else "head",
        "endpoints": {
            "lines": artifact_api_href(meta, "lines"),
            "info": artifact_api_href(meta, "info"),
            "search": artifact_api_href(meta, "search"),
        },
        "max_range": MAX_RANGE,
    }


def log_lines(viewer: Viewer, request: Request, meta: ArtifactMetadata) -> dict[str, Any]:
    """``?start=&count=``: a range of lines (``start`` < 0 counts from the end)."""
    start = _int(request, "start", 1, -(2**62), 2**62)
    count = _int(request, "count", 200, 0, MAX_RANGE)
    index = viewer.lines.get(viewer.store, meta)
    if start < 0:
        start = max(1, index.total_lines + 1 + start)
    start = max(1, start)
    return {
        "start": start,
        "total_lines": index.total_lines,
        "lines": styled_lines(start, index.lines(start, count)),
    }


def log_info_data(viewer: Viewer, request: Request, meta: ArtifactMetadata) -> dict[str, Any]:
    """Line count, sections, errors and warnings; ``?wait=1`` waits for the spool."""
    index = viewer.lines.peek(meta)
    if index is None:
        future = viewer.lines.start(viewer.store, meta)
        if request.query_params.get("wait") != "1":
            return {"ready": False, "total_bytes": meta.original_size}
        index = future.result()
    return log_info(index)


def log_search(viewer: Viewer, request: Request, meta: ArtifactMetadata) -> dict[str, Any]:
    """``?q=&after=&limit=``: lines containing ``q`` (case-insensitive), in order."""
    query = request.query_params.get("q", "")
    if not query or len(query) > 1000 or "\n" in query:
        raise InvalidInputError("q must be 1 to 1000 characters on one line")
    after = _int(request, "after", 0, 0, 2**62)
    limit = _int(request, "limit", 200, 1, MAX_HITS)
    index = viewer.lines.get(viewer.store, meta)
    hits, last = index.search(query, after=after, limit=limit)
    return {
        "q": query,
        "hits": [{"line": hit.line, "text": hit.text} for hit in hits],
        "next_after": last if len(hits) == limit and last < index.total_lines else None,
        "total_lines": index.total_lines,
    }
