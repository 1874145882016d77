"""Cleanup batches (issue 14): many task folders removed under one delete intent file.

A cleanup gathers whole task folders into batches; each batch writes one intent
file (``<state>/intents/batches/<token>.batch.json``), removes the index rows in one
transaction, the records, then the objects, and removes the intent file last. A
kill at each of those steps must leave every expired version either intact and
indexed (before the intent) or gone for readers and removed for good by the next
opening, and nothing that was kept touched.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from necrocode.artifact_store import ArtifactNotFoundError, ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.index.intents import DeleteIntent, IntentLog
from necrocode.artifact_store.maintenance.retention import CLEANUP_BATCH
from necrocode.artifact_store.naming import ArtifactKey

from .conftest import subprocess_env

REPO = Path(__file__).resolve().parents[1]
FOLDERS = 4
TYPES = ("diff", "log", "test")


def _config(base: Path) -> ArtifactStoreConfig:
    return ArtifactStoreConfig(base_path=base, versioning_enabled=True)


def _fill(base: Path) -> tuple[list[str], str]:
    """``FOLDERS`` task folders of three artifacts (two versions of each diff), and one
    pinned artifact; return the URIs cleanup removes (every version) and the pinned one."""
    doomed: list[str] = []
    with ArtifactStore(_config(base)) as store:
        for n in range(FOLDERS):
            for kind in TYPES:
                uri = store.upload(f"t{n}", "spec", kind, f"{kind} {n}".encode())
                doomed.append(uri)
            store.upload(f"t{n}", "spec", "diff", f"diff {n} again".encode())
        pinned = store.upload("keep", "spec", "log", b"pinned")
        store.pin(pinned)
    return doomed, pinned


def _killed_cleanup(base: Path, kill_at: int) -> int:
    """Run cleanup (everything unpinned expired) in a child killed at step ``kill_at``."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.crash_points", str(base), "1", "cleanup", "-", str(kill_at)],
        env=subprocess_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, -signal.SIGKILL), result.stderr
    return result.returncode


def _batch_files(base: Path) -> list[Path]:
    folder = _config(base).effective_state_dir / "intents" / "batches"
    return sorted(folder.iterdir()) if folder.exists() else []


def _task_files(base: Path) -> list[str]:
    return sorted(
        str(p.relative_to(base))
        for n in range(FOLDERS)
        for p in (base / "spec" / f"t{n}").glob("*")
        if (base / "spec" / f"t{n}").exists()
    )


# Steps of one batch (see tests/crash_points.py): 1 the batch intent, 2 the index rows,
# 3 the records, 4 the objects, 5 the removal of the intent file.
@pytest.mark.parametrize("kill_at", [1, 2, 3, 4, 5])
def test_a_cleanup_batch_killed_at_each_step_ends_all_or_nothing(
    tmp_path: Path, kill_at: int
) -> None:
    base = tmp_path / "store"
    doomed, pinned = _fill(base)
    assert _killed_cleanup(base, kill_at) == -signal.SIGKILL
    batches = _batch_files(base)
    if kill_at == 1:
        assert batches == []  # killed before the intent: nothing was touched
    else:
        assert [p.name.endswith(".batch.json") for p in batches] == [True]
        # While the intent exists, readers in another process already see every
        # version of the batch as gone, whatever step the kill came at.
        log = IntentLog(batches[0].parent.parent)
        gone = log.gone()
        assert {key.task_id for key in gone} == {f"t{n}" for n in range(FOLDERS)}
        assert all(versions for versions in gone.values())
        if kill_at <= 4:
            assert _task_files(base) != []  # the objects are still on disk
    with ArtifactStore(_config(base)) as store:  # opening finishes the batch
        assert _batch_files(base) == []
        listed = {m.uri for m in store.search()}
        if kill_at == 1:
            assert listed == {*doomed, pinned}
            for uri in doomed:
                assert store.download(uri)
            assert len(store.get_all_versions(doomed[0])) == 2
        else:
            assert listed == {pinned}
            for uri in doomed:
                with pytest.raises(ArtifactNotFoundError):
                    store.download(uri)
            assert _task_files(base) == []
        assert store.download(pinned) == b"pinned"
        report = store.verify_all()
        assert report.healthy and report.orphaned == [] and report.incomplete == []
        # The next cleanup finishes the job (or, after a kill before the intent, does it).
        store.cleanup_expired(now=store.get_metadata(pinned).created_at + timedelta(days=3650))
        assert {m.uri for m in store.search()} == {pinned}
        assert _task_files(base) == []


