"""The service's artifact URLs and the store URIs they stand for.

An artifact version is named ``{base}/artifacts/{spec}/{task}/{type}?version=N``
(``{type}`` is ``diff``, ``log`` or ``test``; without ``?version`` the URL
means the latest version). ``GET`` on it returns the raw bytes (or, when a
browser asks and a viewer is installed, a page).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ..exceptions import InvalidURIError
from ..models import ArtifactMetadata, ArtifactType
from ..naming import ArtifactKey

__all__ = [
    "ARTIFACT_PATH",
    "INCLUDE_METADATA_HEADER",
    "MAX_METADATA_HEADER",
    "METADATA_HEADER",
    "VERSION_HEADER",
    "artifact_url",
    "key_from_url",
    "meta_url",
]

ARTIFACT_PATH = "/artifacts"
#: Response header of a download: the version whose bytes these are.
VERSION_HEADER = "X-Artifact-Version"
#: Request header ``1`` asks for the version's metadata JSON in :data:`METADATA_HEADER`
#: of the download's answer (what ``RemoteArtifactStore.open`` does).
INCLUDE_METADATA_HEADER = "X-Include-Metadata"
METADATA_HEADER = "X-Artifact-Metadata"
#: Larger metadata (big custom metadata) is left out; the client asks for it separately.
MAX_METADATA_HEADER = 8192
_PATH = re.compile(r"/artifacts/(?P<spec>[^/]+)/(?P<task>[^/]+)/(?P<type>[^/]+)")
_VERSION = re.compile(r"version=(?P<version>[1-9]\d{0,9})")


def artifact_url(base: str, key: ArtifactKey, version: int | None = None) -> str:
    """The service URL of ``key`` (of one version when ``version`` is given)."""
    url = f"{base.rstrip('/')}{ARTIFACT_PATH}/{key.spec_name}/{key.task_id}/{key.type.value}"
    return url if version is None else f"{url}?version={version}"


def meta_url(base: str, meta: ArtifactMetadata) -> str:
    """The service URL of exactly the version ``meta`` describes."""
    return artifact_url(base, ArtifactKey(meta.spec_name, meta.task_id, meta.type), meta.version)


def key_from_url(url: str, bases: tuple[str, ...]) -> tuple[ArtifactKey, int | None]:
    """Parse a URL this service returned; ``InvalidURIError`` for any other.

    ``bases`` are the origins (scheme, host, port and path prefix) the service is
    known by: its public URL and the one the request came in on.
    """
    if not isinstance(url, str) or not url:
        raise InvalidURIError("uri must be a non-empty string")
    parts = urlsplit(url)
    if parts.fragment:
        raise InvalidURIError(f"URI {url!r} must not carry a fragment", uri=url)
    for base in bases:
        base_parts = urlsplit(base.rstrip("/"))
        if (parts.scheme, parts.netloc.lower()) != (base_parts.scheme, base_parts.netloc.lower()):
            continue
        prefix = base_parts.path
        if not parts.path.startswith(prefix):
            continue
        match = _PATH.fullmatch(parts.path[len(prefix) :])
        if match is None:
            break
        version = None
        if parts.query:
            found = _VERSION.fullmatch(parts.query)
            if found is None:
                raise InvalidURIError(
                    f"bad URI query {parts.query!r}: expected 'version=<n>' with n >= 1", uri=url
                )
            version = int(found["version"])
        try:
            kind = ArtifactType.parse(match["type"])
        except ValueError as exc:
            try:  # the stored file name names the type too (diff.txt, log.txt, ...)
                kind = ArtifactType.from_filename(match["type"])
            except ValueError:
                raise InvalidURIError(f"URI {url!r}: {exc}", uri=url) from None
        return ArtifactKey.of(match["spec"], match["task"], kind), version
    known = ", ".join(f"{b.rstrip('/')}{ARTIFACT_PATH}/..." for b in bases)
    raise InvalidURIError(f"URI {url!r} is not an artifact of this service ({known})", uri=url)
