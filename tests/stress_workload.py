"""The concurrent-access workload, shared by ``test_concurrent_access.py`` and
``benchmarks/stress_report.py``.

Writer processes upload self-describing content: every artifact's bytes start
with a header naming the artifact, the writer, the write's sequence number and
the SHA-256 of the body, so anyone who reads it can tell a torn or mismatched
artifact from a good one without asking the writer. Reader processes download
continuously while the writers run and count what they saw. Afterwards
:func:`check_store` compares the store with what the writers say they wrote.

Processes are started with the ``spawn`` context: no state (open SQLite
connections, locks) leaks from the parent into a child.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from necrocode.artifact_store import (
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreConfig,
    ArtifactType,
    IntegrityError,
)
from necrocode.artifact_store.naming import ArtifactKey

SPEC = "stress"
KINDS = tuple(ArtifactType)
#: How many artifacts all writers share, and how many each writer has alone. Few shared
#: artifacts mean many writers per artifact: the contention the locks are there for.
SHARED_ARTIFACTS = 3
OWN_ARTIFACTS = 3
#: Share of reads aimed at the shared artifacts.
SHARED_READ_SHARE = 0.8
MIN_BODY, MAX_BODY = 64, 24_000
#: Seconds a process waits for the others at the start line before giving up.
START_TIMEOUT_S = 120.0
#: Seconds the parent waits for a worker to finish before calling it hung.
JOIN_TIMEOUT_S = 600.0
HEADER_END = b"\n"


class ContentMismatch(ValueError):
    """Downloaded bytes are not a complete, intact write of the expected artifact."""


# -- self-describing content --------------------------------------------------------------


def make_content(
    path: str, writer: int, seq: int, rng: random.Random, max_body: int = MAX_BODY
) -> bytes:
    """A header naming ``path``, the writer and the write, then a random body."""
    size = rng.randint(MIN_BODY, max_body)
    if rng.random() < 0.5:
        body = rng.randbytes(size)  # incompressible
    else:
        body = (f"{path} {writer} {seq} " * (size // 16 + 1)).encode()[:size]
    header = {
        "artifact": path,
        "writer": writer,
        "seq": seq,
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    return json.dumps(header, sort_keys=True).encode() + HEADER_END + body


def identify(data: bytes, path: str) -> tuple[int, int]:
    """``(writer, seq)`` of a complete write of ``path``; :class:`ContentMismatch` otherwise."""
    head, sep, body = data.partition(HEADER_END)
    if not sep:
        raise ContentMismatch(f"{path}: no header in {len(data)} bytes")
    try:
        header = json.loads(head)
    except ValueError as exc:
        raise ContentMismatch(f"{path}: unreadable header: {exc}") from None
    if header["artifact"] != path:
        raise ContentMismatch(f"{path}: holds the content of {header['artifact']}")
    if header["size"] != len(body) or header["sha256"] != hashlib.sha256(body).hexdigest():
        raise ContentMismatch(
            f"{path}: torn body of write {header['writer']}/{header['seq']} "
            f"({len(body)} of {header['size']} bytes)"
        )
    return int(header["writer"]), int(header["seq"])


# -- the plan and the artifacts it touches ----------------------------------------------


@dataclass(frozen=True)
class StressPlan:
    """How many writers upload how often into which store, while how many readers read."""

    base_path: str
    writers: int
    uploads_per_writer: int
    readers: int = 2
    versioning: bool = False
    seed: int = 0

    def config(self) -> ArtifactStoreConfig:
        """The store every process opens (a generous lock timeout: nothing may fail)."""
        return ArtifactStoreConfig(
            base_path=Path(self.base_path),
            versioning_enabled=self.versioning,
            lock_timeout=JOIN_TIMEOUT_S,
            lock_retry_interval=0.005,
        )

    def shared_keys(self) -> list[ArtifactKey]:
        """Artifacts every writer uploads to."""
        return [
            ArtifactKey(SPEC, f"shared-{i}", KINDS[i % len(KINDS)]) for i in range(SHARED_ARTIFACTS)
        ]

    def own_keys(self, writer: int) -> list[ArtifactKey]:
        """Artifacts only ``writer`` uploads to."""
        return [
            ArtifactKey(SPEC, f"w{writer}-{i}", KINDS[i % len(KINDS)]) for i in range(OWN_ARTIFACTS)
        ]

    def all_keys(self) -> list[ArtifactKey]:
        """Every artifact the plan may create."""
        own = [key for writer in range(self.writers) for key in self.own_keys(writer)]
        return self.shared_keys() + own


@dataclass
class Write:
    """One upload a writer finished: which artifact, which write, the URI it got."""

    path: str
    writer: int
    seq: int
    uri: str


@dataclass
class WriterResult:
    """What a writer reports: its writes and when it started and finished (wall clock)."""

    writer: int
    writes: list[Write] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


@dataclass
class ReaderResult:
    """What a reader saw; every count but ``reads`` and ``not_yet`` must stay 0."""

    reads: int = 0
    not_yet: int = 0
    torn: int = 0
    mismatched: int = 0
    vanished: int = 0
    errors: list[str] = field(default_factory=list)


# -- processes ----------------------------------------------------------------------------


def writer_main(plan: StressPlan, writer: int, out: str, start: Any) -> None:
    """Upload ``plan.uploads_per_writer`` times: even writes to shared artifacts, odd to own."""
    rng = random.Random(f"{plan.seed}-writer-{writer}")
    shared, own = plan.shared_keys(), plan.own_keys(writer)
    result = WriterResult(writer)
    with ArtifactStore(plan.config()) as store:
        start.wait(START_TIMEOUT_S)
        result.started = time.time()
        for seq in range(plan.uploads_per_writer):
            key = rng.choice(shared if seq % 2 == 0 else own)
            content = make_content(key.path, writer, seq, rng)
            uri = store.upload(key.task_id, key.spec_name, key.type, content)
            result.writes.append(Write(key.path, writer, seq, uri))
        result.finished = time.time()
    Path(out).write_text(json.dumps(asdict(result)))


def reader_main(plan: StressPlan, reader: int, out: str, start: Any, stop: Any) -> None:
    """Download random artifacts (by URI, via search, by version) until ``stop`` is set."""
    rng = random.Random(f"{plan.seed}-reader-{reader}")
    result = ReaderResult()
    seen: set[str] = set()
    with ArtifactStore(plan.config()) as store:
        uris = {key.uri(store.root_uri): key.path for key in plan.all_keys()}
        shared = [key.uri(store.root_uri) for key in plan.shared_keys()]
        choices = sorted(uris)
        start.wait(START_TIMEOUT_S)
        while not stop.is_set():
            mode = rng.random()
            # Mostly the shared artifacts: readers race the writers where they race each other.
            uri = rng.choice(shared if rng.random() < SHARED_READ_SHARE else choices)
            try:
                if mode < 0.1:
                    hits = store.search(spec_name=SPEC)
                    if not hits:
                        continue
                    uri = rng.choice(hits).uri
                elif mode < 0.2 and plan.versioning and uri in seen:
                    # Versions are never removed with versioning on: the first stays readable.
                    data = store.download(f"{uri}?version=1")
                    identify(data, uris[uri])
                    result.reads += 1
                    continue
                data = store.download(uri)
                identify(data, uris[uri])
                result.reads += 1
                seen.add(uri)
            except ArtifactNotFoundError as exc:
                if uri in seen:
                    result.vanished += 1
                    result.errors.append(f"vanished: {exc}")
                else:
                    result.not_yet += 1
            except IntegrityError as exc:
                result.torn += 1
                result.errors.append(f"integrity: {exc}")
            except ContentMismatch as exc:
                result.mismatched += 1
                result.errors.append(f"mismatch: {exc}")
            except Exception as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}")
    Path(out).write_text(json.dumps(asdict(result)))


@dataclass
class StressOutcome:
    """Everything a stress run produced, for the checks and the report."""

    plan: StressPlan
    writers: list[WriterResult]
    readers: list[ReaderResult]

    @property
    def uploads(self) -> int:
        """Uploads that returned a URI."""
        return sum(len(w.writes) for w in self.writers)

    @property
    def uploads_per_second(self) -> float:
        """Aggregate upload rate from the first writer's start to the last one's end."""
        span = max(w.finished for w in self.writers) - min(w.started for w in self.writers)
        return self.uploads / span if span > 0 else float("inf")

    def reader_total(self, name: str) -> int:
        """A reader count summed over the readers."""
        return sum(int(getattr(r, name)) for r in self.readers)


@contextmanager
def _processes(processes: list[Any]) -> Iterator[None]:
    try:
        for process in processes:
            process.start()
        yield
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()


def run_stress(plan: StressPlan, workdir: Path) -> StressOutcome:
    """Run the writers and readers of ``plan`` to the end; raise if any process failed."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(plan.writers + plan.readers + 1)
    stop = ctx.Event()
    writer_files = [workdir / f"writer-{i}.json" for i in range(plan.writers)]
    reader_files = [workdir / f"reader-{i}.json" for i in range(plan.readers)]
    writers = [
        ctx.Process(target=writer_main, args=(plan, i, str(out), start))
        for i, out in enumerate(writer_files)
    ]
    readers = [
        ctx.Process(target=reader_main, args=(plan, i, str(out), start, stop))
        for i, out in enumerate(reader_files)
    ]
    with _processes(readers + writers):
        start.wait(START_TIMEOUT_S)
        for process in writers:
            process.join(JOIN_TIMEOUT_S)
        stop.set()
        for process in readers:
            process.join(JOIN_TIMEOUT_S)
    failed = [p.name for p in writers + readers if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"worker processes failed or hung: {failed}")
    writer_results = []
    for out in writer_files:
        data = json.loads(out.read_text())
        data["writes"] = [Write(**w) for w in data["writes"]]
        writer_results.append(WriterResult(**data))
    reader_results = [ReaderResult(**json.loads(out.read_text())) for out in reader_files]
    return StressOutcome(plan, writer_results, reader_results)


