"""What routes take from the application: the store, the settings, the public base URL."""

from __future__ import annotations

from fastapi import Request

from ..artifact_store import ArtifactStore
from .settings import ServiceSettings

__all__ = ["base_of", "known_bases", "settings_of", "store_of"]


def store_of(request: Request) -> ArtifactStore:
    """The store the application serves."""
    store: ArtifactStore = request.app.state.store
    return store


def settings_of(request: Request) -> ServiceSettings:
    """The service's settings."""
    settings: ServiceSettings = request.app.state.settings
    return settings


def base_of(request: Request) -> str:
    """The base URL returned URIs start with (``--public-url``, else the bound address)."""
    base: str = request.app.state.base_url
    return base


def known_bases(request: Request) -> tuple[str, ...]:
    """Every base URL a URI of this service may start with: public and as requested."""
    requested = str(request.base_url).rstrip("/")
    public = base_of(request)
    return (public,) if requested == public else (public, requested)
