"""The small-artifact workload: names, payloads, bulk pre-population, raw baselines.

Artifact ``i`` of the bulk population is the ``diff``/``log``/``test`` (``i % 3``)
of task ``task<i // 3>`` in spec ``spec<i // 60>`` (20 tasks per spec), tagged
``bench`` and ``batch-<i // 50>``. Even tasks were created ``OLD_AGE`` ago (so
every one of their artifacts has expired under the default retention), odd
tasks ``NEW_AGE`` ago; ``i`` seconds are added so a date range picks few rows.
Every search of B3 therefore returns at most 60 rows whatever the store size.
Each record carries a content summary (:func:`summary_of`): one task in ten has
a failing test and an erroring log, and the diffs of 150 consecutive artifacts
touch the same package, so content queries return few rows too (or use a limit).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sqlite3
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from necrocode.artifact_store import ArtifactMetadata, ArtifactType
from necrocode.artifact_store.backends.filesystem import FilesystemBackend
from necrocode.artifact_store.content import (
    SUMMARY_VERSION,
    ChangedFile,
    DiffSummary,
    LogSummary,
    Summary,
    TestSummary,
)
from necrocode.artifact_store.naming import ArtifactKey, new_generation
from necrocode.artifact_store.pipeline.integrity import calculate_checksum

SMALL_SIZE = 2048
TYPES = (ArtifactType.DIFF, ArtifactType.LOG, ArtifactType.TEST_RESULT)
TASKS_PER_SPEC = 20
TAG_BATCH = 50
OLD_AGE = timedelta(days=60)
# Two days: with ``i`` seconds added (up to ~28 h at the full scale) every bulk artifact
# stays in the past, so a date-range window never takes in uploads a benchmark makes now.
NEW_AGE = timedelta(days=2)
GZIP_WBITS = 31


def payload(n: int) -> bytes:
    """2 KB of log-like text, different for every ``n``."""
    line = f"2026-03-01T12:00:{n % 60:02d}Z INFO worker-{n % 7} step {n} finished ok\n"
    text = (line * (SMALL_SIZE // len(line) + 1)).encode()
    return text[:SMALL_SIZE]


def names(i: int) -> tuple[str, str, ArtifactType]:
    """``(spec, task, type)`` of bulk artifact ``i``."""
    task = i // 3
    return f"spec{task // TASKS_PER_SPEC:05d}", f"task{task:06d}", TYPES[i % 3]


def tags_of(i: int) -> tuple[str, ...]:
    """Tags of bulk artifact ``i``."""
    return (f"batch-{i // TAG_BATCH:05d}", "bench")


#: Every this many tasks, one has a failing test result and an erroring log.
FAILING_EVERY = 10
#: Diffs of this many consecutive artifacts touch the same package.
PACKAGE_BATCH = 150


def failing_test_id(task: int) -> str:
    """The failing test of task ``task`` (tasks divisible by ``FAILING_EVERY``)."""
    return f"tests/test_mod{task % 37}.py::test_case_{task:06d}"


def summary_of(i: int) -> Summary:
    """The content summary of bulk artifact ``i``, for the B3 content queries."""
    task = i // 3
    failing = task % FAILING_EVERY == 0
    kind = TYPES[i % 3]
    if kind is ArtifactType.TEST_RESULT:
        test = TestSummary(
            format="junit",
            success=not failing,
            passed=20,
            failed=int(failing),
            skipped=0,
            errors=0,
            duration=1.5,
            failing=(failing_test_id(task),) if failing else (),
        )
        return Summary("test", SUMMARY_VERSION, test=test)
    if kind is ArtifactType.DIFF:
        path = f"pkg{i // PACKAGE_BATCH:05d}/module{task % 7}.py"
        files = (ChangedFile(path, "modified", 3, 1),)
        return Summary("diff", SUMMARY_VERSION, diff=DiffSummary(1, 3, 1, 0, files))
    log = LogSummary(40, int(failing), 0, int(failing), 12 if failing else None)
    return Summary("log", SUMMARY_VERSION, log=log)


def created_of(i: int, now: datetime) -> datetime:
    """Creation time of bulk artifact ``i`` (even tasks old, odd tasks new)."""
    age = OLD_AGE if (i // 3) % 2 == 0 else NEW_AGE
    return now - age + timedelta(seconds=i)


def bulk_fill(root: Path, start: int, stop: int, now: datetime) -> None:
    """Write objects and records of artifacts ``start..stop-1`` straight to the backend.

    Not durable (no fsync) and not indexed: the caller rebuilds the index. This
    is only the pre-population; measured uploads go through ``upload``.
    """
    backend = FilesystemBackend(root, durable=False)
    for i in range(start, stop):
        spec, task, kind = names(i)
        key = ArtifactKey(spec, task, kind)
        data = payload(i)
        stored = gzip.compress(data, compresslevel=6, mtime=0)
        object_key = key.object_key(1, new_generation(), "gzip")
        meta = ArtifactMetadata(
            uri=key.uri(backend.root_uri),
            task_id=task,
            spec_name=spec,
            type=kind,
            size=len(stored),
            checksum=calculate_checksum(data),
            created_at=created_of(i, now),
            compressed=True,
            original_size=len(data),
            mime_type=kind.mime_type,
            tags=tags_of(i),
            codec="gzip",
            object_key=object_key,
            summary=summary_of(i),
        )
        backend.upload(object_key, stored)
        backend.upload(key.record_key(1), meta.to_json().encode(), if_absent=True)


def fsync_folder(folder: Path) -> None:
    """fsync a folder, making its entries durable."""
    fsync_path(folder, is_dir=True)


def fsync_path(path: Path, is_dir: bool = False) -> None:
    """fsync a file (or, with ``is_dir``, a folder) by path."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if is_dir else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_write(folder: Path, name: str, data: bytes) -> None:
    """The raw baseline of one small upload: gzip, hash, temp file, fsync, rename, fsync."""
    stored = zlib.compressobj(6, zlib.DEFLATED, GZIP_WBITS)
    body = stored.compress(data) + stored.flush()
    hashlib.sha256(data).hexdigest()
    path = folder / name
    tmp = folder / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_folder(folder)


