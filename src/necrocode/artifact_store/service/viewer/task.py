"""Task page ``/specs/{spec}/tasks/{task}``: its diff, log and test result in tabs."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ...exceptions import ArtifactNotFoundError
from ...models import ArtifactType
from ...naming import validate_name
from .artifact import versions_context
from .core import Page
from .diff_page import diff_context
from .log_page import log_context
from .state import Viewer
from .test_page import test_context

__all__ = ["task_page"]

_ORDER = (ArtifactType.DIFF, ArtifactType.LOG, ArtifactType.TEST_RESULT)


def task_page(viewer: Viewer, request: Request, spec: str, task: str) -> Page:
    """Every artifact of one task, each in its own tab, with its version history."""
    principal = viewer.principal(request)
    validate_name("spec_name", spec)
    validate_name("task_id", task)
    found = {meta.type: meta for meta in viewer.store.search(task_id=task, spec_name=spec)}
    if not found:
        raise ArtifactNotFoundError(f"no artifacts for task {task!r} of spec {spec!r}")
    tabs: list[dict[str, Any]] = []
    # Diff, log, tests first; any other registered type after them.
    for kind in (*_ORDER, *(t for t in ArtifactType if t not in _ORDER)):
        meta = found.get(kind)
        if meta is None:
            continue
        summary = viewer.summary(request, meta)
        tab: dict[str, Any] = {
            "type": kind.value,
            "label": summary["type_label"],
            "id": f"tab-{kind.value}",
            "panel": f"panel-{kind.value}",
            "artifact": summary,
            "versions": versions_context(viewer, request, meta),
            "badge": None,
            "kind": "log",
            "diff": None,
            "test": None,
            "log": None,
        }
        if kind is ArtifactType.DIFF:
            tab["kind"] = "diff"
            tab["diff"] = diff_context(viewer, request, meta)
        elif kind is ArtifactType.TEST_RESULT:
            tab["test"] = test_context(viewer, meta)
            if tab["test"]["report"] is not None:
                tab["kind"] = "test"
                report = tab["test"]["report"]
                tab["badge"] = "pass" if report["success"] else "fail"
        if tab["kind"] == "log" and not any(t["kind"] == "log" for t in tabs):
            tab["log"] = log_context(viewer, request, meta)
        tabs.append(tab)
    title = next((t["artifact"]["title"] for t in tabs if t["artifact"]["title"]), None)
    context = {
        "page": "task",
        "title": f"{task} · {spec}",
        "breadcrumbs": [
            {"label": spec, "href": tabs[0]["artifact"]["spec_href"]},
            {"label": task, "href": tabs[0]["artifact"]["task_href"]},
        ],
        "principal": viewer.principal_context(principal),
        "spec": spec,
        "task": task,
        "task_title": title,
        "tabs": tabs,
    }
    return Page("task.html", context)
