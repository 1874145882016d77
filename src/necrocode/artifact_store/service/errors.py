"""One mapping from the store's exception tree to HTTP statuses, one JSON error shape.

Every error response is ``{"error": {"code": "<snake_case>", "message": "..."}}``.
The remote client maps the codes back to the same exception classes
(:mod:`.error_codes`), so ``ArtifactNotFoundError`` raised in the server is
``ArtifactNotFoundError`` in the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import exceptions as errors
from .error_codes import STORE_ERRORS
from .metrics import ServiceMetrics

__all__ = [
    "ApiError",
    "error_body",
    "install_error_handlers",
    "status_for",
]

log = logging.getLogger("necrocode.artifact_store.service")


class ApiError(Exception):
    """An HTTP-level refusal the store itself does not know (too large, bad range...)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def status_for(exc: errors.ArtifactStoreError) -> tuple[int, str]:
    """The status and code of a store error."""
    for cls, status, code in STORE_ERRORS:
        if isinstance(exc, cls):
            if isinstance(exc, errors.StorageError) and exc.retryable:  # transient: retry
                return 503, "storage_unavailable"
            return status, code
    return 500, "store_error"  # pragma: no cover - the table ends with the root class


def error_body(code: str, message: str) -> dict[str, Any]:
    """The one error shape."""
    return {"error": {"code": code, "message": message}}


def _response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, metrics: ServiceMetrics) -> None:
    """Register the handlers that give every error the one JSON shape."""

    async def store_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.ArtifactStoreError)
        status, code = status_for(exc)
        metrics.store_errors.labels(type(exc).__name__).inc()
        if status >= 500:
            log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        headers = {"Retry-After": "1"} if status == 503 else None
        return _response(status, code, exc.message, headers)

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _response(exc.status, exc.code, exc.message, exc.headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for item in exc.errors():
            where = ".".join(str(part) for part in item.get("loc", ()))
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        return _response(422, "validation_error", "; ".join(problems) or "invalid request")

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
        code = codes.get(exc.status_code, "bad_request" if exc.status_code < 500 else "error")
        return _response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    app.add_exception_handler(errors.ArtifactStoreError, store_error)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
