"""B4 large artifacts: upload and streamed download at gzip 1, gzip 6 and no compression.

Each operation runs in a fresh process (:mod:`.large_worker`) that reports its
own time and peak RSS; the baselines do the same work on the same bytes with
zlib + hashlib alone (a plain copy + hash without compression).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .harness import MiB, Report, Result, Scale, median

LEVELS = ((1, "gzip level 1"), (6, "gzip level 6"), (0, "no compression"))
THROUGHPUT_TARGET = 0.8
RSS_LIMIT_MIB = 100
BLOCK_VARIANTS = 16


def make_source(path: Path, size: int) -> None:
    """``size`` bytes of log-like text: 1 MiB blocks of varied lines in shuffled order."""
    rng = random.Random(4)
    blocks = []
    for variant in range(BLOCK_VARIANTS):
        lines = []
        total = 0
        while total < MiB:
            line = (
                f"2026-03-01T12:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z "
                f"{rng.choice(['INFO', 'DEBUG', 'WARN'])} worker-{variant} "
                f"req={rng.getrandbits(48):012x} step {rng.randrange(10**6)} "
                f"took {rng.random() * 100:.3f} ms\n"
            )
            lines.append(line)
            total += len(line)
        blocks.append("".join(lines).encode()[:MiB])
    with open(path, "wb") as out:
        for _ in range(size // MiB):
            out.write(rng.choice(blocks))
        out.write(blocks[0][: size % MiB])


#: On Linux a child's ``ru_maxrss`` starts at its parent's resident size when it was
#: forked (it survives exec), and this runner holds the 100,000-artifact population.
#: A small launcher process in between makes the worker's ``ru_maxrss`` its own.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call([sys.executable, *sys.argv[1:]]))"


def _run(work: Path, *args: str) -> dict[str, Any]:
    # Every run, store or baseline, starts with no dirty pages waiting for writeback:
    # otherwise one run pays for the previous run's (or the source file's) gigabyte.
    os.sync()
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, "-m", "benchmarks.large_worker", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    if done.returncode != 0:
        raise RuntimeError(f"large_worker {args[0]} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def b4_large(report: Report, work: Path, scale: Scale) -> None:
    """Measure every level; add throughput and peak-RSS rows."""
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source.log"
    make_source(source, scale.large_bytes)
    size_mib = scale.large_bytes / MiB
    for level, label in LEVELS:
        base = work / f"store-{level}"
        raw_target = work / f"raw-{level}.out"
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in ("up", "rup", "down", "rdown")}
        # Without compression a run takes seconds and its time follows the VM's memory
        # more than the code: an identical raw write took 1.4 s or 4.9 s, 70 % of the
        # slow one in the kernel's copy into fresh page-cache pages. More runs, so the
        # medians of both sides are not one such draw.
        repetitions = scale.large_repetitions if level else max(5, scale.large_repetitions)
        for rep in range(repetitions):
            ups = [
                ("up", ("upload", str(base), str(level), str(source))),
                ("rup", ("raw-upload", str(level), str(source), str(raw_target))),
            ]
            for name, args in ups if rep % 2 == 0 else ups[::-1]:
                runs[name].append(_run(work, *args))
            uri = str(runs["up"][-1]["result"])
            downs = [
                ("down", ("download", str(base), str(level), uri)),
                ("rdown", ("raw-download", str(level), str(raw_target))),
            ]
            for name, args in downs if rep % 2 == 0 else downs[::-1]:
                runs[name].append(_run(work, *args))
            assert runs["down"][-1]["result"] == scale.large_bytes
        for op, store_key, raw_key in (("upload", "up", "rup"), ("download", "down", "rdown")):
            store_s = median([r["seconds"] for r in runs[store_key]])
            raw_s = median([r["seconds"] for r in runs[raw_key]])
            ratio = raw_s / store_s
            report.add(
                Result(
                    "B4",
                    f"{size_mib:,.0f} MiB {op}, {label}",
                    size_mib / store_s,
                    "MiB/s",
                    size_mib / raw_s,
                    "zlib+sha256+write+fsync" if op == "upload" else "read+inflate+sha256",
                    ratio,
                    f">= {THROUGHPUT_TARGET} x baseline",
                    ratio >= THROUGHPUT_TARGET,
                    len(runs[store_key]),
                )
            )
            peak = max(r["max_rss_kib"] for r in runs[store_key]) / 1024
            raw_peak = max(r["max_rss_kib"] for r in runs[raw_key]) / 1024
            report.add(
                Result(
                    "B4",
                    f"{size_mib:,.0f} MiB {op}, {label}: peak RSS of the process",
                    peak,
                    "MiB",
                    raw_peak,
                    "baseline process",
                    None,
                    f"< {RSS_LIMIT_MIB} MiB",
                    peak < RSS_LIMIT_MIB,
                    len(runs[store_key]),
                )
            )
        shutil.rmtree(base, ignore_errors=True)
        raw_target.unlink(missing_ok=True)
    source.unlink()
