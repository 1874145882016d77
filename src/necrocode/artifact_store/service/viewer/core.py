"""What every viewer page shares: templates, the HTML-or-JSON choice, headers, links.

A page is a template name and a context dict of plain JSON values. The same dict
renders the HTML page and is the page's JSON twin (``?format=json`` or
``Accept: application/json``), so the two can never disagree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ...models import ArtifactMetadata, ArtifactType, parse_time
from ..auth import Principal
from ..links import meta_url

__all__ = [
    "CSP",
    "SECURITY_HEADERS",
    "Page",
    "Templates",
    "artifact_summary",
    "human_bytes",
    "page_href",
    "wants_json",
]

#: No script, style, font or frame from anywhere but this service, and no inline script.
CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
STATIC_PREFIX = "/ui/static"
TYPE_LABELS = {
    ArtifactType.DIFF: "Diff",
    ArtifactType.LOG: "Log",
    ArtifactType.TEST_RESULT: "Tests",
}


@dataclass
class Page:
    """A rendered page's template and context (plain JSON values only)."""

    template: str
    context: dict[str, Any]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def wants_json(request: Request) -> bool:
    """Whether the caller asked for a page's JSON twin rather than its HTML."""
    wanted = request.query_params.get("format")
    if wanted is not None:
        return wanted == "json"
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def human_bytes(size: int | float | None) -> str:
    """``1536`` → ``1.5 KiB``."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop always returns


def _when(text: str | None) -> str:
    if not text:
        return "—"
    moment = parse_time(text)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ago(text: str | None) -> str:
    if not text:
        return ""
    seconds = (datetime.now(UTC) - parse_time(text)).total_seconds()
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def page_href(path: str, params: Mapping[str, Any] | None = None) -> str:
    """A same-site link with its query (``None``/empty values left out)."""
    query = {k: v for k, v in (params or {}).items() if v not in (None, "", [])}
    return f"{path}?{urlencode(query, doseq=True)}" if query else path


def spec_href(spec: str) -> str:
    return f"/specs/{quote(spec, safe='')}"


def task_href(spec: str, task: str) -> str:
    return f"{spec_href(spec)}/tasks/{quote(task, safe='')}"


def artifact_api_href(meta: ArtifactMetadata, what: str) -> str:
    """The viewer's own endpoints of one artifact version (``lines``, ``search``, ``info``)."""
    return (
        f"/ui/api/{quote(meta.spec_name, safe='')}/{quote(meta.task_id, safe='')}/"
        f"{meta.type.value}/{what}?version={meta.version}"
    )


def artifact_summary(
    meta: ArtifactMetadata, base: str, expires_at: datetime | None = None
) -> dict[str, Any]:
    """What pages show of an artifact version: links, sizes, integrity, retention."""
    url = meta_url(base, meta)
    path = url[len(base) :] if url.startswith(base) else url
    latest = path.split("?", 1)[0]
    return {
        "spec_name": meta.spec_name,
        "task_id": meta.task_id,
        "type": meta.type.value,
        "type_label": TYPE_LABELS.get(meta.type, meta.type.value.capitalize()),
        "version": meta.version,
        "url": url,
        "href": path,
        "latest_href": latest,
        "raw_href": page_href(latest, {"version": meta.version, "raw": 1}),
        "download_href": page_href(latest, {"version": meta.version, "download": 1}),
        "task_href": task_href(meta.spec_name, meta.task_id),
        "delete_href": (
            f"/v1/artifacts/{quote(meta.spec_name, safe='')}/{quote(meta.task_id, safe='')}/"
            f"{meta.type.value}"
        ),
        "spec_href": spec_href(meta.spec_name),
        "size": meta.original_size,
        "stored_size": meta.stored_size,
        "compressed": meta.compressed,
        "codec": meta.codec,
        "checksum": meta.checksum,
        "mime_type": meta.mime_type,
        "created_at": meta.created_at.isoformat(),
        "tags": list(meta.tags),
        "metadata": meta.metadata,
        "retention_days": meta.retention_days,
        "pinned": meta.pinned,
        "expires_at": expires_at.isoformat() if expires_at is not None else None,
        "title": str(meta.metadata.get("title", "")) or None,
    }


def principal_context(principal: Principal) -> dict[str, Any]:
    """Who is looking, and which buttons they may see."""
    return {
        "name": principal.name,
        "scope": principal.scope,
        "can_write": principal.allows("write"),
        "can_delete": principal.allows("admin"),
    }


class Templates:
    """The Jinja environment over the package's templates, with the viewer's filters."""

    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("necrocode.artifact_store.service.viewer", "templates"),
            autoescape=True,  # artifact content is text, always escaped
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.static_files = self._static_files()
        version = hashlib.sha256(
            b"".join(self.static_files[name] for name in sorted(self.static_files))
        ).hexdigest()[:12]
        self.static_version = version
        self.env.filters["bytes"] = human_bytes
        self.env.filters["when"] = _when
        self.env.filters["ago"] = _ago
        # A plain string, so autoescaping makes it safe inside attributes too.
        self.env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
        self.env.filters["tojson_pretty"] = lambda value: json.dumps(
            value, indent=2, sort_keys=True, ensure_ascii=False, default=str
        )
        self.env.globals["static"] = lambda name: f"{STATIC_PREFIX}/{name}?v={version}"
        self.env.globals["href"] = page_href

    @staticmethod
    def _static_files() -> dict[str, bytes]:
        folder = resources.files("necrocode.artifact_store.service.viewer") / "static"
        return {
            entry.name: entry.read_bytes()
            for entry in folder.iterdir()
            if entry.is_file() and not entry.name.startswith(".")
        }

    def render(self, request: Request, page: Page) -> Response:
        """The page as HTML, or its context as JSON when that was asked for."""
        headers = {**SECURITY_HEADERS, "Vary": "Accept", **page.headers}
        if wants_json(request):
            return JSONResponse(page.context, status_code=page.status, headers=headers)
        params = {**request.query_params, "format": "json"}
        html = self.env.get_template(page.template).render(
            **page.context, request_path=request.url.path, json_params=params
        )
        return HTMLResponse(html, status_code=page.status, headers=headers)

    def static(self, name: str) -> Response:
        """One file of the viewer's CSS/JS; 404 for anything else."""
        data = self.static_files.get(name)
        if data is None:
            return Response(status_code=404)
        kind = {
            ".css": "text/css; charset=utf-8",
            ".js": "text/javascript; charset=utf-8",
            ".svg": "image/svg+xml",
        }.get(name[name.rfind(".") :], "application/octet-stream")
        return Response(
            data,
            media_type=kind,
            headers={
                **SECURITY_HEADERS,
                "Cache-Control": "public, max-age=86400",
                "ETag": f'"{self.static_version}"',
            },
        )
