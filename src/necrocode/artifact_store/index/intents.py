"""Delete intents: how a removal of artifact versions survives a crash half-way.

Removing versions takes several steps (index rows, records, objects) that no
backend can make atomic together. Before the first step the remover writes an
*intent* naming what goes; the steps then run in the order index rows, records,
objects, and the intent is removed last. While an intent exists, its versions
count as gone for every reader (listings skip their records), so at any crash
point search and download agree: the artifact is there (intent not yet written)
or it is gone. The next writer of the artifact, or the next store opening,
finishes what the intent names before doing anything else.

Intents live in the store's state folder, one small JSON file per artifact.
They are not fsynced: they guard against a killed process, whose writes the page
cache keeps. After a power cut an intent may be lost (the index, a cache that may
then lag anyway, is corrected by readers and rebuilds) or come back after it was
done; a returning intent is finished only for records that still name one of its
objects (see ``MetadataManager.finish_removal``), so a newer version that reused a
number is never removed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import StorageError, StorageFullError
from ..models import ArtifactType
from ..naming import ArtifactKey

__all__ = ["DeleteIntent", "IntentLog"]

log = logging.getLogger("necrocode.artifact_store")

INTENT_SUFFIX = ".intent.json"


@dataclass(frozen=True, slots=True)
class DeleteIntent:
    """Versions of one artifact being removed, and the objects that go with them."""

    key: ArtifactKey
    versions: tuple[int, ...]
    objects: tuple[str, ...]
    #: Whether the whole artifact goes (every index row of it, not only ``versions``).
    all_versions: bool = False

    def to_json(self) -> str:
        """The intent as JSON text."""
        return json.dumps(
            {
                "spec_name": self.key.spec_name,
                "task_id": self.key.task_id,
                "type": self.key.type.value,
                "versions": list(self.versions),
                "objects": list(self.objects),
                "all_versions": self.all_versions,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> DeleteIntent:
        """Parse :meth:`to_json` output (``ValueError``/``KeyError``/``TypeError`` if damaged)."""
        data = json.loads(text)
        key = ArtifactKey.of(data["spec_name"], data["task_id"], ArtifactType.parse(data["type"]))
        versions = tuple(int(v) for v in data["versions"])
        objects = tuple(str(o) for o in data["objects"])
        return cls(key, versions, objects, bool(data.get("all_versions", False)))


class IntentLog:
    """The pending delete intents of one store, as files in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, key: ArtifactKey) -> Path:
        """The file of ``key``'s intent."""
        digest = hashlib.sha256(key.path.encode("utf-8")).hexdigest()[:32]
        return self.folder / f"{digest}{INTENT_SUFFIX}"

    def begin(self, intents: list[DeleteIntent]) -> None:
        """Write ``intents`` (merged with any already pending)."""
        if not intents:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for intent in intents:
                self._write(self.path_for(intent.key), _merged(self.pending(intent.key), intent))
        except OSError as exc:
            message = f"cannot record the delete intent in {self.folder}: {exc.strerror or exc}"
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFullError(message) from exc
            raise StorageError(message) from exc

    def _write(self, path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        try:
            with open(tmp, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def pending(self, key: ArtifactKey) -> DeleteIntent | None:
        """The intent pending for ``key``, if any."""
        return self._read(self.path_for(key))

    def _read(self, path: Path) -> DeleteIntent | None:
        if not os.path.exists(path):  # the common case, one stat
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.error("cannot read delete intent %s: %s", path, exc)
            return None
        try:
            return DeleteIntent.from_json(text)
        except (KeyError, TypeError, ValueError) as exc:
            # Only a write torn by a power cut gets here (intents are renamed into place):
            # the removal it announced had not started, so the intent is dropped.
            log.error("dropping damaged delete intent %s: %s", path, exc)
            with contextlib.suppress(OSError):
                path.unlink()
            return None

    def all(self) -> Iterator[DeleteIntent]:
        """Every pending intent."""
        try:
            names = sorted(os.listdir(self.folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            log.error("cannot list delete intents in %s: %s", self.folder, exc)
            return
        for name in names:
            if name.endswith(INTENT_SUFFIX) and not name.startswith("."):
                intent = self._read(self.folder / name)
                if intent is not None:
                    yield intent

    def gone(self) -> dict[ArtifactKey, set[int]]:
        """Versions of every artifact that pending intents remove."""
        return {intent.key: set(intent.versions) for intent in self.all()}

    def end(self, keys: list[ArtifactKey]) -> None:
        """Forget the intents of ``keys`` once everything they name is removed."""
        for key in keys:
            path = self.path_for(key)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(f"cannot remove the delete intent {path}: {exc}") from exc


def _merged(pending: DeleteIntent | None, intent: DeleteIntent) -> str:
    """``intent`` joined with an older one of the same artifact, as JSON."""
    if pending is None:
        return intent.to_json()
    return DeleteIntent(
        intent.key,
        tuple(sorted({*pending.versions, *intent.versions})),
        tuple(dict.fromkeys((*pending.objects, *intent.objects))),
        pending.all_versions or intent.all_versions,
    ).to_json()
