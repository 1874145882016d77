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
from collections.abc import Iterator, MutableSequence, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from ..group_commit import CommitQueue
from .base import (
    CHUNK_SIZE,
    BackendCapabilities,
    ObjectExistsError,
    ObjectInfo,
    ReadStream,
    RecordWrite,
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
    sync_all([(str(path), True)])


#: What to fsync: a path (and whether it is a folder), or an open descriptor
#: (``(fd, False)``) that its owner keeps open until the sync returns.
_Sync = tuple[str | int, bool]


def _fsync_path(path: str | int, is_dir: bool) -> None:
    if isinstance(path, int):
        os.fsync(path)
        return
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

    #: Enough for a full group commit of the service's request threads: concurrent
    #: fsyncs on one filesystem share journal commits, queued ones do not.
    WORKERS = 16

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, path: str | int, is_dir: bool) -> Future[None]:
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


def _sync_batch(requests: list[tuple[_Sync, ...]]) -> list[OSError | None]:
    """One group commit of fsyncs: every distinct target once, all side by side.

    A folder named by several requests (new entries of several uploads in one
    task or spec folder) is fsynced once for all of them: the fsync starts after
    every request of the batch was queued, so it covers all their entries. Each
    request gets the first failure among its own targets, or ``None``.
    """
    targets = list(dict.fromkeys(sync for request in requests for sync in request))
    _SYNC_COUNT[0] += len(targets)
    failures: dict[_Sync, OSError] = {}
    if len(targets) == 1:
        try:
            _fsync_path(*targets[0])
        except OSError as exc:
            failures[targets[0]] = exc
    else:
        # The leader runs the last fsync itself instead of idling until the pool is done.
        futures = [(target, _SYNC_POOL.submit(*target)) for target in targets[:-1]]
        try:
            _fsync_path(*targets[-1])
        except OSError as exc:
            failures[targets[-1]] = exc
        for target, future in futures:
            try:
                future.result()
            except OSError as exc:
                failures[target] = exc
    return [next((failures[s] for s in request if s in failures), None) for request in requests]


#: Concurrent fsyncs of this process, batched (see :mod:`..group_commit`).
_SYNC_QUEUE: CommitQueue[tuple[_Sync, ...], OSError | None] = CommitQueue(_sync_batch)
#: fsync calls made through the queue (one list cell: updated by the leader only).
_SYNC_COUNT = [0]


def sync_counts() -> tuple[int, int, int]:
    """``(group commits, requests, fsync calls)`` of this process so far.

    Requests over commits is how much sharing happened; fsync calls over
    requests how much the folder fsyncs of one batch were shared.
    """
    return _SYNC_QUEUE.batches, _SYNC_QUEUE.items, _SYNC_COUNT[0]


def sync_all(syncs: Sequence[_Sync]) -> None:
    """fsync ``syncs`` (with those other threads need now); return when all are durable.

    Raises the first failure among them, after every fsync finished.
    """
    if not syncs:
        return
    failure = _SYNC_QUEUE.submit(tuple(syncs))
    if failure is not None:
        raise failure


def sync_each(requests: Sequence[Sequence[_Sync]]) -> list[OSError | None]:
    """fsync several requests in one group commit; each one's failure or ``None``."""
    failures: list[OSError | None] = []
    for outcome in _SYNC_QUEUE.outcomes([tuple(request) for request in requests]):
        if isinstance(outcome, BaseException) and not isinstance(outcome, OSError):
            raise outcome  # the batch itself broke (an interrupt): no one's fsync is known
        failures.append(outcome)
    return failures


def fsync_together(paths: Sequence[_Sync], own_fd: int | None = None) -> None:
    """fsync ``paths`` (and the open file ``own_fd``) concurrently; return when all are durable.

    Concurrent fsyncs on one filesystem share journal commits, so several cost
    about as much as one. Raises the first failure, after every fsync finished.
    """
    sync_all([*paths, (own_fd, False)] if own_fd is not None else paths)


class _PendingSyncs(StagedObject):
    """A staged filesystem object: the fsyncs that make it durable, not yet run."""

    __slots__ = ("syncs",)

    def __init__(self, key: str, size: int, syncs: list[_Sync]) -> None:
        super().__init__(key, size, self._run)
        self.syncs = tuple(syncs)

    def _run(self) -> None:
        try:
            sync_all(self.syncs)
        except OSError as exc:
            raise map_os_error(exc, f"writing {self.key}", self.key) from exc


