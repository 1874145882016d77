"""The error codes of the service and the store exceptions they stand for.

Shared by the server (:mod:`.errors`) and the client (:mod:`.client`), which
has no FastAPI: one table, read both ways.
"""

from __future__ import annotations

from .. import exceptions as errors

__all__ = ["CODE_CLASSES", "STORE_ERRORS", "class_for"]

#: The store's errors, most specific first: ``(class, status, code)``.
STORE_ERRORS: tuple[tuple[type[errors.ArtifactStoreError], int, str], ...] = (
    (errors.ArtifactNotFoundError, 404, "not_found"),
    (errors.ArtifactExistsError, 412, "already_exists"),
    (errors.InvalidNameError, 422, "invalid_name"),
    (errors.InvalidURIError, 422, "invalid_uri"),
    (errors.ConfigError, 500, "config_error"),
    (errors.InvalidInputError, 422, "invalid_input"),
    (errors.LockTimeoutError, 503, "lock_timeout"),
    (errors.IntegrityError, 500, "integrity_error"),
    (errors.StorageFullError, 507, "storage_full"),
    (errors.StoragePermissionError, 502, "storage_permission_denied"),
    (errors.StorageError, 502, "storage_error"),
    (errors.ArtifactStoreError, 500, "store_error"),
)

#: Error code -> the exception class a client raises for it.
CODE_CLASSES: dict[str, type[errors.ArtifactStoreError]] = {
    code: cls for cls, _, code in STORE_ERRORS
} | {
    "unauthorized": errors.StoragePermissionError,
    "forbidden": errors.StoragePermissionError,
    "payload_too_large": errors.StorageFullError,
    "validation_error": errors.InvalidInputError,
    "bad_request": errors.InvalidInputError,
    "range_not_satisfiable": errors.InvalidInputError,
    "storage_unavailable": errors.StorageError,
    "request_timeout": errors.StorageError,
}


def class_for(status: int, code: str | None) -> type[errors.ArtifactStoreError]:
    """The exception class of an error response (by code, else by status)."""
    if code is not None and code in CODE_CLASSES:
        return CODE_CLASSES[code]
    if status == 404:
        return errors.ArtifactNotFoundError
    if status in (401, 403):
        return errors.StoragePermissionError
    if status in (413, 507):
        return errors.StorageFullError
    if status == 412:
        return errors.ArtifactExistsError
    if 400 <= status < 500 and status not in (408, 429):
        return errors.InvalidInputError
    return errors.StorageError