# -- checks ---------------------------------------------------------------------------------


def check_store(outcome: StressOutcome) -> list[str]:
    """Every way the store disagrees with what the writers wrote (empty when all is well)."""
    plan = outcome.plan
    problems: list[str] = []
    writes_by_path: dict[str, list[Write]] = {}
    for result in outcome.writers:
        for write in result.writes:
            writes_by_path.setdefault(write.path, []).append(write)
    with ArtifactStore(plan.config()) as store:
        keys = {key.path: key for key in plan.all_keys()}
        for path, writes in sorted(writes_by_path.items()):
            problems += _check_artifact(store, keys[path], writes, plan.versioning)
        found = {meta.uri for meta in store.search(spec_name=SPEC)}
        expected = {keys[path].uri(store.root_uri) for path in writes_by_path}
        if found != expected:
            problems.append(
                f"search: missing {sorted(expected - found)}, unexpected {sorted(found - expected)}"
            )
        records = {
            (m.spec_name, m.task_id, m.type.value, m.version) for m in store.metadata.iter_records()
        }
        indexed = store.metadata.index.keys()
        if indexed != records:
            problems.append(
                f"index disagrees with the records: only indexed {sorted(indexed - records)}, "
                f"only recorded {sorted(records - indexed)}"
            )
        report = store.verify_all()
        if not report.healthy or report.orphaned or report.incomplete:
            problems.append(f"verify_all: {report.to_dict()}")
    return problems


