"""Upkeep of a local store in worker processes: the same reports, index and progress as
one thread, in order, and nothing left running when a pass stops early."""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig, StorageError
from necrocode.artifact_store.index import processes
from necrocode.artifact_store.index.intents import DeleteIntent
from necrocode.artifact_store.index.processes import WorkerFailedError, ordered_in_processes
from necrocode.artifact_store.naming import ArtifactKey, ArtifactType
from necrocode.artifact_store.pipeline.integrity import SMALL_OBJECT

ROOT = Path(__file__).resolve().parents[1]
WORK = "tests.process_work"


@pytest.fixture(autouse=True)
def _workers_import_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker processes import the test helpers; every store counts as large."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr(processes, "PROCESS_MIN_ARTIFACTS", 0)


def _children() -> set[int]:
    """Live child processes of this process (Linux)."""
    found = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            text = (task / "children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile (its children pass to another thread)
        found.update(int(pid) for pid in text)
    return found


def test_ordered_in_processes_keeps_input_order_on_several_processes() -> None:
    before = _children()
    results = list(
        ordered_in_processes(
            f"{WORK}:start", f"{WORK}:shifted", (1000,), [n for n in range(60) if n % 10 != 7], 3
        )
    )
    assert [value for value, _ in results] == [n + 1000 for n in range(60) if n % 10 != 7]
    assert len({pid for _, pid in results}) == 3  # the parts went to three processes
    assert os.getpid() not in {pid for _, pid in results}
    assert _children() <= before  # all ended


def test_ordered_in_processes_raises_a_parts_storage_error_in_its_turn() -> None:
    seen: list[int] = []
    with pytest.raises(StorageError, match="item 17 is on a failing disk"):
        for value, _ in ordered_in_processes(
            f"{WORK}:start", f"{WORK}:shifted", (0,), range(10, 40), 2
        ):
            seen.append(value)
    assert seen == list(range(10, 17))  # every earlier result, in order, and no later one


def test_ordered_in_processes_reports_a_bug_with_its_traceback() -> None:
    with pytest.raises(WorkerFailedError, match="ValueError: a bug in the work"):
        list(ordered_in_processes(f"{WORK}:start", f"{WORK}:shifted", (0,), [98, 99, 100], 2))


def test_ordered_in_processes_stopped_early_leaves_nothing_running() -> None:
    before = _children()
    results = ordered_in_processes(f"{WORK}:start", f"{WORK}:shifted", (0,), range(1000), 2)
    assert next(results)[0] == 0
    results.close()  # the caller stops (a progress callback raised)
    assert _children() <= before


def _content(i: int) -> bytes:
    """A log (an error in one of four), a diff or a JUnit report (one in four failing)."""
    kind = i % 3
    if kind == 0:
        return (f"line {i}\n" * 30 + ("ERROR: it broke\n" if i % 4 == 0 else "")).encode()
    if kind == 1:
        return (
            f"--- a/pkg{i % 5}/mod.py\n+++ b/pkg{i % 5}/mod.py\n"
            f"@@ -1,1 +1,2 @@\n line\n+added {i}\n"
        ).encode()
    failing = (
        f'<testcase name="test_case_{i}"><failure message="no"/></testcase>' if i % 4 == 2 else ""
    )
    return (
        f'<testsuite name="s" tests="2"><testcase name="test_ok_{i}"/>{failing}</testsuite>'
    ).encode()


def _filled(root: Path, count: int = 48) -> None:
    config = ArtifactStoreConfig(
        base_path=root, durable_writes=False, maintenance_workers=1, versioning_enabled=True
    )
    with ArtifactStore(config) as store:
        for i in range(count):
            # Six spec folders, so the walk is cut into several parts.
            store.upload(
                f"t{i // 3}",
                f"spec{i % 6}",
                ("log", "diff", "test")[i % 3],
                _content(i),
                tags=[f"batch-{i // 8}"],
            )
        store.upload("t0", "spec0", "log", b"a second version\n" * 10)


def _open(root: Path, workers: int | None) -> ArtifactStore:
    config = ArtifactStoreConfig(
        base_path=root, maintenance_workers=workers, versioning_enabled=True
    )
    return ArtifactStore(config)


def _damage(root: Path) -> None:
    """A corrupted object, a missing one, an orphan, leftovers (one in the root), an
    unreadable record and a version being removed."""
    objects = sorted(p for p in root.rglob("*.gz") if p.is_file())
    objects[3].write_bytes(objects[3].read_bytes()[:-4] + b"oops")
    objects[7].unlink()
    # A small object with bytes after its gzip stream, one whose stream inflates to
    # other bytes, and one grown past the size a small object is read whole at.
    objects[11].write_bytes(objects[11].read_bytes() + b"trailing")
    original = gzip.decompress(objects[13].read_bytes())
    changed = bytes([original[0] ^ 1]) + original[1:]  # same size, a valid gzip stream
    objects[13].write_bytes(gzip.compress(changed, mtime=0))
    objects[15].write_bytes(os.urandom(SMALL_OBJECT + 10))
    (objects[9].parent / "log.v9.0000000000000000.gz").write_bytes(b"orphan")
    (root / "spec2" / "t2" / ".diff.tmp-leftover").write_bytes(b"half")
    (root / ".spec9.tmp-leftover").write_bytes(b"half")
    record = next(iter(sorted((root / "spec4").rglob("*.meta.json"))))
    record.write_text("{not json")


def test_verify_all_in_processes_matches_the_single_threaded_pass(tmp_path: Path) -> None:
    root = tmp_path / "s"
    _filled(root)
    _damage(root)
    shutil.copytree(root, tmp_path / "copy")
    reports = {}
    calls: dict[int | None, list[tuple[int, int]]] = {}
    for workers in (1, 3):
        if workers != 1:  # the same damaged store again (the first pass fixed its index)
            shutil.rmtree(root)
            shutil.copytree(tmp_path / "copy", root)
        with _open(root, workers) as store:
            before = _children()
            calls[workers] = []
            reports[workers] = store.verify_all(
                progress=lambda d, t, c=calls[workers]: c.append((d, t))
            ).to_dict()
            assert _children() <= before
    single, pooled = reports[1], reports[3]
    assert pooled == single
    assert calls[3] == calls[1] and [d for d, _ in calls[3]] == list(range(1, 49))
    assert len(single["corrupted"]) == 5 and len(single["missing"]) == 1  # type: ignore[arg-type]
    assert single["incomplete"] == [".spec9.tmp-leftover", "spec2/t2/.diff.tmp-leftover"]
    assert len(single["orphaned"]) == 1  # type: ignore[arg-type]


def test_verify_all_in_processes_leaves_out_versions_being_removed(tmp_path: Path) -> None:
    root = tmp_path / "s"
    _filled(root)
    with _open(root, 1) as single_store, _open(root, 2) as pooled_store:
        key = ArtifactKey("spec0", "t0", ArtifactType.LOG)
        single_store.metadata.intents.begin([DeleteIntent(key, (2,), ())])
        pooled = pooled_store.verify_all().to_dict()
        single = single_store.verify_all().to_dict()
    # The first pass dropped the row of the version being removed; the second finds none.
    assert [str(uri).rsplit("/", 1)[1] for uri in pooled.pop("index_stale")] == [  # type: ignore[attr-defined]
        "log.txt?version=2"
    ]
    assert single.pop("index_stale") == []
    assert pooled == single
    assert not [uri for uri in single["ok"] if uri.endswith("spec0/t0/log?version=2")]  # type: ignore[attr-defined]


def test_verify_all_in_processes_stops_when_progress_raises(tmp_path: Path) -> None:
    root = tmp_path / "s"
    _filled(root)
    with _open(root, 2) as store:
        seen: list[int] = []
        before = _children()

        def stop_at_five(done: int, total: int) -> None:
            seen.append(done)
            if done == 5:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            store.verify_all(progress=stop_at_five)
        assert seen == [1, 2, 3, 4, 5]
        assert _children() <= before  # nothing keeps running after the call returns
        assert store.verify_all().checked == 49  # the store is untouched and usable


def _index_rows(root: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(root / ".necrocode" / "index.sqlite3")
    try:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
            for table in (
                "artifacts",
                "tags",
                "usage_totals",
                "usage_grand",
                "insights",
                "insight_files",
                "insight_tests",
            )
        }
    finally:
        conn.close()


def _searches(store: ArtifactStore) -> list[list[str]]:
    found = [
        store.search(test="test_case"),
        store.search(touches="pkg1/*"),
        store.search(has_errors=True),
        store.search(failed=True),
        store.search(tags=["batch-2"]),
    ]
    assert all(found), "every search finds something"
    return [sorted(m.uri for m in result) for result in found]


def test_rebuild_in_processes_builds_the_same_index(tmp_path: Path) -> None:
    root = tmp_path / "s"
    _filled(root)
    record = next(iter(sorted((root / "spec4").rglob("*.meta.json"))))
    record.write_text("{not json")  # skipped by both
    with _open(root, 1) as single_store, _open(root, 3) as pooled_store:
        key = ArtifactKey("spec1", "t2", ArtifactType.DIFF)
        single_store.metadata.intents.begin([DeleteIntent(key, (1,), ())])  # left out
        single_count = single_store.rebuild_index()
        single = _index_rows(root)
        searches = _searches(single_store)
        before = _children()
        assert pooled_store.rebuild_index() == single_count == 47
        assert _children() <= before
        assert _index_rows(root) == single
        assert _searches(pooled_store) == searches


def test_rebuild_in_processes_fails_whole_and_keeps_the_old_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "s"
    _filled(root)
    with _open(root, 2) as store:
        before = _index_rows(root)

        def failing(*args: object) -> Iterator[object]:
            yield from ()
            raise StorageError("the disk went away")

        monkeypatch.setattr("necrocode.artifact_store.index.manager.ordered_in_processes", failing)
        with pytest.raises(StorageError, match="went away"):
            store.rebuild_index()
        assert _index_rows(root) == before  # rolled back: the old index serves on
        assert len(store.search(spec_name="spec0")) == 8
