"""Where a small upload and a small download spend their time, phase by phase.

``python -m benchmarks.profile_small [--artifacts N] [--uploads U] [--downloads D]``
builds a store of N artifacts (as the benchmarks do), then times U durable
uploads of new 2 KB artifacts and D verified downloads of random ones while
accumulating the wall time spent inside each phase's method. Prints a
Markdown table per operation: microseconds per call and share of the total.

``--flame`` runs the same workload (without the phase clocks) under py-spy
(``py-spy record --format raw --nolineno --idle``: wall time, waits included) and
prints, per operation, the frames under ``ArtifactStore.upload`` and
``ArtifactStore.download`` with their self and total shares
(:mod:`benchmarks.flame`); ``--raw PATH`` keeps the raw profile.

``--cpu N`` adds the CPU time (user + system, ``time.process_time``) of N
non-durable 2 KB uploads into a store of 200 (``durable_writes: false``: no
fsync to wait for, so what is left is the work of the upload path itself, the
figure of issue 14's "non-durable upload CPU <= 0.6 ms"), and of N verified
downloads of them.
"""

from __future__ import annotations

import argparse
import functools
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.backends.filesystem import FilesystemBackend
from necrocode.artifact_store.index.locking import LockManager
from necrocode.artifact_store.index.sqlite import SQLiteIndex
from necrocode.artifact_store.models import utc_now
from necrocode.artifact_store.naming import ArtifactKey
from necrocode.artifact_store.pipeline.integrity import ArtifactReader

from .flame import table as flame_table
from .population import TYPES, bulk_fill, names, payload

HERE = Path(__file__).resolve().parent

UPLOAD_PHASES: list[tuple[str, type[Any], str]] = [
    ("per-artifact lock: open + lock", LockManager, "_acquire"),
    ("index: versions before writing", SQLiteIndex, "versions"),
    ("object: compress + hash + write + rename (staged)", FilesystemBackend, "stage"),
    ("record + every fsync (two rounds)", FilesystemBackend, "upload_after"),
    ("index: commit the row", SQLiteIndex, "put"),
]
DOWNLOAD_PHASES: list[tuple[str, type[Any], str]] = [
    ("URI parse + name checks", ArtifactKey, "from_uri"),
    ("index: lookup + row decode", SQLiteIndex, "get"),
    ("open the object", FilesystemBackend, "open_read"),
    ("read + inflate + hash + check", ArtifactReader, "readall"),
]


class PhaseClock:
    """Accumulates the wall time spent inside chosen methods while installed."""

    def __init__(self, phases: list[tuple[str, type[Any], str]]) -> None:
        self.phases = phases
        self.spent = {label: 0.0 for label, _, _ in phases}
        self._saved: list[tuple[type[Any], str, Any]] = []

    def __enter__(self) -> PhaseClock:
        for label, owner, name in self.phases:
            original = owner.__dict__[name]
            self._saved.append((owner, name, original))
            setattr(owner, name, self._timed(label, original))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)

    def _timed(self, label: str, original: Any) -> Any:
        is_class_method = isinstance(original, classmethod)
        function: Callable[..., Any] = original.__func__ if is_class_method else original

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.spent[label] += time.perf_counter() - started

        return classmethod(timed) if is_class_method else timed

    def table(self, title: str, total: float, count: int) -> str:
        """The phases as Markdown: µs per operation and share of ``total``."""
        lines = [f"| {title} | µs per call | share |", "|---|---|---|"]
        for label, _, _ in self.phases:
            spent = self.spent[label]
            lines.append(f"| {label} | {spent / count * 1e6:,.0f} | {spent / total:.0%} |")
        rest = total - sum(self.spent.values())
        lines.append(
            f"| everything else (facade, metadata, Python) | {rest / count * 1e6:,.0f} |"
            f" {rest / total:.0%} |"
        )
        lines.append(f"| **total** | **{total / count * 1e6:,.0f}** | 100% |")
        return "\n".join(lines)


def profile(artifacts: int, uploads: int, downloads: int, work: Path) -> str:
    """Build the store, run both profiles, return the Markdown report."""
    root = work / "store"
    bulk_fill(root, 0, artifacts, utc_now())
    out: list[str] = []
    with ArtifactStore(ArtifactStoreConfig(base_path=root)) as store:
        store.rebuild_index()
        jobs = []
        for n in range(uploads):
            task = n // 3
            jobs.append(
                (f"prof{task:06d}", f"profspec{task // 20:04d}", ("diff", "log", "test")[n % 3])
            )
        if uploads:
            with PhaseClock(UPLOAD_PHASES) as clock:
                started = time.perf_counter()
                for n, (task, spec, kind) in enumerate(jobs):
                    store.upload(task, spec, kind, payload(n), tags=["bench"])
                total = time.perf_counter() - started
            out.append(f"{uploads:,} durable uploads of new 2 KB artifacts into {artifacts:,}:\n")
            out.append(clock.table("upload phase", total, uploads))
        rng = random.Random(5)
        uris = [
            ArtifactKey(*names(rng.randrange(artifacts))).uri(store.root_uri)
            for _ in range(downloads)
        ]
        for uri in uris[:200]:
            store.download(uri)  # warm the page cache and the index
        with PhaseClock(DOWNLOAD_PHASES) as clock:
            started = time.perf_counter()
            for uri in uris:
                store.download(uri)
            total = time.perf_counter() - started
        out.append(f"\n{downloads:,} verified downloads of random artifacts of {artifacts:,}:\n")
        out.append(clock.table("download phase", total, downloads))
    return "\n".join(out)


