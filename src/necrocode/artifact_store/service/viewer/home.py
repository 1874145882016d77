"""Home page ``/``: every spec at a glance, usage by spec and by type, the quota."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ...models import ArtifactMetadata, ArtifactType, StorageUsage
from .charts import bar_chart
from .core import Page, human_bytes, spec_href
from .state import Viewer

__all__ = ["home_page", "test_status"]


def test_status(meta: ArtifactMetadata | None) -> str:
    """``pass``/``fail``/``unknown`` of a test artifact: the runner's ``success`` key,
    else the content summary the store made of the report at upload."""
    if meta is None:
        return "none"
    success = meta.metadata.get("success")
    if (
        not isinstance(success, bool)
        and meta.summary is not None
        and meta.summary.failed is not None
    ):
        success = not meta.summary.failed  # what the store read in the report itself
    if success is True:
        return "pass"
    if success is False:
        return "fail"
    return "unknown"


def _usage(usage: StorageUsage, warn: float) -> dict[str, Any]:
    data = usage.to_dict()
    fraction = usage.fraction_used
    data["warn_threshold"] = warn
    data["state"] = (
        "none"
        if fraction is None
        else "over"
        if fraction >= 1
        else "warn"
        if fraction >= warn
        else "ok"
    )
    data["stored_human"] = human_bytes(usage.stored_bytes)
    data["original_human"] = human_bytes(usage.original_bytes)
    data["quota_human"] = human_bytes(usage.quota_bytes) if usage.quota_bytes else None
    return data


def home_page(viewer: Viewer, request: Request) -> Page:
    """Specs with counts, last activity and test status; usage charts; the quota bar."""
    principal = viewer.principal(request)
    store = viewer.store
    specs: dict[str, dict[str, Any]] = {}
    tasks_seen: dict[str, set[str]] = {}
    for meta in store.search():
        row = specs.setdefault(
            meta.spec_name,
            {
                "name": meta.spec_name,
                "href": spec_href(meta.spec_name),
                "artifacts": 0,
                "tasks": 0,
                "last_activity": None,
                "tests": {"pass": 0, "fail": 0, "unknown": 0},
                "size": 0,
            },
        )
        row["artifacts"] += 1
        row["size"] += meta.original_size
        created = meta.created_at.isoformat()
        if row["last_activity"] is None or created > row["last_activity"]:
            row["last_activity"] = created
        tasks_seen.setdefault(meta.spec_name, set()).add(meta.task_id)
        if meta.type is ArtifactType.TEST_RESULT:
            row["tests"][test_status(meta)] += 1
    for name, tasks in tasks_seen.items():
        specs[name]["tasks"] = len(tasks)
    rows = sorted(specs.values(), key=lambda r: r["last_activity"] or "", reverse=True)
    by_spec = store.get_usage_by_spec()
    by_type = store.get_usage_by_type()
    context = {
        "page": "home",
        "title": "Artifacts",
        "breadcrumbs": [],
        "principal": viewer.principal_context(principal),
        "specs": rows,
        "usage": _usage(store.get_storage_usage(), viewer.warn_threshold),
        "charts": {
            "by_spec": bar_chart(
                [
                    (name, u.stored_bytes, human_bytes(u.stored_bytes))
                    for name, u in by_spec.items()
                ],
                limit=12,
            ),
            "by_type": bar_chart(
                [(name, u.stored_bytes, human_bytes(u.stored_bytes)) for name, u in by_type.items()]
            ),
        },
    }
    return Page("home.html", context)
