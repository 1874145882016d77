"""Helpers of the fault tests: a real full disk, and the scale of the fault campaign."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@contextlib.contextmanager
def tiny_tmpfs(size: str = "4m") -> Iterator[Path]:
    """A small tmpfs of its own, unmounted afterwards (skips where mounting is not allowed)."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if mount is None or umount is None:
        pytest.skip("mount/umount are not installed")
    folder = Path(tempfile.mkdtemp(prefix="necrocode-full-"))
    result = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run([umount, "--lazy", str(folder)], check=True)
        folder.rmdir()


def fill_up(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte; return the filler file."""
    filler = folder / f"filler-{len(list(folder.glob('filler*')))}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


# -- the scale of the fault campaign ------------------------------------------------------------


def full_campaign(config: pytest.Config) -> bool:
    """Whether the run asked for the full fault campaign (``-m faults``)."""
    return "faults" in (config.getoption("markexpr", default="") or "")


# -- ENOSPC at the N-th write point ---------------------------------------------------------------


class WritePoints:
    """Makes the ``fail_at``-th write point of the store fail as a full disk would.

    Write points are the system calls the store's local writes go through
    (creating a file, fsync, rename, hard link, mkdir) and the index's write
    transactions (SQLite's "database or disk is full"). ``fail_at=0`` only counts.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int = 0) -> None:
        self.fail_at = fail_at
        self.count = 0
        self.failed = False
        self._patch(monkeypatch)

    def _hit(self) -> bool:
        self.count += 1
        if self.count == self.fail_at:
            self.failed = True
            return True
        return False

    def _patch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from necrocode.artifact_store.exceptions import StorageFullError
        from necrocode.artifact_store.index.sqlite import SQLiteIndex

        def full() -> OSError:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        real_open, real_fsync = os.open, os.fsync
        real_replace, real_link, real_mkdir = os.replace, os.link, os.mkdir

        def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & os.O_CREAT and self._hit():
                raise full()
            return real_open(path, flags, *args, **kwargs)

        def fsync(fd: int) -> None:
            if self._hit():
                raise full()
            real_fsync(fd)

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if self._hit():
                raise full()
            real_replace(src, dst, *args, **kwargs)

        def link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if self._hit():
                raise full()
            real_link(src, dst, *args, **kwargs)

        def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
            if self._hit():
                raise full()
            real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", open_)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "link", link)
        monkeypatch.setattr(os, "mkdir", mkdir)
        for name in ("put", "remove", "replace_all"):
            method = getattr(SQLiteIndex, name)

            def indexed(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
                if self._hit():
                    raise StorageFullError("index: database or disk is full")
                return _method(*args, **kwargs)

            monkeypatch.setattr(SQLiteIndex, name, indexed)
