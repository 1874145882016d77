"""SIGKILL a writer at random moments; nothing committed may be lost or torn
(DESIGN invariant 1).

Each run prepares a store, lets a writer process run random uploads, overwrites,
deletes, tag updates and cleanups, kills it after a random delay, and checks:
``verify_all`` finds no corrupted or missing artifact; every artifact is its old
or its new self (see ``crash_workload``); leftovers of the interrupted write are
reported and ``repair`` removes them; after ``rebuild_index`` the index agrees
with the records; and a new writer is never blocked by the dead one's lock.
10 runs by default, 50 with ``-m stress``; each run's seed is in its test id.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from datetime import timedelta
from pathlib import Path

import pytest

from necrocode.artifact_store import ArtifactNotFoundError, ArtifactStore

from .crash_workload import (
    KEYS,
    SPEC,
    Model,
    acceptable,
    config_for,
    crash_writer,
    observe,
    prepopulate,
    read_journal,
)
from .stress_workload import identify

DEFAULT_RUNS = 10
STRESS_RUNS = 50
#: The kill comes this long (seconds, drawn uniformly) after the writer is ready.
KILL_AFTER = (0.0, 0.6)
#: Seconds to wait for the writer to open the store before calling it broken.
READY_TIMEOUT_S = 60.0
POLL_S = 0.01


def crash_run(tmp_path: Path, seed: int) -> dict[str, object]:
    """One run: prepare, kill mid-work, check. Returns what the kill interrupted."""
    rng = random.Random(seed)
    versioning = seed % 2 == 1
    base = tmp_path / "store"
    journal = tmp_path / "journal.jsonl"
    journal.touch()
    model = Model(versioning)
    with ArtifactStore(config_for(base, versioning)) as store:
        prepopulate(store, model, rng)

    process = multiprocessing.get_context("spawn").Process(
        target=crash_writer, args=(str(base), versioning, seed, str(journal))
    )
    process.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not read_journal(journal)[1]:
            assert process.is_alive() and time.monotonic() < deadline, "writer never got ready"
            time.sleep(POLL_S)
        time.sleep(rng.uniform(*KILL_AFTER))
    finally:
        process.kill()
        process.join()
    assert process.exitcode is not None and process.exitcode < 0, "the writer was not killed"

    ops, _ = read_journal(journal)
    in_flight = ops[-1] if ops and not ops[-1].done else None
    for op in ops:
        if op.done:
            model.apply(op)
    after = model.after(in_flight) if in_flight is not None else model.states

    with ArtifactStore(config_for(base, versioning)) as store:
        # Search and download agree before anything repairs the index: whatever
        # search lists downloads intact, and what it does not list is gone -- except
        # a first upload killed after its commit, before its index row: committed, so
        # found by a download (which corrects the index), not yet by search.
        listed = {meta.uri for meta in store.search(spec_name=SPEC)}
        for key in KEYS:
            uri = key.uri(store.root_uri)
            if uri in listed:
                identify(store.download(uri), key.path)  # complete, or it raises
            elif not (in_flight and in_flight.path == key.path and "upload" in in_flight.kind):
                with pytest.raises(ArtifactNotFoundError):
                    store.download(uri)
        report = store.verify_all()
        assert report.healthy, report.to_dict()
        for key in KEYS:
            actual = observe(store, key, versioning)
            before = model.state(key.path)
            assert acceptable(actual, before, after.get(key.path, before), in_flight), (
                f"{key.path}: holds {actual}; before {before}, after {after.get(key.path)}; "
                f"interrupted {in_flight}"
            )

        repaired = store.repair(older_than=timedelta(0))
        assert set(report.orphaned) <= set(repaired.removed_orphans)
        assert set(report.incomplete) <= set(repaired.removed_incomplete)
        clean = store.verify_all()
        assert clean.healthy and clean.orphaned == [] and clean.incomplete == [], clean.to_dict()

        store.rebuild_index()
        records = {
            (m.spec_name, m.task_id, m.type.value, m.version) for m in store.metadata.iter_records()
        }
        assert store.metadata.index.keys() == records

    # The dead writer's locks are free: a single attempt (lock_timeout=0) must get each.
    config = config_for(base, versioning).model_copy(update={"lock_timeout": 0.0})
    with ArtifactStore(config) as store:
        for key in KEYS:
            uri = store.upload(key.task_id, key.spec_name, key.type, b"after the crash")
            assert store.download(uri) == b"after the crash"
            if not versioning:
                assert len(store.metadata.stored(key).records) == 1
    return {
        "operations": len(ops),
        "interrupted": in_flight.kind if in_flight else None,
        "leftovers": len(report.orphaned) + len(report.incomplete),
    }


@pytest.mark.parametrize("seed", range(DEFAULT_RUNS), ids=lambda s: f"seed{s}")
def test_sigkilled_writer_loses_nothing(tmp_path: Path, seed: int) -> None:
    crash_run(tmp_path, seed)


@pytest.mark.stress
@pytest.mark.parametrize("seed", range(DEFAULT_RUNS, STRESS_RUNS), ids=lambda s: f"seed{s}")
def test_sigkilled_writer_loses_nothing_stress(tmp_path: Path, seed: int) -> None:
    crash_run(tmp_path, seed)
