"""The upload pipeline: validate → lock → allocate a version → stream → commit → index.

1. **Validate** everything the caller gave (custom metadata, MIME type, tags,
   retention days, the content's kind) before any I/O.
2. **Lock** the artifact (:meth:`~.parts.StoreParts.hold`): writers of one artifact
   take turns; writers of different artifacts never wait for each other.
3. **Allocate** the next version number from the versions stored
   (:func:`current_versions`).
4. **Stream** the content through SHA-256, the content summariser and the
   compressor into a new, uniquely named object (staged: the backend may make it
   durable together with its record).
5. **Commit**: create the version's metadata record — the commit point; a lost
   version race takes the next number. The index row follows the record.
6. Only then **remove** what the new version replaces (unversioned stores).

Any failure before the commit removes the new object, so nothing changes; a
failure whose outcome is unknown (the answer of a record write was lost) keeps
the object if a record may point to it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypedDict

from ..backends.base import (
    CHUNK_SIZE,
    ObjectExistsError,
    SourceError,
    StagedObject,
    iter_source,
    source_chunks,
)
from ..content.summary import Summary
from ..exceptions import (
    ArtifactExistsError,
    ArtifactStoreError,
    InvalidInputError,
    StorageError,
)
from ..models import MAX_RETENTION_DAYS, ArtifactMetadata, ArtifactType, Codec, utc_now
from ..naming import ArtifactKey, new_generation, validate_tags
from .integrity import HashingSource
from .operation import Operation
from .parts import StoreParts
from .quota import Quota
from .summarising import SummaryTap
from .upload_args import content_size, upload_target, with_progress

__all__ = [
    "Content",
    "ProgressCallback",
    "UploadFlags",
    "UploadOptions",
    "Uploader",
    "content_chunks",
    "file_content",
    "options",
    "upload_key",
]

log = logging.getLogger("necrocode.artifact_store")

#: What ``upload`` stores. A ``str`` is stored as its UTF-8 *text*, never opened as
#: a path: pass a ``pathlib.Path`` (any ``os.PathLike``) or call ``upload_file``.
Content = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO | Iterable[bytes]
ProgressCallback = Callable[[int, int], None]

#: How often an upload retries after another writer took its version number.
MAX_VERSION_RACES = 16
MAX_MIME_LENGTH = 255


class UploadFlags(TypedDict, total=False):
    """The keyword options every upload method takes (each optional)."""

    #: Tags to find the artifact by (validated like names).
    tags: Iterable[str] | None
    #: Days this artifact is kept, instead of its type's (0 to 1,000,000).
    retention_days: int | None
    #: When the bytes equal the latest version's (same SHA-256), store nothing and
    #: keep that version: a retried upload is a no-op.
    if_changed: bool
    #: Refuse with ``ArtifactExistsError`` when the artifact exists.
    if_absent: bool
    #: ``progress(done, total)`` as bytes are read (``total`` 0 when not known).
    progress: ProgressCallback | None


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """What one upload asks for besides its name and content."""

    metadata: dict[str, Any] | None = None
    mime_type: str | None = None
    tags: Iterable[str] | None = None
    retention_days: int | None = None
    #: Store nothing when the bytes equal the latest version's (same SHA-256).
    if_changed: bool = False
    #: Refuse with ``ArtifactExistsError`` when the artifact exists.
    if_absent: bool = False
    progress: ProgressCallback | None = None


def options(
    metadata: dict[str, Any] | None, mime_type: str | None, flags: UploadFlags
) -> UploadOptions:
    """The options of one upload call; ``TypeError`` for a keyword that is not a flag."""
    for name in flags:
        if name not in UploadFlags.__annotations__:
            raise TypeError(f"upload() got an unexpected keyword argument {name!r}")
    return UploadOptions(metadata, mime_type, **flags)


def upload_key(
    task_id: str | None,
    spec_name: str | None,
    artifact_type: ArtifactType | str | None,
    ref: str | None,
) -> ArtifactKey:
    """The artifact an upload names, by ``task_id, spec_name, artifact_type`` or ``ref``
    (see :mod:`.upload_args` for the check of a likely swap)."""
    return ArtifactKey.of(*upload_target(task_id, spec_name, artifact_type, ref))


@dataclass(frozen=True, slots=True)
class _Checked:
    """An upload's options once validated."""

    custom: dict[str, Any]
    mime_type: str
    tags: tuple[str, ...]
    retention_days: int | None


