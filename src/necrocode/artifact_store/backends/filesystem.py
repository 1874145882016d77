"""Filesystem backend: one file per object under a root folder.

Writes go to a temporary file in the destination folder (``.<name>.tmp-<random>``),
are fsynced, then renamed (or hard-linked, for create-if-absent) into place and
the folder is fsynced, so a write is all-or-nothing and durable once it returns
(see https://lwn.net/Articles/457667/ on why the folder needs its own fsync).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import (
    ArtifactNotFoundError,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from .base import (
    BackendCapabilities,
    ObjectExistsError,
    ObjectInfo,
    ReadStream,
    StagedObject,
    StorageBackend,
    WriteSource,
    iter_source,
    validate_key,
)

if TYPE_CHECKING:
    from ..config import ArtifactStoreConfig

__all__ = ["FilesystemBackend", "map_os_error"]

_TMP_MARKER = ".tmp-"
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def map_os_error(exc: OSError, what: str, key: str | None = None) -> StorageError:
    """Translate an ``OSError`` into the store's typed error (cause chained by the caller)."""
    detail = f"{what}: {exc.strerror or exc}"
    if exc.errno in _FULL:
        return StorageFullError(f"storage full while {detail}", key=key)
    if exc.errno in _DENIED:
        return StoragePermissionError(f"permission denied while {detail}", key=key)
    return StorageError(f"storage error while {detail}", key=key)


def _real_dir(path: Path) -> bool:
    """A folder that is not a symbolic link (and not hidden)."""
    return not path.name.startswith(".") and path.is_dir() and not path.is_symlink()


def fsync_dir(path: Path | str) -> None:
    """Make a folder's entries (creations, renames, removals) durable."""
    _fsync_path(str(path), True)


#: A path to fsync and whether it is a folder.
_Sync = tuple[str, bool]


def _fsync_path(path: str, is_dir: bool) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if is_dir else 0) | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _SyncPool:
    """A few threads that run fsyncs side by side (``os.fsync`` releases the GIL).

    One per process, started on first use. It is shut down before ``fork()``
    (and started again on the next use), so no child inherits idle threads.
    """

    WORKERS = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, path: str, is_dir: bool) -> Future[None]:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.WORKERS, "necrocode-fsync")
            return self._executor.submit(_fsync_path, path, is_dir)

    def shutdown(self) -> None:
        """Stop the threads (they start again when next needed)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def forget(self) -> None:
        """In a forked child: drop the parent's pool, whose threads do not exist here."""
        self._lock = threading.Lock()
        self._executor = None


_SYNC_POOL = _SyncPool()
os.register_at_fork(before=_SYNC_POOL.shutdown, after_in_child=_SYNC_POOL.forget)


def fsync_together(paths: Sequence[_Sync], own_fd: int | None = None) -> None:
    """fsync ``paths`` (and the open file ``own_fd``) concurrently; return when all are durable.

    Concurrent fsyncs on one filesystem share journal commits, so several cost
    about as much as one. Raises the first failure, after every fsync finished.
    """
    if not paths:
        if own_fd is not None:
            os.fsync(own_fd)
        return
    if own_fd is None and len(paths) == 1:
        _fsync_path(*paths[0])
        return
    futures = [_SYNC_POOL.submit(path, is_dir) for path, is_dir in paths]
    failure: OSError | None = None
    try:
        if own_fd is not None:
            os.fsync(own_fd)
    except OSError as exc:
        failure = exc
    for future in futures:
        try:
            future.result()
        except OSError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure


class _PendingSyncs(StagedObject):
    """A staged filesystem object: the fsyncs that make it durable, not yet run."""

    __slots__ = ("syncs",)

    def __init__(self, key: str, size: int, syncs: list[_Sync]) -> None:
        super().__init__(key, size, self._run)
        self.syncs = tuple(syncs)

    def _run(self) -> None:
        try:
            fsync_together(self.syncs)
        except OSError as exc:
            raise map_os_error(exc, f"writing {self.key}", self.key) from exc