def workload(artifacts: int, uploads: int, downloads: int, work: Path) -> None:
    """The profiled operations alone (for ``--flame``): uploads, then downloads."""
    root = work / "store"
    bulk_fill(root, 0, artifacts, utc_now())
    with ArtifactStore(ArtifactStoreConfig(base_path=root)) as store:
        store.rebuild_index()
        for n in range(uploads):
            task = n // 3
            kind = ("diff", "log", "test")[n % 3]
            store.upload(f"prof{task:06d}", f"profspec{task // 20:04d}", kind, payload(n))
        rng = random.Random(5)
        uris = [
            ArtifactKey(*names(rng.randrange(artifacts))).uri(store.root_uri)
            for _ in range(downloads)
        ]
        for uri in uris:
            store.download(uri)


def flame(args: argparse.Namespace) -> str:
    """Run :func:`workload` under py-spy in a child process; summarise both operations."""
    raw = args.raw or Path(tempfile.mkdtemp(prefix="necrocode-flame-")) / "profile.raw"
    child = [
        sys.executable, "-m", "benchmarks.profile_small", "--workload",
        "--artifacts", str(args.artifacts), "--uploads", str(args.uploads),
        "--downloads", str(args.downloads), "--work", str(args.work),
    ]  # fmt: skip
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [spy, "record", "--format", "raw", "--nolineno", "--idle"]
    command += ["--rate", str(args.rate), "--output", str(raw), "--", *child]
    subprocess.run(command, check=True, cwd=HERE.parent, stdout=subprocess.DEVNULL)
    text = raw.read_text()
    parts = []
    for title, root in (("Upload", "ArtifactStore.upload"), ("Download", "ArtifactStore.download")):
        parts.append(f"**{title}**, {args.artifacts:,} stored: " + flame_table(text, root))
    return "\n\n".join(parts)


def cpu_per_operation(count: int, work: Path) -> str:
    """CPU ms per non-durable 2 KB upload and per verified download (see the docstring)."""
    config = ArtifactStoreConfig(base_path=work / "cpu-store", durable_writes=False)
    with ArtifactStore(config) as store:
        for n in range(200):
            store.upload(f"pre{n // 3:04d}", f"prespec{n // 60:03d}", TYPES[n % 3], payload(n))
        jobs = [
            (f"cpu{n // 3:06d}", f"cpuspec{n // 60:04d}", TYPES[n % 3], payload(n))
            for n in range(count)
        ]
        started = time.process_time()
        uris = [store.upload(t, s, k, body, tags=["bench"]) for t, s, k, body in jobs]
        upload_cpu = time.process_time() - started
        started = time.process_time()
        for uri in uris:
            store.download(uri)
        download_cpu = time.process_time() - started
    return (
        f"{count:,} non-durable 2 KB uploads into 200 (`durable_writes: false`): "
        f"**{upload_cpu / count * 1e3:.3f} ms CPU** each; verified downloads of them: "
        f"**{download_cpu / count * 1e3:.3f} ms CPU** each"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the sizes, profile, print the tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_small", description=__doc__)
    parser.add_argument("--artifacts", type=int, default=10_000)
    parser.add_argument("--uploads", type=int, default=600)
    parser.add_argument("--downloads", type=int, default=5_000)
    parser.add_argument("--cpu", type=int, default=0, help="also: CPU of N non-durable uploads")
    parser.add_argument("--work", type=Path, default=HERE / "_work" / "profile")
    parser.add_argument("--flame", action="store_true", help="py-spy summary (see above)")
    parser.add_argument("--raw", type=Path, default=None, help="keep py-spy's raw output here")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    try:
        if args.workload:
            workload(args.artifacts, args.uploads, args.downloads, args.work)
        elif args.flame:
            print(flame(args))
        else:
            if args.cpu:
                print(cpu_per_operation(args.cpu, args.work) + "\n")
            if args.uploads or args.downloads:
                print(profile(args.artifacts, args.uploads, args.downloads, args.work))
    finally:
        shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
