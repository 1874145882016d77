"""Delete intents: how a removal of artifact versions survives a crash half-way.

Removing versions takes several steps (index rows, records, objects) that no
backend can make atomic together. Before the first step the remover writes an
*intent* naming what goes; the steps then run in the order index rows, records,
objects, and the intent is removed last. While an intent exists, its versions
count as gone for every reader (listings skip their records), so at any crash
point search and download agree: the artifact is there (intent not yet written)
or it is gone. The next writer of the artifact, or the next store opening,
finishes what the intent names before doing anything else.

Intents live in the store's state folder, one small JSON file per artifact, or
one file for a whole batch of artifacts (a cleanup batch: one write and one unlink
instead of one per artifact) in its ``batches`` subfolder. A batch is written, and
removed, by the holder of the locks of all its artifacts. When its holder died half
way, each artifact of it is finished on its own, by the next holder of that
artifact's lock, which then leaves a *done* marker beside the batch (the batch file
itself is never rewritten, so no two finishers can race on it); the last one
removes the batch and its markers.

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
from typing import Any

from ..exceptions import ArtifactStoreError, StorageError, StorageFullError
from ..models import ArtifactType
from ..naming import ArtifactKey

__all__ = ["DeleteIntent", "IntentLog"]

log = logging.getLogger("necrocode.artifact_store")

INTENT_SUFFIX = ".intent.json"
#: Batch intents (in the ``batches`` subfolder): ``<token>.batch.json``, and beside
#: them ``<token>.<key digest>.done`` for each artifact finished after its holder died.
BATCHES_DIRNAME = "batches"
BATCH_SUFFIX = ".batch.json"
DONE_SUFFIX = ".done"


@dataclass(frozen=True, slots=True)
class DeleteIntent:
    """Versions of one artifact being removed, and the objects that go with them."""

    key: ArtifactKey
    versions: tuple[int, ...]
    objects: tuple[str, ...]
    #: Whether the whole artifact goes (every index row of it, not only ``versions``).
    all_versions: bool = False

    def to_data(self) -> dict[str, Any]:
        """The intent as plain data."""
        return {
            "spec_name": self.key.spec_name,
            "task_id": self.key.task_id,
            "type": self.key.type.value,
            "versions": list(self.versions),
            "objects": list(self.objects),
            "all_versions": self.all_versions,
        }

    def to_json(self) -> str:
        """The intent as JSON text."""
        return json.dumps(self.to_data())

    @classmethod
    def from_json(cls, text: str) -> DeleteIntent:
        """Parse :meth:`to_json` output (``ValueError``/``KeyError``/``TypeError`` if damaged)."""
        return cls.from_data(json.loads(text))

    @classmethod
    def from_data(cls, data: Any) -> DeleteIntent:
        """Parse :meth:`to_data` output (``ValueError``/``KeyError``/``TypeError`` if damaged)."""
        key = ArtifactKey.of(data["spec_name"], data["task_id"], ArtifactType.parse(data["type"]))
        versions = tuple(int(v) for v in data["versions"])
        objects = tuple(str(o) for o in data["objects"])
        return cls(key, versions, objects, bool(data.get("all_versions", False)))


def _digest(key: ArtifactKey) -> str:
    return hashlib.sha256(key.path.encode("utf-8")).hexdigest()[:32]


class IntentLog:
    """The pending delete intents of one store, as files in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.batches = folder / BATCHES_DIRNAME
        #: Parsed batch files by name: a batch file is written once (renamed into
        #: place under a fresh random name) and never changed, only removed.
        self._parsed: dict[str, dict[ArtifactKey, DeleteIntent]] = {}

    def path_for(self, key: ArtifactKey) -> Path:
        """The file of ``key``'s intent."""
        return self.folder / f"{_digest(key)}{INTENT_SUFFIX}"

    def begin_batch(self, intents: list[DeleteIntent]) -> Path | None:
        """Write ``intents`` as one batch file; return it (for :meth:`end_batch`).

        The caller holds the locks of all their artifacts. Returns ``None`` (and
        writes nothing) when one of them still has an intent pending: then
        :meth:`begin` merges with it, artifact by artifact.
        """
        if not intents:
            return None
        names = self._batch_names()
        if any(os.path.exists(self.path_for(i.key)) for i in intents) or any(
            self._in_batches(i.key, names) for i in intents
        ):
            return None
        path = self.batches / f"{secrets.token_hex(8)}{BATCH_SUFFIX}"
        text = json.dumps([intent.to_data() for intent in intents])
        try:
            self.batches.mkdir(parents=True, exist_ok=True)
            self._write(path, text)
        except OSError as exc:
            message = f"cannot record the delete intent in {self.batches}: {exc.strerror or exc}"
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFullError(message) from exc
            raise StorageError(message) from exc
        return path

    def end_batch(self, path: Path) -> None:
        """Forget the batch ``path`` once everything it names is removed."""
        self._parsed.pop(path.name, None)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot remove the delete intent {path}: {exc}") from exc

    def _batch_names(self) -> set[str] | None:
        """Names in the batches folder (``None`` when there is none: the common case)."""
        try:
            names = set(os.listdir(self.batches))
        except (FileNotFoundError, NotADirectoryError):
            self._parsed.clear()
            return None
        except OSError as exc:
            log.error("cannot list delete intents in %s: %s", self.batches, exc)
            return None
        for name in list(self._parsed):
            if name not in names:  # removed since: never comes back under that name
                self._parsed.pop(name, None)
        return names

    def _batch(self, name: str) -> dict[ArtifactKey, DeleteIntent]:
        """The intents of the batch file ``name`` by artifact (empty if gone or damaged)."""
        parsed = self._parsed.get(name)
        if parsed is not None:
            return parsed
        path = self.batches / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            log.error("cannot read delete intent %s: %s", path, exc)
            return {}
        try:
            found = [DeleteIntent.from_data(item) for item in json.loads(text)]
        except (KeyError, TypeError, ValueError) as exc:
            # Torn by a power cut (batches are renamed into place): its removal had
            # not started, so the batch is dropped.
            log.error("dropping damaged delete intent %s: %s", path, exc)
            with contextlib.suppress(OSError):
                path.unlink()
            return {}
        parsed = {intent.key: intent for intent in found}
        self._parsed[name] = parsed
        return parsed

    def _in_batches(
        self, key: ArtifactKey, names: set[str] | None
    ) -> list[tuple[str, DeleteIntent]]:
        """``(batch name, intent)`` of every batch that still removes ``key``."""
        if not names:
            return []
        done = f".{_digest(key)}{DONE_SUFFIX}"
        found = []
        for name in sorted(names):
            if not name.endswith(BATCH_SUFFIX) or name.startswith("."):
                continue
            intent = self._batch(name).get(key)
            if intent is not None and name.removesuffix(BATCH_SUFFIX) + done not in names:
                found.append((name, intent))
        return found

    def _end_in_batches(self, keys: list[ArtifactKey]) -> None:
        """Mark ``keys`` done in the batches of dead holders that name them; remove the
        batches that are then done for every artifact (with their markers)."""
        names = self._batch_names()
        if not names:
            return
        touched: set[str] = set()
        try:
            for key in keys:
                for name, _ in self._in_batches(key, names):
                    marker = f"{name.removesuffix(BATCH_SUFFIX)}.{_digest(key)}{DONE_SUFFIX}"
                    with open(self.batches / marker, "w", encoding="utf-8"):
                        pass
                    names.add(marker)
                    touched.add(name)
            for name in touched:
                stem = name.removesuffix(BATCH_SUFFIX)
                markers = {f"{stem}.{_digest(k)}{DONE_SUFFIX}" for k in self._batch(name)}
                if markers <= names:
                    self.end_batch(self.batches / name)
                    for marker in markers:
                        with contextlib.suppress(FileNotFoundError):
                            (self.batches / marker).unlink()
        except OSError as exc:
            raise StorageError(
                f"cannot update the delete intents in {self.batches}: {exc}"
            ) from exc

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
        """The intent pending for ``key``, if any (its own file and batches joined)."""
        intent = self._read(self.path_for(key))
        for _, found in self._in_batches(key, self._batch_names()):
            intent = found if intent is None else _joined(intent, found)
        return intent

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
        batches = self._batch_names() or set()
        for name in sorted(batches):
            if name.startswith("."):
                continue
            if name.endswith(BATCH_SUFFIX):
                stem = name.removesuffix(BATCH_SUFFIX)
                left = [
                    intent
                    for key, intent in self._batch(name).items()
                    if f"{stem}.{_digest(key)}{DONE_SUFFIX}" not in batches
                ]
                if not left:
                    # Done for every artifact, but two finishers of its last artifacts
                    # each listed before the other's marker: nobody removed it.
                    keys = list(self._batch(name))
                    with contextlib.suppress(ArtifactStoreError, OSError):
                        self.end_batch(self.batches / name)
                        for key in keys:
                            (self.batches / f"{stem}.{_digest(key)}{DONE_SUFFIX}").unlink()
                yield from left
            elif name.endswith(DONE_SUFFIX) and _batch_of(name) not in batches:
                # The marker of a batch already removed (its remover was killed).
                with contextlib.suppress(OSError):
                    (self.batches / name).unlink()

    def gone(self) -> dict[ArtifactKey, set[int]]:
        """Versions of every artifact that pending intents remove."""
        found: dict[ArtifactKey, set[int]] = {}
        for intent in self.all():
            found.setdefault(intent.key, set()).update(intent.versions)
        return found

    def end(self, keys: list[ArtifactKey]) -> None:
        """Forget the intents of ``keys`` once everything they name is removed (their own
        files, and their part of the batches of dead holders)."""
        for key in keys:
            path = self.path_for(key)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(f"cannot remove the delete intent {path}: {exc}") from exc
        self._end_in_batches(keys)


def _batch_of(marker: str) -> str:
    """The name of the batch file a done marker belongs to."""
    return marker.split(".", 1)[0] + BATCH_SUFFIX


def _merged(pending: DeleteIntent | None, intent: DeleteIntent) -> str:
    """``intent`` joined with an older one of the same artifact, as JSON."""
    if pending is None:
        return intent.to_json()
    return _joined(pending, intent).to_json()


def _joined(pending: DeleteIntent, intent: DeleteIntent) -> DeleteIntent:
    """Two intents of the same artifact as one."""
    return DeleteIntent(
        intent.key,
        tuple(sorted({*pending.versions, *intent.versions})),
        tuple(dict.fromkeys((*pending.objects, *intent.objects))),
        pending.all_versions or intent.all_versions,
    )
