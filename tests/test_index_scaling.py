"""Indexed searches and usage cost the same work at 200 and at 4,000 artifacts.

Work is counted in SQLite virtual-machine steps (a progress handler), which is
deterministic: a query that scans the table grows with it, an indexed one not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from necrocode.artifact_store import ArtifactMetadata, ArtifactType
from necrocode.artifact_store.index.query import SearchQuery
from necrocode.artifact_store.index.sqlite import SQLiteIndex

TYPES = (ArtifactType.DIFF, ArtifactType.LOG, ArtifactType.TEST_RESULT)
BASE = datetime(2026, 1, 1, tzinfo=UTC)
SMALL, BIG = 200, 4_000


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
        tags=(f"batch-{i // 50}", "all"),
    )


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


QUERIES = {
    "task": SearchQuery(task_id="task10"),
    "spec": SearchQuery(spec_name="spec1"),
    "tag": SearchQuery(tags=("batch-2",)),
    "spec+type+tag": SearchQuery(spec_name="spec1", artifact_type=ArtifactType.LOG, tags=("all",)),
    "type+dates": SearchQuery(
        artifact_type=ArtifactType.LOG,
        created_after=BASE + timedelta(seconds=30),
        created_before=BASE + timedelta(seconds=150),
    ),
}


@pytest.mark.parametrize("kind", sorted(QUERIES))
def test_search_work_does_not_grow_with_the_store(tmp_path: Path, kind: str) -> None:
    work = {}
    for size in (SMALL, BIG):
        index = SQLiteIndex(tmp_path / f"index-{size}.sqlite3")
        index.replace_all(_meta(i) for i in range(size))
        work[size] = _steps(index, QUERIES[kind])
        index.close()
    assert work[BIG] <= 2 * work[SMALL], work
