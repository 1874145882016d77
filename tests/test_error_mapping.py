"""Backend failures become typed errors with the cause chained, change nothing,
and are logged once per failing public call (SPEC 15, DESIGN invariant 6).

Disk full is a real, tiny tmpfs mounted by the test; permission denied is a real
read-only folder written to by a process without CAP_DAC_OVERRIDE (root ignores
mode bits otherwise).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from necrocode.artifact_store import (
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreConfig,
    IntegrityError,
    LockTimeoutError,
    StorageFullError,
)
from necrocode.artifact_store.naming import ArtifactKey

from .conftest import subprocess_env

TMPFS_SIZE = "2m"
TOO_BIG = 4 * 1024 * 1024
LOGGER = "necrocode"


@pytest.fixture
def tiny_filesystem() -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards; skipped where mounting is not allowed."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if mount is None or umount is None:
        pytest.skip("mount/umount are not installed")
    folder = Path(tempfile.mkdtemp(prefix="necrocode-full-"))
    result = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        folder.rmdir()
        pytest.skip(
            f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {result.stderr.strip()}"
        )
    try:
        yield folder
    finally:
        subprocess.run([umount, str(folder)], check=True)
        folder.rmdir()


def _files(root: Path) -> set[str]:
    """Every file under ``root`` outside the state folder (index and locks)."""
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and ".necrocode" not in path.parts
    }


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The store's records of failed calls; they are DEBUG: the caller has the exception."""
    failed = [
        r for r in caplog.records if r.name.startswith(LOGGER) and " failed: " in r.getMessage()
    ]
    assert all(r.levelno == logging.DEBUG for r in failed), [r.levelname for r in failed]
    return failed


def test_disk_full_raises_storage_full_and_changes_nothing(
    tiny_filesystem: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tiny_filesystem / "store"
    with ArtifactStore(ArtifactStoreConfig(base_path=root)) as store:
        uri = store.upload("1.1", "spec", "diff", b"old content")
        before = _files(root)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger=LOGGER):
            with pytest.raises(StorageFullError) as caught:
                store.upload("1.1", "spec", "diff", os.urandom(TOO_BIG))
            with pytest.raises(StorageFullError):
                store.upload("2.1", "spec", "log", os.urandom(TOO_BIG))
        cause = caught.value.__cause__
        assert isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
        assert len(_errors(caplog)) == 2  # one per failing call, not one per layer
        assert store.download(uri) == b"old content"
        assert store.get_metadata(uri).version == 1
        assert not store.exists(ArtifactKey.of("spec", "2.1", "log").uri(store.root_uri))
        assert _files(root) == before
        report = store.verify_all()
        assert report.healthy and report.ok == [uri]
        assert report.orphaned == [] and report.incomplete == []


_UNPRIVILEGED_UPLOAD = """
import builtins, json, logging, sys
from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig, StoragePermissionError
logged, loud = [], []
class Collect(logging.Handler):
    def emit(self, record):
        (loud if record.levelno > logging.DEBUG else logged).append(record.getMessage())
logging.getLogger("necrocode").addHandler(Collect())
logging.getLogger("necrocode").setLevel(logging.DEBUG)
store = ArtifactStore(ArtifactStoreConfig(base_path=sys.argv[1]))
try:
    store.upload("1.1", "spec", "diff", b"new content")
except StoragePermissionError as exc:
    cause = exc.__cause__
    print(json.dumps({
        "builtin": isinstance(exc, builtins.PermissionError),
        "cause_errno": getattr(cause, "errno", None),
        "logged": [m for m in logged if " failed: " in m],
        "loud": loud,
    }))
"""


def test_unwritable_folder_raises_permission_error_and_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with ArtifactStore(ArtifactStoreConfig(base_path=root)) as store:
        uri = store.upload("1.1", "spec", "diff", b"old content")
    task_folder = root / "spec" / "1.1"
    before = _files(root)
    command = [sys.executable, "-c", _UNPRIVILEGED_UPLOAD, str(root)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is not installed")
        caps = "-dac_override,-dac_read_search"
        command = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *command]
    task_folder.chmod(0o555)
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=subprocess_env(), check=False
        )
    finally:
        task_folder.chmod(0o755)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["builtin"] is True
    assert outcome["cause_errno"] == errno.EACCES
    assert len(outcome["logged"]) == 1, outcome["logged"]
    assert outcome["loud"] == []  # at DEBUG only: the caller has the exception
    assert "upload" in outcome["logged"][0] and uri in outcome["logged"][0]
    assert _files(root) == before
    with ArtifactStore(ArtifactStoreConfig(base_path=root)) as store:
        assert store.download(uri) == b"old content"
        report = store.verify_all()
        assert report.healthy and report.orphaned == [] and report.incomplete == []


def test_nested_failure_is_logged_once_by_the_outer_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path / "store", lock_timeout=0)
    with ArtifactStore(config) as store:
        store.upload("1.1", "spec", "diff", b"a")
        store.upload("1.1", "spec", "log", b"b")
        log_key = ArtifactKey.of("spec", "1.1", "log")
        caplog.clear()
        with (
            caplog.at_level(logging.DEBUG, logger=LOGGER),
            store.locks.hold(log_key.path),
            pytest.raises(LockTimeoutError),
        ):
            store.delete_by_task_id("1.1")
        errors = _errors(caplog)
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert errors[0].levelno == logging.DEBUG
        assert errors[0].getMessage().startswith("delete_by_task_id 1.1 failed: LockTimeoutError")


def test_read_failures_are_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        uri = store.upload("1.1", "spec", "diff", b"content to damage")
        stored = store.backend.path_of(store.get_metadata(uri).object_key)
        stored.write_bytes(b"damaged")
        missing = ArtifactKey.of("spec", "9.9", "log").uri(store.root_uri)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger=LOGGER):
            with pytest.raises(IntegrityError):
                store.download(uri)
            with pytest.raises(ArtifactNotFoundError):
                store.download(missing)
        mine = [
            r for r in caplog.records if r.name.startswith(LOGGER) and " failed: " in r.getMessage()
        ]
        assert [(r.levelno, r.getMessage().split(" failed: ")[0]) for r in mine] == [
            (logging.DEBUG, f"download {uri}"),
            (logging.DEBUG, f"download {missing}"),
        ]
