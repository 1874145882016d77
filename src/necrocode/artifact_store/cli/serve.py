"""``necrocode-artifacts serve``: the HTTP service over the configured store.

Registered by :mod:`.commands` with one line. The service's dependencies are the
``service`` extra; without them the command says how to install them.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..exceptions import ConfigError
from ..service.settings import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEAD_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_MAX_UPLOAD,
    DEFAULT_PORT,
    INSTALL_HINT,
    ServiceSettings,
)
from .runtime import EXIT_USAGE, state_of

__all__ = ["serve"]


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port (0: any free port).")] = DEFAULT_PORT,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            "--tokens-file", metavar="FILE", help="Tokens: '<scope> <token> [name]' lines."
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option("--public-url", metavar="URL", help="Base of returned URIs (behind a proxy)."),
    ] = None,
    allow_anonymous: Annotated[
        bool,
        typer.Option("--allow-anonymous", help="Serve a non-loopback address without tokens."),
    ] = False,
    max_upload_size: Annotated[
        int, typer.Option(min=0, metavar="BYTES", help="Largest upload accepted (413 beyond).")
    ] = DEFAULT_MAX_UPLOAD,
    body_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a client may pause while sending a body.")
    ] = DEFAULT_BODY_TIMEOUT,
    head_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a client has to send a request head.")
    ] = DEFAULT_HEAD_TIMEOUT,
    shutdown_timeout: Annotated[
        float, typer.Option(min=0, help="Seconds in-flight requests get after SIGTERM.")
    ] = 30.0,
) -> None:
    """Serve the store over HTTP (Agent Runner protocol, REST v1, /health, /metrics).

    \b
    Examples:
      necrocode-artifacts serve                         # 127.0.0.1, no tokens needed
      necrocode-artifacts serve --host 0.0.0.0 --tokens-file tokens.txt
    """
    state = state_of(ctx)
    try:
        from ..service.server import serve as run_server  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        sys.stderr.write(f"error: {INSTALL_HINT} ({exc.name} is missing)\n")
        raise typer.Exit(EXIT_USAGE) from None
    settings = ServiceSettings(
        host=host,
        port=port,
        public_url=public_url,
        tokens_file=tokens_file,
        allow_anonymous=allow_anonymous,
        max_upload_size=max_upload_size,
        body_timeout=body_timeout,
        head_timeout=head_timeout,
        workers=workers,
    )
    if tokens_file is not None and not tokens_file.is_file():
        raise ConfigError(f"--tokens-file {tokens_file}: no such file", key="tokens_file")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    run_server(state.resolved().config, settings, shutdown_timeout=shutdown_timeout)
