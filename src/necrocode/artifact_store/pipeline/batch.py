"""What :meth:`ArtifactStore.upload_many` takes and gives back: one item per artifact.

An agent ends a task with a diff, a log and a test result. Storing them with one
call lets the store make them durable together (one round of fsyncs, one
index transaction) instead of three times over, while each artifact stays
all-or-nothing on its own: an item that fails (a bad name, the quota, a lock
that stays busy) gets its typed error in its :class:`UploadResult` and the
others are stored all the same. Nothing is raised for a failing item; check
:attr:`UploadResult.ok`, or call :meth:`UploadResult.unwrap`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..artifact_store import Content
    from ..models import ArtifactMetadata, ArtifactType

__all__ = ["UploadItem", "UploadResult"]


@dataclass(frozen=True)
class UploadItem:
    """One artifact of an ``upload_many`` call: the arguments of one ``upload``.

    Positional order is ``upload``'s (``task_id, spec_name, artifact_type,
    content``); ``ref="spec/task/type"`` names the artifact instead. ``tags``
    may be any iterable of strings; it is kept as a tuple.
    """

    task_id: str | None = None
    spec_name: str | None = None
    artifact_type: ArtifactType | str | None = None
    content: Content | None = None
    metadata: dict[str, Any] | None = None
    mime_type: str | None = None
    tags: tuple[str, ...] | None = None
    retention_days: int | None = None
    #: Store nothing if the bytes equal the latest version's (a retried batch is a no-op).
    if_changed: bool = False
    #: Refuse with ``ArtifactExistsError`` (in the result) if the artifact exists.
    if_absent: bool = False
    ref: str | None = None

    def __post_init__(self) -> None:
        tags: object = self.tags
        if isinstance(tags, str):
            tags = (tags,)  # one tag, as upload(tags="x") takes it
        elif isinstance(tags, Iterable) and not isinstance(tags, tuple):
            tags = tuple(tags)  # a list or set: frozen, so kept as a tuple
        # Anything else stays as given: upload_many reports it as the item's error.
        object.__setattr__(self, "tags", tags)


@dataclass(frozen=True)
class UploadResult:
    """What became of one :class:`UploadItem`, at the same position as the item.

    Exactly one of ``metadata`` (the version now stored, or with ``if_changed``
    and the same bytes, the existing latest one) and ``error`` is set.
    """

    index: int
    item: UploadItem
    metadata: ArtifactMetadata | None = None
    #: The typed error (an ``ArtifactStoreError``), or the exception the item's own
    #: content raised while it was read (as ``upload`` would have raised it).
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """Whether the item is stored."""
        return self.error is None

    @property
    def uri(self) -> str | None:
        """The artifact's URI (as ``upload`` returns it), or ``None`` if it failed."""
        return None if self.metadata is None else self.metadata.uri

    def unwrap(self) -> ArtifactMetadata:
        """The stored version's metadata; raises the item's error if it failed."""
        if self.error is not None:
            raise self.error
        assert self.metadata is not None
        return self.metadata
