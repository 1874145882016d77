"""Reading artifacts: URI → record → stored object → decompress → verifying reader.

Readers take no lock. An artifact replaced or deleted between the lookup and
the open is looked up again from its records, so a reader gets the old bytes
or the new ones, never an error for a race it lost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..backends.filesystem import FilesystemBackend
from ..exceptions import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    StorageError,
)
from ..models import MAX_INT64, ArtifactMetadata
from ..naming import new_generation
from .integrity import SMALL_OBJECT, ArtifactReader, check_small, small_object
from .output_target import check_output_file
from .parts import StoreParts
from .upload import ProgressCallback

__all__ = [
    "download_to",
    "exists",
    "in_chunks",
    "open_artifact",
    "read_all",
    "save_to",
    "verify",
    "version_uri",
]

log = logging.getLogger("necrocode.artifact_store")

#: How often a reader re-resolves an artifact whose object vanished under it.
MAX_READ_RACES = 5


def open_artifact(parts: StoreParts, uri: str, verify_checksum: bool | None) -> ArtifactReader:
    """A reader of the original bytes of the artifact (or version) ``uri`` names."""
    key, version = parts.parse_uri(uri)
    verify = parts.config.verify_checksum if verify_checksum is None else verify_checksum
    meta = parts.metadata.get(key, version)
    for _ in range(MAX_READ_RACES):
        if meta is None:
            raise ArtifactNotFoundError(f"no artifact at {uri}", uri=uri)
        try:
            raw = parts.backend.open_read(meta.object_key)
        except InvalidNameError:
            raise IntegrityError(
                f"{uri}: its record names an unusable object key {meta.object_key!r}", uri=uri
            ) from None
        except ArtifactNotFoundError:
            # Replaced or deleted since the lookup: look again in the records.
            fresh = parts.metadata.refresh(key, version)
            if fresh is not None and fresh.object_key == meta.object_key:
                raise IntegrityError(
                    f"{uri}: stored object {meta.object_key} is missing", uri=uri
                ) from None
            meta = fresh
            continue
        return ArtifactReader(meta, raw, verify=verify)
    raise StorageError(f"{uri} kept changing while opening it", uri=uri)


def download_to(
    parts: StoreParts,
    uri: str,
    path: str | os.PathLike[str],
    verify_checksum: bool | None,
    progress: ProgressCallback | None,
) -> ArtifactMetadata:
    """Stream an artifact into ``path``; the file appears only once fully verified."""
    check_output_file(Path(path))
    with open_artifact(parts, uri, verify_checksum) as reader:
        return save_to(reader, path, progress)


def save_to(
    reader: ArtifactReader, path: str | os.PathLike[str], progress: ProgressCallback | None
) -> ArtifactMetadata:
    """Write what ``reader`` gives into ``path`` through a temporary file beside it,
    renamed over ``path`` only once the reader has verified the last byte."""
    target = Path(path)
    check_output_file(target)
    tmp = target.with_name(f".{target.name}.part-{new_generation()}")
    done = 0
    try:
        with open(tmp, "wb") as out:
            for chunk in reader:
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, reader.metadata.size)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return reader.metadata


def verify(parts: StoreParts, uri: str) -> bool:
    """Whether the artifact's bytes still match their recorded size and SHA-256."""
    try:
        with open_artifact(parts, uri, verify_checksum=True) as reader:
            reader.drain()
    except IntegrityError as exc:
        log.warning("integrity check failed: %s", exc)
        return False
    return True


def version_uri(parts: StoreParts, uri: str, version: int) -> str:
    """The URI of ``version`` of the artifact ``uri`` names."""
    if type(version) is not int or not 1 <= version <= MAX_INT64:
        raise InvalidInputError(
            f"version must be an integer from 1 to {MAX_INT64}, got {version!r}"
        )
    key, _ = parts.parse_uri(uri)
    return key.uri(parts.root_uri, version)


def read_all(parts: StoreParts, uri: str, verify_checksum: bool | None) -> bytes:
    """The artifact's original bytes, verified.

    A small object on a local disk is read whole with descriptor calls and checked
    in one call; anything else, and any trouble on that path (a race with a
    replacement, an unusable key, an error), takes the reader's path, which deals
    with it.
    """
    local = getattr(parts.backend, "inner", parts.backend)
    if isinstance(local, FilesystemBackend):
        key, version = parts.parse_uri(uri)
        meta = parts.metadata.get(key, version)
        if meta is not None and small_object(meta):
            try:
                whole = local.read_small(meta.object_key, SMALL_OBJECT)
            except ArtifactStoreError:
                whole = None
            if whole is not None:
                verify = (
                    parts.config.verify_checksum if verify_checksum is None else verify_checksum
                )
                return check_small(meta, whole, verify=verify)
    with open_artifact(parts, uri, verify_checksum) as reader:
        return reader.readall()


def in_chunks(
    opener: Callable[[str, bool | None], ArtifactReader],
    uri: str,
    chunk_size: int,
    verify_checksum: bool | None,
) -> Iterator[bytes]:
    """The bytes of ``uri`` in chunks of at most ``chunk_size`` (opened on first use)."""
    if type(chunk_size) is not int or chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    with opener(uri, verify_checksum) as reader:
        while chunk := reader.read(chunk_size):
            yield chunk


def exists(parts: StoreParts, uri: str) -> bool:
    """Whether ``uri`` names a stored artifact (or version) of this store."""
    if isinstance(uri, str) and not uri.startswith(parts.root_uri.rstrip("/") + "/"):
        return False
    return parts.metadata.get(*parts.parse_uri(uri)) is not None
