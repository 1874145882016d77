"""The base of object-store backends (S3, GCS, memory): everything but the client calls.

:class:`CloudBackend` owns what every object store needs and does the same way:
key prefixes, streaming writes (one request up to a threshold, a multipart or
resumable session beyond it, aborted on any failure), create-if-absent with a
one-time check that the server honours it, listing, existence and size, and
the mapping of SDK errors to the store's typed errors. A subclass implements
only the hooks marked *client call* below; :mod:`.memory` is the smallest
complete example.

Several hosts writing one bucket rely on the server's create-if-absent
(S3 ``If-None-Match: *``, GCS ``if_generation_match=0``) to keep version
numbers unique. Some S3-compatible servers and emulators accept the header and
ignore it, so each backend checks once, on its first create-if-absent, that a
second create of the same key is refused. If it is not, the backend either
refuses to go on (``conditional_writes: require``, the default) or, when the
configuration says ``emulate``, falls back to check-then-write, which is safe
for one host only, and says so in the log.

Retries are not done here: every configured backend is wrapped in one
:class:`~necrocode.artifact_store.backends.retry.RetryingBackend`, and the SDKs' own
retries are turned off, so a failure is retried once per policy, not stacked.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol, Self

from ..config import ArtifactStoreConfig, CloudSettings
from ..exceptions import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    ConfigError,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from .base import (
    BackendCapabilities,
    MiB,
    ObjectExistsError,
    ObjectInfo,
    ReadStream,
    StorageBackend,
    WriteSource,
    iter_source,
    validate_key,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "TRANSIENT_STATUS",
    "CloudBackend",
    "ConditionalMode",
    "ConditionalWriteProbe",
    "ErrorKind",
    "ObjectStat",
    "PrefixedKeys",
    "UploadSession",
]

log = logging.getLogger("necrocode.artifact_store.backends")

ConditionalMode = Literal["require", "emulate"]
#: Folder (under the store's prefix) of the short-lived objects the probe writes.
PROBE_FOLDER = ".necrocode-probe"
#: Seconds to wait for a connection, and for each read on it: a server that accepts
#: and then says nothing costs this long per try, not the SDKs' minutes.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
#: Objects up to this size are one request; larger ones stream through a session.
SINGLE_REQUEST_LIMIT = 8 * MiB
#: HTTP statuses worth another try.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

#: What a failure means for the store, whatever the SDK called it.
ErrorKind = Literal["missing", "denied", "full", "precondition", "transient", "other"]


class PrefixedKeys:
    """Maps store keys to object names under an optional prefix, and back."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.strip("/")

    def name(self, key: str) -> str:
        """The object name of ``key`` (validated)."""
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def list_prefix(self, prefix: str) -> str:
        """The object-name prefix to list for the store prefix ``prefix``."""
        base = f"{self.prefix}/" if self.prefix else ""
        return base + prefix

    def key(self, name: str) -> str | None:
        """The store key of object ``name``; ``None`` for names outside the store or hidden."""
        base = f"{self.prefix}/" if self.prefix else ""
        if not name.startswith(base):
            return None
        key = name[len(base) :]
        if not key or any(part.startswith(".") or not part for part in key.split("/")):
            return None
        return key

    def probe_name(self) -> str:
        """A fresh object name for one probe."""
        return self.name(f"{PROBE_FOLDER}/{secrets.token_hex(8)}")


class ConditionalWriteProbe:
    """Find out once whether the server refuses a second create-if-absent of one key."""

    def __init__(self, mode: ConditionalMode, endpoint: str) -> None:
        if mode not in ("require", "emulate"):
            raise ConfigError(
                f"conditional_writes: expected 'require' or 'emulate', got {mode!r}",
                key="conditional_writes",
            )
        self.mode = mode
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._honoured: bool | None = None

    def honoured(
        self,
        create: Callable[[str], None],
        delete: Callable[[str], None],
        name: str,
    ) -> bool:
        """Whether conditional creates work; ``create(name)`` writes if absent, else raises.

        Raises ``ConfigError`` when they do not and the mode is ``require``.
        """
        with self._lock:
            if self._honoured is None:
                self._honoured = self._probe(create, delete, name)
            if not self._honoured and self.mode == "require":
                raise ConfigError(
                    f"{self.endpoint} ignores conditional creates (a second create-if-absent "
                    "of the same object succeeded), so hosts sharing this bucket could "
                    "overwrite each other's versions. Use a server that supports them, or set "
                    "'conditional_writes: emulate' if only one host writes this store.",
                    key="conditional_writes",
                )
            return self._honoured

    def _probe(
        self, create: Callable[[str], None], delete: Callable[[str], None], name: str
    ) -> bool:
        create(name)
        try:
            create(name)
        except ObjectExistsError:
            honoured = True
        else:
            honoured = False
        finally:
            delete(name)
        if honoured:
            log.debug("%s honours conditional creates", self.endpoint)
        else:
            log.warning(
                "%s ignores conditional creates; %s",
                self.endpoint,
                "falling back to check-then-write (safe for ONE writing host only)"
                if self.mode == "emulate"
                else "refusing to write (conditional_writes: require)",
            )
        return honoured


