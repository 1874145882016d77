"""The viewer's routes, and :func:`install_viewer` that adds them to the service.

Pages: ``/`` (home), ``/specs/{spec}``, ``/specs/{spec}/tasks/{task}``,
``/specs/{spec}/tasks/{task}/{type}`` (an artifact page, also what a browser
gets from the artifact URL itself) and ``.../{type}/compare?from=&to=``. Each
answers JSON with ``?format=json`` or ``Accept: application/json``. The log
viewer's script calls ``/ui/api/{spec}/{task}/{type}/lines|info|search``;
CSS and JS are at ``/ui/static/{name}``.

Store calls block, so every route is a plain ``def`` (FastAPI runs it in its
thread pool). Errors on pages are HTML pages with the status the service's
error table gives; on JSON twins and API calls they are the service's JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ...exceptions import ArtifactStoreError
from ...naming import ArtifactKey
from ..errors import ApiError, error_body, status_for
from .artifact import artifact_page
from .compare import compare_page
from .core import SECURITY_HEADERS, Page, wants_json
from .home import home_page
from .log_page import log_info_data, log_lines, log_search
from .spec import spec_page
from .state import Viewer
from .task import task_page

__all__ = ["install_viewer", "viewer_router"]

log = logging.getLogger("necrocode.artifact_store.service")

#: What a response without its own policy gets: nothing may run or load from it.
_FALLBACK_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"


def _error_page(viewer: Viewer, request: Request, exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        status, code, message, headers = exc.status, exc.code, exc.message, exc.headers
    elif isinstance(exc, ArtifactStoreError):
        status, code = status_for(exc)
        message, headers = exc.message, {}
        request.app.state.metrics.store_errors.labels(type(exc).__name__).inc()
        if status >= 500:
            log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    else:
        raise exc
    if wants_json(request) or request.url.path.startswith("/ui/api/"):
        return JSONResponse(error_body(code, message), status_code=status, headers=headers)
    title = {401: "Sign in", 403: "Not allowed", 404: "Not found"}.get(status, "Cannot show this")
    page = Page(
        "error.html",
        {
            "page": "error",
            "title": title,
            "breadcrumbs": [],
            "principal": {"name": None, "scope": None, "can_write": False, "can_delete": False},
            "error": {"status": status, "code": code, "message": message},
        },
        status=status,
        headers=headers,
    )
    return viewer.templates.render(request, page)


def _guarded(viewer: Viewer, request: Request, build: Callable[[], Page]) -> Response:
    try:
        page = build()
    except (ArtifactStoreError, ApiError) as exc:
        return _error_page(viewer, request, exc)
    return viewer.templates.render(request, page)


def _api(viewer: Viewer, request: Request, build: Callable[[], dict[str, Any]]) -> Response:
    try:
        viewer.principal(request)
        data = build()
    except (ArtifactStoreError, ApiError) as exc:
        return _error_page(viewer, request, exc)
    return JSONResponse(data, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


def _version(request: Request) -> int | None:
    text = request.query_params.get("version")
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 2**31:
        raise ApiError(422, "invalid_input", f"version must be a positive integer, got {text!r}")
    return int(text)


def viewer_router(viewer: Viewer) -> APIRouter:
    """Every page and endpoint of the viewer, over ``viewer``."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def home(request: Request) -> Response:
        return _guarded(viewer, request, lambda: home_page(viewer, request))

    @router.get("/specs/{spec}")
    def spec(request: Request, spec: str) -> Response:
        return _guarded(viewer, request, lambda: spec_page(viewer, request, spec))

    @router.get("/specs/{spec}/tasks/{task}")
    def task(request: Request, spec: str, task: str) -> Response:
        return _guarded(viewer, request, lambda: task_page(viewer, request, spec, task))

    @router.get("/specs/{spec}/tasks/{task}/{kind}")
    def artifact(request: Request, spec: str, task: str, kind: str) -> Response:
        def build() -> Page:
            viewer.principal(request)
            return artifact_page(
                viewer, request, viewer.meta_of(spec, task, kind, _version(request))
            )

        return _guarded(viewer, request, build)

    @router.get("/specs/{spec}/tasks/{task}/{kind}/compare")
    def compare(request: Request, spec: str, task: str, kind: str) -> Response:
        return _guarded(viewer, request, lambda: compare_page(viewer, request, spec, task, kind))

    endpoints = {"lines": log_lines, "info": log_info_data, "search": log_search}

    @router.get("/ui/api/{spec}/{task}/{kind}/{what}")
    def log_api(request: Request, spec: str, task: str, kind: str, what: str) -> Response:
        handler = endpoints.get(what)
        if handler is None:
            return JSONResponse(
                error_body("not_found", f"no viewer endpoint {what!r}"), status_code=404
            )
        return _api(
            viewer,
            request,
            lambda: handler(viewer, request, viewer.meta_of(spec, task, kind, _version(request))),
        )

    @router.get("/ui/static/{name}")
    def static(name: str) -> Response:
        return viewer.templates.static(name)

    return router


class _DefaultCSP:
    """ASGI middleware: a response that set no ``Content-Security-Policy`` gets a strict one.

    Raw artifact bytes are served with their stored media type; should one claim
    ``text/html``, this keeps a browser from running anything in it.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def patched(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", _FALLBACK_CSP.encode()))
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, patched)


def install_viewer(app: FastAPI, viewer: Viewer | None = None) -> Viewer:
    """Add the viewer to a service app made by ``create_app`` and return it.

    Registers the pages, the artifact-URL hook (browsers get the page, other
    clients the bytes) and the default security headers.
    """
    if viewer is None:
        viewer = Viewer(app.state.store, base_url=app.state.base_url)
    app.include_router(viewer_router(viewer))

    async def page_of(request: Request, key: ArtifactKey, version: int | None) -> Response:
        def build() -> Response:
            return _guarded(
                viewer,
                request,
                lambda: artifact_page(
                    viewer, request, viewer.meta_of(key.spec_name, key.task_id, key.type, version)
                ),
            )

        return await run_in_threadpool(build)

    app.state.viewer = page_of
    app.state.viewer_state = viewer
    app.add_middleware(_DefaultCSP)
    return viewer
