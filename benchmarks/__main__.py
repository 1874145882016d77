"""``python -m benchmarks [--quick] [--results PATH]``: run B1-B11, write the Markdown table."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.models import utc_now

from .concurrency import b5_concurrency
from .group_commit import b10_group_commit, b11_upload_many
from .harness import FULL, QUICK, Report, Scale, progress, render, set_quiet
from .insights import b7_summaries
from .large import b4_large
from .maintenance import b6_cleanup, b6_rebuild, b6_verify, b6_workers
from .population import bulk_fill
from .search import report_growth, search_latencies, usage_latencies
from .service import b7_service
from .small_ops import LiveUploads, b1_flat_rows, b1_row, b2_downloads, measure_uploads
from .startup import b9_startup

HERE = Path(__file__).resolve().parent
DEFAULT_RESULTS = HERE / "RESULTS.md"
DEFAULT_WORK = HERE / "_work"
ALL = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11")


def _log(message: str) -> None:
    progress(f"[{time.strftime('%H:%M:%S')}] {message}")


def run_small(report: Report, work: Path, scale: Scale, only: set[str]) -> None:
    """B1, B2, B3 and B6 on one store grown through ``scale.populations``."""
    root = work / "store"
    scratch = work / "scratch"
    scratch.mkdir(parents=True)
    now = utc_now()
    live = LiveUploads()
    rates: list[tuple[int, float, float]] = []
    small: tuple[int, dict[str, list[float]], list[float]] | None = None
    filled = 0
    with ArtifactStore(ArtifactStoreConfig(base_path=root)) as store:
        for n in scale.populations:
            _log(f"pre-populating {n:,} artifacts")
            bulk_fill(root, filled, n, now)
            filled = n
            store.rebuild_index()
            stored = n + live.count
            if "B1" in only:
                _log(f"B1 at {stored:,}")
                measured = measure_uploads(store, scratch, scale, live, stored)
                b1_row(report, stored, measured, scale.repetitions)
                rates.append((stored, measured[0], measured[1]))
            if n == scale.populations[0] and only & {"B3", "B6"}:
                _log(f"B3/B6 latencies at {stored:,}")
                small = (
                    stored,
                    search_latencies(store, n, now, scale.queries),
                    usage_latencies(store, scale.queries),
                )
        if len(rates) > 1:
            b1_flat_rows(report, rates[0], rates[-1], scale.repetitions)
        stored = filled + live.count
        if "B2" in only:
            _log(f"B2 at {stored:,}")
            b2_downloads(report, store, filled, scale)
        if small is not None:
            _log(f"B3/B6 latencies at {stored:,}")
            big = (
                stored,
                search_latencies(store, filled, now, scale.queries),
                usage_latencies(store, scale.queries),
            )
            report_growth(report, small, big)
        if "B6" in only:
            _log("B6 verify_all")
            b6_verify(report, store, filled, scale)
            _log("B6 verify_all, export and cleanup_expired on the worker pool")
            b6_workers(report, root, scratch, now, scale)
            _log("B6 rebuild_index")
            b6_rebuild(report, store, scale)
            _log("B6 cleanup_expired")
            b6_cleanup(report, store, scratch, now, scale)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the selected benchmarks, write the report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="Markdown output")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK, help="scratch folder")
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated, e.g. B1,B4")
    parser.add_argument("--note", action="append", default=[], help="a note for the report")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    set_quiet(args.quiet)
    only = {name.strip().upper() for name in args.only.split(",") if name.strip()}
    unknown = only - set(ALL)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    scale = QUICK if args.quick else FULL
    work = args.work_dir / f"run-{os.getpid()}"
    work.mkdir(parents=True)
    report = Report(scale, notes=list(args.note))
    load = os.getloadavg()
    report.notes.append(
        f"Load average when the run started: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}."
    )
    started = time.perf_counter()
    try:
        if only & {"B1", "B2", "B3", "B6"}:
            run_small(report, work / "small", scale, only)
        if "B5" in only:
            _log("B5 concurrency")
            b5_concurrency(report, work / "b5", scale)
        if "B4" in only:
            _log("B4 large artifacts")
            b4_large(report, work / "b4", scale)
        if "B7" in only:
            _log("B7 the HTTP service")
            b7_service(report, work / "b7", scale)
        if "B8" in only:
            _log("B8 content summaries")
            b7_summaries(report, work / "b8", scale)
        if "B9" in only:
            _log("B9 command-line start-up")
            b9_startup(report, work / "b9", scale)
        if "B10" in only:
            _log("B10 group commit: 16 uploading threads")
            b10_group_commit(report, work / "b10", scale)
        if "B11" in only:
            _log("B11 upload_many")
            b11_upload_many(report, work / "b11", scale)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    command = shlex.join(
        ["python", "-m", "benchmarks", *(argv if argv is not None else sys.argv[1:])]
    )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(render(report, command, args.work_dir, elapsed))
    _log(f"done in {elapsed / 60:.1f} min; results in {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