class FilesystemBackend(StorageBackend):
    """Objects as files under ``root``; keys map to relative paths."""

    name = "filesystem"
    capabilities = BackendCapabilities(
        atomic_rename=True,
        local_locks=True,
        conditional_create=True,
        range_reads=False,
        transient_failures=False,  # OS errors are mapped to permanent ones
    )

    def __init__(self, root: str | Path, *, create: bool = True, durable: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        #: With ``durable=False`` nothing is fsynced: writes stay atomic for readers
        #: but may be lost in a power cut. For scratch stores and tests only.
        self.durable = durable
        # Both are asked for on every operation; computing them once saves ~10% of a
        # small download.
        self._root_uri = self.root.as_uri()
        self._root_prefix = str(self.root).rstrip("/") + "/"
        self._real_root = os.path.realpath(self.root)
        if create:
            try:
                self._make_dirs(self.root)
            except OSError as exc:
                raise map_os_error(exc, f"creating {self.root}") from exc

    @classmethod
    def from_config(cls, config: ArtifactStoreConfig) -> FilesystemBackend:
        """The backend for ``config.base_path``."""
        return cls(config.base_path, durable=config.durable_writes)

    @property
    def root_uri(self) -> str:
        return self._root_uri

    def path_of(self, key: str) -> Path:
        """The file that holds ``key``."""
        return Path(self._root_prefix + validate_key(key))

    def upload(self, key: str, data: WriteSource, *, if_absent: bool = False) -> int:
        return self._store(key, data, if_absent=if_absent)

    def stage(self, key: str, data: WriteSource) -> StagedObject:
        """Write and rename into place now; leave the fsyncs to ``upload_after``.

        Until then a crash may lose the object (or leave it empty), which is
        harmless: nothing refers to it before the record written after it.
        """
        if not self.durable:
            return StagedObject(key, self._store(key, data))
        pending: list[_Sync] = []
        size = self._store(key, data, deferred=pending)
        return _PendingSyncs(key, size, pending)

    def upload_after(
        self, staged: StagedObject, key: str, data: WriteSource, *, if_absent: bool = False
    ) -> int:
        """Write ``key`` with the staged object's fsyncs running beside its own.

        The staged object's data and folder entry and this write's data are
        fsynced concurrently, and only then is ``key`` renamed (or linked) into
        place and its folder fsynced: two fsyncs in a row, not four.
        """
        if not isinstance(staged, _PendingSyncs) or staged.settled:
            staged.settle()
            return self._store(key, data, if_absent=if_absent)
        size = self._store(key, data, if_absent=if_absent, together=staged.syncs)
        staged.mark_settled()
        return size

    def _store(
        self,
        key: str,
        data: WriteSource,
        *,
        if_absent: bool = False,
        together: Sequence[_Sync] = (),
        deferred: list[_Sync] | None = None,
    ) -> int:
        """Write through a temporary file; fsync it and ``together`` before publishing it.

        With ``deferred`` nothing is fsynced: what would be is appended there instead.
        """
        path = self.path_of(key)
        self._check_inside(key, path)
        tmp = path.with_name(f".{path.name}{_TMP_MARKER}{secrets.token_hex(6)}")
        sync = self.durable and deferred is None
        before: list[_Sync] = list(together)  # to be durable before the name appears
        written = 0
        try:
            fd = self._create_exclusive(tmp, before)
            try:
                with os.fdopen(fd, "wb", buffering=0, closefd=True) as out:
                    for chunk in iter_source(data):
                        view = memoryview(chunk)
                        while view:
                            count = out.write(view)
                            assert count is not None
                            view = view[count:]
                            written += count
                    if sync:
                        # The data must be on disk before the name points at it.
                        fsync_together(before, own_fd=out.fileno())
                if if_absent:
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        raise ObjectExistsError(f"{key} already exists", key=key) from None
                    finally:
                        os.unlink(tmp)
                else:
                    os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            if sync:
                try:
                    fsync_dir(path.parent)
                except OSError:
                    if if_absent:
                        # Created by this call and not durable: take it back, so a failed
                        # create leaves nothing behind (a record pointing at nothing).
                        with contextlib.suppress(OSError):
                            os.unlink(path)
                    raise
            elif deferred is not None and self.durable:
                deferred.extend([*before, (str(path), False), (str(path.parent), True)])
        except OSError as exc:
            raise map_os_error(exc, f"writing {key}", key) from exc
        return written

    def _check_inside(self, key: str, path: Path) -> None:
        """Refuse to write or delete through a symbolic link that leads out of the root.

        One ``lstat`` per folder of the key (two for an artifact): the full
        resolution runs only when one of them is a link.
        """
        folder = self._root_prefix.rstrip("/")
        for part in key.split("/")[:-1]:
            folder = f"{folder}/{part}"
            try:
                if stat.S_ISLNK(os.lstat(folder).st_mode):
                    break
            except FileNotFoundError:
                return  # created below: a folder of ours, not a link
        else:
            return
        real = os.path.realpath(path.parent)
        if real != self._real_root and not real.startswith(self._real_root + "/"):
            raise StoragePermissionError(
                f"refusing to touch {key}: its folder is a symbolic link out of the store "
                f"root (to {real})",
                key=key,
            )

    def list_escaping(self) -> Iterator[str]:
        """Spec and task folders that are symbolic links leading out of the root."""
        for level in (self.root, *sorted(p for p in self.root.iterdir() if _real_dir(p))):
            try:
                entries = sorted(os.scandir(level), key=lambda entry: entry.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_symlink():
                    continue
                real = os.path.realpath(entry.path)
                if real != self._real_root and not real.startswith(self._real_root + "/"):
                    yield str(Path(entry.path).relative_to(self.root))

    def _create_exclusive(self, tmp: Path, new_folders: list[_Sync]) -> int:
        """Create ``tmp``; folders created on the way are added to ``new_folders``' syncs."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            # The folder is new, or a concurrent delete just removed it as empty.
            self._make_dirs(tmp.parent, new_folders)
            return os.open(tmp, flags, 0o644)

    def _make_dirs(self, folder: Path, syncs: list[_Sync] | None = None) -> None:
        """Create ``folder`` and its missing parents, each made durable in its parent.

        With ``syncs`` the parents' fsyncs are added there instead of done here.
        """
        missing: list[Path] = []
        current = folder
        while not current.is_dir():
            missing.append(current)
            if current.parent == current:
                break
            current = current.parent
        for path in reversed(missing):
            with contextlib.suppress(FileExistsError):
                path.mkdir()
            if not self.durable:
                continue
            if syncs is None:
                fsync_dir(path.parent)
            else:
                syncs.append((str(path.parent), True))

    def open_read(self, key: str) -> ReadStream:
        # A plain string, not path_of(): building a Path costs a tenth of a small read.
        path = self._root_prefix + validate_key(key)
        try:
            handle = open(path, "rb", buffering=0)  # noqa: SIM115 - owned by the stream
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"no object {key!r}") from None
        except IsADirectoryError:
            raise ArtifactNotFoundError(f"no object {key!r}") from None
        except OSError as exc:
            raise map_os_error(exc, f"opening {key}", key) from exc
        size = os.fstat(handle.fileno()).st_size

        def read(count: int) -> bytes:
            try:
                return handle.read(count) or b""
            except OSError as exc:
                raise map_os_error(exc, f"reading {key}", key) from exc

        return ReadStream(read, handle.close, size=size, key=key)

    def delete(self, key: str) -> bool:
        path = self.path_of(key)
        self._check_inside(key, path)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise map_os_error(exc, f"deleting {key}", key) from exc
        try:
            if self.durable:
                fsync_dir(path.parent)
            self._prune_empty(path.parent)
        except OSError as exc:
            raise map_os_error(exc, f"deleting {key}", key) from exc
        return True

    def delete_many(self, keys: Sequence[str]) -> list[bool]:
        """Unlink every key in order, then fsync each touched folder once.

        A batch in one folder (the versions of a task's artifacts) costs one
        folder fsync instead of one per key; it is durable when this returns.
        """
        removed: list[bool] = []
        folders: dict[Path, None] = {}
        for key in keys:
            path = self.path_of(key)
            self._check_inside(key, path)
            try:
                path.unlink()
            except FileNotFoundError:
                removed.append(False)
                continue
            except OSError as exc:
                raise map_os_error(exc, f"deleting {key}", key) from exc
            removed.append(True)
            folders[path.parent] = None
        for folder in folders:
            try:
                if self.durable:
                    fsync_dir(folder)
                self._prune_empty(folder)
            except OSError as exc:
                raise map_os_error(exc, f"deleting in {folder}") from exc
        return removed

    def _prune_empty(self, folder: Path) -> None:
        """Remove the object's folder once it is empty (never the root).

        Only one level: an emptied spec folder stays, because asking a folder
        with thousands of removed entries whether it is empty costs a scan of
        all its blocks, on every delete.
        """
        if folder == self.root or self.root not in folder.parents:
            return
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or already gone): other artifacts or a writer use it
        if self.durable:
            fsync_dir(folder.parent)

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def get_size(self, key: str) -> int:
        try:
            return self.path_of(key).stat().st_size
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"no object {key!r}") from None
        except OSError as exc:
            raise map_os_error(exc, f"reading the size of {key}", key) from exc

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return (info for info, tmp in self._walk(prefix) if not tmp)

    def list_incomplete(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return (info for info, tmp in self._walk(prefix) if tmp)

    def list_with_incomplete(self, prefix: str = "") -> Iterator[tuple[ObjectInfo, bool]]:
        return self._walk(prefix)  # one walk finds both

    def remove_incomplete(self, key: str) -> bool:
        if _TMP_MARKER not in key.rsplit("/", 1)[-1]:
            return False
        return self.delete(key)

    def _walk(self, prefix: str) -> Iterator[tuple[ObjectInfo, bool]]:
        folder_part, _, name_part = prefix.rpartition("/")
        start = self.root / folder_part if folder_part else self.root
        yield from self._scan(start, folder_part, name_part)

    def _scan(self, folder: Path, rel: str, name_prefix: str) -> Iterator[tuple[ObjectInfo, bool]]:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise map_os_error(exc, f"listing {rel or '/'}") from exc
        for entry in entries:
            name = entry.name
            is_tmp = name.startswith(".") and _TMP_MARKER in name
            if is_tmp:
                # A temporary file counts under the prefix of the name it was meant for.
                target = name[1:].split(_TMP_MARKER, 1)[0]
                if not target.startswith(name_prefix):
                    continue
            elif name.startswith(".") or not name.startswith(name_prefix):
                continue
            key = f"{rel}/{name}" if rel else name
            try:
                if entry.is_dir(follow_symlinks=False):
                    yield from self._scan(Path(entry.path), key, "")
                    continue
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we looked
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            yield ObjectInfo(key, stat.st_size, modified), is_tmp

    def __repr__(self) -> str:
        return f"FilesystemBackend({str(self.root)!r})"
