"""The crash campaign's writer process and the model its work is checked against.

The writer runs random operations (uploads that overwrite or create, deletes,
tag updates, retention cleanups) on a small set of artifacts until it is
SIGKILLed, and journals each one before it starts and after it returns. From
the journal the parent knows the store's state before the operation that was
running at the kill, and after it: every artifact must be in one of the two
(a delete or cleanup of several versions may also stop half-way, oldest
versions first, which readers see as the old artifact).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig, ArtifactType, UploadItem
from necrocode.artifact_store.models import utc_now
from necrocode.artifact_store.naming import ArtifactKey

from .stress_workload import identify, make_content

SPEC = "crash"
#: Artifacts the campaign touches; the last ones start absent (first uploads create them).
KEYS = [
    ArtifactKey(SPEC, f"t{i}", kind)
    for i in range(4)
    for kind in (ArtifactType.DIFF, ArtifactType.LOG)
]
PREPOPULATED = 6
#: Operations by weight; large uploads make the kill land inside a write more often.
OPERATIONS = {"upload": 50, "large_upload": 15, "delete": 12, "tags": 18, "cleanup": 5}
LARGE_BODY = 3 * 1024 * 1024
MAX_OPERATIONS = 100_000
#: Retention cleanup runs this far in the future, so that every version has expired.
CLEANUP_AHEAD = timedelta(days=3650)
FIRST_OPERATION = 1000


def config_for(base_path: Path, versioning: bool) -> ArtifactStoreConfig:
    """The store of one run."""
    return ArtifactStoreConfig(base_path=base_path, versioning_enabled=versioning)


# -- the model ------------------------------------------------------------------------------

#: What readers can see of one artifact: the content ids of its versions, oldest
#: first (only the latest with versioning off), and the tags of the latest.
State = tuple[tuple[int, ...], tuple[str, ...]]
ABSENT: State = ((), ())


@dataclass
class Op:
    """One journaled operation."""

    number: int
    kind: str
    path: str | None = None
    tags: tuple[str, ...] = ()
    done: bool = False


@dataclass
class Model:
    """The state of every artifact after the operations that completed."""

    versioning: bool
    states: dict[str, State] = field(default_factory=dict)

    def state(self, path: str) -> State:
        """What readers should see of ``path``."""
        return self.states.get(path, ABSENT)

    def after(self, op: Op) -> dict[str, State]:
        """Every artifact's state once ``op`` completed."""
        states = {key.path: self.state(key.path) for key in KEYS}
        if op.kind in ("upload", "large_upload") and op.path is not None:
            ids, _ = states[op.path]
            ids = (*ids, op.number) if self.versioning else (op.number,)
            states[op.path] = (ids, ())
        elif op.kind == "delete" and op.path is not None:
            states[op.path] = ABSENT
        elif op.kind == "tags" and op.path is not None and states[op.path][0]:
            states[op.path] = (states[op.path][0], op.tags)
        elif op.kind == "cleanup":
            states = dict.fromkeys(states, ABSENT)
        return states

    def apply(self, op: Op) -> None:
        """Record that ``op`` completed."""
        self.states = self.after(op)


def acceptable(actual: State, before: State, after: State, op: Op | None) -> bool:
    """Whether ``actual`` is the artifact's old or new self."""
    if actual in (before, after):
        return True
    partial_removal = op is not None and op.kind in ("delete", "cleanup")
    ids, tags = actual
    # Versions are removed oldest first: a stopped removal leaves the newest ones.
    return partial_removal and bool(ids) and before[0][-len(ids) :] == ids and tags == before[1]


def observe(store: ArtifactStore, key: ArtifactKey, versioning: bool) -> State:
    """What the store holds for ``key``, read from its records and objects."""
    versions = sorted(store.metadata.stored(key).records)
    if not versioning:
        versions = versions[-1:]
    uri = key.uri(store.root_uri)
    ids = tuple(
        identify(store.download(f"{uri}?version={version}"), key.path)[1] for version in versions
    )
    tags = store.metadata.load(key, versions[-1]).tags if versions else ()
    return ids, tuple(tags)


# -- the journal ------------------------------------------------------------------------------


def _journal(fd: int, entry: dict[str, Any]) -> None:
    # One short write(2) per line, O_APPEND: a kill never leaves half a line behind.
    os.write(fd, (json.dumps(entry) + "\n").encode())


def read_journal(path: Path) -> tuple[list[Op], bool]:
    """The journaled operations in order (``done`` when they returned), and readiness."""
    ops: dict[int, Op] = {}
    ready = False
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["event"] == "ready":
            ready = True
        elif entry["event"] == "begin":
            ops[entry["op"]] = Op(entry["op"], entry["kind"], entry["path"], tuple(entry["tags"]))
        else:
            ops[entry["op"]].done = True
    return list(ops.values()), ready