@dataclass(frozen=True, slots=True)
class ObjectStat:
    """What a lookup of one object tells: its size and what identifies this state of it."""

    size: int
    revision: str | None = None


class UploadSession(Protocol):
    """A write of one object in pieces (S3 multipart, GCS resumable) that shows nothing
    until :meth:`finish`; :meth:`abort` leaves no object and no leftover."""

    def write(self, chunk: bytes) -> None:
        """Send (or buffer) the next bytes."""

    def finish(self) -> None:
        """Make the object visible, whole (honouring create-if-absent if asked)."""

    def abort(self) -> None:
        """Cancel; called on any failure before :meth:`finish` returned."""


class CloudBackend(StorageBackend):
    """An object store reached through a client: the shared logic above its calls.

    Subclasses set :attr:`scheme` and :attr:`vendor`, implement the *client call*
    hooks and :meth:`classify_error`, and call ``super().__init__``. Every hook is
    called inside :meth:`mapped`, so SDK exceptions become typed errors in one place.
    """

    #: URI scheme of the root (``s3``, ``gs``, ``memory``).
    scheme: ClassVar[str] = ""
    #: How messages name the service (``S3``, ``GCS``).
    vendor: ClassVar[str] = ""
    #: Exceptions of the SDK that :meth:`mapped` translates.
    sdk_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    #: Objects up to this size are one request (:meth:`_put_object`).
    single_request_limit: ClassVar[int] = SINGLE_REQUEST_LIMIT
    #: Whether a delete tells if the object existed; if not (S3 answers 204 either
    #: way), :meth:`delete` looks it up first.
    delete_reports_missing: ClassVar[bool] = True
    capabilities = BackendCapabilities(
        atomic_rename=False,
        local_locks=False,
        conditional_create=True,
        range_reads=True,
        transient_failures=True,
    )

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any,
        endpoint: str,
        conditional_writes: ConditionalMode = "require",
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.bucket_name = bucket
        self.keys = PrefixedKeys(prefix)
        self.client = client
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._probe = ConditionalWriteProbe(conditional_writes, endpoint)

    #: The class of this backend's ``backend:`` settings.
    settings_class: ClassVar[type[CloudSettings]] = CloudSettings

    @classmethod
    def from_config(cls, config: ArtifactStoreConfig) -> Self:
        """The backend the ``backend`` settings describe (a :attr:`settings_class`)."""
        settings = config.settings_for(cls.settings_class)
        assert settings.bucket is not None  # the config validator requires it
        return cls(settings.bucket, settings.prefix, **cls.options_of(settings))

    @classmethod
    def options_of(cls, settings: CloudSettings) -> dict[str, Any]:
        """The constructor's keyword arguments from ``settings`` (beyond bucket and prefix);
        a subclass adds its own (an S3 region, a GCS project)."""
        return {
            "endpoint_url": settings.endpoint_url,
            "conditional_writes": settings.conditional_writes,
            "connect_timeout": settings.connect_timeout,
            "read_timeout": settings.read_timeout,
        }

    @property
    def root_uri(self) -> str:
        base = f"{self.scheme}://{self.bucket_name}"
        return f"{base}/{self.keys.prefix}" if self.keys.prefix else base

    # -- client calls (the subclass's part) ------------------------------------------

    @abstractmethod
    def _put_object(self, name: str, body: bytes, *, if_absent: bool) -> None:
        """*Client call*: store ``body`` as ``name`` in one request (conditionally if asked)."""

    @abstractmethod
    def _start_upload(self, name: str, key: str, *, if_absent: bool) -> UploadSession:
        """*Client call*: open a multipart/resumable session for a large object."""

    @abstractmethod
    def _delete_object(self, name: str) -> bool:
        """*Client call*: remove ``name``; whether it existed (missing is no error).

        Where the service cannot tell (:attr:`delete_reports_missing` false), return True.
        """

    @abstractmethod
    def _stat_object(self, name: str, key: str) -> ObjectStat | None:
        """*Client call*: size and revision of ``name``, or ``None`` if absent."""

    @abstractmethod
    def _open_object(self, name: str, key: str, offset: int, revision: str | None) -> ReadStream:
        """*Client call*: stream ``name`` from ``offset`` (``ArtifactNotFoundError`` if
        absent; a non-retryable ``StorageError`` if ``revision`` is given and differs)."""

    @abstractmethod
    def _list_objects(
        self, name_prefix: str
    ) -> Iterator[tuple[str, int, datetime | None, str | None]]:
        """*Client call*: ``(name, size, modified, etag)`` of every object under
        ``name_prefix``, by name, paging as needed (``etag``: ``None`` if not listed)."""

    @abstractmethod
    def classify_error(self, exc: BaseException) -> tuple[ErrorKind, str | None]:
        """What an SDK failure means, and the server's answer as text (``None`` when
        the failure is not an answer, e.g. a dropped connection)."""

    # -- error mapping ------------------------------------------------------------------

    def map_error(
        self,
        exc: BaseException,
        what: str,
        key: str | None,
        precondition: type[StorageError] = ObjectExistsError,
    ) -> ArtifactStoreError:
        """The store's typed error for an SDK failure (the caller chains ``exc``).

        The table: not found -> ``ArtifactNotFoundError``; denied or no credentials
        -> ``StoragePermissionError``; quota -> ``StorageFullError``; failed
        precondition -> ``precondition``; connection errors, timeouts, throttling,
        408/429/5xx -> ``StorageError(retryable=True)``; the rest -> ``StorageError``.
        """
        kind, answer = self.classify_error(exc)
        vendor = self.vendor
        if answer is None:
            failure = f"{type(exc).__name__}: {exc}"
            if kind == "denied":
                return StoragePermissionError(
                    f"no usable {vendor} credentials while {what}: {exc}", key=key
                )
            if kind == "transient":
                return StorageError(
                    f"{vendor} connection failed while {what}: {failure}",
                    key=key,
                    retryable=True,
                )
            return StorageError(f"{vendor} error while {what}: {failure}", key=key)
        detail = f"{what}: {answer}".rstrip()
        if kind == "missing":
            return ArtifactNotFoundError(f"no object {key!r} ({detail})")
        if kind == "denied":
            return StoragePermissionError(f"access denied while {detail}", key=key)
        if kind == "full":
            return StorageFullError(f"storage full while {detail}", key=key)
        if kind == "precondition":
            return precondition(f"precondition failed while {detail}", key=key)
        if kind == "transient":
            return StorageError(f"transient {vendor} error while {detail}", key=key, retryable=True)
        return StorageError(f"{vendor} error while {detail}", key=key)

    @contextlib.contextmanager
    def mapped(
        self, what: str, key: str | None, precondition: type[StorageError] = ObjectExistsError
    ) -> Iterator[None]:
        """Translate every SDK error raised inside into the store's typed errors."""
        try:
            yield
        except ArtifactStoreError:
            raise
        except self.sdk_errors as exc:
            raise self.map_error(exc, what, key, precondition) from exc

    # -- writes -------------------------------------------------------------------------

    def upload(self, key: str, data: WriteSource, *, if_absent: bool = False) -> int:
        name = self.keys.name(key)
        conditional = False
        if if_absent:
            if self._conditional_creates_work():
                conditional = True
            elif self.exists(key):
                raise ObjectExistsError(f"{key} already exists", key=key)
        chunks = iter_source(data)
        head = bytearray()
        for chunk in chunks:
            head += chunk
            if len(head) > self.single_request_limit:
                return self._upload_in_session(name, key, head, chunks, conditional)
        with self.mapped(f"writing {key}", key):
            self._put_object(name, bytes(head), if_absent=conditional)
        return len(head)

    def _upload_in_session(
        self, name: str, key: str, head: bytearray, rest: Iterator[bytes], if_absent: bool
    ) -> int:
        """Stream the object through a session, one piece in memory at a time."""
        with self.mapped(f"starting a streamed upload of {key}", key):
            session = self._start_upload(name, key, if_absent=if_absent)
        total = len(head)
        try:
            with self.mapped(f"writing {key}", key):
                session.write(bytes(head))
                del head[:]
                for chunk in rest:
                    session.write(chunk)
                    total += len(chunk)
            with self.mapped(f"completing the upload of {key}", key):
                session.finish()
        except BaseException:
            try:
                with self.mapped(f"cancelling the upload of {key}", key):
                    session.abort()
            except Exception as exc:  # the original failure matters; list_incomplete sees it
                log.warning("could not cancel the upload of %s: %s", key, exc)
            raise
        return total

    def _conditional_creates_work(self) -> bool:
        def create(name: str) -> None:
            with self.mapped("probing conditional creates", name):
                self._put_object(name, b"", if_absent=True)

        def delete(name: str) -> None:
            with self.mapped("removing the probe object", name):
                self._delete_object(name)

        return self._probe.honoured(create, delete, self.keys.probe_name())

    def delete(self, key: str) -> bool:
        name = self.keys.name(key)
        if not self.delete_reports_missing and not self.exists(key):
            return False
        with self.mapped(f"deleting {key}", key):
            return self._delete_object(name)

    # -- reads --------------------------------------------------------------------------

    def open_read(self, key: str) -> ReadStream:
        return self.open_read_from(key, 0)

    def open_read_from(self, key: str, offset: int, *, revision: str | None = None) -> ReadStream:
        name = self.keys.name(key)
        with self.mapped(f"opening {key}", key):
            return self._open_object(name, key, offset, revision)

    def stat(self, key: str) -> ObjectStat | None:
        """Size and revision of ``key``, or ``None`` if it does not exist."""
        name = self.keys.name(key)
        with self.mapped(f"looking up {key}", key):
            return self._stat_object(name, key)

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def get_size(self, key: str) -> int:
        found = self.stat(key)
        if found is None:
            raise ArtifactNotFoundError(f"no object {key!r}")
        return found.size

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self.mapped(f"listing {prefix or '/'}", None):
            for name, size, modified, etag in self._list_objects(self.keys.list_prefix(prefix)):
                key = self.keys.key(name)
                if key is not None:
                    yield ObjectInfo(key, size, modified, etag)

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root_uri!r})"