def raw_read(path: Path) -> str:
    """The raw baseline of one small download: read, inflate, hash."""
    with open(path, "rb") as handle:
        body = handle.read()
    return hashlib.sha256(zlib.decompress(body, GZIP_WBITS)).hexdigest()


#: The lookup a download needs, as the index answers it.
FLOOR_LOOKUP = (
    "SELECT record FROM artifacts WHERE spec_name=? AND task_id=? AND type=? AND is_latest = 1"
)


def floor_download(conn: sqlite3.Connection, root: str, key: tuple[str, str, str]) -> bytes:
    """The least a verified download must do, in plain code: the floor of B2.

    Index lookup, record decode, read, inflate, SHA-256 and the comparison,
    with none of the store's checks, error mapping or streaming layers.
    """
    (record,) = conn.execute(FLOOR_LOOKUP, key).fetchone()
    meta = json.loads(record)
    with open(f"{root}/{meta['object_key']}", "rb") as handle:
        data = zlib.decompress(handle.read(), GZIP_WBITS)
    if hashlib.sha256(data).hexdigest() != meta["checksum"][7:]:
        raise ValueError("checksum mismatch")
    return data


class FloorWriter:
    """The least a durable, indexed small upload must do, in plain code: the floor of B1.

    The store's write protocol without its checks, locks or layers: one folder
    per three artifacts (as the workload has), the gzipped object written and
    renamed into place, the record's data, the object, its folder and any new
    folder fsynced side by side, the record linked into place and its folder
    fsynced, then one row committed to a SQLite table in WAL mode.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True)
        self.index = sqlite3.connect(folder / "index.sqlite3", isolation_level=None)
        self.index.execute("PRAGMA journal_mode=WAL")
        self.index.execute("PRAGMA synchronous=NORMAL")
        self.index.execute("CREATE TABLE rows (key TEXT PRIMARY KEY, record TEXT) WITHOUT ROWID")
        self.pool = ThreadPoolExecutor(4)
        self.count = 0

    def write(self, data: bytes) -> None:
        n = self.count
        self.count += 1
        task = self.folder / f"t{n // 3}"
        syncs: list[tuple[Path, bool]] = []
        if n % 3 == 0:
            task.mkdir()
            syncs.append((self.folder, True))
        packer = zlib.compressobj(6, zlib.DEFLATED, GZIP_WBITS)
        body = packer.compress(data) + packer.flush()
        record = json.dumps({"checksum": hashlib.sha256(data).hexdigest(), "size": len(body)})
        obj, tmp, final = task / f"o{n}.gz", task / f".r{n}.tmp", task / f"r{n}.json"
        _write_file(task / f".o{n}.tmp", body)
        os.replace(task / f".o{n}.tmp", obj)
        syncs += [(obj, False), (task, True)]
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, record.encode())
            pending = [self.pool.submit(fsync_path, path, is_dir) for path, is_dir in syncs]
            os.fsync(fd)
            for future in pending:
                future.result()
        finally:
            os.close(fd)
        os.link(tmp, final)
        os.unlink(tmp)
        fsync_folder(task)
        self.index.execute("INSERT INTO rows VALUES (?, ?)", (str(final), record))

    def close(self) -> None:
        self.pool.shutdown()
        self.index.close()


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
