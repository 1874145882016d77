"""A small object read whole (one read, one inflate) answers as the chunked stream does."""

from __future__ import annotations

import gzip
import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from necrocode.artifact_store import ArtifactMetadata, IntegrityError
from necrocode.artifact_store.backends.base import ReadStream
from necrocode.artifact_store.models import ArtifactType
from necrocode.artifact_store.pipeline.integrity import SMALL_OBJECT, ArtifactReader


def _meta(original: bytes, stored: bytes, codec: str, size: int | None = None) -> ArtifactMetadata:
    return ArtifactMetadata(
        uri="file:///s/spec/task/log.txt",
        task_id="task",
        spec_name="spec",
        type=ArtifactType.LOG,
        size=len(original) if size is None else size,
        checksum="sha256:" + hashlib.sha256(original).hexdigest(),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        compressed=codec != "none",
        stored_size=len(stored),
        mime_type="text/plain",
        codec=codec,  # type: ignore[arg-type]
        object_key="spec/task/log.txt.v000001.0123456789abcdef.gz",
    )


def _stream(stored: bytes, known_size: bool = True) -> ReadStream:
    view = memoryview(stored)
    at = 0

    def read(count: int) -> bytes:
        nonlocal at
        piece = bytes(view[at : at + min(count, 1000)])  # short reads, as sockets give
        at += len(piece)
        return piece

    return ReadStream(read, size=len(stored) if known_size else None)


def _outcome(meta: ArtifactMetadata, stored: bytes, whole: bool) -> tuple[str, str]:
    reader = ArtifactReader(meta, _stream(stored, known_size=whole), verify=True)
    try:
        with reader:
            data = reader.readall() if whole else b"".join(iter(lambda: reader.read(777), b""))
    except IntegrityError as exc:
        return "error", str(exc)
    return "ok", hashlib.sha256(data).hexdigest()


CASES = {
    "one member": lambda b: (b, gzip.compress(b)),
    "two members": lambda b: (b + b, gzip.compress(b) + gzip.compress(b)),
    "truncated": lambda b: (b, gzip.compress(b)[:-5]),
    "empty object": lambda b: (b, b""),
    "garbage after": lambda b: (b, gzip.compress(b) + b"\x00junk"),
    "corrupt": lambda b: (b, gzip.compress(b)[:10] + b"\xff" * 20 + gzip.compress(b)[30:]),
}


@settings(max_examples=100, deadline=None)
@given(
    body=st.binary(min_size=0, max_size=5000),
    case=st.sampled_from(sorted(CASES)),
    size_delta=st.sampled_from([0, 0, -1, 1]),
    codec=st.sampled_from(["gzip", "none"]),
)
def test_whole_read_matches_the_stream(body: bytes, case: str, size_delta: int, codec: str) -> None:
    original, stored = CASES[case](body)
    if codec == "none":
        stored = original
    meta = _meta(original, stored, codec, size=max(0, len(original) + size_delta))
    fast, slow = _outcome(meta, stored, whole=True), _outcome(meta, stored, whole=False)
    assert fast[0] == slow[0], (fast, slow)
    if fast[0] == "ok":
        assert fast == slow
    else:  # the same kind of complaint
        kinds = ("truncated", "corrupt", "more bytes", "size mismatch", "checksum mismatch")
        assert [k for k in kinds if k in fast[1]] == [k for k in kinds if k in slow[1]]


def test_a_bomb_is_cut_at_the_recorded_size() -> None:
    original = b"\x00" * (8 * 1024 * 1024)
    stored = gzip.compress(original)
    assert len(stored) < SMALL_OBJECT
    meta = _meta(b"tiny", stored, "gzip", size=4)
    reader = ArtifactReader(meta, _stream(stored), verify=True)
    with pytest.raises(IntegrityError, match="more bytes than the recorded 4"), reader:
        reader.readall()
