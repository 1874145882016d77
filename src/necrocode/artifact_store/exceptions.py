"""The store's typed errors.

Every error the store raises on purpose derives from :class:`ArtifactStoreError`::

    ArtifactStoreError
    ├── ArtifactNotFoundError   (also a built-in FileNotFoundError)
    ├── ArtifactExistsError     a create-only upload found the artifact (also FileExistsError)
    ├── IntegrityError          checksum or size mismatch, unreadable record
    ├── LockTimeoutError        (also a built-in TimeoutError)
    ├── InvalidInputError       (also a built-in ValueError)
    │   ├── InvalidNameError    a spec name, task id, tag or file name that could escape
    │   ├── InvalidURIError     a URI that does not belong to this store
    │   ├── ConfigError         a bad configuration value (names the key and the reason)
    │   └── ContentParseError   content (a diff, test report, log) that does not parse
    └── StorageError            the backend failed
        ├── StorageFullError    disk full, or the store's quota would be exceeded
        ├── StoragePermissionError  (also a built-in PermissionError)
        └── IndexUnavailableError   the shared index's database cannot be reached

``PermissionError`` is the old name of :class:`StoragePermissionError`, kept as a
deprecated alias for one release: importing it warns (``DeprecationWarning``),
since a star-import of that name shadows the built-in.

Errors carry their facts as attributes (``uri``, ``key``, ``expected``, ``actual``)
and survive pickling, since they cross process boundaries in agent fleets.
"""

from __future__ import annotations

import builtins
import warnings
from typing import Any

__all__ = [
    "ArtifactExistsError",
    "ArtifactNotFoundError",
    "ArtifactStoreError",
    "ConfigError",
    "ContentParseError",
    "IndexUnavailableError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidNameError",
    "InvalidURIError",
    "LockTimeoutError",
    "StorageError",
    "StorageFullError",
    "StoragePermissionError",
]


class ArtifactStoreError(Exception):
    """Root of every error raised by the artifact store.

    ``uri`` names the artifact concerned, when there is one.
    """

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.uri = uri

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the message, then restore the attributes: keyword-only
        # arguments would otherwise be lost on the way through pickle.
        return (_rebuild, (type(self), self.message), dict(self.__dict__))


def _rebuild(cls: type[ArtifactStoreError], message: str) -> ArtifactStoreError:
    error = cls.__new__(cls)
    ArtifactStoreError.__init__(error, message)
    return error


class ArtifactNotFoundError(ArtifactStoreError, FileNotFoundError):
    """The artifact (or the given version of it) does not exist."""


class ArtifactExistsError(ArtifactStoreError, FileExistsError):
    """A create-only upload (``if_absent=True``) found the artifact already stored."""


class IntegrityError(ArtifactStoreError):
    """Stored bytes do not match their recorded checksum or size."""

    def __init__(
        self,
        message: str,
        *,
        uri: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        super().__init__(message, uri=uri)
        self.expected = expected
        self.actual = actual


class LockTimeoutError(ArtifactStoreError, TimeoutError):
    """The per-artifact lock could not be acquired in time."""

    def __init__(
        self,
        message: str,
        *,
        uri: str | None = None,
        lock_path: str | None = None,
        waited: float | None = None,
    ) -> None:
        super().__init__(message, uri=uri)
        self.lock_path = lock_path
        self.waited = waited


class InvalidInputError(ArtifactStoreError, ValueError):
    """The caller passed a value the store refuses; nothing was changed."""


class InvalidNameError(InvalidInputError):
    """A name that could escape the store's root or is otherwise unusable."""

    def __init__(
        self,
        message: str,
        *,
        uri: str | None = None,
        field: str | None = None,
        value: str | None = None,
    ) -> None:
        super().__init__(message, uri=uri)
        self.field = field
        self.value = value


class InvalidURIError(InvalidInputError):
    """A URI that is malformed or does not belong to this store."""


class ConfigError(InvalidInputError):
    """A configuration value is missing, of the wrong type or invalid."""

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.key = key
        self.source = source


class ContentParseError(InvalidInputError):
    """Artifact content is not in the format it claims or was sniffed as.

    ``format`` names the parser that refused it (``"junit"``, ``"ctrf"``, ...),
    ``None`` when no format was recognised at all.
    """

    def __init__(self, message: str, *, uri: str | None = None, format: str | None = None) -> None:
        super().__init__(message, uri=uri)
        self.format = format


class StorageError(ArtifactStoreError):
    """The storage backend failed. ``key`` is the backend object concerned.

    ``retryable`` is true for transient failures (connection refused or reset,
    timeouts, HTTP 429/500/502/503/504): the retry policy tries those again and
    nothing else.
    """

    def __init__(
        self,
        message: str,
        *,
        uri: str | None = None,
        key: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, uri=uri)
        self.key = key
        self.retryable = retryable


class StorageFullError(StorageError):
    """No space left on the device, or the store's quota would be exceeded."""


class StoragePermissionError(StorageError, builtins.PermissionError):
    """The backend refused access. Catchable as the built-in ``PermissionError`` too."""


class IndexUnavailableError(StorageError):
    """The shared index's database cannot be reached; reads by URI still work."""


#: Names that still resolve, with a warning, for one release.
DEPRECATED_ALIASES: dict[str, tuple[str, type[Exception]]] = {
    "PermissionError": ("StoragePermissionError", StoragePermissionError),
}


def deprecated_alias(module: str, name: str) -> type[Exception]:
    """The class an old exception name stands for, with a ``DeprecationWarning``.

    For a module's ``__getattr__``; raises ``AttributeError`` for any other name.
    """
    try:
        new_name, cls = DEPRECATED_ALIASES[name]
    except KeyError:
        raise AttributeError(f"module {module!r} has no attribute {name!r}") from None
    warnings.warn(
        f"{module}.{name} is deprecated and will be removed in the next release; "
        f"use {new_name} (the old name shadows the built-in {name})",
        DeprecationWarning,
        stacklevel=3,
    )
    return cls


def __getattr__(name: str) -> type[Exception]:
    return deprecated_alias(__name__, name)
