"""B6 cleanup and rebuild of two checkouts in one run:
``python -m benchmarks.maintenance_ab BASE_SRC [--count N] [--rounds R]``.

A full B6 takes minutes and the load of a shared machine moves more between two
runs than a change does. This alternates the two checkouts (``BASE_SRC`` and this
one's ``src``, each imported by its own subprocess) round by round, the order
flipping every round, each with the raw floors of B6 measured beside it in the
same subprocess:

- ``cleanup_expired`` of a store of ``N`` bulk artifacts (half expired, as in B6)
  against ``_raw_deletes`` of as many record+object pairs (unlink both, fsync the
  folder each time), the rate being the median over the progress windows;
- ``rebuild_index`` of one shared ``N``-artifact store (worker processes at this
  size) against ``_raw_record_scan`` of it, measured right before.

Prints each side's ratios to its floor (median and range) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OWN_SRC = HERE.parent / "src"


def _cleanup(work: Path, count: int) -> dict[str, float]:
    from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
    from necrocode.artifact_store.models import utc_now

    from .maintenance import ProgressWindows, _raw_deletes
    from .population import bulk_fill

    now = utc_now()
    raw_seconds = _raw_deletes(work / "raw", count // 2)
    raw_rate = (count // 2) / raw_seconds
    root = work / "store"
    bulk_fill(root, 0, count, now)
    with ArtifactStore(ArtifactStoreConfig(base_path=root)) as store:
        store.rebuild_index()
        expired = len(store.find_expired(now))
        os.sync()
        windows = ProgressWindows(expired)
        report = store.cleanup_expired(now=now, progress=windows)
        assert report.count == expired and not report.errors
    shutil.rmtree(root)
    rate = statistics.median(windows.rates())
    return {"cleanup": rate, "cleanup_raw": raw_rate}


def _rebuild(root: Path) -> dict[str, float]:
    from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig

    from .maintenance import _raw_record_scan

    with ArtifactStore(ArtifactStoreConfig(base_path=root)) as store:
        started = time.perf_counter()
        count = _raw_record_scan(root)
        raw = time.perf_counter() - started
        started = time.perf_counter()
        indexed = store.rebuild_index()
        seconds = time.perf_counter() - started
    assert indexed == count, (indexed, count)
    return {"rebuild": count / seconds, "rebuild_raw": count / raw}


def worker(work: Path, count: int, shared: Path, figures: str) -> None:
    """One round of one side: cleanup on a fresh store, rebuild of the shared one."""
    result = _cleanup(work, count) if "cleanup" in figures else {}
    if "rebuild" in figures:
        result.update(_rebuild(shared))
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_src", nargs="?", help="the other checkout's src folder")
    parser.add_argument("--count", type=int, default=12_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--figures", default="cleanup,rebuild", help="cleanup, rebuild or both")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work, count, shared = args.worker
        worker(Path(work), int(count), Path(shared), args.figures)
        return
    if args.base_src is None:
        parser.error("give the src folder of the checkout to compare with")
    from necrocode.artifact_store.models import utc_now

    from .population import bulk_fill

    scratch = Path(tempfile.mkdtemp(prefix="b6ab-", dir=HERE))
    try:
        shared = scratch / "shared"
        bulk_fill(shared, 0, args.count, utc_now())
        os.sync()
        sides = {"base": Path(args.base_src).resolve(), "this": OWN_SRC}
        found: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
        loads = [os.getloadavg()[0]]
        for round_ in range(args.rounds):
            for name in list(sides)[:: -1 if round_ % 2 else 1]:
                work = scratch / f"{name}-{round_}"
                work.mkdir()
                output = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.maintenance_ab",
                        "--worker",
                        str(work),
                        str(args.count),
                        str(shared),
                        "--figures",
                        args.figures,
                    ],
                    cwd=HERE.parent,
                    env=dict(os.environ, PYTHONPATH=str(sides[name])),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                found[name].append(json.loads(output.splitlines()[-1]))
                shutil.rmtree(work, ignore_errors=True)
                loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"B6 A/B, {args.count:,} artifacts ({args.count // 2:,} expired), {args.rounds} rounds,"
        f" load average {min(loads):.1f}-{max(loads):.1f}"
    )
    for name, results in found.items():
        for figure in ("cleanup", "rebuild"):
            if figure not in args.figures:
                continue
            ratios = [r[figure] / r[f"{figure}_raw"] for r in results]
            rates = [r[figure] for r in results]
            print(
                f"  {name} {figure}: {statistics.median(rates):,.0f}/s,"
                f" {statistics.median(ratios):.2f} x raw ({min(ratios):.2f}-{max(ratios):.2f})"
            )


if __name__ == "__main__":
    main()
