"""Content searches cost the same work at 600 and at 6,000 artifacts.

As in ``test_index_scaling``, work is counted in SQLite virtual-machine steps,
which is deterministic: a query that scans grows with the store, an indexed one
does not. The store gains failing tests, erroring logs and diffs in proportion.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from necrocode.artifact_store import ArtifactMetadata, ArtifactType, Summary
from necrocode.artifact_store.content import (
    SUMMARY_VERSION,
    ChangedFile,
    DiffSummary,
    LogSummary,
    TestSummary,
)
from necrocode.artifact_store.index.insights import InsightFilter
from necrocode.artifact_store.index.query import SearchQuery
from necrocode.artifact_store.index.sqlite import SQLiteIndex

TYPES = (ArtifactType.DIFF, ArtifactType.LOG, ArtifactType.TEST_RESULT)
BASE = datetime(2026, 1, 1, tzinfo=UTC)
SMALL, BIG = 600, 6_000


def _summary(i: int) -> Summary:
    task = i // 3
    failing = task % 10 == 0
    kind = TYPES[i % 3]
    if kind is ArtifactType.TEST_RESULT:
        ids = (f"tests/test_auth.py::test_login_{task:05d}",) if failing else ()
        test = TestSummary("junit", not failing, 5, int(failing), 0, 0, 1.0, ids)
        return Summary("test", SUMMARY_VERSION, test=test)
    if kind is ArtifactType.DIFF:
        files = (ChangedFile(f"pkg{i // 150:04d}/mod{task % 7}.py", "modified", 1, 1),)
        return Summary("diff", SUMMARY_VERSION, diff=DiffSummary(1, 1, 1, 0, files))
    return Summary("log", SUMMARY_VERSION, log=LogSummary(9, int(failing), 0, 0, None))


def _meta(i: int) -> ArtifactMetadata:
    task = i // 3
    return ArtifactMetadata(
        uri=f"file:///s/spec{task // 20}/task{task}/x",
        task_id=f"task{task}",
        spec_name=f"spec{task // 20}",
        type=TYPES[i % 3],
        size=10,
        checksum="sha256:" + "0" * 64,
        created_at=BASE + timedelta(seconds=i),
        compressed=False,
        original_size=10,
        mime_type="text/plain",
        summary=_summary(i),
    )


def _query(**filters: object) -> SearchQuery:
    limit = filters.pop("limit", None)
    kind = filters.pop("artifact_type", None)
    return SearchQuery(
        insights=InsightFilter.build(**filters),  # type: ignore[arg-type]
        newest_first=True,
        limit=limit,  # type: ignore[arg-type]
        artifact_type=kind,  # type: ignore[arg-type]
    )


QUERIES = {
    "failed, newest 20": _query(failed=True, limit=20),
    "logs with errors, newest 20": _query(
        has_errors=True, artifact_type=ArtifactType.LOG, limit=20
    ),
    "failing test id": _query(test="login_00030"),
    "touches a folder glob": _query(touches="pkg0001/**"),
    "touches a file": _query(touches="pkg0001/mod3.py"),
}


def _steps(index: SQLiteIndex, query: SearchQuery) -> int:
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn = index._connect()
    conn.set_progress_handler(count, 1)
    try:
        assert 0 < len(index.search(query)) <= 60
    finally:
        conn.set_progress_handler(None, 1)
    return steps


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, SQLiteIndex]]:
    folder = tmp_path_factory.mktemp("indexes")
    built = {}
    for size in (SMALL, BIG):
        built[size] = SQLiteIndex(folder / f"index-{size}.sqlite3")
        built[size].replace_all(_meta(i) for i in range(size))
    yield built
    for index in built.values():
        index.close()


@pytest.mark.parametrize("kind", sorted(QUERIES))
def test_content_search_work_does_not_grow_with_the_store(
    indexes: dict[int, SQLiteIndex], kind: str
) -> None:
    work = {size: _steps(index, QUERIES[kind]) for size, index in indexes.items()}
    # A test-id substring is driven from the trigram index, read once: the rows it
    # yields are joined by primary key, never scanned (B3 measures the latency,
    # which also depends on the trigram posting lists, at 100,000).
    limit = 2
    assert work[BIG] <= limit * work[SMALL], work
