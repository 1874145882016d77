"""Run the service: bind, build the app over the configured store, serve with uvicorn.

- Binds the socket itself (port 0 picks a free port) so the returned URIs name
  the real address, and says where it listens on stderr (``serving <url>``).
- SIGTERM / SIGINT: uvicorn stops accepting, lets in-flight requests finish for
  up to ``shutdown_timeout`` seconds, and the process exits 0. An upload cut
  off by the shutdown is aborted by the store: it never becomes visible.
- SIGHUP: the tokens file is read again (with ``--workers N`` the supervisor
  restarts its workers, which read it as they start).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
from dataclasses import asdict, replace
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from ..artifact_store import ArtifactStore
from ..config import ArtifactStoreConfig
from .app import create_app
from .auth import TokenStore
from .protocol import HeadTimeoutProtocol, protocol_with_head_timeout
from .settings import ServiceSettings, is_loopback

__all__ = ["MAX_HEADER_BYTES", "bind", "serve", "uvicorn_options", "worker_app"]

log = logging.getLogger("necrocode.artifact_store.service")

#: Largest request head (request line + headers) uvicorn buffers.
MAX_HEADER_BYTES = 16 * 1024
KEEP_ALIVE_SECONDS = 5
#: Hands the parent's options to ``--workers`` processes (not a setting: no store prefix).
_WORKER_ENV = "NECROCODE_SERVICE_WORKER_SPEC"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 if the host says so)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. Without it a response written in two
    # pieces (head, body) waits for the client's delayed ACK: ~40 ms a request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_options(settings: ServiceSettings, shutdown_timeout: float) -> dict[str, Any]:
    """The options every uvicorn server of this service runs with.

    With several workers the protocol class travels to the worker processes by
    name, so it is the module's own; each worker sets its deadline (``worker_app``).
    """
    if settings.workers > 1:
        protocol: type[HeadTimeoutProtocol] = HeadTimeoutProtocol
    else:
        protocol = protocol_with_head_timeout(settings.head_timeout)
    return {
        "http": protocol,
        "log_config": None,
        "access_log": False,  # the app writes its own access log (never a token)
        "server_header": False,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "timeout_graceful_shutdown": shutdown_timeout,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "lifespan": "off",
    }


def serve(
    store_config: ArtifactStoreConfig,
    settings: ServiceSettings,
    *,
    shutdown_timeout: float = 30.0,
) -> None:
    """Serve until SIGTERM or SIGINT; return after a graceful shutdown."""
    settings.check_exposure()
    tokens = TokenStore(settings.tokens_file)  # a bad file is refused before binding
    sock = bind(settings.host, settings.port)
    base_url = settings.base_url(sock.getsockname()[1])
    auth = f"{tokens.count} tokens" if tokens.enabled else "no tokens"
    sys.stderr.write(f"serving {base_url} ({auth}, {settings.workers} worker(s))\n")
    if settings.public_url is None and not is_loopback(settings.host):
        sys.stderr.write(
            f"warning: returned URIs start with {base_url}; pass --public-url with the "
            "address clients use\n"
        )
    sys.stderr.flush()
    # uvicorn re-raises the signal that stopped it once it is done: with this
    # handler in place that ends the process normally (exit 0).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _ignore)
    options = uvicorn_options(settings, shutdown_timeout)
    try:
        if settings.workers == 1:
            _serve_one(store_config, settings, tokens, base_url, sock, options)
        else:
            _serve_many(store_config, settings, base_url, sock, options)
    finally:
        sock.close()


def _ignore(sig: int, frame: FrameType | None) -> None:
    """The handler uvicorn's re-raised stop signal lands in."""


def _serve_one(
    store_config: ArtifactStoreConfig,
    settings: ServiceSettings,
    tokens: TokenStore,
    base_url: str,
    sock: socket.socket,
    options: dict[str, Any],
) -> None:
    signal.signal(signal.SIGHUP, lambda sig, frame: tokens.reload())
    with ArtifactStore(store_config) as store:
        app = create_app(store, settings, tokens=tokens, base_url=base_url)
        server = uvicorn.Server(uvicorn.Config(app, **options))
        server.run(sockets=[sock])


def _serve_many(
    store_config: ArtifactStoreConfig,
    settings: ServiceSettings,
    base_url: str,
    sock: socket.socket,
    options: dict[str, Any],
) -> None:
    plain = asdict(settings)
    plain["tokens_file"] = str(settings.tokens_file) if settings.tokens_file else None
    os.environ[_WORKER_ENV] = json.dumps(
        {
            "store": store_config.to_dict(),
            "settings": plain,
            "base_url": base_url,
        }
    )
    config = uvicorn.Config(
        f"{__name__}:worker_app", factory=True, workers=settings.workers, **options
    )
    Multiprocess(config, sockets=[sock]).run()


def worker_app() -> FastAPI:
    """The application of one worker process (``--workers N``), from the parent's options."""
    spec = json.loads(os.environ[_WORKER_ENV])
    plain = spec["settings"]
    if plain["tokens_file"] is not None:
        plain["tokens_file"] = Path(plain["tokens_file"])
    settings = replace(ServiceSettings(), **plain)
    HeadTimeoutProtocol.head_timeout = settings.head_timeout
    store = ArtifactStore(ArtifactStoreConfig.from_dict(spec["store"]))
    return create_app(store, settings, base_url=spec["base_url"])