def test_the_next_writer_of_an_artifact_finishes_its_part_of_a_dead_batch(
    tmp_path: Path,
) -> None:
    """A process that was running when the cleanup died finishes only the artifact it
    writes (marking it done in the batch); the next opening finishes the rest and
    removes the batch with its markers."""
    base = tmp_path / "store"
    doomed, pinned = _fill(base)
    with ArtifactStore(_config(base)) as running:
        assert _killed_cleanup(base, 3) == -signal.SIGKILL  # index rows gone, files not
        (batch,) = _batch_files(base)
        victim = doomed[0]  # spec/t0/diff, two versions in the batch
        # Records still on disk, index rows gone: search and download agree it is gone.
        assert victim not in {m.uri for m in running.search()}
        with pytest.raises(ArtifactNotFoundError):
            running.download(victim)
        new = running.upload("t0", "spec", "diff", b"new life")
        marker = batch.with_name(batch.name.removesuffix(".batch.json"))
        markers = [p for p in _batch_files(base) if p.name.endswith(".done")]
        assert [p.name.startswith(marker.name + ".") for p in markers] == [True]
        assert batch.exists()
        # The old versions are gone for good; the new upload is the only version.
        versions = running.get_all_versions(new)
        assert [v.version for v in versions] == [1]
        assert running.download(new) == b"new life"
        # Another artifact of the batch is still pending, and still gone for readers.
        with pytest.raises(ArtifactNotFoundError):
            running.download(doomed[1])
    with ArtifactStore(_config(base)) as store:  # opening finishes the rest
        assert _batch_files(base) == []
        assert {m.uri for m in store.search()} == {new, pinned}
        assert store.download(new) == b"new life"
        report = store.verify_all()
        assert report.healthy and report.orphaned == [] and report.incomplete == []


def test_batch_intents_are_seen_per_artifact_and_join_their_own_file(tmp_path: Path) -> None:
    log = IntentLog(tmp_path / "intents")
    a = ArtifactKey.of("spec", "t1", "diff")
    b = ArtifactKey.of("spec", "t2", "log")
    c = ArtifactKey.of("spec", "t3", "test")
    path = log.begin_batch([DeleteIntent(a, (1, 2), ("o1", "o2")), DeleteIntent(b, (1,), ("o3",))])
    assert path is not None and path.exists()
    assert log.pending(a) == DeleteIntent(a, (1, 2), ("o1", "o2"))
    assert log.pending(c) is None
    assert log.gone() == {a: {1, 2}, b: {1}}
    # A key with an intent pending gets no batch: the per-artifact intents merge with it.
    assert log.begin_batch([DeleteIntent(a, (3,), ("o4",)), DeleteIntent(c, (1,), ())]) is None
    log.begin([DeleteIntent(c, (1,), ("o5",))])
    assert log.gone() == {a: {1, 2}, b: {1}, c: {1}}
    # A dead holder's batch, finished artifact by artifact: done markers, then removal.
    log.end([a])
    assert log.pending(a) is None and log.pending(b) is not None and path.exists()
    log.end([b, c])
    assert not path.exists()
    assert sorted(p.name for p in log.batches.iterdir()) == []
    assert log.gone() == {}
    # The holder itself removes its batch in one unlink.
    again = log.begin_batch([DeleteIntent(a, (5,), ()), DeleteIntent(b, (6,), ())])
    assert again is not None
    log.end_batch(again)
    assert log.gone() == {} and not again.exists()