# -- the writer process -----------------------------------------------------------------------


def prepopulate(store: ArtifactStore, model: Model, rng: random.Random) -> None:
    """Give the first artifacts content (operation numbers 0..PREPOPULATED-1)."""
    for number, key in enumerate(KEYS[:PREPOPULATED]):
        op = Op(number, "upload", key.path)
        content = make_content(key.path, 0, number, rng)
        store.upload(key.task_id, key.spec_name, key.type, content)
        model.apply(op)


def crash_writer(base_path: str, versioning: bool, seed: int, journal: str) -> None:
    """Run random operations until killed (or MAX_OPERATIONS), journaling each."""
    rng = random.Random(f"crash-writer-{seed}")
    kinds, weights = zip(*OPERATIONS.items(), strict=True)
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    with ArtifactStore(config_for(Path(base_path), versioning)) as store:
        _journal(fd, {"event": "ready"})
        for number in range(FIRST_OPERATION, FIRST_OPERATION + MAX_OPERATIONS):
            kind = rng.choices(kinds, weights)[0]
            key = rng.choice(KEYS)
            tags = tuple(sorted((f"op-{number}", rng.choice(["red", "green", "blue"]))))
            path = None if kind == "cleanup" else key.path
            _journal(fd, {"event": "begin", "op": number, "kind": kind, "path": path, "tags": tags})
            uri = key.uri(store.root_uri)
            if kind in ("upload", "large_upload"):
                limit = LARGE_BODY if kind == "large_upload" else 24_000
                content = make_content(key.path, 1, number, rng, max_body=limit)
                store.upload(key.task_id, key.spec_name, key.type, content)
            elif kind == "delete":
                store.delete(uri, missing_ok=True)
            elif kind == "tags":
                if store.metadata.stored(key).records:
                    store.update_tags(uri, tags)
            else:
                store.cleanup_expired(now=utc_now() + CLEANUP_AHEAD)
            _journal(fd, {"event": "done", "op": number})


# -- the group-commit writer: many threads of one process -----------------------------------

GROUP_SPEC = "group"
KINDS = (ArtifactType.DIFF, ArtifactType.LOG, ArtifactType.TEST_RESULT)
#: Artifacts every thread of the group writer uploads new versions of (versioning on).
GROUP_SHARED = 3


def group_writer(base_path: str, seed: int, journal: str, threads: int) -> None:
    """Upload from ``threads`` threads at once until killed, journaling every returned URI.

    Each thread uploads new artifacts of its own and new versions of a few
    shared ones, one at a time or a task's three in one ``upload_many``. A line
    is journaled (one ``write(2)``, ``O_APPEND``) only after the call returned:
    the parent may then hold the store to every line it finds.
    """
    import threading

    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    store = ArtifactStore(config_for(Path(base_path), versioning=True))
    start = threading.Barrier(threads + 1)

    def work(thread: int) -> None:
        rng = random.Random(f"group-{seed}-{thread}")
        start.wait()
        for seq in range(0, MAX_OPERATIONS, 3):
            batch = rng.random() < 0.3  # a task's three artifacts in one upload_many
            planned = []
            for offset, kind in enumerate(KINDS if batch else (rng.choice(KINDS),)):
                task = f"w{thread}-{seq}"
                if rng.random() < 0.3:
                    task = f"shared{rng.randrange(GROUP_SHARED)}"
                key = ArtifactKey(GROUP_SPEC, task, kind)
                size = rng.choice((2048, 24_000))
                content = make_content(key.path, thread, seq + offset, rng, max_body=size)
                planned.append((key, seq + offset, content))
            if batch:
                items = [
                    UploadItem(k.task_id, GROUP_SPEC, k.type, c, tags=("group",))
                    for k, _, c in planned
                ]
                metas = [result.unwrap() for result in store.upload_many(items)]
            else:
                key, _, content = planned[0]
                metas = [
                    store.upload_version(key.task_id, GROUP_SPEC, key.type, content, tags=["group"])
                ]
            for (key, number, _), meta in zip(planned, metas, strict=True):
                entry = {"uri": meta.uri, "version": meta.version, "path": key.path}
                entry |= {"task": key.task_id, "type": key.type.value}
                _journal(fd, {"event": "done", **entry, "writer": thread, "seq": number})

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    _journal(fd, {"event": "ready"})
    start.wait()
    for worker in workers:
        worker.join()


def read_group_journal(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The uploads the group writer saw return, and whether it got ready."""
    done: list[dict[str, Any]] = []
    ready = False
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["event"] == "ready":
            ready = True
        else:
            done.append(entry)
    return done, ready