class Uploader:
    """Runs the pipeline for the store whose parts it holds."""

    def __init__(self, parts: StoreParts) -> None:
        self.parts = parts
        self.quota = Quota(parts.config.storage_quota, parts.metadata, parts.root_uri)

    def upload(
        self, key: ArtifactKey, content: Content, options: UploadOptions
    ) -> ArtifactMetadata:
        """Store ``content`` as the next version of ``key``; its metadata (with
        ``if_changed`` and unchanged bytes: the existing latest version's)."""
        uri = key.uri(self.parts.root_uri)
        with Operation("upload", uri):
            checked = _check(key, options)
            if isinstance(content, str):
                content = utf8(content)  # once, for the summary worker and the chunks
            chunks, close_source = content_chunks(content)
            if options.progress is not None:
                chunks = with_progress(chunks, content_size(content), options.progress)
            summary = SummaryTap(
                key.type if self.parts.config.content_summaries else None,
                processes=self.parts.config.summary_processes,
            )
            if isinstance(content, bytes):
                summary.start_early(content)  # parsed while the upload locks and stages
            try:
                with summary, self.parts.hold(key, uri):
                    meta = self._write_version(key, chunks, checked, options, summary)
            except SourceError as exc:
                # The caller's content failed, not the store: give back their exception.
                raise exc.__cause__ or exc from None
            finally:
                close_source()
            log.debug("uploaded %s v%d (%d bytes)", uri, meta.version, meta.size)
            return meta

    def _write_version(
        self,
        key: ArtifactKey,
        chunks: Iterable[bytes],
        checked: _Checked,
        options: UploadOptions,
        summariser: SummaryTap,
    ) -> ArtifactMetadata:
        """Write one new version of ``key``, summarised by ``summariser``; the caller
        holds its lock."""
        parts = self.parts
        previous = current_versions(parts, key)
        if options.if_absent and previous:
            raise ArtifactExistsError(
                f"{key.uri(parts.root_uri)} exists already", uri=previous[-1].uri
            )
        version = previous[-1].version + 1 if previous else 1
        codec = parts.compression.codec
        object_key = key.object_key(version, new_generation(), codec)
        source = HashingSource(chunks)
        replaced = [] if parts.config.versioning_enabled else previous
        # A shared index reserves quota for the stored bytes before they are written.
        credit = sum(m.stored_size for m in replaced)
        with parts.quota.reserving(key.uri(parts.root_uri), credit) as meter:
            # Staged: the backend may make the object durable together with its record.
            # The summary taps the hashed chunks on their way to the compressor.
            staged = parts.backend.stage(
                object_key, meter(parts.compression.compress_stream(summariser.tap(source)))
            )
            summary, summary_reason = summariser.finish()
            if options.if_changed and previous and previous[-1].checksum == source.checksum:
                # A retried upload of the same bytes: nothing refers to the new object yet.
                parts.backend.delete(object_key)
                log.debug("%s unchanged: kept v%d", previous[-1].uri, previous[-1].version)
                return previous[-1]
            meta = new_version(
                key.uri(parts.root_uri), key, version, object_key, codec, source, staged,
                checked, summary, summary_reason,
            )  # fmt: skip
            return self._finish(key, meta, staged, replaced)

    def _finish(
        self,
        key: ArtifactKey,
        meta: ArtifactMetadata,
        staged: StagedObject,
        replaced: list[ArtifactMetadata],
    ) -> ArtifactMetadata:
        """Commit ``meta`` (whose object is ``staged``), then drop what it replaces."""
        try:
            usage_before = self.quota.check(meta, replaced)
            meta, replaced = self._commit(key, meta, replaced, staged)
        except BaseException as exc:
            meta, replaced = self.after_failed_commit(key, meta, replaced, exc)
        remove_replaced(self.parts, key, replaced)
        if usage_before is not None:
            self.quota.warn_if_high(usage_before, meta, replaced)
        return meta

    def after_failed_commit(
        self,
        key: ArtifactKey,
        meta: ArtifactMetadata,
        replaced: list[ArtifactMetadata],
        exc: BaseException,
    ) -> tuple[ArtifactMetadata, list[ArtifactMetadata]]:
        """After creating ``meta``'s record failed with ``exc``: re-raise it, having removed
        the new object if nothing can refer to it; or, if the record landed after all,
        the version stored and what it replaces."""
        if not _outcome_unknown(exc):
            # Nothing refers to the new object yet: remove it so no orphan stays.
            with contextlib.suppress(Exception):
                self.parts.backend.delete(meta.object_key)
            raise exc
        # The record write failed in a way that may have reached the server after
        # all (the answer was lost): never delete an object a record may point to.
        landed = self._find_record_of(key, meta.object_key)
        if landed is None:
            raise exc  # the object, if unreferenced, is an orphan for repair to collect
        log.warning(
            "%s v%d was stored although its commit reported %s",
            meta.uri,
            landed.version,
            type(exc).__name__,
        )
        self.parts.metadata.reindex(landed)
        return landed, [m for m in replaced if m.version < landed.version]

    def _commit(
        self,
        key: ArtifactKey,
        meta: ArtifactMetadata,
        replaced: list[ArtifactMetadata],
        staged: StagedObject,
    ) -> tuple[ArtifactMetadata, list[ArtifactMetadata]]:
        """Create the record of ``meta`` (durable no sooner than ``staged``, its object).

        On a version race, take the next free number.
        """
        metadata = self.parts.metadata
        for _ in range(MAX_VERSION_RACES):
            try:
                metadata.save(
                    meta,
                    create=True,
                    remove_versions=tuple(m.version for m in replaced),
                    after=staged,
                )
                return meta, replaced
            except ObjectExistsError:
                # The index was behind the records (a writer died before indexing,
                # or another machine wrote): trust the records and retry.
                stored = metadata.stored(key)
                meta = meta.with_changes(version=stored.latest_version + 1, created_at=utc_now())
                if not self.parts.config.versioning_enabled:
                    replaced = metadata.load_all(stored)
        raise StorageError(
            f"gave up on {meta.uri}: the version number kept being taken", uri=meta.uri
        )

    def _find_record_of(self, key: ArtifactKey, object_key: str) -> ArtifactMetadata | None:
        """The committed record that refers to ``object_key``, if any (best effort)."""
        metadata = self.parts.metadata
        try:
            for meta in reversed(metadata.load_all(metadata.stored(key))):
                if meta.object_key == object_key:
                    return meta
        except ArtifactStoreError as exc:
            log.warning("could not check whether %s was committed: %s", object_key, exc)
        return None


