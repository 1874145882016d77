"""B9: the shared PostgreSQL index against the embedded SQLite one, in the same run.

    python -m benchmarks.shared_index [--quick] [--results PATH] [--population N]

Starts a throwaway PostgreSQL cluster (or uses ``NECRO_PG_URL``) and moto's S3
server on 127.0.0.1, as the test suite does, and measures:

* search latency at ``population`` artifacts, PostgreSQL vs SQLite (the same
  rows in both; five query kinds of B3);
* small-upload rate at that population, PostgreSQL vs SQLite index
  (filesystem backend without fsync, so the index is what differs);
* cross-host visibility delay: host A uploads, host B (another store with its
  own state folder on the same bucket) searches until it finds it. With
  PostgreSQL that is the next query; with per-host SQLite host B must run
  ``rebuild_index`` (its time is the baseline);
* ``rebuild_index`` records/s from S3: today's path (one GET after another,
  one SQLite transaction) against the new one (GETs in a thread pool, batched
  inserts into PostgreSQL), without and with the snapshot a previous rebuild
  left in the bucket (then only records whose ETag changed are read) — straight
  to moto, and through a proxy adding S3-like latency per request (moto answers
  from one Python process, so without latency its CPU, not the client, is the
  limit of the GETs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shlex
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.cloud_servers import S3_ENV, MotoS3  # noqa: E402
from tests.pg_server import PostgresServer  # noqa: E402

from necrocode.artifact_store import ArtifactMetadata, ArtifactStore  # noqa: E402
from necrocode.artifact_store.index import SQLiteIndex  # noqa: E402
from necrocode.artifact_store.index import rebuild as rebuild_module  # noqa: E402
from necrocode.artifact_store.index.postgres import PostgresIndex  # noqa: E402
from necrocode.artifact_store.index.snapshot import SNAPSHOT_KEY  # noqa: E402
from necrocode.artifact_store.models import utc_now  # noqa: E402
from necrocode.artifact_store.naming import ArtifactKey  # noqa: E402

from .harness import FULL, QUICK, Report, Result, median, rate_result, render  # noqa: E402
from .population import created_of, names, summary_of, tags_of  # noqa: E402
from .search import search_queries  # noqa: E402

#: Latency the proxy adds to every request to S3 (one way, before forwarding).
PROXY_DELAY_S = 0.010
SMALL = b"x" * 2048


def synthetic(i: int, now: datetime, root: str) -> ArtifactMetadata:
    """Record ``i`` of the bench population (names and times as in B3)."""
    spec, task, kind = names(i)
    key = ArtifactKey(spec, task, kind)
    return ArtifactMetadata(
        uri=key.uri(root),
        task_id=task,
        spec_name=spec,
        type=kind,
        size=1000,
        checksum="sha256:" + "0" * 64,
        created_at=created_of(i, now),
        compressed=False,
        original_size=2000,
        mime_type=kind.mime_type,
        tags=tags_of(i),
        object_key=key.object_key(1, "0" * 16, "none"),
        summary=summary_of(i),
    )


def _latency_ms(query: Callable[[], Any], count: int) -> list[float]:
    query()
    found = []
    for _ in range(count):
        started = time.perf_counter()
        query()
        found.append((time.perf_counter() - started) * 1000)
    return found


def search_and_upload(
    report: Report, pg: PostgresServer, work: Path, population: int, queries: int, uploads: int
) -> None:
    """Search latency and upload rate with either index over the same rows."""
    now = utc_now()
    stores: dict[str, ArtifactStore] = {}
    pg_url = pg.new_database()
    for name, index_url in (("sqlite", None), ("postgresql", pg_url)):
        base = work / f"search-{name}"
        settings: dict[str, Any] = {
            "base_path": str(base),
            "durable_writes": False,
            "compression_enabled": False,
            "storage_quota": {"max_size_gb": None},
        }
        if index_url:
            settings["index_url"] = index_url
        root = f"file://{base.resolve()}"
        records = (synthetic(i, now, root) for i in range(population))
        if index_url:
            index = PostgresIndex(index_url, root)
            (base).mkdir(parents=True)
            index.replace_all(records)
            index.close()
        else:
            (base / ".necrocode").mkdir(parents=True)
            local = SQLiteIndex(base / ".necrocode" / "index.sqlite3")
            local.replace_all(records)
            local.close()
        stores[name] = ArtifactStore(settings)
    try:
        # The same random queries of each B3 kind (content filters included) on both.
        picked = {
            name: search_queries(store, population, now, random.Random(population))
            for name, store in stores.items()
        }
        for kind in picked["sqlite"]:
            latencies = {name: _latency_ms(picked[name][kind], queries) for name in stores}
            pg_ms, lite_ms = median(latencies["postgresql"]), median(latencies["sqlite"])
            report.add(
                Result(
                    "B9",
                    f"search {kind} at {population:,} (PostgreSQL)",
                    pg_ms,
                    "ms",
                    lite_ms,
                    "SQLite, same rows",
                    lite_ms / pg_ms,
                    samples=queries,
                )
            )
        seconds: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
        for rep in range(3):
            for name in ("sqlite", "postgresql") if rep % 2 == 0 else ("postgresql", "sqlite"):
                store = stores[name]
                started = time.perf_counter()
                for n in range(uploads):
                    store.upload(f"up{rep}-{n}", "uploads", "log", SMALL)
                seconds[name].append(time.perf_counter() - started)
        report.add(
            rate_result(
                "B9",
                f"2 KB uploads at {population:,} (PostgreSQL index)",
                seconds["postgresql"],
                seconds["sqlite"],
                uploads,
                unit="uploads/s",
                baseline_label="SQLite index",
            )
        )
    finally:
        for store in stores.values():
            store.close()
        pg.drop_database(pg_url)


def visibility(report: Report, pg: PostgresServer, s3: MotoS3, work: Path, count: int) -> None:
    """How long until host B finds what host A uploaded."""
    pg_url = pg.new_database()
    bucket = s3.new_bucket()

    def host(n: int, index_url: str | None) -> ArtifactStore:
        settings: dict[str, Any] = {
            "backend_type": "s3",
            "backend": {"bucket": bucket, "endpoint_url": s3.url},
            "state_dir": str(work / f"vis-{n}-{index_url is not None}"),
            "compression_enabled": False,
        }
        if index_url:
            settings["index_url"] = index_url
        return ArtifactStore(settings)

    delays: list[float] = []
    queries: list[int] = []
    with host(1, pg_url) as a, host(2, pg_url) as b:
        for n in range(count):
            a.upload(f"seen{n}", "visible", "log", SMALL)
            started = time.perf_counter()
            tries = 0
            while True:
                tries += 1
                if b.search(task_id=f"seen{n}"):
                    break
            delays.append((time.perf_counter() - started) * 1000)
            queries.append(tries)
    rebuilds: list[float] = []
    with host(3, None) as lite_a, host(4, None) as lite_b:
        for n in range(3):
            lite_a.upload(f"late{n}", "visible", "log", SMALL)
            assert not lite_b.search(task_id=f"late{n}")  # invisible without a rebuild
            started = time.perf_counter()
            lite_b.rebuild_index()
            rebuilds.append((time.perf_counter() - started) * 1000)
            assert lite_b.search(task_id=f"late{n}")
    value, base = median(delays), median(rebuilds)
    report.add(
        Result(
            "B9",
            f"cross-host visibility delay (queries needed: max {max(queries)})",
            value,
            "ms",
            base,
            f"SQLite per host: rebuild_index of {count + 3} records",
            base / value,
            "the next query",
            max(queries) == 1,
            count,
        )
    )
    pg.drop_database(pg_url)
    s3.drop_bucket(bucket)


class DelayProxy:
    """A loopback TCP proxy that holds every chunk from the client ``delay`` seconds."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self._open:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for source, sink, delay in ((client, server, self.delay), (server, client, 0.0)):
                threading.Thread(target=self._pipe, args=(source, sink, delay), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, delay: float) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if delay:
                    time.sleep(delay)
                sink.sendall(chunk)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._open = False
        self._listener.close()


