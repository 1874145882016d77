"""B3 search latency and B6 usage latency: the largest store against the smallest.

Each query kind returns a bounded number of rows (see :mod:`.population`), so
any growth in latency with the store size is the cost of the lookup itself.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from necrocode.artifact_store import ArtifactStore

from .harness import Report, Result, median, percentile
from .population import (
    FAILING_EVERY,
    PACKAGE_BATCH,
    TAG_BATCH,
    TYPES,
    created_of,
    names,
)

#: At most this much slower at the largest store than at the smallest.
GROWTH_LIMIT = 2.0
DATE_WINDOW = timedelta(seconds=120)
MAX_ROWS = 100

Query = Callable[[], object]


def search_queries(
    store: ArtifactStore, population: int, now: datetime, rng: random.Random
) -> dict[str, Query]:
    """One random query of each kind, re-drawn on every call."""

    def by_task() -> object:
        _, task, _ = names(rng.randrange(population))
        return store.search(task_id=task)

    def by_spec() -> object:
        spec, _, _ = names(rng.randrange(population))
        return store.search(spec_name=spec)

    def by_type_and_date() -> object:
        i = rng.randrange(population)
        start = created_of(i, now)
        return store.search(
            artifact_type=TYPES[i % 3], created_after=start, created_before=start + DATE_WINDOW
        )

    def by_tag() -> object:
        batch = rng.randrange(population) // TAG_BATCH
        return store.search_by_tags([f"batch-{batch:05d}"])

    def combined() -> object:
        i = rng.randrange(population)
        spec, _, kind = names(i)
        return store.search(spec_name=spec, artifact_type=kind, tags=["bench"])

    def newest_failing() -> object:
        return store.search(failed=True, limit=20)

    def failing_test() -> object:
        task = rng.randrange(population // 3) // FAILING_EVERY * FAILING_EVERY
        return store.search(test=f"test_case_{task:06d}")

    def touching() -> object:
        return store.search(touches=f"pkg{rng.randrange(population) // PACKAGE_BATCH:05d}/**")

    def logs_with_errors() -> object:
        return store.search(has_errors=True, artifact_type="log", limit=20)

    return {
        "failed, newest 20": newest_failing,
        "failing test id substring": failing_test,
        "touches glob": touching,
        "logs with errors, newest 20": logs_with_errors,
        "by task": by_task,
        "by spec": by_spec,
        "by type + date range": by_type_and_date,
        "by tag": by_tag,
        "combined (spec + type + tag)": combined,
    }


def search_latencies(
    store: ArtifactStore, population: int, now: datetime, queries: int
) -> dict[str, list[float]]:
    """Latencies (ms) of ``queries`` random queries of each kind; checks row counts."""
    rng = random.Random(population)
    found: dict[str, list[float]] = {}
    for kind, query in search_queries(store, population, now, rng).items():
        query()  # warm the statement cache
        latencies = []
        for _ in range(queries):
            started = time.perf_counter()
            rows = query()
            latencies.append((time.perf_counter() - started) * 1000)
            assert isinstance(rows, list) and 0 < len(rows) <= MAX_ROWS, (kind, len(rows))
        found[kind] = latencies
    return found


#: A usage call takes ~15 µs, so 200 in a row fit in one scheduler time slice of a
#: busy neighbour: they are spread over this many batches, 10 ms apart.
USAGE_BATCHES = 20


def usage_latencies(store: ArtifactStore, calls: int) -> list[float]:
    """Latencies (ms) of ``calls`` calls of ``get_storage_usage`` in every one of the batches."""
    store.get_storage_usage()
    latencies = []
    for _ in range(USAGE_BATCHES):
        for _ in range(calls):
            started = time.perf_counter()
            store.get_storage_usage()
            latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)
    return latencies


def _growth_row(
    report: Report, bench: str, figure: str, small: float, big: float, samples: int
) -> None:
    ratio = small / big
    report.add(
        Result(
            bench,
            figure,
            big,
            "ms",
            small,
            "same at the small store",
            ratio,
            f"<= {GROWTH_LIMIT:g} x small (ratio >= {1 / GROWTH_LIMIT:g})",
            ratio >= 1 / GROWTH_LIMIT,
            samples,
        )
    )


def report_growth(
    report: Report,
    small: tuple[int, dict[str, list[float]], list[float]],
    big: tuple[int, dict[str, list[float]], list[float]],
) -> None:
    """B3 rows (median and p95 per kind) and the B6 usage row."""
    small_n, small_search, small_usage = small
    big_n, big_search, big_usage = big
    for kind, latencies in big_search.items():
        base = small_search[kind]
        for label, pick in (("median", median), ("p95", lambda v: percentile(v, 0.95))):
            _growth_row(
                report,
                "B3",
                f"search {kind}, {label} latency at {big_n:,} vs {small_n:,}",
                pick(base),
                pick(latencies),
                len(latencies),
            )
    _growth_row(
        report,
        "B6",
        f"get_storage_usage median latency at {big_n:,} vs {small_n:,}",
        median(small_usage),
        median(big_usage),
        len(big_usage),
    )