def new_version(
    uri: str,
    key: ArtifactKey,
    version: int,
    object_key: str,
    codec: Codec,
    source: HashingSource,
    staged: StagedObject,
    checked: _Checked,
    summary: Summary | None,
    summary_reason: str | None,
) -> ArtifactMetadata:
    """The record of a version whose bytes ``source`` hashed and ``staged`` holds."""
    return ArtifactMetadata(
        uri=uri,
        task_id=key.task_id,
        spec_name=key.spec_name,
        type=key.type,
        size=source.size,
        checksum=source.checksum,
        created_at=utc_now(),
        compressed=codec != "none",
        stored_size=staged.size,
        mime_type=checked.mime_type,
        tags=checked.tags,
        version=version,
        metadata=checked.custom,
        codec=codec,
        object_key=object_key,
        retention_days=checked.retention_days,
        summary=summary,
        summary_reason=summary_reason,
    )


def current_versions(parts: StoreParts, key: ArtifactKey) -> list[ArtifactMetadata]:
    """The stored versions of ``key`` a new upload follows (and, unversioned, replaces).

    A filesystem store's index lives inside the store, shared by every writer,
    so it answers. Otherwise (cloud buckets, or a separate ``state_dir``) each
    host has its own index, possibly behind the records another host wrote:
    the records are listed, so a version number is never reused below a newer
    one and nothing another host committed is overlooked.
    """
    if parts.index_is_shared:
        return parts.metadata.versions(key)
    return parts.metadata.load_all(parts.metadata.stored(key))


