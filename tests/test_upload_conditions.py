"""Conditional uploads: ``if_changed`` (idempotent retries) and ``if_absent`` (create only)."""

from __future__ import annotations

import pytest

from necrocode.artifact_store import ArtifactExistsError, ArtifactStore


def _objects(store: ArtifactStore) -> list[str]:
    return sorted(info.key for info in store.backend.list(""))


def test_unchanged_bytes_are_a_no_op(versioned_store: ArtifactStore) -> None:
    first = versioned_store.upload_version("1.1", "spec", "diff", b"same bytes")
    before = _objects(versioned_store)
    again = versioned_store.upload_version("1.1", "spec", "diff", b"same bytes", if_changed=True)
    assert again == first
    assert _objects(versioned_store) == before  # nothing stored, no orphan left
    assert [m.version for m in versioned_store.get_all_versions(first.uri)] == [1]


def test_changed_bytes_add_a_version(versioned_store: ArtifactStore) -> None:
    versioned_store.upload("1.1", "spec", "log", b"one")
    meta = versioned_store.upload_version("1.1", "spec", "log", b"two", if_changed=True)
    assert meta.version == 2
    assert versioned_store.download(meta.version_uri) == b"two"


def test_without_if_changed_same_bytes_make_a_new_version(versioned_store: ArtifactStore) -> None:
    versioned_store.upload("1.1", "spec", "log", b"one")
    assert versioned_store.upload_version("1.1", "spec", "log", b"one").version == 2


def test_unversioned_unchanged_upload_keeps_the_record(store: ArtifactStore) -> None:
    first = store.upload_version("1.1", "spec", "test", b"{}", metadata={"run": 1})
    again = store.upload_version("1.1", "spec", "test", b"{}", metadata={"run": 2}, if_changed=True)
    assert again == first
    assert store.get_metadata(first.uri).metadata == {"run": 1}


def test_if_absent_refuses_an_existing_artifact(store: ArtifactStore) -> None:
    uri = store.upload("1.1", "spec", "diff", b"first")
    before = _objects(store)
    with pytest.raises(ArtifactExistsError) as caught:
        store.upload("1.1", "spec", "diff", b"second", if_absent=True)
    assert isinstance(caught.value, FileExistsError)
    assert caught.value.uri == uri
    assert _objects(store) == before
    assert store.download(uri) == b"first"
    assert store.upload("1.2", "spec", "diff", b"new", if_absent=True).endswith("1.2/diff.txt")
