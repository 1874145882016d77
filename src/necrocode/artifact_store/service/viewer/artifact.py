"""The artifact page (what a reviewer sees behind a link): one version, by its type.

Diffs go to the diff viewer, test results to the test-result viewer, logs (and
anything that does not parse as what its type promises) to the log viewer.
Around each: breadcrumbs, raw/download/permalink buttons, the version picker
and the metadata panel.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ...models import ArtifactMetadata, ArtifactType
from .core import Page, page_href
from .diff_page import diff_context
from .log_page import log_context
from .state import Viewer
from .test_page import test_context

__all__ = ["artifact_page", "versions_context"]


def versions_context(
    viewer: Viewer, request: Request, meta: ArtifactMetadata
) -> list[dict[str, Any]]:
    """Every version of the artifact, oldest first, with view and compare links."""
    versions = viewer.store.get_all_versions(meta.version_uri)
    rows = []
    previous: ArtifactMetadata | None = None
    for version in versions:
        summary = viewer.summary(request, version)
        rows.append(
            {
                "version": version.version,
                "created_at": version.created_at.isoformat(),
                "size": version.original_size,
                "checksum": version.checksum,
                "href": summary["href"],
                "current": version.version == meta.version,
                "compare_href": (
                    f"{summary['task_href']}/{version.type.value}/compare"
                    f"?from={previous.version}&to={version.version}"
                    if previous is not None
                    else None
                ),
            }
        )
        previous = version
    return rows


def artifact_page(viewer: Viewer, request: Request, meta: ArtifactMetadata) -> Page:
    """The page of one artifact version."""
    principal = viewer.principal(request)
    summary = viewer.summary(request, meta)
    context: dict[str, Any] = {
        "page": "artifact",
        "title": f"{meta.type.value} · {meta.task_id} · {meta.spec_name}",
        "breadcrumbs": [
            {"label": meta.spec_name, "href": summary["spec_href"]},
            {"label": meta.task_id, "href": summary["task_href"]},
            {"label": f"{summary['type_label']} v{meta.version}", "href": summary["href"]},
        ],
        "principal": viewer.principal_context(principal),
        "artifact": summary,
        # The artifact URL itself answers non-browsers with the bytes: the twin is here.
        "json_href": page_href(
            f"{summary['task_href']}/{meta.type.value}",
            {**request.query_params, "version": meta.version, "format": "json"},
        ),
        "versions": versions_context(viewer, request, meta),
        "kind": "log",
        "diff": None,
        "test": None,
        "log": None,
    }
    if meta.type is ArtifactType.DIFF:
        context["kind"] = "diff"
        context["diff"] = diff_context(viewer, request, meta)
    elif meta.type is ArtifactType.TEST_RESULT:
        test = test_context(viewer, meta)
        context["test"] = test
        if test["report"] is not None:
            context["kind"] = "test"
    if context["kind"] == "log":
        context["log"] = log_context(viewer, request, meta)
    return Page("artifact.html", context)
