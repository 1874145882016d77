"""Prometheus metrics of one service instance, and the access log.

Each application has its own registry (several apps in one process, as in
tests, do not collide). With ``--workers N`` every worker counts its own
requests; scrape them through one address and sum, or run one worker per port.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["AccessLogMiddleware", "ServiceMetrics"]

access_log = logging.getLogger("necrocode.artifact_store.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SECONDS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    120.0,
)


class ServiceMetrics:
    """The counters and histograms ``GET /metrics`` shows."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "necrocode_http_requests",
            "HTTP requests by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.bytes_in = Counter(
            "necrocode_http_received_bytes", "Request body bytes received.", registry=self.registry
        )
        self.bytes_out = Counter(
            "necrocode_http_sent_bytes", "Response body bytes sent.", registry=self.registry
        )
        self.upload_seconds = Histogram(
            "necrocode_upload_seconds",
            "Duration of artifact uploads (request received to response sent).",
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.download_seconds = Histogram(
            "necrocode_download_seconds",
            "Duration of artifact downloads (request received to last byte sent).",
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.store_errors = Counter(
            "necrocode_store_errors",
            "Errors the store raised, by exception class.",
            ("error",),
            registry=self.registry,
        )


class AccessLogMiddleware:
    """One JSON line per request on ``necrocode.artifact_store.access``, and the metrics.

    The line names the route template, status, bytes in and out, the duration
    and the token's name (set by the auth dependency) — never the token.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        counts = {"in": 0, "out": 0, "status": 500}
        recorded = False

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                counts["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start":
                counts["status"] = int(message["status"])
            elif message["type"] == "http.response.body":
                counts["out"] += len(message.get("body", b""))
                if not message.get("more_body", False):
                    # Recorded before the last bytes leave: a client that has its
                    # response already finds the request in the metrics.
                    recorded = True
                    self._record(scope, counts, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            if not recorded:  # no complete response (an error, a client gone)
                self._record(scope, counts, time.perf_counter() - started)

    def _record(self, scope: Scope, counts: dict[str, int], seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        method = str(scope.get("method", ""))
        status = counts["status"]
        metrics = self.metrics
        metrics.requests.labels(route, method, str(status)).inc()
        metrics.bytes_in.inc(counts["in"])
        metrics.bytes_out.inc(counts["out"])
        if route.startswith(("/artifacts", "/v1/artifacts/")) and status < 300:
            if method in ("POST", "PUT") and not route.endswith("/tags"):
                metrics.upload_seconds.observe(seconds)
            elif method == "GET" and route.endswith("{artifact_type}"):
                metrics.download_seconds.observe(seconds)
        state = scope.get("state") or {}
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                json.dumps(
                    {
                        "method": method,
                        "route": route,
                        "path": scope.get("path", ""),
                        "status": status,
                        "bytes_in": counts["in"],
                        "bytes_out": counts["out"],
                        "duration_ms": round(seconds * 1000, 3),
                        "token": state.get("token_name"),
                    },
                    separators=(",", ":"),
                )
            )