def remove_replaced(parts: StoreParts, key: ArtifactKey, versions: list[ArtifactMetadata]) -> None:
    """Delete the versions a new one replaced: records first (oldest first), then objects.

    Oldest first, so an interruption never brings back an older version over a
    newer one. A failure only leaves waste for ``repair`` to collect, so it is
    logged, not raised.
    """
    try:
        parts.metadata.delete_records([(key, meta.version) for meta in versions])
        parts.backend.delete_many([meta.object_key for meta in versions if meta.object_key])
    except ArtifactStoreError as exc:
        log.warning("could not remove replaced versions of %s: %s", key.path, exc)


def _check(key: ArtifactKey, options: UploadOptions) -> _Checked:
    """The options of an upload of ``key``, validated (before any I/O)."""
    custom = _check_custom_metadata(options.metadata)
    mime = _check_mime(options.mime_type or key.type.mime_type)
    tags = validate_tags(options.tags)
    days = options.retention_days
    if days is not None and (type(days) is not int or not 0 <= days <= MAX_RETENTION_DAYS):
        raise InvalidInputError(
            f"retention_days must be an integer from 0 to {MAX_RETENTION_DAYS}, got {days!r}"
        )
    return _Checked(custom, mime, tags, days)


def _outcome_unknown(exc: BaseException) -> bool:
    """Whether a failed backend write may nevertheless have happened.

    A transient failure (a connection cut after the request was sent) may hide
    a write that succeeded; a refusal (quota, permission, a lost version race)
    or a local error may not.
    """
    return isinstance(exc, StorageError) and (
        exc.retryable or (isinstance(exc.__cause__, StorageError) and exc.__cause__.retryable)
    )


def _check_custom_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise InvalidInputError("metadata must be a dict with string keys")
    try:
        text = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must be JSON-serialisable: {exc}") from None
    decoded: dict[str, Any] = json.loads(text)
    return decoded


def _check_mime(mime: str) -> str:
    if (
        not isinstance(mime, str)
        or not mime
        or len(mime) > MAX_MIME_LENGTH
        or "/" not in mime
        or any(ord(ch) < 33 or ord(ch) > 126 for ch in mime.replace(" ", ""))
    ):
        raise InvalidInputError(f"invalid MIME type {mime!r}")
    return mime


def file_content(path: str | os.PathLike[str]) -> Path:
    """The content of ``upload_file``: a path, where a ``str`` *is* a path."""
    if not isinstance(path, str | os.PathLike):
        raise InvalidInputError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    return Path(path)


def utf8(text: str) -> bytes:
    """Text content as the bytes stored; ``InvalidInputError`` if it has no UTF-8."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: no UTF-8 for it
        raise InvalidInputError(
            f"text content cannot be stored as UTF-8: {exc.reason} at character {exc.start}"
        ) from exc


def content_chunks(content: Content) -> tuple[Iterable[bytes], Callable[[], None]]:
    """Chunks of ``content`` and a function that releases what was opened for it."""
    if isinstance(content, str):
        return iter_source(utf8(content)), lambda: None
    if isinstance(content, bytes | bytearray | memoryview):
        return iter_source(content), lambda: None
    if isinstance(content, os.PathLike):
        try:
            handle = open(content, "rb")  # noqa: SIM115 - closed by the returned function
        except OSError as exc:
            raise InvalidInputError(f"cannot read content file {content}: {exc.strerror}") from exc
        return source_chunks(handle, CHUNK_SIZE), handle.close
    if getattr(content, "closed", False) is True:
        raise InvalidInputError("content is a closed file; pass an open binary file")
    if isinstance(content, io.TextIOBase):
        raise InvalidInputError(
            "content is a text-mode file; open it in binary mode ('rb') or pass its text as str"
        )
    if hasattr(content, "read") or isinstance(content, Iterable):
        return source_chunks(content), lambda: None
    raise InvalidInputError(
        f"content must be bytes, str, a path, a binary file or an iterable of bytes, "
        f"not {type(content).__name__}"
    )
