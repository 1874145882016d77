"""Backfill and refresh content summaries of artifacts already stored.

``necrocode-artifacts reindex --summaries`` and
:meth:`ArtifactStore.refresh_summaries` run :func:`refresh_summaries`: every
version whose summary is missing (stored before summaries existed, or with
``content_summaries`` off) or older than :data:`SUMMARY_VERSION` is streamed
once through the summariser — never loaded whole — and its record rewritten.

Resumable: the last finished version is written to a checkpoint file every
:data:`CHECKPOINT_EVERY` versions; a run that finds a checkpoint of the same
summary version continues after it, and a finished run removes it. Even without
a checkpoint a rerun costs little, since current summaries are skipped without
reading content. Artifacts whose content did not parse keep their reason and
are read again only with ``force``.

The collaborators are handed in (the facade passes its own methods), so this
module never imports the facade.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..content.summariser import Summariser
from ..content.summary import SUMMARY_VERSION, Summary
from ..exceptions import ArtifactNotFoundError, ArtifactStoreError
from ..models import ArtifactMetadata
from ..naming import ArtifactKey
from ..pipeline.download import open_artifact
from ..pipeline.parts import StoreParts
from ..pipeline.records import update_record

__all__ = [
    "CHECKPOINT_EVERY",
    "SummaryRefreshReport",
    "needs_summary",
    "refresh_store",
    "refresh_summaries",
]

log = logging.getLogger("necrocode.artifact_store")

#: Versions between two checkpoint writes.
CHECKPOINT_EVERY = 100
#: Checkpoint of an interrupted refresh, in the state folder.
SUMMARY_CHECKPOINT = "summaries-refresh.json"

#: ``(spec, task, type, version)``: the order versions are visited in.
VersionKey = tuple[str, str, str, int]
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class SummaryRefreshReport:
    """What a refresh did. ``problems`` lists ``(uri, reason)`` of versions it could not read."""

    checked: int = 0
    summarised: int = 0
    unparsed: int = 0
    skipped: int = 0
    resumed_after: str | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """Plain data for JSON output."""
        return {
            "checked": self.checked,
            "summarised": self.summarised,
            "unparsed": self.unparsed,
            "skipped": self.skipped,
            "resumed_after": self.resumed_after,
            "problems": [{"uri": uri, "reason": reason} for uri, reason in self.problems],
        }


def needs_summary(meta: ArtifactMetadata, *, force: bool = False) -> bool:
    """Whether a refresh should (re)summarise ``meta``."""
    if force:
        return True
    if meta.summary is not None:
        return meta.summary.parser_version < SUMMARY_VERSION
    return meta.summary_reason is None


def refresh_summaries(
    keys: Iterable[VersionKey],
    load: Callable[[VersionKey], ArtifactMetadata | None],
    read: Callable[[ArtifactMetadata], Iterable[bytes]],
    update: Callable[[ArtifactMetadata, Summary | None, str | None], None],
    *,
    checkpoint: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> SummaryRefreshReport:
    """Summarise every version of ``keys`` that :func:`needs_summary`; see the module doc.

    ``load`` returns a version's metadata (``None`` if it vanished), ``read`` its
    original bytes (checksum-verified), ``update`` rewrites its record.
    """
    ordered = sorted(keys)
    report = SummaryRefreshReport()
    resume = _read_checkpoint(checkpoint, force)
    if resume is not None:
        report.resumed_after = "/".join(str(part) for part in resume)
    total = len(ordered)
    for done, key in enumerate(ordered, start=1):
        if resume is not None and key <= resume:
            report.skipped += 1
        else:
            _refresh_one(key, load, read, update, force, report)
        if checkpoint is not None and done % CHECKPOINT_EVERY == 0:
            _write_checkpoint(checkpoint, key, force)
        if progress is not None:
            progress(done, total)
    if checkpoint is not None:
        with contextlib.suppress(FileNotFoundError):
            checkpoint.unlink()
    return report


def _refresh_one(
    key: VersionKey,
    load: Callable[[VersionKey], ArtifactMetadata | None],
    read: Callable[[ArtifactMetadata], Iterable[bytes]],
    update: Callable[[ArtifactMetadata, Summary | None, str | None], None],
    force: bool,
    report: SummaryRefreshReport,
) -> None:
    meta = load(key)
    if meta is None or not needs_summary(meta, force=force):
        report.skipped += 1
        return
    report.checked += 1
    summariser = Summariser(meta.type)
    try:
        for chunk in read(meta):
            summariser.feed(chunk)
        summary, reason = summariser.finish()
        update(meta, summary, reason)
    except ArtifactNotFoundError:
        report.skipped += 1  # deleted while the refresh ran
        return
    except ArtifactStoreError as exc:
        # An unreadable or corrupt artifact is reported, never summarised from bad bytes.
        log.warning("could not summarise %s: %s", meta.version_uri, exc)
        report.problems.append((meta.version_uri, f"{type(exc).__name__}: {exc}"))
        return
    if summary is None:
        report.unparsed += 1
    else:
        report.summarised += 1


def _read_checkpoint(path: Path | None, force: bool) -> VersionKey | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
        last = data["last"]
        if data["summary_version"] != SUMMARY_VERSION or data["force"] != force:
            return None
        return (str(last[0]), str(last[1]), str(last[2]), int(last[3]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        log.warning("ignoring unreadable summary checkpoint %s", path)
        return None


def _write_checkpoint(path: Path, key: VersionKey, force: bool) -> None:
    """Atomically replace the checkpoint: temporary file beside it, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    text = json.dumps({"last": list(key), "summary_version": SUMMARY_VERSION, "force": force})
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def refresh_store(
    parts: StoreParts, *, force: bool = False, progress: Progress | None = None
) -> SummaryRefreshReport:
    """:func:`refresh_summaries` over every version of the store ``parts`` make up."""

    def load(key: VersionKey) -> ArtifactMetadata | None:
        return parts.metadata.get(ArtifactKey.of(key[0], key[1], key[2]), key[3])

    def read(meta: ArtifactMetadata) -> Iterator[bytes]:
        with open_artifact(parts, meta.version_uri, verify_checksum=True) as reader:
            yield from reader

    def update(meta: ArtifactMetadata, summary: Summary | None, reason: str | None) -> None:
        def change(current: ArtifactMetadata) -> ArtifactMetadata:
            if current.object_key != meta.object_key:
                return current  # replaced meanwhile: its own upload summarised it
            return current.with_changes(summary=summary, summary_reason=reason)

        update_record(parts, meta.version_uri, change)

    return refresh_summaries(
        parts.metadata.query(lambda index: index.keys()),
        load,
        read,
        update,
        checkpoint=parts.config.effective_state_dir / SUMMARY_CHECKPOINT,
        force=force,
        progress=progress,
    )