class _Write:
    """One write in progress: its temporary file (open as ``fd``) and where it goes."""

    __slots__ = ("before", "fd", "folder", "if_absent", "key", "path", "tmp", "written")

    def __init__(self, key: str, path: str, folder: str, tmp: str) -> None:
        self.key = key
        self.path = path
        self.folder = folder
        self.tmp = tmp
        self.fd = -1
        self.if_absent = False
        self.before: list[_Sync] = []
        self.written = 0


def _close(write: _Write) -> None:
    """Close the temporary file of ``write`` (once)."""
    fd, write.fd = write.fd, -1
    if fd >= 0:
        os.close(fd)


def _mapped(exc: OSError, key: str) -> StorageError:
    """``exc`` as the store's typed error of writing ``key``, cause chained."""
    error = map_os_error(exc, f"writing {key}", key)
    error.__cause__ = exc
    return error


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
        place and its folder fsynced: two fsyncs in a row, not four. Both rounds
        are group commits shared with the other threads writing now.
        """
        # The staged object was checked for symbolic links a moment ago: a record in
        # the same folder needs no second check.
        check = staged.key.rpartition("/")[0] != key.rpartition("/")[0]
        if not isinstance(staged, _PendingSyncs) or staged.settled:
            staged.settle()
            return self._store(key, data, if_absent=if_absent, check=check)
        size = self._store(key, data, if_absent=if_absent, together=staged.syncs, check=check)
        staged.mark_settled()
        return size

    def upload_after_many(self, writes: Sequence[RecordWrite]) -> list[int | ArtifactStoreError]:
        """:meth:`upload_after` for several writes, all in the same two fsync rounds.

        Every write's data and its staged object are fsynced in one group
        commit, then each is linked into place, then every folder they were
        linked into is fsynced once. A failure belongs to its own write only.
        """
        outcomes: list[int | ArtifactStoreError] = [0] * len(writes)
        opened: list[tuple[int, _Write]] = []
        for index, write in enumerate(writes):
            staged = write.staged
            check = staged.key.rpartition("/")[0] != write.key.rpartition("/")[0]
            try:
                together: Sequence[_Sync] = ()
                if isinstance(staged, _PendingSyncs) and not staged.settled:
                    together = staged.syncs
                else:
                    staged.settle()
                opened.append(
                    (
                        index,
                        self._open_write(write.key, write.data, write.if_absent, together, check),
                    )
                )
            except ArtifactStoreError as exc:
                outcomes[index] = exc
        errors = self._finish_writes([w for _, w in opened], sync=self.durable)
        for (index, opened_write), error in zip(opened, errors, strict=True):
            if error is None:
                outcomes[index] = opened_write.written
                writes[index].staged.mark_settled()
            else:
                outcomes[index] = error
        return outcomes

    def _store(
        self,
        key: str,
        data: WriteSource,
        *,
        if_absent: bool = False,
        together: Sequence[_Sync] = (),
        deferred: list[_Sync] | None = None,
        check: bool = True,
    ) -> int:
        """Write through a temporary file; fsync it and ``together`` before publishing it.

        With ``deferred`` nothing is fsynced: what would be is appended there instead.
        """
        write = self._open_write(key, data, if_absent, together, check)
        if deferred is None:
            error = self._finish_writes([write], sync=self.durable)[0]
            if error is not None:
                raise error
            return write.written
        try:
            _close(write)
            os.replace(write.tmp, write.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(write.tmp)
            raise map_os_error(exc, f"writing {key}", key) from exc
        if self.durable:
            deferred.extend([*write.before, (write.path, False), (write.folder, True)])
        return write.written

    def _open_write(
        self, key: str, data: WriteSource, if_absent: bool, together: Sequence[_Sync], check: bool
    ) -> _Write:
        """Create the temporary file of ``key`` and write ``data`` into it (left open)."""
        path = self._root_prefix + validate_key(key)
        if check:
            self._check_inside(key, path)
        folder, _, name = path.rpartition("/")
        write = _Write(key, path, folder, f"{folder}/.{name}{_TMP_MARKER}{secrets.token_hex(6)}")
        write.if_absent = if_absent
        write.before = list(together)  # to be durable before the name appears
        try:
            write.fd = self._create_exclusive(write.tmp, write.before)
        except OSError as exc:
            raise map_os_error(exc, f"writing {key}", key) from exc
        try:
            for chunk in iter_source(data):
                view = memoryview(chunk)
                while view:
                    count = os.write(write.fd, view)
                    view = view[count:]
                    write.written += count
        except BaseException as exc:
            with contextlib.suppress(OSError):
                _close(write)
            with contextlib.suppress(OSError):
                os.unlink(write.tmp)
            if isinstance(exc, OSError):
                raise map_os_error(exc, f"writing {key}", key) from exc
            raise
        return write

    def _finish_writes(
        self, writes: list[_Write], *, sync: bool
    ) -> list[ArtifactStoreError | None]:
        """fsync, publish (rename or link) and fsync the folders of open writes.

        The data must be on disk before the name points at it, and the name is
        durable before this returns. One failure spoils its own write only.
        """
        errors: list[ArtifactStoreError | None] = [None] * len(writes)
        failures = sync_each([(*w.before, (w.fd, False)) for w in writes]) if sync else []
        for index, write in enumerate(writes):
            failure = failures[index] if sync else None
            try:
                _close(write)
            except OSError as exc:
                failure = failure or exc
            if failure is not None:
                with contextlib.suppress(OSError):
                    os.unlink(write.tmp)
                errors[index] = _mapped(failure, write.key)
                continue
            try:
                self._publish(write)
            except ArtifactStoreError as exc:
                errors[index] = exc
        if not sync:
            return errors
        published = [index for index, error in enumerate(errors) if error is None]
        folder_failures = sync_each([((writes[i].folder, True),) for i in published])
        for index, failure in zip(published, folder_failures, strict=True):
            if failure is None:
                continue
            write = writes[index]
            if write.if_absent:
                # Created by this call and not durable: take it back, so a failed
                # create leaves nothing behind (a record pointing at nothing).
                with contextlib.suppress(OSError):
                    os.unlink(write.path)
            errors[index] = _mapped(failure, write.key)
        return errors

    @staticmethod
    def _publish(write: _Write) -> None:
        """Give the written temporary file its name (a link, for create-if-absent)."""
        try:
            if write.if_absent:
                try:
                    os.link(write.tmp, write.path)
                except FileExistsError:
                    raise ObjectExistsError(f"{write.key} already exists", key=write.key) from None
                finally:
                    os.unlink(write.tmp)
            else:
                os.replace(write.tmp, write.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(write.tmp)
            raise map_os_error(exc, f"writing {write.key}", write.key) from exc

    def _check_inside(self, key: str, path: Path | str) -> None:
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
        real = os.path.realpath(os.path.dirname(path))
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

    def _create_exclusive(self, tmp: str, new_folders: list[_Sync]) -> int:
        """Create ``tmp``; folders created on the way are added to ``new_folders``' syncs."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            # The folder is new, or a concurrent delete just removed it as empty.
            self._make_dirs(Path(tmp).parent, new_folders)
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

    def download(self, key: str) -> bytes:
        # One open and read, without a stream: records are read this way, one per
        # version in every verify_all and rebuild_index.
        data = self._read_file(key, None)
        assert data is not None  # no limit
        return data

    def read_small(self, key: str, limit: int) -> bytes | None:
        """The whole object ``key`` if it holds at most ``limit`` bytes, else ``None``
        (read it as a stream then): a small object read with the fewest calls."""
        return self._read_file(key, limit)

    def _read_file(self, key: str, limit: int | None) -> bytes | None:
        """The bytes of ``key``'s file (``None`` if over ``limit``), read with plain
        descriptor calls: a Python file object costs a third of a small read."""
        path = self._root_prefix + validate_key(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                size = os.fstat(fd).st_size
                if limit is not None and size > limit:
                    return None
                data = os.read(fd, size + 1)
                if len(data) == size:
                    return data  # asked for one byte more than there is: all of it
                # Changed since the fstat (or a short read): read on to the end.
                parts = [data]
                total = len(data)
                while more := os.read(fd, CHUNK_SIZE):
                    parts.append(more)
                    total += len(more)
                    if limit is not None and total > limit:
                        return None
                return b"".join(parts)
            finally:
                os.close(fd)
        except (FileNotFoundError, IsADirectoryError):
            raise ArtifactNotFoundError(f"no object {key!r}") from None
        except OSError as exc:
            raise map_os_error(exc, f"reading {key}", key) from exc

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
            parent = self._prune_empty(path.parent)
            if parent is not None and self.durable:
                fsync_dir(parent)
        except OSError as exc:
            raise map_os_error(exc, f"deleting {key}", key) from exc
        return True

    def delete_many(self, keys: Sequence[str]) -> list[bool]:
        """Unlink every key in order, then fsync each touched folder once.

        A batch in one folder (the versions of a task's artifacts) costs one
        folder fsync instead of one per key; the folders of a batch that spans
        several (a cleanup batch) are fsynced side by side, sharing journal
        commits, and so are the parents of the folders it emptied. It is durable
        when this returns.
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
        self._sync_folders(folders, "deleting in")
        parents: dict[Path, None] = {}
        for folder in folders:
            parent = self._prune_empty(folder)
            if parent is not None:
                parents[parent] = None
        self._sync_folders(parents, "removing an emptied folder in")
        return removed

    def _sync_folders(self, folders: dict[Path, None], what: str) -> None:
        """fsync ``folders`` side by side (durable stores only)."""
        if not (self.durable and folders):
            return
        try:
            sync_all([(str(folder), True) for folder in folders])
        except OSError as exc:
            where = exc.filename or next(iter(folders))
            raise map_os_error(exc, f"{what} {where}") from exc

    def _prune_empty(self, folder: Path) -> Path | None:
        """Remove the object's folder once it is empty (never the root); return its parent
        (to fsync) when it was removed.

        Only one level: an emptied spec folder stays, because asking a folder
        with thousands of removed entries whether it is empty costs a scan of
        all its blocks, on every delete.
        """
        if folder == self.root or self.root not in folder.parents:
            return None
        try:
            folder.rmdir()
        except OSError:
            return None  # not empty (or already gone): other artifacts or a writer use it
        return folder.parent

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

    def list_names_with_incomplete(self, prefix: str = "") -> Iterator[tuple[ObjectInfo, bool]]:
        """:meth:`list_with_incomplete` without a ``stat`` of every file: each entry's
        ``size`` is ``-1`` and its ``modified`` ``None`` (unknown). For a caller that
        needs the keys only (``verify_all`` reads every file anyway): a quarter of a
        small artifact's listing cost."""
        folder_part, _, name_part = prefix.rpartition("/")
        start = self.root / folder_part if folder_part else self.root
        return self._scan(start, folder_part, name_part, details=False)

    def remove_incomplete(self, key: str) -> bool:
        if _TMP_MARKER not in key.rsplit("/", 1)[-1]:
            return False
        return self.delete(key)

    def _walk(self, prefix: str) -> Iterator[tuple[ObjectInfo, bool]]:
        folder_part, _, name_part = prefix.rpartition("/")
        start = self.root / folder_part if folder_part else self.root
        yield from self._scan(start, folder_part, name_part)

    def split_listing(self) -> tuple[Sequence[tuple[ObjectInfo, bool]], Sequence[str]]:
        """The whole walk cut into parts for worker processes: the entries directly
        under the root (each with whether it is a leftover), and the top-level folder
        names. The root's entries, then :meth:`list_with_incomplete` of ``name + "/"``
        for every folder in turn, are exactly what one walk lists (the root's own files
        first: they are never artifacts, only possible leftovers)."""
        folders: list[str] = []
        return list(self._scan(self.root, "", "", folders)), folders

    def _scan(
        self,
        folder: Path,
        rel: str,
        name_prefix: str,
        folders: MutableSequence[str] | None = None,
        *,
        details: bool = True,
    ) -> Iterator[tuple[ObjectInfo, bool]]:
        """Walk ``folder`` in name order; with ``folders``, its subfolders are appended
        there instead of walked. Without ``details``, files are not ``stat``-ed (see
        :meth:`list_names_with_incomplete`)."""
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
                    if folders is not None:
                        folders.append(key)
                    else:
                        yield from self._scan(Path(entry.path), key, "", details=details)
                    continue
                if not details:
                    yield ObjectInfo(key, -1), is_tmp
                    continue
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we looked
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            yield ObjectInfo(key, stat.st_size, modified), is_tmp

    def __repr__(self) -> str:
        return f"FilesystemBackend({str(self.root)!r})"