def test_a_damaged_batch_file_is_dropped(tmp_path: Path) -> None:
    """Batch files are renamed into place: only a power cut tears one, before its
    removal started, so it is dropped (and logged)."""
    log = IntentLog(tmp_path / "intents")
    key = ArtifactKey.of("spec", "t1", "diff")
    log.batches.mkdir(parents=True)
    torn = log.batches / "0123456789abcdef.batch.json"
    torn.write_text('[{"spec_name": "spec", "task_')
    assert log.pending(key) is None
    assert not torn.exists()


def test_an_orphan_done_marker_is_removed_by_a_full_listing(tmp_path: Path) -> None:
    log = IntentLog(tmp_path / "intents")
    log.batches.mkdir(parents=True)
    orphan = log.batches / "0123456789abcdef.00000000000000000000000000000000.done"
    orphan.write_text("")
    assert list(log.all()) == []
    assert not orphan.exists()


def test_a_cleanup_stopped_by_its_progress_callback_leaves_every_batch_whole(
    tmp_path: Path,
) -> None:
    """A progress callback that raises stops the cleanup: batches not started are
    dropped, running ones finish, and every version is either kept (searchable and
    downloadable) or gone from both; no intent is left; the next run does the rest."""
    # Not durable: fsyncs would only make the test slow; this is about stopping.
    config = ArtifactStoreConfig(
        base_path=tmp_path / "s", maintenance_workers=2, durable_writes=False
    )
    # More batches (of CLEANUP_BATCH folders of one log each) than the 2 workers
    # keep in flight (3 each).
    total = CLEANUP_BATCH * 8
    with ArtifactStore(config) as store:
        uris = [store.upload(f"t{i}", "spec", "log", f"line {i}".encode()) for i in range(total)]
        later = store.get_metadata(uris[-1]).created_at + timedelta(days=8)
        seen: list[int] = []

        def stop_at_five(done: int, count: int) -> None:
            seen.append(done)
            if done == 5:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            store.cleanup_expired(now=later, progress=stop_at_five)
        assert seen == [1, 2, 3, 4, 5]
        assert not [t for t in threading.enumerate() if t.name.startswith("necrocode-upkeep")]
        assert store.metadata.intents.gone() == {}
        listed = {m.uri for m in store.search()}
        for uri in uris:
            if uri in listed:
                assert store.download(uri)
            else:
                with pytest.raises(ArtifactNotFoundError):
                    store.download(uri)
        assert 0 < len(listed) < total  # some batches ran, some never started
        report = store.cleanup_expired(now=later)
        assert report.count == len(listed) and not report.errors
        assert store.search() == []


def test_a_batch_done_for_every_artifact_is_removed_by_a_full_listing(tmp_path: Path) -> None:
    """Two finishers of a dead batch's last artifacts may each list before the other's
    marker exists; the next full listing (an opening, a repair) removes the batch."""
    log = IntentLog(tmp_path / "intents")
    a = ArtifactKey.of("spec", "t1", "diff")
    b = ArtifactKey.of("spec", "t2", "log")
    path = log.begin_batch([DeleteIntent(a, (1,), ("o1",)), DeleteIntent(b, (1,), ("o2",))])
    assert path is not None
    stem = path.name.removesuffix(".batch.json")
    for key in (a, b):  # the markers, as two racing finishers leave them
        digest = log.path_for(key).name.removesuffix(".intent.json")
        (log.batches / f"{stem}.{digest}.done").write_text("")
    assert log.pending(a) is None and log.pending(b) is None
    assert list(log.all()) == []
    assert not path.exists()
    assert sorted(log.batches.iterdir()) == []  # the markers went with it
