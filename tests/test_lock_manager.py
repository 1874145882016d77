"""Per-artifact locks: exclusion, timeout, try-lock, kept files, death of a holder.

Every test runs with both kinds of lock: OFD byte-range locks in one shared
file (64-bit Linux) and a flock(2)-locked file per artifact (elsewhere).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from necrocode.artifact_store import LockTimeoutError
from necrocode.artifact_store.index.locking import OFD_LOCKS, LockManager

from .conftest import subprocess_env


@pytest.fixture(
    params=[
        pytest.param(True, id="ofd", marks=pytest.mark.skipif(not OFD_LOCKS, reason="Linux only")),
        pytest.param(False, id="flock"),
    ]
)
def ofd(request: pytest.FixtureRequest) -> bool:
    kind: bool = request.param
    return kind


def test_a_held_lock_times_out_with_the_facts(tmp_path: Path, ofd: bool) -> None:
    locks = LockManager(tmp_path / "locks", timeout=0.05, retry_interval=0.01, ofd=ofd)
    with locks.hold("spec/task/log"):
        with (
            pytest.raises(LockTimeoutError) as caught,
            locks.hold("spec/task/log", uri="file:///s/spec/task/log"),
        ):
            pytest.fail("two holders of one lock")
        assert caught.value.uri == "file:///s/spec/task/log"
        assert caught.value.lock_path == str(locks.path_for("spec/task/log"))
        assert isinstance(caught.value, TimeoutError)
        # A different artifact is not blocked.
        with locks.try_hold("spec/task/diff") as got:
            assert got
    with locks.hold("spec/task/log"):
        pass


def test_try_hold_reports_a_busy_lock_and_files_are_kept(tmp_path: Path, ofd: bool) -> None:
    locks = LockManager(tmp_path / "locks", ofd=ofd)
    with locks.try_hold("a/b/c") as first:
        assert first
        with locks.try_hold("a/b/c") as second:
            assert not second
    assert locks.path_for("a/b/c").is_file()
    with locks.try_hold("a/b/c") as again:
        assert again


def test_threads_serialise_on_one_lock(tmp_path: Path, ofd: bool) -> None:
    locks = LockManager(tmp_path / "locks", retry_interval=0.001, ofd=ofd)
    inside = 0
    overlaps = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, overlaps
        for _ in range(50):
            with locks.hold("x/y/z"):
                with guard:
                    inside += 1
                    overlaps += inside > 1
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == 0


def test_lock_of_a_killed_holder_is_released(tmp_path: Path, ofd: bool) -> None:
    locks = LockManager(tmp_path / "locks", timeout=10, retry_interval=0.01, ofd=ofd)
    holder = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from necrocode.artifact_store.index.locking import LockManager\n"
        f"locks = LockManager(Path({str(tmp_path / 'locks')!r}), ofd={ofd})\n"
        "with locks.hold('k/t/f'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True, env=subprocess_env()
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
            with locks.try_hold("k/t/f") as got:
                assert not got
        finally:
            proc.kill()
            proc.wait()
    with locks.hold("k/t/f"):
        pass


@pytest.mark.skipif(not OFD_LOCKS, reason="OFD locks are Linux only")
def test_ofd_locks_create_no_file_per_artifact(tmp_path: Path) -> None:
    locks = LockManager(tmp_path / "locks")
    for n in range(50):
        with locks.hold(f"spec/task{n}/log.txt"):
            pass
    assert [p.name for p in (tmp_path / "locks").iterdir()] == ["artifacts.lock"]
    # Many different artifacts held at once by one process do not block each other.
    with (
        locks.hold("a/1/diff.txt"),
        locks.hold("a/1/log.txt"),
        locks.hold("a/2/diff.txt"),
        locks.try_hold("a/1/log.txt") as got,
    ):
        assert not got