def rebuild_rates(report: Report, pg: PostgresServer, s3: MotoS3, work: Path, records: int) -> None:
    """Records/s of ``rebuild_index`` from S3: before (one GET at a time into SQLite,
    no snapshot), after without a snapshot (parallel GETs, batched into PostgreSQL),
    and after with the snapshot a previous rebuild left (only changed records GET)."""
    bucket = s3.new_bucket()
    settings: dict[str, Any] = {
        "backend_type": "s3",
        "backend": {"bucket": bucket, "endpoint_url": s3.url},
        "compression_enabled": False,
        "state_dir": str(work / "fill"),
    }
    with ArtifactStore(settings) as filler:
        for n in range(records):
            filler.upload(f"r{n:05d}", "rebuild", "log", b"r" * 200)
    host, port = s3.url.removeprefix("http://").split(":")
    proxy = DelayProxy((host, int(port)), PROXY_DELAY_S)
    # (side, PostgreSQL?, GETs in flight, snapshot kept?)
    sides = (("before", False, 1, False), ("cold", True, None, False), ("warm", True, None, True))
    try:
        for label, url in (("moto", s3.url), (f"moto + {PROXY_DELAY_S * 1000:.0f} ms", proxy.url)):
            pg_url = pg.new_database()
            seconds: dict[str, list[float]] = {side[0]: [] for side in sides}
            for rep in range(2):
                order = sides if rep % 2 == 0 else sides[::-1]
                for name, shared, workers, keep in order:
                    config = dict(
                        settings,
                        backend={"bucket": bucket, "endpoint_url": url},
                        state_dir=str(work / f"rb-{label}-{rep}-{name}"),
                    )
                    if shared:
                        config["index_url"] = pg_url
                    with ArtifactStore(config) as store, _workers(workers):
                        if keep:
                            store.rebuild_index()  # leaves the snapshot the timed one uses
                        else:
                            store.backend.delete(SNAPSHOT_KEY)
                        started = time.perf_counter()
                        assert store.rebuild_index() == records
                        seconds[name].append(time.perf_counter() - started)
            for name, figure in (("cold", "no snapshot"), ("warm", "snapshot of the last rebuild")):
                report.add(
                    rate_result(
                        "B9",
                        f"rebuild_index from S3 ({label}), {records:,} records, {figure}",
                        seconds[name],
                        seconds["before"],
                        records,
                        unit="records/s",
                        baseline_label="one GET at a time into SQLite (before)",
                        target_ratio=10.0,
                    )
                )
            pg.drop_database(pg_url)
    finally:
        proxy.close()
        s3.drop_bucket(bucket)


