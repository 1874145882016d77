"""The HTTP face of the store: ``necrocode-artifacts serve`` (FastAPI + uvicorn).

Three groups of routes over one :class:`~necrocode.artifact_store.ArtifactStore`:

- the NecroCode Agent Runner protocol (``POST /artifacts`` multipart, ``GET <uri>``,
  ``GET /artifacts/metadata?uri=``) in :mod:`.routes_runner`;
- REST v1 (``/v1/artifacts/...``) in :mod:`.routes_v1` and the store-wide
  operations (usage, export, verify, cleanup, repair) in :mod:`.routes_admin`;
- ``/health`` and ``/metrics`` in :mod:`.routes_health`.

:func:`.app.create_app` builds the application; :mod:`.server` runs it;
:class:`.client.RemoteArtifactStore` is the Python client. Importing this
package needs none of the service's dependencies (extra ``service``): the
modules that do are imported only when used.
"""

from __future__ import annotations

from .settings import DEFAULT_HOST, DEFAULT_PORT, ServiceSettings

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ServiceSettings"]
