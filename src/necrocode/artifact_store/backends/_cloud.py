"""What the S3 and GCS backends share: key prefixes and the conditional-create probe.

Several hosts writing one bucket rely on the server's create-if-absent
(S3 ``If-None-Match: *``, GCS ``if_generation_match=0``) to keep version
numbers unique. Some S3-compatible servers and emulators accept the header and
ignore it, so each backend checks once, on its first create-if-absent, that a
second create of the same key is refused. If it is not, the backend either
refuses to go on (``conditional_writes: require``, the default) or, when the
configuration says ``emulate``, falls back to check-then-write, which is safe
for one host only, and says so in the log.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from typing import Literal

from ..exceptions import ConfigError
from ..storage_backend import ObjectExistsError, validate_key

__all__ = ["ConditionalMode", "ConditionalWriteProbe", "PrefixedKeys"]

log = logging.getLogger("necrocode.artifact_store.backends")

ConditionalMode = Literal["require", "emulate"]
#: Folder (under the store's prefix) of the short-lived objects the probe writes.
PROBE_FOLDER = ".necrocode-probe"


class PrefixedKeys:
    """Maps store keys to object names under an optional prefix, and back."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.strip("/")

    def name(self, key: str) -> str:
        """The object name of ``key`` (validated)."""
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def list_prefix(self, prefix: str) -> str:
        """The object-name prefix to list for the store prefix ``prefix``."""
        base = f"{self.prefix}/" if self.prefix else ""
        return base + prefix

    def key(self, name: str) -> str | None:
        """The store key of object ``name``; ``None`` for names outside the store or hidden."""
        base = f"{self.prefix}/" if self.prefix else ""
        if not name.startswith(base):
            return None
        key = name[len(base) :]
        if not key or any(part.startswith(".") or not part for part in key.split("/")):
            return None
        return key

    def probe_name(self) -> str:
        """A fresh object name for one probe."""
        return self.name(f"{PROBE_FOLDER}/{secrets.token_hex(8)}")


class ConditionalWriteProbe:
    """Find out once whether the server refuses a second create-if-absent of one key."""

    def __init__(self, mode: ConditionalMode, endpoint: str) -> None:
        if mode not in ("require", "emulate"):
            raise ConfigError(
                f"conditional_writes: expected 'require' or 'emulate', got {mode!r}",
                key="conditional_writes",
            )
        self.mode = mode
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._honoured: bool | None = None

    def honoured(
        self,
        create: Callable[[str], None],
        delete: Callable[[str], None],
        name: str,
    ) -> bool:
        """Whether conditional creates work; ``create(name)`` writes if absent, else raises.

        Raises ``ConfigError`` when they do not and the mode is ``require``.
        """
        with self._lock:
            if self._honoured is None:
                self._honoured = self._probe(create, delete, name)
            if not self._honoured and self.mode == "require":
                raise ConfigError(
                    f"{self.endpoint} ignores conditional creates (a second create-if-absent "
                    "of the same object succeeded), so hosts sharing this bucket could "
                    "overwrite each other's versions. Use a server that supports them, or set "
                    "'conditional_writes: emulate' if only one host writes this store.",
                    key="conditional_writes",
                )
            return self._honoured

    def _probe(
        self, create: Callable[[str], None], delete: Callable[[str], None], name: str
    ) -> bool:
        create(name)
        try:
            create(name)
        except ObjectExistsError:
            honoured = True
        else:
            honoured = False
        finally:
            delete(name)
        if honoured:
            log.debug("%s honours conditional creates", self.endpoint)
        else:
            log.warning(
                "%s ignores conditional creates; %s",
                self.endpoint,
                "falling back to check-then-write (safe for ONE writing host only)"
                if self.mode == "emulate"
                else "refusing to write (conditional_writes: require)",
            )
        return honoured
