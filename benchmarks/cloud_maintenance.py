"""verify_all, export, cleanup_expired and rebuild_index on S3 (moto): the pool vs one thread.

    python benchmarks/cloud_maintenance.py              # 300 artifacts
    python benchmarks/cloud_maintenance.py --count 1000
    python benchmarks/cloud_maintenance.py --moto-in-process   # as the tests run it

Starts moto on 127.0.0.1 in a process of its own (``python -m moto.server``; with
``--moto-in-process`` inside this one, as the test suite does), uploads ``--count`` 2 KB
artifacts, then times each operation with ``maintenance_workers: 1`` and with the
default for an object store (8), in rotation, in this one run, and prints the ratio.
``rebuild_index`` is compared with the old path, measured beside it: one GET after
another and no snapshot of a previous rebuild (``REBUILD_WORKERS = 1``, snapshot
deleted), against the default (8 GETs in flight, the snapshot the previous rebuild
left, so only records whose ETag changed are fetched).
Cleanup deletes, so it runs once per side on two identical buckets. Against a local
emulator the numbers measure the client and the emulator, not the cloud: real round
trips are longer, which understates what the pool gives against a real bucket, and
moto in this process (``--moto-in-process``) shares its GIL with the pool, which
understates it further.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.cloud_servers import S3_ENV, MotoS3  # noqa: E402

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig  # noqa: E402
from necrocode.artifact_store.index import rebuild as rebuild_module  # noqa: E402
from necrocode.artifact_store.index.snapshot import SNAPSHOT_KEY  # noqa: E402
from necrocode.artifact_store.models import utc_now  # noqa: E402

SMALL = 2 * 1024


def _store(server: MotoS3, bucket: str, state: Path, workers: int | None) -> ArtifactStore:
    return ArtifactStore(
        ArtifactStoreConfig(
            backend_type="s3",
            backend={"bucket": bucket, "region": "us-east-1", "endpoint_url": server.url},
            state_dir=state,
            maintenance_workers=workers,
        )
    )


def _fill(store: ArtifactStore, count: int) -> None:
    for i in range(count):
        text = (f"step {i} ok\n" * (SMALL // 10)).encode()[:SMALL]
        store.upload(f"task{i // 3:05d}", "spec", ("diff", "log", "test")[i % 3], text)


def _timed(action: object) -> float:
    assert callable(action)
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _row(
    name: str, count: int, single: list[float], pooled: list[float], sides: str = "8 workers"
) -> None:
    one, many = sorted(single)[len(single) // 2], sorted(pooled)[len(pooled) // 2]
    print(
        f"{name:<28} 1 thread {count / one:8.1f}/s   {sides} {count / many:8.1f}/s   "
        f"ratio {one / many:5.2f}"
    )


def _rebuild_old(store: ArtifactStore) -> float:
    """The old rebuild: one record GET after another, no snapshot."""
    store.backend.delete(SNAPSHOT_KEY)
    saved = rebuild_module.REBUILD_WORKERS
    rebuild_module.REBUILD_WORKERS = 1
    try:
        return _timed(store.rebuild_index)
    finally:
        rebuild_module.REBUILD_WORKERS = saved


def _rebuild_now(store: ArtifactStore) -> float:
    """Today's rebuild after a previous one (which leaves the snapshot)."""
    store.rebuild_index()
    return _timed(store.rebuild_index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300, help="2 KB artifacts per bucket")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument(
        "--moto-in-process", action="store_true", help="run moto in this process (its GIL)"
    )
    args = parser.parse_args()
    os.environ.update(S3_ENV)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    moto = MotoS3.running() if args.moto_in_process else MotoS3.in_subprocess()
    print(f"moto {'in this process' if args.moto_in_process else 'in a subprocess'}", flush=True)
    with moto as server, tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        bucket = server.new_bucket()
        with _store(server, bucket, state / "a", 1) as single:
            _fill(single, args.count)
        with (
            _store(server, bucket, state / "b", 1) as single,
            _store(server, bucket, state / "c", None) as pooled,
        ):
            single.rebuild_index()
            pooled.rebuild_index()
            times: dict[str, tuple[list[float], list[float]]] = {
                "verify": ([], []),
                "export": ([], []),
                "rebuild": ([], []),
            }
            for rep in range(args.repetitions):
                sides = [(single, 0), (pooled, 1)]
                for store, side in sides if rep % 2 == 0 else sides[::-1]:
                    times["verify"][side].append(_timed(store.verify_all))
                    out = state / f"x{side}.zip"
                    times["export"][side].append(
                        _timed(lambda s=store, o=out: s.export_by_spec("spec", o))
                    )
                old_first = rep % 2 == 0
                for side in (0, 1) if old_first else (1, 0):
                    rebuild = _rebuild_old if side == 0 else _rebuild_now
                    times["rebuild"][side].append(rebuild(single if side == 0 else pooled))
            _row("verify_all", args.count, *times["verify"])
            _row("export_by_spec", args.count, *times["export"])
            _row(
                "rebuild_index",
                args.count,
                *times["rebuild"],
                sides="8 GETs + snapshot",
            )
        cleanup: list[list[float]] = [[], []]
        for side, workers in ((0, 1), (1, None)):
            other = server.new_bucket()
            with _store(server, other, state / f"d{side}", workers) as store:
                _fill(store, args.count)
                later = utc_now() + timedelta(days=8)  # the logs expire
                expired = len(store.find_expired(later))
                cleanup[side].append(_timed(lambda s=store, t=later: s.cleanup_expired(now=t)))
        _row("cleanup_expired", expired, *cleanup)


if __name__ == "__main__":
    main()
