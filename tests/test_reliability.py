"""Regression tests of the reliability fault list (issue 12): each failed before its fix.

Every test goes through the public API or the command line and checks the
common expectation: nothing lost, a typed error from the store's hierarchy,
and a store that keeps working afterwards.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from necrocode.artifact_store import ArtifactNotFoundError, ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.naming import ArtifactKey

from .conftest import subprocess_env


def _record_path(store: ArtifactStore, uri: str, version: int = 1) -> Path:
    key, _ = ArtifactKey.from_uri(uri, store.root_uri)
    return Path(store.config.base_path) / key.record_key(version)


def test_repair_keeps_the_object_of_an_unreadable_record(tmp_path: Path) -> None:
    """#1: a truncated record does not make its object an orphan for repair to delete."""
    config = ArtifactStoreConfig(base_path=tmp_path / "store")
    with ArtifactStore(config) as store:
        uri = store.upload("1.1", "spec", "diff", b"precious bytes")
        meta = store.get_metadata(uri)
        record = _record_path(store, uri)
        text = record.read_bytes()
        record.write_bytes(text[: len(text) // 2])
        report = store.repair(older_than=timedelta(0))
        assert report.removed_orphans == []
        assert report.unreadable_records == [str(record.relative_to(config.base_path))]
        assert (Path(config.base_path) / meta.object_key).read_bytes()
        # Restoring the record brings the artifact back intact.
        record.write_bytes(text)
        store.rebuild_index()
        assert store.download(uri) == b"precious bytes"


# -- #12: every crash point of delete/replace/cleanup is the old or the new state -----------

_CRASH_OPERATIONS = ["delete", "delete_version", "prune", "cleanup", "replace"]


def _prepare_crash_store(base: Path, versioning: bool) -> tuple[str, dict[str, bytes]]:
    config = ArtifactStoreConfig(base_path=base, versioning_enabled=versioning)
    contents: dict[str, bytes] = {}
    with ArtifactStore(config) as store:
        for number in range(3):
            uri = store.upload("t1", "spec", "diff", f"version {number}".encode())
            contents[uri] = f"version {number}".encode()
        other = store.upload("t1", "spec", "log", b"the log")
        contents[other] = b"the log"
    return uri, contents


def _search_and_download_agree(base: Path, versioning: bool) -> None:
    """What search lists downloads intact; what it does not list is not found."""
    config = ArtifactStoreConfig(base_path=base, versioning_enabled=versioning)
    with ArtifactStore(config) as store:
        listed = {meta.uri: meta for meta in store.search(spec_name="spec")}
        for uri, meta in listed.items():
            data = store.download(uri)
            assert len(data) == meta.original_size, uri
            for version_meta in store.get_all_versions(uri):
                store.download(version_meta.version_uri)
        for kind in ("diff", "log"):
            uri = ArtifactKey.of("spec", "t1", kind).uri(store.root_uri)
            if uri not in listed:
                with pytest.raises(ArtifactNotFoundError):
                    store.download(uri)
                with pytest.raises(ArtifactNotFoundError):
                    store.get_metadata(uri)
        report = store.verify_all()
        assert report.healthy, report.to_dict()


def _kill_at_every_step(tmp_path: Path, operation: str, versioning: bool) -> int:
    kill_at = 1
    while True:
        base = tmp_path / f"{operation}-{kill_at}"
        uri, _ = _prepare_crash_store(base, versioning)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.crash_points",
                str(base),
                "1" if versioning else "0",
                operation,
                uri,
                str(kill_at),
            ],
            env=subprocess_env(),
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode in (0, -signal.SIGKILL), result.stderr
        _search_and_download_agree(base, versioning)
        if result.returncode == 0:
            return kill_at
        kill_at += 1


@pytest.mark.parametrize("versioning", [False, True], ids=["plain", "versioned"])
@pytest.mark.parametrize("operation", _CRASH_OPERATIONS)
def test_a_kill_at_any_step_leaves_search_and_download_in_agreement(
    tmp_path: Path, operation: str, versioning: bool
) -> None:
    """#12: no ghost: a SIGKILL at any step leaves nothing listed that cannot be downloaded."""
    steps = _kill_at_every_step(tmp_path, operation, versioning)
    assert steps > 1 or (operation == "prune" and not versioning)  # nothing to prune


def test_get_metadata_and_download_of_an_indexed_but_missing_artifact_repair_the_row(
    tmp_path: Path,
) -> None:
    """#12: a row whose record and object are gone is dropped by the first reader."""
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        uri = store.upload("1.1", "spec", "diff", b"soon gone")
        meta = store.get_metadata(uri)
        _record_path(store, uri).unlink()
        with pytest.raises(ArtifactNotFoundError):
            store.get_metadata(uri)
        assert store.search(spec_name="spec") == []
        uri2 = store.upload("1.2", "spec", "diff", b"also gone")
        meta2 = store.get_metadata(uri2)
        _record_path(store, uri2).unlink()
        (Path(store.config.base_path) / meta2.object_key).unlink()
        with pytest.raises(ArtifactNotFoundError):
            store.download(uri2)
        assert store.search(spec_name="spec") == []
        assert meta.uri == uri
