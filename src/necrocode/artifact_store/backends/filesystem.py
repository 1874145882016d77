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
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import ArtifactNotFoundError, PermissionError, StorageError, StorageFullError
from ..storage_backend import (
    ObjectExistsError,
    ObjectInfo,
    ReadStream,
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
        return PermissionError(f"permission denied while {detail}", key=key)
    return StorageError(f"storage error while {detail}", key=key)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemBackend(StorageBackend):
    """Objects as files under ``root``; keys map to relative paths."""

    name = "filesystem"
    transient_failures = False  # OS errors are mapped to permanent ones

    def __init__(self, root: str | Path, *, create: bool = True, durable: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        #: With ``durable=False`` nothing is fsynced: writes stay atomic for readers
        #: but may be lost in a power cut. For scratch stores and tests only.
        self.durable = durable
        # Both are asked for on every operation; computing them once saves ~10% of a
        # small download.
        self._root_uri = self.root.as_uri()
        self._root_prefix = str(self.root).rstrip("/") + "/"
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
        path = self.path_of(key)
        tmp = path.with_name(f".{path.name}{_TMP_MARKER}{secrets.token_hex(6)}")
        written = 0
        try:
            fd = self._create_exclusive(tmp)
            try:
                with os.fdopen(fd, "wb", buffering=0, closefd=True) as out:
                    for chunk in iter_source(data):
                        view = memoryview(chunk)
                        while view:
                            count = out.write(view)
                            assert count is not None
                            view = view[count:]
                            written += count
                    if self.durable:
                        # The data must be on disk before the name points at it.
                        os.fsync(out.fileno())
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
            if self.durable:
                fsync_dir(path.parent)
        except OSError as exc:
            raise map_os_error(exc, f"writing {key}", key) from exc
        return written

    def _create_exclusive(self, tmp: Path) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            # The folder is new, or a concurrent delete just removed it as empty.
            self._make_dirs(tmp.parent)
            return os.open(tmp, flags, 0o644)

    def _make_dirs(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents, each made durable in its parent."""
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
            if self.durable:
                fsync_dir(path.parent)

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
