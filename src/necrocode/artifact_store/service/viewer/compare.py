"""Compare two versions of an artifact: a unified diff of their text.

For test results, the cases whose status changed are listed above the diff
(newly failing first). Versions larger than :data:`MAX_COMPARE_BYTES` are not
compared in the page (download both instead).
"""

from __future__ import annotations

import difflib
from typing import Any

from fastapi import Request

from ...content.diff import parse_diff
from ...content.testreport import parse_test_report
from ...exceptions import ContentParseError, InvalidInputError
from ...models import ArtifactMetadata, ArtifactType
from .core import Page
from .diff_page import files_context
from .state import Viewer
from .test_page import STATUS_ORDER

__all__ = ["MAX_COMPARE_BYTES", "compare_page"]

MAX_COMPARE_BYTES = 16 * 1024 * 1024


def _version(request: Request, name: str) -> int:
    text = request.query_params.get(name, "")
    if not text.isdigit() or not 1 <= int(text) <= 2**31:
        raise InvalidInputError(f"{name} must be a version number, got {text!r}")
    return int(text)


def _status_changes(old: bytes, new: bytes) -> list[dict[str, Any]] | None:
    try:
        before = parse_test_report(old)
        after = parse_test_report(new)
    except ContentParseError:
        return None
    was = {case.id: case.status for case in before.cases}
    changes = []
    for case in after.cases:
        previous = was.pop(case.id, None)
        if previous != case.status:
            changes.append({"id": case.id, "before": previous, "after": case.status})
    changes.extend({"id": gone, "before": status, "after": None} for gone, status in was.items())
    changes.sort(key=lambda c: (STATUS_ORDER.get(c["after"] or "", 9), c["id"]))
    return changes


def compare_page(viewer: Viewer, request: Request, spec: str, task: str, kind: str) -> Page:
    """``?from=A&to=B``: what changed between two versions of one artifact."""
    principal = viewer.principal(request)
    first, second = _version(request, "from"), _version(request, "to")
    old: ArtifactMetadata = viewer.meta_of(spec, task, kind, first)
    new: ArtifactMetadata = viewer.meta_of(spec, task, kind, second)
    too_big = max(old.original_size, new.original_size) > MAX_COMPARE_BYTES
    diff: dict[str, Any] | None = None
    changes = None
    if not too_big:
        old_bytes = viewer.store.download(old.version_uri)
        new_bytes = viewer.store.download(new.version_uri)
        if new.type is ArtifactType.TEST_RESULT:
            changes = _status_changes(old_bytes, new_bytes)
        lines = difflib.unified_diff(
            old_bytes.decode("utf-8", "replace").splitlines(),
            new_bytes.decode("utf-8", "replace").splitlines(),
            fromfile=f"a/v{old.version}/{new.type.filename}",
            tofile=f"b/v{new.version}/{new.type.filename}",
            lineterm="",
        )
        layout = request.query_params.get("layout") or "unified"
        if layout not in ("unified", "split"):
            raise InvalidInputError(f"layout must be 'unified' or 'split', got {layout!r}")
        diff = files_context(parse_diff(lines), split=layout == "split")
        diff.update({"layout": layout, "only": None})
    old_summary = viewer.summary(request, old)
    new_summary = viewer.summary(request, new)
    context = {
        "page": "compare",
        "title": f"{new.type.value} v{old.version} → v{new.version} · {task}",
        "breadcrumbs": [
            {"label": spec, "href": new_summary["spec_href"]},
            {"label": task, "href": new_summary["task_href"]},
            {"label": f"{new_summary['type_label']} v{old.version} → v{new.version}", "href": None},
        ],
        "principal": viewer.principal_context(principal),
        "old": old_summary,
        "new": new_summary,
        "artifact": new_summary,
        "too_big": too_big,
        "diff": diff,
        "status_changes": changes,
        "compare_base": f"{new_summary['task_href']}/{new.type.value}/compare",
    }
    return Page("compare.html", context)
