"""Backend registry: configuration names mapped to lazily imported classes.

Cloud SDKs are imported only when their backend is chosen, and a missing extra
is reported with the command that installs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from .retry import RetryingBackend, RetryPolicy

if TYPE_CHECKING:
    from ..config import ArtifactStoreConfig
    from .base import StorageBackend

__all__ = ["KNOWN_BACKENDS", "backend_class", "create_backend"]

#: name -> (module, class, extra that installs its SDK)
KNOWN_BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "filesystem": (".filesystem", "FilesystemBackend", None),
    "s3": (".s3", "S3Backend", "s3"),
    "gcs": (".gcs", "GCSBackend", "gcs"),
    "memory": (".memory", "MemoryBackend", None),
}


def backend_class(name: str) -> type[StorageBackend]:
    """The backend class registered as ``name``."""
    try:
        module_name, class_name, extra = KNOWN_BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(KNOWN_BACKENDS))
        raise ConfigError(
            f"backend_type: unknown backend {name!r}; known backends: {known}", key="backend_type"
        ) from None
    try:
        module = importlib.import_module(module_name, __name__)
    except ImportError as exc:
        hint = (
            f"; install it with: pip install 'necrocode-artifact-store[{extra}]'" if extra else ""
        )
        raise ConfigError(
            f"backend_type: the {name!r} backend is not available ({exc}){hint}",
            key="backend_type",
        ) from exc
    cls: type[StorageBackend] = getattr(module, class_name)
    return cls


def create_backend(config: ArtifactStoreConfig) -> StorageBackend:
    """Build the backend the configuration names, wrapped in the retry policy.

    Every call of the returned backend goes through one
    :class:`~necrocode.artifact_store.backends.retry.RetryingBackend` configured by the
    ``retry_*`` settings.
    """
    cls = backend_class(config.backend_type)
    factory = getattr(cls, "from_config", None)
    if factory is None:
        raise ConfigError(f"backend_type: {cls.__name__} has no from_config", key="backend_type")
    backend: StorageBackend = factory(config)
    return RetryingBackend(backend, RetryPolicy.from_config(config))
