"""The worker side of a rebuild of a local store in worker processes.

:meth:`~.manager.MetadataManager.rebuild_index` of a large store on a local disk
cuts the walk into parts of whole top-level folders
(:func:`~.processes.local_parts`); each worker process walks its
folders, reads and checks their records (the old index's rows, read-only, spare
re-validating unchanged ones, as in one process) and sends back the rows to insert.
The caller fills the index from them in one transaction.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from ..backends.filesystem import FilesystemBackend
from ..exceptions import ArtifactNotFoundError, IntegrityError
from ..naming import ArtifactKey, parse_key
from .manager import RecordReader
from .rows import KnownRecords
from .sqlite import BulkRow, RecordPages, bulk_row

__all__ = ["load_part", "start_loader"]


@dataclass
class _Loader:
    backend: FilesystemBackend
    records: RecordReader
    rows: RecordPages
    gone: dict[ArtifactKey, set[int]]


#: The loader of this process (set by :func:`start_loader`, in worker processes only).
_LOADER: list[_Loader] = []


def start_loader(root: str, index_path: str, gone: dict[ArtifactKey, set[int]]) -> None:
    """Set up this worker process: the store at ``root``, its index file (read-only)
    and the versions pending removals take away (they are left out)."""
    backend = FilesystemBackend(root, create=False, durable=False)  # only read here
    _LOADER[:] = [_Loader(backend, RecordReader(backend), RecordPages(Path(index_path)), gone)]


def load_part(folders: list[str]) -> tuple[list[BulkRow], list[str]]:
    """The index rows (:func:`~.sqlite.bulk_row`) of every readable record in
    ``folders`` (top-level, in walk order), and why unreadable ones were skipped."""
    (loader,) = _LOADER  # a worker process starts with start_loader
    rows = KnownRecords(loader.rows, start=(folders[0], "", "", 0))
    loaded: list[BulkRow] = []
    skipped: list[str] = []
    current: ArtifactKey | None = None
    texts: dict[int, str] = {}
    for folder in folders:
        # Keys only: every record is read below anyway, a stat of each file is wasted.
        for info, is_tmp in loader.backend.list_names_with_incomplete(f"{folder}/"):
            parsed = None if is_tmp else parse_key(info.key)
            if parsed is None or parsed.kind != "record":
                continue
            key, version = parsed.artifact, parsed.version
            if version in loader.gone.get(key, ()):
                continue  # being removed: gone already for readers (see .intents)
            if key != current:
                current = key
                texts = rows.texts(key.spec_name, key.task_id, key.type.value)
            with contextlib.suppress(ArtifactNotFoundError):  # deleted while we listed
                try:
                    meta, text = loader.records.load_row(key, version, texts.get(version))
                except IntegrityError as exc:
                    skipped.append(str(exc))
                    continue
                loaded.append(bulk_row(meta, text))
    return loaded, skipped
