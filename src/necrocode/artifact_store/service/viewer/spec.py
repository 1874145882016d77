"""Spec page ``/specs/{spec}``: its tasks in a sortable, filterable table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request

from ...exceptions import ArtifactNotFoundError, InvalidInputError
from ...models import ArtifactMetadata, ArtifactType
from ...naming import validate_name
from .core import Page, page_href, spec_href, task_href
from .home import test_status
from .state import Viewer

__all__ = ["SORT_KEYS", "parse_day", "spec_page"]

SORT_KEYS = ("task", "title", "size", "tests", "version", "updated")
_TEST_ORDER = {"fail": 0, "unknown": 1, "pass": 2, "none": 3}


def parse_day(name: str, text: str | None, *, end: bool = False) -> datetime | None:
    """``YYYY-MM-DD`` as the start of that UTC day (of the next day when ``end``)."""
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInputError(f"{name} must be a date YYYY-MM-DD, got {text!r}") from None
    return day + timedelta(days=1) if end else day


def _matches(text: str, metas: list[ArtifactMetadata]) -> bool:
    needle = text.casefold()
    for meta in metas:
        haystack = [meta.task_id, *meta.tags, json.dumps(meta.metadata, ensure_ascii=False)]
        if any(needle in part.casefold() for part in haystack):
            return True
    return False


def spec_page(viewer: Viewer, request: Request, spec: str) -> Page:
    """The tasks of ``spec`` with the filters, search and sort of the query string."""
    principal = viewer.principal(request)
    validate_name("spec_name", spec)
    query = request.query_params
    kind = query.get("type") or None
    tag = query.get("tag") or None
    text = (query.get("q") or "").strip()
    after, before = query.get("after") or None, query.get("before") or None
    sort = query.get("sort") or "updated"
    if sort not in SORT_KEYS:
        raise InvalidInputError(f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    direction = query.get("dir") or ("desc" if sort in ("updated", "size", "version") else "asc")
    if direction not in ("asc", "desc"):
        raise InvalidInputError(f"dir must be 'asc' or 'desc', got {direction!r}")
    if kind is not None:
        try:
            kind = ArtifactType.parse(kind).value
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
    found = viewer.store.search(
        spec_name=spec,
        artifact_type=kind,
        tags=[tag] if tag else None,
        created_after=parse_day("after", after),
        created_before=parse_day("before", before, end=True),
    )
    if (
        not found
        and not any((kind, tag, after, before))
        and not viewer.store.search(spec_name=spec, limit=1)
    ):
        raise ArtifactNotFoundError(f"no artifacts for spec {spec!r}")
    # Filters pick the tasks; a picked task is shown with all its artifacts.
    picked = {meta.task_id for meta in found}
    everything = (
        found if not any((kind, tag, after, before)) else viewer.store.search(spec_name=spec)
    )
    by_task: dict[str, list[ArtifactMetadata]] = {}
    for meta in everything:
        if meta.task_id in picked:
            by_task.setdefault(meta.task_id, []).append(meta)
    rows = []
    for task, metas in by_task.items():
        if text and not _matches(text, metas):
            continue
        types = {m.type.value: viewer.summary(request, m)["href"] for m in metas}
        test = next((m for m in metas if m.type is ArtifactType.TEST_RESULT), None)
        title = next((str(m.metadata["title"]) for m in metas if m.metadata.get("title")), "")
        changes = next(
            (m.summary.diff for m in metas if m.summary is not None and m.summary.diff), None
        )
        log = next((m.summary.log for m in metas if m.summary is not None and m.summary.log), None)
        rows.append(
            {
                "task": task,
                "href": task_href(spec, task),
                "title": title,
                "types": [{"type": t, "href": types[t]} for t in sorted(types)],
                "size": sum(m.original_size for m in metas),
                "tests": test_status(test),
                "test_count": test.metadata.get("test_count") if test is not None else None,
                "version": max(m.version for m in metas),
                "updated": max(m.created_at for m in metas).isoformat(),
                "tags": sorted({t for m in metas for t in m.tags}),
                "changes": (
                    None
                    if changes is None
                    else {
                        "files": changes.files_changed,
                        "added": changes.added,
                        "removed": changes.removed,
                    }
                ),
                "log_errors": None if log is None else log.error_lines,
            }
        )
    key = {
        "task": lambda r: _natural(r["task"]),
        "title": lambda r: r["title"].casefold(),
        "size": lambda r: r["size"],
        "tests": lambda r: _TEST_ORDER[r["tests"]],
        "version": lambda r: r["version"],
        "updated": lambda r: r["updated"],
    }[sort]
    rows.sort(key=key, reverse=direction == "desc")
    filters = {"type": kind, "tag": tag, "q": text, "after": after, "before": before}
    base = spec_href(spec)
    columns = []
    for name, label in (
        ("task", "Task"),
        ("title", "Title"),
        ("types", "Artifacts"),
        ("size", "Size"),
        ("tests", "Tests"),
        ("version", "Latest"),
        ("updated", "Last upload"),
    ):
        column: dict[str, Any] = {
            "name": name,
            "label": label,
            "sorted": name == sort,
            "href": None,
            "dir": None,
        }
        if name in SORT_KEYS:
            flip = "asc" if name == sort and direction == "desc" else "desc"
            if name != sort:
                flip = "desc" if name in ("updated", "size", "version") else "asc"
            column["href"] = page_href(base, {**filters, "sort": name, "dir": flip})
            column["dir"] = direction if name == sort else None
        columns.append(column)
    context = {
        "page": "spec",
        "title": spec,
        "breadcrumbs": [{"label": spec, "href": base}],
        "principal": viewer.principal_context(principal),
        "spec": spec,
        "filters": filters,
        "sort": {"key": sort, "dir": direction},
        "columns": columns,
        "types": [t.value for t in ArtifactType],
        "tasks": rows,
        "artifact_count": sum(len(metas) for metas in by_task.values()),
    }
    return Page("spec.html", context)


def _natural(text: str) -> list[tuple[int, int | str]]:
    """Sort ``1.2`` before ``1.10``: digit runs compare as numbers."""
    parts: list[tuple[int, int | str]] = []
    number = ""
    word = ""
    for char in text:
        if char.isdigit():
            if word:
                parts.append((1, word.casefold()))
                word = ""
            number += char
        else:
            if number:
                parts.append((0, int(number)))
                number = ""
            word += char
    if number:
        parts.append((0, int(number)))
    if word:
        parts.append((1, word.casefold()))
    return parts
