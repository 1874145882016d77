"""What every benchmark shares: scales, timing, results, machine facts, the report."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class Scale:
    """Sizes and repetition counts of one benchmark run."""

    name: str
    #: Store sizes at which small uploads (B1) are measured; the last one feeds B2, B3, B6.
    populations: tuple[int, ...]
    #: Uploads per timed repetition (B1) and repetitions per figure.
    uploads_per_rep: int
    repetitions: int
    #: Random downloads per repetition (B2).
    downloads_per_rep: int
    #: Queries per search kind (B3).
    queries: int
    #: Size of the large artifact (B4) and its repetitions.
    large_bytes: int
    large_repetitions: int
    #: Writer processes (B5) and uploads per writer per repetition.
    writers: tuple[int, ...]
    uploads_per_writer: int
    writer_repetitions: int
    #: Rebuilds of the full index measured (B6).
    rebuild_repetitions: int
    #: Records/objects the raw maintenance baselines read or delete (B6).
    baseline_sample: int


QUICK = Scale(
    name="quick",
    populations=(150, 300, 600),
    uploads_per_rep=10,
    repetitions=3,
    downloads_per_rep=100,
    queries=10,
    large_bytes=4 * MiB,
    large_repetitions=1,
    writers=(1, 2),
    uploads_per_writer=6,
    writer_repetitions=1,
    rebuild_repetitions=1,
    baseline_sample=60,
)

FULL = Scale(
    name="full",
    populations=(1_000, 10_000, 100_000),
    uploads_per_rep=150,
    repetitions=5,
    downloads_per_rep=2_000,
    queries=200,
    large_bytes=1 * GiB,
    large_repetitions=2,
    writers=(1, 2, 4),
    uploads_per_writer=100,
    writer_repetitions=3,
    rebuild_repetitions=2,
    baseline_sample=5_000,
)


@dataclass
class Result:
    """One row of the report: a figure of the store beside its baseline."""

    bench: str
    figure: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    #: ``value / baseline`` (or the inverse, for latencies: higher is always better).
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    samples: int = 1

    def cells(self) -> list[str]:
        """The row's Markdown table cells."""
        base = "" if self.baseline is None else f"{_fmt(self.baseline)} {self.unit}"
        if self.baseline_label:
            base = f"{base} ({self.baseline_label})" if base else self.baseline_label
        verdict = {True: "met", False: "**missed**", None: ""}[self.met]
        return [
            self.bench,
            self.figure,
            f"{_fmt(self.value)} {self.unit}",
            base,
            "" if self.ratio is None else f"{self.ratio:.2f}",
            self.target,
            verdict,
            str(self.samples),
        ]


@dataclass
class Report:
    """Everything a run measured, in order."""

    scale: Scale
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, result: Result) -> Result:
        """Record ``result`` and echo it to stderr as it arrives."""
        self.results.append(result)
        cells = result.cells()
        progress(f"  {cells[0]} {cells[1]}: {cells[2]} | base {cells[3]} | ratio {cells[4]}")
        return result


_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence :func:`progress` (``python -m benchmarks --quiet``, used by the tests)."""
    global _quiet  # noqa: PLW0603 - one switch for the whole run
    _quiet = quiet


def progress(message: str) -> None:
    """A progress line on stderr, unless the run is quiet."""
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


def _fmt(number: float) -> str:
    if number >= 100:
        return f"{number:,.0f}"
    if number >= 10:
        return f"{number:.1f}"
    return f"{number:.3g}"


def median(values: list[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` took (wall clock)."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def time_in_rotation(rep: int, sides: list[tuple[Callable[[], object], list[float]]]) -> None:
    """Time every ``(action, seconds)`` side once, appending to its list.

    The order rotates with ``rep`` so that a drift in machine load hits every
    side alike.
    """
    shift = rep % len(sides)
    for action, seconds in sides[shift:] + sides[:shift]:
        seconds.append(timed(action))


def rate_result(
    bench: str,
    figure: str,
    store_seconds: list[float],
    base_seconds: list[float],
    count: int,
    *,
    unit: str = "ops/s",
    baseline_label: str,
    target_ratio: float | None = None,
) -> Result:
    """A throughput row: ``count`` operations per run, medians of the runs."""
    value = count / median(store_seconds)
    base = count / median(base_seconds)
    ratio = value / base
    return Result(
        bench,
        figure,
        value,
        unit,
        base,
        baseline_label,
        ratio,
        "" if target_ratio is None else f">= {target_ratio} x baseline",
        None if target_ratio is None else ratio >= target_ratio,
        len(store_seconds),
    )


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from ``/proc/mounts``)."""
    target = str(path.resolve())
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1]
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, parts[2]
    return kind


def machine_lines(work_dir: Path) -> list[str]:
    """Facts about the machine the numbers come from."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return [
        f"- CPUs: {os.cpu_count()}",
        f"- Python: {platform.python_version()} ({platform.python_implementation()}) "
        f"on {platform.system()} {platform.release()}",
        f"- Filesystem of the work folder `{work_dir}`: {filesystem_type(work_dir)}",
        f"- Load average when the run ended: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}",
    ]


HEADER = ["Bench", "Figure", "Store", "Baseline", "Ratio", "Target", "Result", "Runs"]


def render(report: Report, command: str, work_dir: Path, elapsed: float) -> str:
    """The Markdown document of a run."""
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{command}` ({report.scale.name} mode, {elapsed / 60:.1f} minutes)",
        "",
        "Machine:",
        "",
        *machine_lines(work_dir),
        "",
        "Every figure is the median of the runs counted in the last column, measured in",
        "the same run as its baseline; the ratio is store / baseline for rates and",
        "baseline / store for latencies, so a higher ratio is always better.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    lines += ["| " + " | ".join(result.cells()) + " |" for result in report.results]
    if report.notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"