def _check_artifact(
    store: ArtifactStore, key: ArtifactKey, writes: list[Write], versioning: bool
) -> list[str]:
    uri = key.uri(store.root_uri)
    problems = [f"{w.uri}: returned for {key.path}" for w in writes if w.uri != uri]
    versions = sorted(store.metadata.stored(key).records)
    wanted = list(range(1, len(writes) + 1)) if versioning else [len(writes)]
    if versions != wanted:
        problems.append(f"{uri}: {len(writes)} uploads left versions {versions}, not {wanted}")
        return problems
    found: list[tuple[int, int]] = []
    for version in versions:
        try:
            found.append(identify(store.download(f"{uri}?version={version}"), key.path))
        except (ContentMismatch, IntegrityError, ArtifactNotFoundError) as exc:
            problems.append(f"{uri} v{version}: {exc}")
    written = {(w.writer, w.seq) for w in writes}
    if versioning and sorted(found) != sorted(written):
        problems.append(f"{uri}: versions hold {sorted(found)}, writers wrote {sorted(written)}")
    if versioning and len({w.writer for w in writes}) == 1 and found != sorted(found):
        problems.append(f"{uri}: versions are out of write order: {found}")
    if not versioning and found:
        if found[0] not in written:
            problems.append(f"{uri}: holds write {found[0]}, which nobody wrote here")
        writers = {w.writer for w in writes}
        if len(writers) == 1 and found[0] != max((w.writer, w.seq) for w in writes):
            problems.append(f"{uri}: holds write {found[0]}, not its only writer's last")
    try:
        latest = identify(store.download(uri), key.path)
    except (ContentMismatch, IntegrityError, ArtifactNotFoundError) as exc:
        problems.append(f"{uri}: {exc}")
    else:
        if found and latest != found[-1]:
            problems.append(f"{uri}: latest is {latest}, highest version holds {found[-1]}")
    return problems
