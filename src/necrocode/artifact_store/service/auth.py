"""Access tokens: the tokens file, scopes and the dependency every route declares.

The file holds one token per line, ``<scope> <token> [name]``; ``#`` starts a
comment. ``<token>`` may be written as ``sha256:<64 hex digits>`` (the SHA-256
of the token) so that the file need not hold the secret. Scopes nest:
``read`` ⊂ ``write`` (upload, tags) ⊂ ``admin`` (delete, cleanup, verify, repair).

Clients send ``Authorization: Bearer <token>``, or HTTP Basic with the token as
the password (any user name), which is what ``requests`` does with ``~/.netrc``.
Presented tokens are hashed and compared with every entry in constant time.
Without a tokens file every request is allowed (the server then binds to
loopback only, see :meth:`ServiceSettings.check_exposure`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import Request

from ..exceptions import ConfigError
from .errors import ApiError

__all__ = ["SCOPES", "Principal", "Scope", "TokenEntry", "TokenStore", "parse_tokens", "requires"]

log = logging.getLogger("necrocode.artifact_store.service")

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
_CHALLENGE = 'Basic realm="necrocode-artifacts", charset="UTF-8"'
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One line of the tokens file: the token's SHA-256, its scope and a name for logs."""

    digest: bytes
    scope: Scope
    name: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the token's name and scope (``None`` name: no tokens configured)."""

    name: str | None
    scope: Scope

    def allows(self, needed: Scope) -> bool:
        """Whether this principal's scope includes ``needed``."""
        return _RANK[self.scope] >= _RANK[needed]


def parse_tokens(text: str, source: str) -> list[TokenEntry]:
    """Parse a tokens file; ``ConfigError`` names the line of any mistake (never the token)."""
    entries: list[TokenEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) not in (2, 3):
            raise ConfigError(
                f"{source}:{number}: expected '<scope> <token> [name]'", key="tokens", source=source
            )
        scope, secret = fields[0], fields[1]
        if scope not in _RANK:
            raise ConfigError(
                f"{source}:{number}: unknown scope {scope!r}; expected read, write or admin",
                key="tokens",
                source=source,
            )
        if secret.startswith("sha256:"):
            hexdigest = secret.removeprefix("sha256:").lower()
            if len(hexdigest) != 64 or not set(hexdigest) <= _HEX:
                raise ConfigError(
                    f"{source}:{number}: sha256: must be followed by 64 hex digits",
                    key="tokens",
                    source=source,
                )
            digest = bytes.fromhex(hexdigest)
        else:
            if len(secret) < 16:
                raise ConfigError(
                    f"{source}:{number}: tokens must be at least 16 characters long",
                    key="tokens",
                    source=source,
                )
            digest = hashlib.sha256(secret.encode()).digest()
        name = fields[2] if len(fields) == 3 else f"line-{number}"
        entries.append(TokenEntry(digest, scope, name))
    return entries


class TokenStore:
    """The tokens in force; :meth:`reload` re-reads the file (on SIGHUP)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: list[TokenEntry] = self._load() if path is not None else []

    @property
    def count(self) -> int:
        """How many tokens are in force."""
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        """Whether tokens are required at all."""
        return self.path is not None

    def _load(self) -> list[TokenEntry]:
        assert self.path is not None
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read the tokens file {self.path}: {exc}",
                key="tokens",
                source=str(self.path),
            ) from None
        return parse_tokens(text, str(self.path))

    def reload(self) -> bool:
        """Re-read the file; on a mistake keep the tokens in force and log why."""
        if self.path is None:
            return False
        try:
            entries = self._load()
        except ConfigError as exc:
            log.error("tokens not reloaded, the previous ones stay in force: %s", exc)
            return False
        with self._lock:
            self._entries = entries
        log.info("reloaded %d tokens from %s", len(entries), self.path)
        return True

    def identify(self, token: str) -> TokenEntry | None:
        """The entry of ``token``; every entry is compared, in constant time."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        with self._lock:
            entries = self._entries
        found = None
        for entry in entries:
            if hmac.compare_digest(entry.digest, digest) and found is None:
                found = entry
        return found


def _presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    kind, _, value = header.partition(" ")
    kind = kind.lower()
    if kind == "bearer":
        return value.strip() or None
    if kind == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, _, password = decoded.partition(":")
        return password or None
    return None


def authenticate(request: Request, needed: Scope) -> Principal:
    """The request's principal if it may do what needs ``needed``; else 401 / 403."""
    tokens: TokenStore = request.app.state.tokens
    if not tokens.enabled:
        return Principal(None, "admin")
    token = _presented_token(request)
    entry = tokens.identify(token) if token is not None else None
    if entry is None:
        message = "a valid token is required" if token is None else "the token is not valid"
        raise ApiError(401, "unauthorized", message, {"WWW-Authenticate": _CHALLENGE})
    request.state.token_name = entry.name
    principal = Principal(entry.name, entry.scope)
    if not principal.allows(needed):
        raise ApiError(
            403, "forbidden", f"token {entry.name!r} has scope {entry.scope}; this needs {needed}"
        )
    return principal


def requires(needed: Scope) -> Callable[[Request], Principal]:
    """A FastAPI dependency: ``Depends(requires("write"))``."""

    def dependency(request: Request) -> Principal:
        return authenticate(request, needed)

    dependency.__name__ = f"requires_{needed}"
    return dependency
