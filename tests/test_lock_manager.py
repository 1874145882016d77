"""Per-artifact flock locks: exclusion, timeout, try-lock, kept files, death of a holder."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from necrocode.artifact_store import LockTimeoutError
from necrocode.artifact_store.locking import LockManager

from .conftest import subprocess_env


def test_a_held_lock_times_out_with_the_facts(tmp_path: Path) -> None:
    locks = LockManager(tmp_path / "locks", timeout=0.05, retry_interval=0.01)
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


def test_try_hold_reports_a_busy_lock_and_files_are_kept(tmp_path: Path) -> None:
    locks = LockManager(tmp_path / "locks")
    with locks.try_hold("a/b/c") as first:
        assert first
        with locks.try_hold("a/b/c") as second:
            assert not second
    assert locks.path_for("a/b/c").is_file()
    with locks.try_hold("a/b/c") as again:
        assert again


def test_threads_serialise_on_one_lock(tmp_path: Path) -> None:
    locks = LockManager(tmp_path / "locks", retry_interval=0.001)
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


def test_lock_of_a_killed_holder_is_released(tmp_path: Path) -> None:
    locks = LockManager(tmp_path / "locks", timeout=10, retry_interval=0.01)
    holder = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from necrocode.artifact_store.locking import LockManager\n"
        f"locks = LockManager(Path({str(tmp_path / 'locks')!r}))\n"
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
