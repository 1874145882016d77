"""Concurrent small uploads of one process, stored as one batch (flat combining).

Public API::

    combiner = UploadCombiner(uploader)
    combiner.upload(key, content, options) -> ArtifactMetadata   # as Uploader.upload
    COMBINED_BYTES                         # in-memory content up to this is combined

When the threads of one process (the HTTP service's request threads, a
runner's workers) upload small artifacts at once, each upload alone spends more
CPU handing the interpreter's lock to the others than on its own work: sixteen
threads made about 320 futex calls per upload, one thread 43. So an ``upload``
of content already in memory and no bigger than :data:`COMBINED_BYTES` joins a
:class:`~..group_commit.CommitQueue`: one thread (the leader) takes every upload
queued so far and stores them with :func:`~.upload_many.upload_combined` — each
staged on its own, their records made durable in one round of fsyncs and
indexed in one transaction — while the others sleep until their own result is
in. Every upload is still all-or-nothing on its own, and returns only once its
object, record and index row are durable.

The leader never waits for an artifact's lock: an upload whose artifact another
writer holds (a long streaming upload of the same artifact, another process)
is handed back, and its own thread uploads it the ordinary way, waiting only
for that lock. Content that streams (a file, an iterator), uploads with a
progress callback, and stores whose records cannot share commits (cloud
backends, a shared index: see :func:`~.upload_many.can_share_commits`) take the
ordinary path too.
"""

from __future__ import annotations

from typing import Final

from ..group_commit import CommitQueue
from ..models import ArtifactMetadata
from ..naming import ArtifactKey
from .operation import Operation
from .summarising import SUMMARY_THREAD_BYTES
from .upload import Content, Uploader, UploadOptions
from .upload_many import can_share_commits, upload_combined

__all__ = ["COMBINED_BYTES", "UploadCombiner"]

#: In-memory content up to this many bytes (characters, for text) is combined. The
#: same bound as inline summaries: a combined upload never waits on a summary worker.
COMBINED_BYTES: Final = SUMMARY_THREAD_BYTES

_Request = tuple[ArtifactKey, Content, UploadOptions]


class UploadCombiner:
    """``upload`` calls of one store, combined where they can be (module docstring)."""

    def __init__(self, uploader: Uploader) -> None:
        self.uploader = uploader
        self._shares = can_share_commits(uploader)
        self._queue: CommitQueue[_Request, ArtifactMetadata | None] = CommitQueue(self._commit)

    @property
    def batches(self) -> tuple[int, int]:
        """``(batches, uploads in them)`` so far, for tests and the benchmarks."""
        return self._queue.batches, self._queue.items

    @property
    def waiting(self) -> int:
        """Uploads queued behind the batch being stored."""
        return self._queue.waiting

    def upload(
        self, key: ArtifactKey, content: Content, options: UploadOptions
    ) -> ArtifactMetadata:
        """Store ``content`` as the next version of ``key`` (see :meth:`Uploader.upload`)."""
        if not self._combines(content, options):
            return self.uploader.upload(key, content, options)
        with Operation("upload", key.uri(self.uploader.parts.root_uri)):
            meta = self._queue.submit((key, content, options))
        if meta is None:  # another writer holds the artifact: wait for it alone
            return self.uploader.upload(key, content, options)
        return meta

    def _combines(self, content: Content, options: UploadOptions) -> bool:
        if not self._shares or options.progress is not None:
            return False
        if isinstance(content, bytes | bytearray | str):
            return len(content) <= COMBINED_BYTES
        return isinstance(content, memoryview) and content.nbytes <= COMBINED_BYTES

    def _commit(self, requests: list[_Request]) -> list[ArtifactMetadata | Exception | None]:
        if len(requests) > 1:
            return upload_combined(self.uploader, requests)
        try:  # alone: the ordinary pipeline (cheaper for one), without waiting for a lock
            return [self.uploader.try_upload(*requests[0])]
        except Exception as exc:  # the upload's own error, raised in its thread
            return [exc]
