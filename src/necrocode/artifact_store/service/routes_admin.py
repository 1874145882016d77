"""Store-wide operations: usage, export (read); verify, cleanup, repair, reindex (admin)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from ..exceptions import InvalidInputError
from ..maintenance.verify import DEFAULT_REPAIR_GRACE
from ..naming import validate_name
from .auth import Principal, requires
from .deps import base_of, store_of
from .schemas import ArtifactOut, ErrorBody, QuotaOut, Responses, UsageOut, UsageReport, VersionList
from .transfer import run_store

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["store"])

_ZIP: Responses = {200: {"content": {"application/zip": {}}, "description": "the ZIP"}}
_ERRORS: Responses = {status: {"model": ErrorBody} for status in (401, 403, 404, 422, 503, 507)}


@router.get("/usage", response_model=UsageReport, responses=_ERRORS, summary="Usage and quota")
async def usage(
    request: Request, _: Annotated[Principal, Depends(requires("read"))]
) -> UsageReport:
    """Totals of the whole store, per spec and per type."""
    store = store_of(request)

    def work() -> UsageReport:
        return UsageReport(
            total=UsageOut.of(store.get_storage_usage()),
            quota=QuotaOut.model_validate(store.config.storage_quota.model_dump()),
            by_spec={k: UsageOut.of(v) for k, v in store.get_usage_by_spec().items()},
            by_type={k: UsageOut.of(v) for k, v in store.get_usage_by_type().items()},
        )

    return await run_store(work)


def _remove_tree(path: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(path)


@router.get(
    "/export",
    response_class=FileResponse,
    responses=_ZIP | _ERRORS,
    summary="A ZIP of every artifact of a spec or a task (with manifest.json)",
)
async def export(
    request: Request,
    _: Annotated[Principal, Depends(requires("read"))],
    spec_name: Annotated[str | None, Query(max_length=255)] = None,
    task_id: Annotated[str | None, Query(max_length=255)] = None,
) -> FileResponse:
    """The archive is written to a temporary file beside the index, streamed, then removed.

    With ``task_id`` (optionally narrowed by ``spec_name``) it holds one task;
    with ``spec_name`` alone, the whole spec.
    """
    if spec_name is None and task_id is None:
        raise InvalidInputError("export needs spec_name or task_id")
    for name, value in (("spec_name", spec_name), ("task_id", task_id)):
        if value is not None:
            validate_name(name, value)
    store = store_of(request)
    scratch_root = store.config.effective_state_dir / "exports"

    def work() -> Path:
        scratch_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=scratch_root))
        try:
            target = scratch / "export.zip"
            if task_id is not None:
                return store.export_by_task(task_id, spec_name, target)
            assert spec_name is not None
            return store.export_by_spec(spec_name, target)
        except BaseException:
            _remove_tree(scratch)
            raise

    path = await run_store(work)
    name = f"{spec_name or ''}{'-' if spec_name and task_id else ''}{task_id or ''}.zip"
    return FileResponse(
        path,
        media_type="application/zip",
        filename=name,
        background=BackgroundTask(_remove_tree, path.parent),
    )


@router.get(
    "/expired", response_model=VersionList, responses=_ERRORS, summary="Expired artifact versions"
)
async def expired(
    request: Request,
    _: Annotated[Principal, Depends(requires("read"))],
    now: Annotated[datetime | None, Query(description="evaluate at this time (timezone)")] = None,
) -> VersionList:
    """Every version past its retention period (what ``cleanup`` would delete), oldest first."""
    if now is not None and now.tzinfo is None:
        raise InvalidInputError("now must carry a timezone (e.g. 2026-11-29T10:00:00Z)")
    store = store_of(request)
    found = await run_store(lambda: store.find_expired(now))
    base = base_of(request)
    return VersionList(items=[ArtifactOut.of(meta, base) for meta in found])


@router.post("/verify", responses=_ERRORS, summary="Re-hash every stored artifact")
async def verify(
    request: Request, _: Annotated[Principal, Depends(requires("admin"))]
) -> dict[str, Any]:
    """The verify report: ok, corrupted, missing, orphaned, incomplete, corrected."""
    store = store_of(request)
    report = await run_store(store.verify_all)
    return dict(report.to_dict())


@router.post("/cleanup", responses=_ERRORS, summary="Delete expired artifact versions")
async def cleanup(
    request: Request,
    _: Annotated[Principal, Depends(requires("admin"))],
    dry_run: bool = False,
) -> dict[str, Any]:
    """The cleanup report (also appended to the cleanup log)."""
    store = store_of(request)
    report = await run_store(lambda: store.cleanup_expired(dry_run=dry_run))
    return report.to_dict()


@router.post("/repair", responses=_ERRORS, summary="Remove leftovers of interrupted writes")
async def repair(
    request: Request,
    _: Annotated[Principal, Depends(requires("admin"))],
    older_than_seconds: Annotated[
        int, Query(ge=0, le=10 * 365 * 86400, description="grace period for leftovers")
    ] = int(DEFAULT_REPAIR_GRACE.total_seconds()),
) -> dict[str, Any]:
    """Orphans and leftovers older than the grace period go; the index is rebuilt."""
    store = store_of(request)
    grace = timedelta(seconds=older_than_seconds)
    report = await run_store(lambda: store.repair(older_than=grace))
    return dict(report.to_dict())


@router.post("/reindex", responses=_ERRORS, summary="Rebuild the index from the records")
async def reindex(
    request: Request, _: Annotated[Principal, Depends(requires("admin"))]
) -> dict[str, int]:
    """How many records the rebuilt index holds."""
    store = store_of(request)
    return {"records": await run_store(store.rebuild_index)}
