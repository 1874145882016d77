"""In-memory backend: an object store inside this process (``backend_type: memory``).

For tests and for anyone writing a backend: it is a complete
:class:`~.cloud.CloudBackend` whose "client" is a dictionary, so it shows
exactly which calls a new object store has to provide, and it runs the same
conformance suite as the real ones in milliseconds. Objects live in named
*spaces* (``memory://<space>/<prefix>``) shared by every backend of this
process that names the same space, and vanish with the process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from ..config import ArtifactStoreConfig, MemorySettings
from ..exceptions import StorageError
from .base import BackendCapabilities, MiB, ObjectInfo, ReadStream
from .cloud import CloudBackend, ErrorKind, ObjectStat

__all__ = ["MemoryBackend", "MemorySpace"]

#: Separates an object key from its session id in :meth:`MemoryBackend.list_incomplete`.
SESSION_MARK = "?session="


class _Conflict(Exception):
    """A conditional create found the name taken (the memory "server" says 412)."""


@dataclass
class _Object:
    data: bytes
    generation: int
    modified: datetime


@dataclass
class MemorySpace:
    """The "server": objects by name and the upload sessions not yet finished."""

    objects: dict[str, _Object] = field(default_factory=dict)
    sessions: dict[int, tuple[str, datetime]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0

    def next_number(self) -> int:
        """A number never handed out before in this space (caller holds the lock)."""
        self.counter += 1
        return self.counter

    def put(self, name: str, data: bytes, *, if_absent: bool) -> None:
        with self.lock:
            if if_absent and name in self.objects:
                raise _Conflict(name)
            self.objects[name] = _Object(data, self.next_number(), datetime.now(UTC))

    def get(self, name: str) -> _Object:
        with self.lock:
            return self.objects[name]  # KeyError: the "404"

    def close(self) -> None:
        """Nothing to release: the space outlives its clients."""


_SPACES: dict[str, MemorySpace] = {}
_SPACES_LOCK = threading.Lock()


def _space(name: str) -> MemorySpace:
    with _SPACES_LOCK:
        return _SPACES.setdefault(name, MemorySpace())


class _Session:
    """A streamed upload: bytes collect aside and appear whole on :meth:`finish`."""

    def __init__(self, space: MemorySpace, name: str, *, if_absent: bool) -> None:
        self.space = space
        self.name = name
        self.if_absent = if_absent
        self.parts: list[bytes] = []
        with space.lock:
            self.number = space.next_number()
            space.sessions[self.number] = (name, datetime.now(UTC))

    def write(self, chunk: bytes) -> None:
        self.parts.append(chunk)

    def finish(self) -> None:
        self.space.put(self.name, b"".join(self.parts), if_absent=self.if_absent)
        self.abort()

    def abort(self) -> None:
        with self.space.lock:
            self.space.sessions.pop(self.number, None)
        self.parts.clear()


class MemoryBackend(CloudBackend):
    """Objects in the process-wide memory space ``space``, under an optional prefix."""

    name = "memory"
    scheme = "memory"
    vendor = "memory"
    sdk_errors = (KeyError, _Conflict)
    # Every writer of a space is in this process, and they share the default state
    # folder of the space: its lock files and index see them all.
    capabilities = BackendCapabilities(
        atomic_rename=False,
        local_locks=True,
        conditional_create=True,
        range_reads=True,
        transient_failures=False,
    )
    #: Uploads above this go through a session (small, so tests cover that path).
    single_request_limit: ClassVar[int] = 1 * MiB

    def __init__(self, space: str = "default", prefix: str = "") -> None:
        client = _space(space)
        super().__init__(space, prefix, client=client, endpoint=f"memory://{space}")
        self.client: MemorySpace = client

    @classmethod
    def from_config(cls, config: ArtifactStoreConfig) -> MemoryBackend:
        """The backend of the ``memory`` backend settings."""
        settings = config.settings_for(MemorySettings)
        return cls(settings.space, settings.prefix)

    @classmethod
    def drop_space(cls, space: str) -> None:
        """Forget every object of ``space`` (its backends then see it empty)."""
        with _SPACES_LOCK:
            _SPACES.pop(space, None)

    def classify_error(self, exc: BaseException) -> tuple[ErrorKind, str | None]:
        if isinstance(exc, KeyError):
            return "missing", "no such object"
        if isinstance(exc, _Conflict):
            return "precondition", "the object exists"
        return "other", None

    # -- client calls -------------------------------------------------------------------

    def _put_object(self, name: str, body: bytes, *, if_absent: bool) -> None:
        self.client.put(name, body, if_absent=if_absent)

    def _start_upload(self, name: str, key: str, *, if_absent: bool) -> _Session:
        return _Session(self.client, name, if_absent=if_absent)

    def _delete_object(self, name: str) -> bool:
        with self.client.lock:
            return self.client.objects.pop(name, None) is not None

    def _stat_object(self, name: str, key: str) -> ObjectStat | None:
        with self.client.lock:
            found = self.client.objects.get(name)
        return None if found is None else ObjectStat(len(found.data), str(found.generation))

    def _open_object(self, name: str, key: str, offset: int, revision: str | None) -> ReadStream:
        found = self.client.get(name)
        if revision is not None and revision != str(found.generation):
            raise StorageError(f"{key} changed while it was being read", key=key)
        view = memoryview(found.data)
        position = offset

        def read(count: int) -> bytes:
            nonlocal position
            data = bytes(view[position : position + count])
            position += len(data)
            return data

        return ReadStream(read, size=len(view), key=key, revision=str(found.generation))

    def _list_objects(
        self, name_prefix: str
    ) -> Iterator[tuple[str, int, datetime | None, str | None]]:
        with self.client.lock:
            listed = [
                (name, len(found.data), found.modified, str(found.generation))
                for name, found in self.client.objects.items()
                if name.startswith(name_prefix)
            ]
        return iter(sorted(listed))

    # -- leftovers of interrupted sessions ----------------------------------------------

    def list_incomplete(self, prefix: str = "") -> Iterator[ObjectInfo]:
        name_prefix = self.keys.list_prefix(prefix)
        with self.client.lock:
            sessions = list(self.client.sessions.items())
        found = []
        for number, (name, started) in sessions:
            key = self.keys.key(name)
            if key is not None and name.startswith(name_prefix):
                found.append(ObjectInfo(f"{key}{SESSION_MARK}{number}", 0, started))
        return iter(sorted(found, key=lambda info: info.key))

    def remove_incomplete(self, key: str) -> bool:
        _, mark, number = key.partition(SESSION_MARK)
        if not mark or not number.isdigit():
            return False
        with self.client.lock:
            return self.client.sessions.pop(int(number), None) is not None
