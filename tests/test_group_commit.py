"""Group commit (issue 14): concurrent uploads of one process share fsyncs and index
transactions, and still return a URI only once it is durable.

The commit queue itself is tested with real threads: a follower waits for the
leader's batch, errors reach the items they belong to only. The SQLite index
commits several rows in one transaction, a refused row alone rolled back. The
kill campaign SIGKILLs a process whose threads upload at once: every URI the
process reported before the kill must download intact, be found by search,
and the store must verify clean (3 runs by default, 20 with ``-m stress``).
"""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig, StorageError
from necrocode.artifact_store.backends import filesystem
from necrocode.artifact_store.group_commit import CommitQueue, PipelinedQueue
from necrocode.artifact_store.index.sqlite import SQLiteIndex
from necrocode.artifact_store.naming import ArtifactKey

from .crash_workload import GROUP_SPEC, group_writer, read_group_journal
from .stress_workload import identify

DEFAULT_RUNS = 3
STRESS_RUNS = 20
THREADS = 8
KILL_AFTER = (0.2, 1.5)
READY_TIMEOUT_S = 60.0


# -- the queue ------------------------------------------------------------------------------


def test_waiters_behind_a_running_batch_share_the_next_one() -> None:
    release = threading.Event()
    entered = threading.Event()
    batches: list[list[int]] = []

    def commit(items: list[int]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            entered.set()
            assert release.wait(10)
        return [item * 10 for item in items]

    queue: CommitQueue[int, int] = CommitQueue(commit)
    results: dict[int, int] = {}

    def submit(item: int) -> None:
        results[item] = queue.submit(item)

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    assert entered.wait(10)
    others = [threading.Thread(target=submit, args=(n,)) for n in range(1, 6)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 10
    while len(queue._pending) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert results == {n: n * 10 for n in range(6)}
    assert batches[0] == [0]
    assert sorted(batches[1]) == [1, 2, 3, 4, 5]
    assert (queue.batches, queue.items) == (2, 6)


def test_an_error_reaches_its_own_item_only() -> None:
    def commit(items: list[int]) -> list[int | BaseException]:
        return [ValueError(f"bad {n}") if n % 2 else n for n in items]

    queue: CommitQueue[int, int] = CommitQueue(commit)
    outcomes = queue.outcomes([1, 2, 3, 4])
    assert [str(o) if isinstance(o, BaseException) else o for o in outcomes] == [
        "bad 1",
        2,
        "bad 3",
        4,
    ]
    with pytest.raises(ValueError, match="bad 5"):
        queue.submit(5)
    assert queue.submit(6) == 6


def test_a_failing_batch_fails_every_item_of_it_and_the_queue_goes_on() -> None:
    calls = []

    def commit(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise OSError("disk went away")
        return items

    queue: CommitQueue[int, int] = CommitQueue(commit)
    outcomes = queue.outcomes([1, 2])
    assert all(isinstance(o, OSError) for o in outcomes)
    assert queue.submit(3) == 3


def test_a_pipelined_queue_stages_the_next_batch_while_one_finishes() -> None:
    finishing, release = threading.Event(), threading.Event()

    def finish(items: list[int]) -> list[int]:
        if items == [0]:
            finishing.set()
            assert release.wait(10)
        return [item * 10 for item in items]

    queue: PipelinedQueue[int, list[int], int] = PipelinedQueue(list, finish)
    results: dict[int, int] = {}

    def submit(item: int) -> None:
        results[item] = queue.submit(item)

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    assert finishing.wait(10)
    second = threading.Thread(target=submit, args=(1,))
    second.start()
    second.join(10)
    assert not second.is_alive() and results == {1: 10}  # done while batch [0] finishes
    release.set()
    first.join(10)
    assert results == {0: 0, 1: 10}
    assert (queue.batches, queue.items) == (2, 2)


def test_a_pipelined_stage_that_fails_fails_its_batch_and_skips_finish() -> None:
    finished: list[list[str]] = []

    def stage(items: list[str]) -> list[str]:
        if "bad" in items:
            raise ValueError("refused by stage")
        return items

    def finish(items: list[str]) -> list[str]:
        finished.append(items)
        return [item.upper() for item in items]

    queue: PipelinedQueue[str, list[str], str] = PipelinedQueue(stage, finish)
    with pytest.raises(ValueError, match="refused by stage"):
        queue.submit("bad")
    assert finished == []
    assert queue.submit("good") == "GOOD"


def test_fsyncs_of_one_folder_are_done_once_per_batch(tmp_path: Path) -> None:
    folder = tmp_path / "task"
    folder.mkdir()
    before = filesystem._SYNC_QUEUE.batches
    failures = filesystem.sync_each(
        [((str(folder), True),)] * 4 + [((str(tmp_path / "gone"), False),)]
    )
    assert failures[:4] == [None] * 4
    assert isinstance(failures[4], FileNotFoundError)
    assert filesystem._SYNC_QUEUE.batches == before + 1


# -- the index ------------------------------------------------------------------------------


def test_index_rows_of_a_batch_commit_together_and_a_refused_row_alone_fails(
    tmp_path: Path,
) -> None:
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "s")) as store:
        metas = [
            store.upload_version(f"t{n}", "spec", "log", f"log {n}".encode()) for n in range(3)
        ]
        index = store.metadata.index
        assert isinstance(index, SQLiteIndex)
        index.remove(ArtifactKey.of("spec", "t0", "log"))
        index.remove(ArtifactKey.of("spec", "t1", "log"))
        index.remove(ArtifactKey.of("spec", "t2", "log"))
        # A real SQLite refusal for one row (a test trigger), not a stand-in.
        conn = sqlite3.connect(index.path)
        conn.execute(
            "CREATE TRIGGER refuse_t1 BEFORE INSERT ON artifacts WHEN new.task_id = 't1'"
            " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
        conn.commit()
        conn.close()
        errors = index.put_many([(meta, (), None) for meta in metas])
        assert errors[0] is None and errors[2] is None
        assert isinstance(errors[1], StorageError) and "refused by the test" in str(errors[1])
        assert {m.task_id for m in store.search(spec_name="spec")} == {"t0", "t2"}


# -- the kill campaign ----------------------------------------------------------------------


def group_kill_run(tmp_path: Path, seed: int) -> int:
    """Start the threaded writer, SIGKILL it at a random moment, check what it reported."""
    rng = random.Random(seed)
    base = tmp_path / "store"
    journal = tmp_path / "journal.jsonl"
    journal.touch()
    process = multiprocessing.get_context("spawn").Process(
        target=group_writer, args=(str(base), seed, str(journal), THREADS)
    )
    process.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not read_group_journal(journal)[1]:
            assert process.is_alive() and time.monotonic() < deadline, "writer never got ready"
            time.sleep(0.01)
        time.sleep(rng.uniform(*KILL_AFTER))
    finally:
        process.kill()
        process.join()
    assert process.exitcode is not None and process.exitcode < 0, "the writer was not killed"

    returned, _ = read_group_journal(journal)
    with ArtifactStore(ArtifactStoreConfig(base_path=base, versioning_enabled=True)) as store:
        listed = {m.uri for m in store.search(tags=["group"])}
        indexed = store.metadata.index.keys()
        for entry in returned:
            uri, version = entry["uri"], entry["version"]
            writer, seq = identify(store.download(f"{uri}?version={version}"), entry["path"])
            assert (writer, seq) == (entry["writer"], entry["seq"]), entry
            assert uri in listed, f"{uri} returned but not found by search"
            row = (GROUP_SPEC, entry["task"], entry["type"], version)
            assert row in indexed, f"{uri} v{version} not indexed"
        report = store.verify_all()
        assert report.healthy, report.to_dict()
        # Version numbers of every artifact stay unique and gap-free.
        for task, kind in {(entry["task"], entry["type"]) for entry in returned}:
            versions = sorted(store.metadata.stored(ArtifactKey.of(GROUP_SPEC, task, kind)).records)
            assert versions == list(range(1, len(versions) + 1)), (task, kind, versions)
        store.rebuild_index()
        records = {
            (m.spec_name, m.task_id, m.type.value, m.version)
            for m in store.metadata.iter_records(f"{GROUP_SPEC}/")
        }
        assert store.metadata.index.keys() == records
    return len(returned)


@pytest.mark.parametrize("seed", range(DEFAULT_RUNS), ids=lambda s: f"seed{s}")
def test_sigkilled_group_of_uploading_threads_loses_no_returned_uri(
    tmp_path: Path, seed: int
) -> None:
    assert group_kill_run(tmp_path, seed) > 0, "the kill came before any upload returned"


@pytest.mark.stress
@pytest.mark.slow
@pytest.mark.parametrize("seed", range(DEFAULT_RUNS, STRESS_RUNS), ids=lambda s: f"seed{s}")
def test_sigkilled_group_of_uploading_threads_loses_no_returned_uri_stress(
    tmp_path: Path, seed: int
) -> None:
    group_kill_run(tmp_path, seed)
