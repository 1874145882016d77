"""Run the stress configuration and print the numbers issue 4 asks for.

    python benchmarks/stress_report.py            # 8 x 200 uploads, 50 crash runs
    python benchmarks/stress_report.py --quick    # 4 x 25 uploads, 10 crash runs

Prints the aggregate upload rate of 1 and of 8 writer processes (each with 2
reader processes downloading all the while, versioning off and on), how many
uploads were lost and how many torn or mismatched reads the readers saw (both
must be 0), and how many SIGKILL crash runs the store survived. Exits non-zero
when anything was lost, torn or failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.stress_workload import StressPlan, check_store, run_stress  # noqa: E402
from tests.test_crash_recovery import crash_run  # noqa: E402

READERS = 2


def stress(writers: int, uploads: int, versioning: bool) -> tuple[float, int, int, int]:
    """One stress run: (uploads/s, lost or wrong, torn or mismatched reads, reads)."""
    with tempfile.TemporaryDirectory(prefix="necrocode-stress-") as folder:
        plan = StressPlan(
            base_path=str(Path(folder) / "store"),
            writers=writers,
            uploads_per_writer=uploads,
            readers=READERS,
            versioning=versioning,
        )
        outcome = run_stress(plan, Path(folder))
        problems = check_store(outcome)
        for problem in problems:
            print(f"    PROBLEM: {problem}")
        bad_reads = sum(
            outcome.reader_total(name) for name in ("torn", "mismatched", "vanished")
        ) + sum(len(r.errors) for r in outcome.readers)
        return outcome.uploads_per_second, len(problems), bad_reads, outcome.reader_total("reads")


def main() -> int:
    """Run everything, print the report, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the default test run's sizes")
    args = parser.parse_args()
    uploads, crash_runs = (25, 10) if args.quick else (200, 50)
    failures = 0
    print(f"stress: {uploads} uploads per writer, {READERS} readers downloading meanwhile")
    for versioning in (False, True):
        for writers in (1, 8):
            rate, lost, torn, reads = stress(writers, uploads, versioning)
            failures += lost + torn
            mode = "versioned" if versioning else "overwrite"
            print(
                f"  {mode:9} {writers} writer(s) x {uploads}: {rate:7.1f} uploads/s aggregate, "
                f"lost = {lost}, torn reads = {torn} (of {reads} reads)"
            )
    survived = 0
    interrupted: Counter[str] = Counter()
    started = time.monotonic()
    for seed in range(crash_runs):
        with tempfile.TemporaryDirectory(prefix="necrocode-crash-") as folder:
            try:
                facts = crash_run(Path(folder), seed)
            except AssertionError as exc:
                print(f"  crash run seed={seed} FAILED: {exc}")
                failures += 1
                continue
        survived += 1
        interrupted[str(facts["interrupted"] or "between operations")] += 1
    print(
        f"crash runs survived: {survived}/{crash_runs} "
        f"({time.monotonic() - started:.0f}s); killed during: {dict(sorted(interrupted.items()))}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
