"""The viewer's collaborators, handed to every page: store, templates, log spools, auth."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request

from ...artifact_store import ArtifactStore
from ...models import ArtifactMetadata, ArtifactType
from ...naming import ArtifactKey
from ..auth import Principal, Scope, authenticate
from .core import Templates, artifact_summary, principal_context
from .logscan import make_line_cache
from .logspool import LineCache

__all__ = ["Viewer"]


class Viewer:
    """One per application: what the page modules need, and nothing global."""

    def __init__(
        self,
        store: ArtifactStore,
        *,
        base_url: str | None = None,
        line_cache: LineCache | None = None,
    ) -> None:
        self.store = store
        self.base_url = base_url.rstrip("/") if base_url else None
        self.templates = Templates()
        self.lines = line_cache if line_cache is not None else make_line_cache()
        self.warn_threshold = store.config.storage_quota.warn_threshold

    def close(self) -> None:
        """Stop spooling logs and remove the spool folder."""
        self.lines.close()

    def base(self, request: Request) -> str:
        """The base artifact URLs start with: the service's (public) one, else the request's."""
        if self.base_url is not None:
            return self.base_url
        return str(request.base_url).rstrip("/")

    @staticmethod
    def principal(request: Request, needed: Scope = "read") -> Principal:
        """Who is asking (401 with a Basic challenge without a token; 403 below ``needed``)."""
        return authenticate(request, needed)

    @staticmethod
    def principal_context(principal: Principal) -> dict[str, Any]:
        return principal_context(principal)

    def expires_at(self, meta: ArtifactMetadata) -> datetime | None:
        """When retention will remove ``meta`` (``None``: never, e.g. pinned)."""
        return self.store.retention_policy.expires_at(meta)

    def summary(self, request: Request, meta: ArtifactMetadata) -> dict[str, Any]:
        """The JSON-ready summary of ``meta`` that every page shows."""
        return artifact_summary(meta, self.base(request), self.expires_at(meta))

    def meta_of(
        self, spec: str, task: str, kind: ArtifactType | str, version: int | None = None
    ) -> ArtifactMetadata:
        """Metadata of one artifact (version); raises the store's typed errors."""
        key = ArtifactKey.of(spec, task, kind)
        return self.store.get_metadata(key.uri(self.store.root_uri, version))
