"""What ``necrocode-artifacts serve`` was told: address, public URL, tokens, limits.

No third-party imports here, so the command line can validate its options
before the service's dependencies are even loaded.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..exceptions import ConfigError

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEAD_TIMEOUT",
    "DEFAULT_HOST",
    "DEFAULT_MAX_UPLOAD",
    "DEFAULT_PORT",
    "INSTALL_HINT",
    "ServiceSettings",
    "is_loopback",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8003
#: Default of ``--max-upload-size``: 10 GiB (the store streams, so size costs no memory).
DEFAULT_MAX_UPLOAD = 10 * 1024**3
#: Seconds a client may stay silent while sending a request body.
DEFAULT_BODY_TIMEOUT = 60.0
#: Seconds a client has to send a whole request head.
DEFAULT_HEAD_TIMEOUT = 10.0
INSTALL_HINT = (
    "the service needs its extra: python -m pip install 'necrocode-artifact-store[service]'"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServiceSettings:
    """Options of one service instance (see ``necrocode-artifacts serve --help``).

    ``public_url`` is the base the returned artifact URIs start with (set it
    behind a reverse proxy); without it they are built from the bound host and port.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    public_url: str | None = None
    tokens_file: Path | None = None
    allow_anonymous: bool = False
    max_upload_size: int = DEFAULT_MAX_UPLOAD
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    workers: int = 1

    def __post_init__(self) -> None:
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    f"--public-url must be an http(s) URL, got {self.public_url!r}",
                    key="public_url",
                )
            if parts.query or parts.fragment:
                raise ConfigError(
                    f"--public-url must not carry a query or fragment: {self.public_url!r}",
                    key="public_url",
                )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0-65535, got {self.port}", key="port")
        if self.max_upload_size < 0:
            raise ConfigError(
                f"--max-upload-size must not be negative, got {self.max_upload_size}",
                key="max_upload_size",
            )
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}", key="workers")
        if self.body_timeout <= 0 or self.head_timeout <= 0:
            raise ConfigError("timeouts must be positive", key="timeout")

    def check_exposure(self) -> None:
        """Refuse to serve a non-loopback address without tokens (unless told to)."""
        if self.tokens_file is None and not self.allow_anonymous and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host} without --tokens-file: anyone on the "
                "network could read and write artifacts (pass --allow-anonymous to do it anyway)",
                key="host",
            )

    def base_url(self, bound_port: int | None = None) -> str:
        """The base of returned URIs: ``public_url``, else ``http://<host>:<port>``."""
        if self.public_url is not None:
            return self.public_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
            host = "127.0.0.1" if host != "::" else "::1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{bound_port if bound_port is not None else self.port}"
