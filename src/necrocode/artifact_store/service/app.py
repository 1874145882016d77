"""``create_app(store, settings)``: the FastAPI application over one store.

``app.state`` holds what the routes use: ``store``, ``settings``, ``tokens``
(:class:`~.auth.TokenStore`), ``metrics``, ``base_url`` (the base of returned
URIs) and ``viewer`` (``None``; a viewer may install its page hook there, see
:mod:`.responses`). The interactive docs at ``/docs`` are disabled: they load
scripts from a CDN, and machines running the store may be offline. The schema
is at ``/openapi.json``.
"""

from __future__ import annotations

from fastapi import FastAPI

from .. import __version__
from ..artifact_store import ArtifactStore
from . import routes_admin, routes_batch, routes_health, routes_runner, routes_v1
from .auth import TokenStore
from .errors import install_error_handlers
from .metrics import AccessLogMiddleware, ServiceMetrics
from .settings import ServiceSettings
from .viewer import install_viewer

__all__ = ["create_app"]


def create_app(
    store: ArtifactStore,
    settings: ServiceSettings | None = None,
    *,
    tokens: TokenStore | None = None,
    base_url: str | None = None,
    viewer: bool = True,
) -> FastAPI:
    """The service application. ``base_url`` overrides the base of returned URIs
    (by default ``settings.public_url``, else the configured host and port);
    ``viewer=False`` leaves out the browser pages (:mod:`.viewer`)."""
    settings = settings or ServiceSettings()
    app = FastAPI(
        title="NecroCode Artifact Store",
        version=__version__,
        description=(
            "Store and fetch the diffs, logs and test results of coding-agent tasks. "
            'Errors are JSON: {"error": {"code", "message"}}.'
        ),
        docs_url=None,
        redoc_url=None,
    )
    metrics = ServiceMetrics()
    app.state.store = store
    app.state.settings = settings
    app.state.tokens = tokens if tokens is not None else TokenStore(settings.tokens_file)
    app.state.metrics = metrics
    app.state.base_url = (base_url or settings.base_url()).rstrip("/")
    app.state.viewer = None
    install_error_handlers(app, metrics)
    app.include_router(routes_health.router)
    app.include_router(routes_runner.router)
    app.include_router(routes_v1.router)
    app.include_router(routes_batch.router)
    app.include_router(routes_admin.router)
    if viewer:
        install_viewer(app)
    app.add_middleware(AccessLogMiddleware, metrics=metrics)
    return app
