"""Concurrent small uploads of one process, stored as one batch (flat combining).

Public API::

    combiner = UploadCombiner(uploader)
    combiner.upload(key, content, options) -> ArtifactMetadata   # as Uploader.upload
    COMBINED_BYTES                         # in-memory content under this is combined

When the threads of one process (the HTTP service's request threads, a
runner's workers) upload small artifacts at once, each upload alone spends more
CPU handing the interpreter's lock to the others than on its own work: sixteen
threads made about 320 futex calls per upload, one thread 43. So an ``upload``
of content already in memory and smaller than :data:`COMBINED_BYTES` joins a
:class:`~..group_commit.PipelinedQueue`. One thread (the leader) takes every
upload queued so far and stages them one after the other
(:func:`~.upload_many.stage_combined`: lock, version, compress, write the
object), then lets the next leader stage the uploads queued meanwhile while it
commits its own batch (:func:`~.upload_many.finish_combined`: the records made
durable in one round of fsyncs, indexed in one transaction). The other threads
sleep until their own result is in. Every upload is still all-or-nothing on its
own, and returns only once its object, record and index row are durable.

The leader never waits for an artifact's lock: an upload whose artifact another
writer holds (a long streaming upload of the same artifact, another process,
or an earlier upload of the same batch) is handed back, and its own thread
uploads it the ordinary way, waiting only for that lock. Content that streams
(a file, an iterator), uploads with a progress callback, and stores whose
records cannot share commits (cloud backends, a shared index: see
:func:`~.upload_many.can_share_commits`) take the ordinary path too, and so
does an upload while no other combinable one is in the store's calls: alone,
it pays nothing for batches.
"""

from __future__ import annotations

import threading
from typing import Final

from ..group_commit import PipelinedQueue
from ..models import ArtifactMetadata
from ..naming import ArtifactKey
from .operation import Operation
from .summarising import SUMMARY_THREAD_BYTES
from .upload import Content, Uploader, UploadOptions
from .upload_many import CombinedBatch, can_share_commits, finish_combined, stage_combined

__all__ = ["COMBINED_BYTES", "UploadCombiner"]

#: In-memory content under this many bytes is combined: the bound of inline
#: summaries, so a combined upload never waits on a summary worker.
COMBINED_BYTES: Final = SUMMARY_THREAD_BYTES

_Request = tuple[ArtifactKey, Content, UploadOptions]


class UploadCombiner:
    """``upload`` calls of one store, combined where they can be (module docstring)."""

    def __init__(self, uploader: Uploader) -> None:
        self.uploader = uploader
        self._shares = can_share_commits(uploader)
        #: Combinable uploads in this store's calls right now (under ``_lock``).
        self._active = 0
        self._lock = threading.Lock()
        self._queue: PipelinedQueue[_Request, CombinedBatch, ArtifactMetadata | None] = (
            PipelinedQueue(self._stage, self._finish)
        )

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
        with self._lock:
            alone = self._active == 0
            self._active += 1
        try:
            if alone:  # nobody to share a batch with: the ordinary pipeline, at its cost
                return self.uploader.upload(key, content, options)
            with Operation("upload", key.uri(self.uploader.parts.root_uri)):
                meta = self._queue.submit((key, content, options))
        finally:
            with self._lock:
                self._active -= 1
        if meta is None:  # another writer holds the artifact: wait for it alone
            return self.uploader.upload(key, content, options)
        return meta

    def _combines(self, content: Content, options: UploadOptions) -> bool:
        if not self._shares or options.progress is not None:
            return False
        if isinstance(content, bytes | bytearray):
            return len(content) < COMBINED_BYTES
        if isinstance(content, str):  # stored as UTF-8: up to 4 bytes a character
            return len(content) * (1 if content.isascii() else 4) < COMBINED_BYTES
        return isinstance(content, memoryview) and content.nbytes < COMBINED_BYTES

    def _stage(self, requests: list[_Request]) -> CombinedBatch:
        # Even alone: an upload that ran whole here would keep the next batch from staging
        # until its fsyncs are done.
        return stage_combined(self.uploader, requests)

    def _finish(self, staged: CombinedBatch) -> list[ArtifactMetadata | Exception | None]:
        return finish_combined(self.uploader, staged)
