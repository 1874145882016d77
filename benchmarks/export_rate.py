"""Export throughput: ``python benchmarks/export_rate.py [MiB]``.

Stores one large log (half as repetitive build-log text, half as random hex
text) plus 200 small diffs, then times ``export_by_spec`` and prints MiB/s of
original bytes for each kind of content.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig

MiB = 1024 * 1024


def log_text(size_mib: int) -> Iterator[bytes]:
    """Build-log-like lines: compress well, as real logs do."""
    for i in range(size_mib):
        line = b"[%08d] compiling module_%05d.py ... ok (%d ms)\n" % (i, i % 977, i * 7 % 1000)
        yield (line * (MiB // len(line) + 1))[:MiB]


def hex_text(size_mib: int) -> Iterator[bytes]:
    """Random hex digits: text that compresses only about 2:1."""
    for _ in range(size_mib):
        yield os.urandom(MiB // 2).hex().encode()


def measure(kind: str, size_mib: int) -> str:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with ArtifactStore(ArtifactStoreConfig(base_path=root / "store")) as store:
            source = log_text(size_mib) if kind == "log" else hex_text(size_mib)
            store.upload("big", "export-bench", "log", source)
            for i in range(200):
                store.upload(f"t{i}", "export-bench", "diff", os.urandom(1024).hex().encode())
            total = sum(m.size for m in store.search(spec_name="export-bench"))
            started = time.perf_counter()
            path = store.export_by_spec("export-bench", root / "out.zip")
            elapsed = time.perf_counter() - started
            zipped = path.stat().st_size
        rate = total / MiB / elapsed
        return (
            f"{kind:>4}: {total / MiB:.0f} MiB in 201 artifacts exported in {elapsed:.1f}s "
            f"= {rate:.0f} MiB/s (archive {zipped / MiB:.0f} MiB)"
        )


def main() -> None:
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    for kind in ("log", "hex"):
        print(measure(kind, size_mib), flush=True)


if __name__ == "__main__":
    main()