@contextlib.contextmanager
def _workers(count: int | None) -> Iterator[None]:
    """Run the rebuilds inside the block with ``count`` GETs in flight (None: the default)."""
    saved = rebuild_module.REBUILD_WORKERS
    rebuild_module.REBUILD_WORKERS = saved if count is None else count
    try:
        yield
    finally:
        rebuild_module.REBUILD_WORKERS = saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shared_index", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS-B9.md")
    parser.add_argument("--population", type=int, default=None, help="artifacts for search/upload")
    parser.add_argument("--records", type=int, default=None, help="records rebuilt from S3")
    parser.add_argument("--hosts-checks", type=int, default=None, help="visibility samples")
    parser.add_argument(
        "--parts",
        default="search,visibility,rebuild",
        help="comma-separated subset of: search (and uploads), visibility, rebuild",
    )
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    population = args.population or (2_000 if args.quick else 100_000)
    records = args.records or (200 if args.quick else 2_000)
    checks = args.hosts_checks or (10 if args.quick else 50)
    os.environ.update(S3_ENV)
    report = Report(scale)
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="necrocode-b8-") as tmp,
        PostgresServer.running() as pg,
        MotoS3.running() as s3,
    ):
        work = Path(tmp)
        parts = set(args.parts.split(","))
        if "search" in parts:
            search_and_upload(report, pg, work, population, scale.queries, scale.uploads_per_rep)
        if "visibility" in parts:
            visibility(report, pg, s3, work, checks)
        if "rebuild" in parts:
            rebuild_rates(report, pg, s3, work, records)
    report.notes.append(
        "PostgreSQL is a throwaway local cluster (fsync off), reached over TCP on 127.0.0.1; "
        "SQLite is the embedded index file. Rebuild 'after' uses "
        f"{rebuild_module.REBUILD_WORKERS} GETs in flight."
    )
    command = shlex.join(
        ["python", "-m", "benchmarks.shared_index", *(argv if argv is not None else sys.argv[1:])]
    )
    args.results.write_text(
        render(report, command, Path(tempfile.gettempdir()), time.perf_counter() - started)
    )
    print(f"results in {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
