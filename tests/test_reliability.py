"""Regression tests of the reliability fault list (issue 12): each failed before its fix.

Every test goes through the public API or the command line and checks the
common expectation: nothing lost, a typed error from the store's hierarchy,
and a store that keeps working afterwards.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from necrocode.artifact_store import (
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreConfig,
    ConfigError,
    IntegrityError,
    InvalidInputError,
    InvalidURIError,
    StorageFullError,
    StoragePermissionError,
)
from necrocode.artifact_store.cli import app
from necrocode.artifact_store.index.intents import DeleteIntent
from necrocode.artifact_store.models import MAX_RETENTION_DAYS, utc_now
from necrocode.artifact_store.naming import ArtifactKey

from .conftest import subprocess_env
from .fault_tools import fill_up, tiny_tmpfs


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


# -- #2: huge numbers ------------------------------------------------------------------------


def _store_files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".necrocode" not in p.parts
    }


def _cli(tmp_path: Path, *args: str, **settings: object) -> Result:
    config = tmp_path / "cli.yaml"
    values = {"base_path": str(tmp_path / "store"), **settings}
    config.write_text(yaml.safe_dump({"artifact_store": values}), encoding="utf-8")
    return CliRunner().invoke(app, ["--config", str(config), *args])


def _usage_error(result: Result, *names: str) -> None:
    """Exit 2, one line on stderr naming each of ``names``, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_huge_retention_days_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """#2: retention_days past the range is InvalidInputError; nothing stored or dangling."""
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        kept = store.upload("1.0", "spec", "diff", b"kept")
        before = _store_files(tmp_path / "store")
        for huge in (2**63, 2**64, 10**30, MAX_RETENTION_DAYS + 1):
            with pytest.raises(InvalidInputError, match="retention_days"):
                store.upload("1.1", "spec", "diff", b"x", retention_days=huge)
        assert _store_files(tmp_path / "store") == before
        uri = ArtifactKey.of("spec", "1.1", "diff").uri(store.root_uri)
        assert not store.exists(uri)
        assert store.delete(uri, missing_ok=True) == 0
        assert store.rebuild_index() == 1
        assert store.verify_all().healthy
        store.repair(older_than=timedelta(0))
        assert store.upload("1.1", "spec", "diff", b"x", retention_days=MAX_RETENTION_DAYS)
        assert store.download(kept) == b"kept"


def test_a_record_with_huge_numbers_on_disk_does_not_break_the_store(tmp_path: Path) -> None:
    """#2: readers tolerate any value already on disk: nothing raises raw, the store opens."""
    base = tmp_path / "store"
    with ArtifactStore(ArtifactStoreConfig(base_path=base)) as store:
        uri = store.upload("1.1", "spec", "diff", b"long kept")
        other = store.upload("1.2", "spec", "diff", b"too big")
        record = _record_path(store, uri)
        data = json.loads(record.read_text())
        data["retention_days"] = 2**63
        record.write_text(json.dumps(data))
        bad = _record_path(store, other)
        data = json.loads(bad.read_text())
        data["size"] = 2**70
        bad.write_text(json.dumps(data))
        assert store.rebuild_index() == 1
    with ArtifactStore(ArtifactStoreConfig(base_path=base)) as store:
        assert store.download(uri) == b"long kept"
        assert store.exists(uri)
        assert store.get_metadata(uri).retention_days == MAX_RETENTION_DAYS
        assert store.find_expired() == []
        report = store.verify_all()
        assert [p.uri for p in report.corrupted] == [other]
        store.repair(older_than=timedelta(0))
        assert store.delete(other) == 1
        assert store.delete(uri) == 1
        assert store.search() == []


def test_huge_version_in_a_uri_is_an_invalid_uri(tmp_path: Path) -> None:
    """#2: ``?version=`` beyond the range is InvalidURIError for every reader."""
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        uri = store.upload("1.1", "spec", "diff", b"x")
        huge = f"{uri}?version={10**25}"
        for call in (store.download, store.exists, store.get_metadata, store.delete):
            with pytest.raises(InvalidURIError, match="version"):
                call(huge)
        with pytest.raises(InvalidInputError, match="version"):
            store.download_version(uri, 2**64)
        with pytest.raises(InvalidInputError, match="limit"):
            store.search(limit=10**23)
        with pytest.raises(InvalidInputError, match="older_than"):
            store.repair(older_than=timedelta(days=999_999_999))
        assert store.download(uri) == b"x"


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["ls", "--limit", "100000000000000000000000"], ["--limit"]),
        (["ls", "--since", "99999999999d"], ["--since", "99999999999d"]),
        (["ls", "--since", "999999999999999999999s"], ["--since"]),
        (["repair", "--older-than", "99999999999999d"], ["--older-than"]),
        (["download", "spec/1.1/diff?version=99999999999999999999999"], ["version"]),
    ],
    ids=["limit", "since-days", "since-seconds", "older-than", "version"],
)
def test_huge_numbers_on_the_command_line_are_usage_errors(
    tmp_path: Path, args: list[str], names: list[str]
) -> None:
    """#2: exit 2 and one line naming the bad value."""
    assert _cli(tmp_path, "init").exit_code == 0  # a missing store would be exit 10 first
    _usage_error(_cli(tmp_path, *args), *names)
    assert _cli(tmp_path, "ls").exit_code == 0


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"storage_quota": {"max_size_gb": float("inf")}}, "storage_quota.max_size_gb"),
        ({"storage_quota": {"max_size_gb": 1e300}}, "storage_quota.max_size_gb"),
        ({"lock_timeout": float("nan")}, "lock_timeout"),
        ({"lock_retry_interval": 1e300}, "lock_retry_interval"),
        ({"retention_policy": {"diff": 2**63}}, "retention_policy.diff"),
        ({"retry_backoff_max": float("inf")}, "retry_backoff_max"),
    ],
    ids=["quota-inf", "quota-huge", "lock-nan", "retry-huge", "retention-huge", "backoff-inf"],
)
def test_out_of_range_settings_are_config_errors(
    tmp_path: Path, settings: dict[str, object], name: str
) -> None:
    """#2: range constraints on every numeric setting, checked when the config loads."""
    with pytest.raises(ConfigError, match=re.escape(name)):
        ArtifactStoreConfig.from_dict(settings)
    _usage_error(_cli(tmp_path, "ls", **settings), name)


# -- #3: a full disk does not lock users out ----------------------------------------------


def test_a_full_disk_leaves_reads_and_deletes_working(tmp_path: Path) -> None:
    """#3: after an index update failed for lack of space, every open still works and
    download, rm, cleanup, usage and repair free space instead of failing."""
    with tiny_tmpfs("4m") as disk:
        config = ArtifactStoreConfig(base_path=disk / "store")
        with ArtifactStore(config) as store:
            uris = [store.upload(f"1.{n}", "spec", "log", os.urandom(300_000)) for n in range(3)]
            fill_up(disk)
            with pytest.raises(StorageFullError):
                for n in range(50):  # until even a record or an index page finds no room
                    store.upload(f"2.{n}", "spec", "diff", b"x" * 2000)
            # A committed record whose index update failed marks the index stale.
            with contextlib.suppress(StorageFullError):
                store.add_tags(uris[0], ["while-full"])
        for _ in range(2):  # every later open, not only the first
            with ArtifactStore(config) as store:
                assert len(store.download(uris[0])) == 300_000
                assert store.get_storage_usage().artifact_count >= 3
                assert {m.uri for m in store.search(spec_name="spec")} >= set(uris)
        with ArtifactStore(config) as store:
            assert store.delete(uris[1]) == 1
            fill_up(disk)  # the space freed is taken again at once
            with pytest.raises(StorageFullError):  # writes fail, typed ...
                store.add_tags(uris[0], ["also-while-full"])
            # ... and the cleanup that frees space works.
            report = store.cleanup_expired(now=utc_now() + timedelta(days=8))  # logs: 7 days
            assert report.errors == [] and set(uris) - {uris[1]} <= set(report.uris)
            fill_up(disk)
            store.repair(older_than=timedelta(0))
            assert store.verify_all().healthy
            assert store.get_storage_usage().artifact_count >= 0  # from the index as it is
            assert not any(m.uri in uris for m in store.search(spec_name="spec"))
        for extra in disk.glob("filler*"):
            extra.unlink()
        with ArtifactStore(config) as store:
            uri = store.upload("3.1", "spec", "diff", b"room again")
            assert store.download(uri) == b"room again"
            records = {
                (m.spec_name, m.task_id, m.type.value, m.version)
                for m in store.metadata.iter_records()
            }
            assert store.metadata.index.keys() == records


# -- #5: damaged records are reported, not raised, and not served from the index -------------


@pytest.mark.parametrize("versioning", [False, True], ids=["plain", "versioned"])
def test_verify_all_reports_a_truncated_record_and_the_index_stops_serving_it(
    tmp_path: Path, versioning: bool
) -> None:
    """#5: verify_all finishes, reports every bad artifact, and drops the damaged row."""
    config = ArtifactStoreConfig(base_path=tmp_path / "store", versioning_enabled=versioning)
    with ArtifactStore(config) as store:
        bad = store.upload("1.1", "spec", "diff", b"damaged record")
        good = store.upload("1.2", "spec", "diff", b"fine")
        garbage = store.upload("1.3", "spec", "diff", b"garbage record")
        record = _record_path(store, bad)
        text = record.read_bytes()
        record.write_bytes(text[:20])
        _record_path(store, garbage).write_bytes(b"\xff\xfe not json at all")
        report = store.verify_all()
        assert sorted(p.uri for p in report.corrupted) == sorted([bad, garbage])
        assert report.ok == [good]
        for uri in (bad, garbage):
            with pytest.raises(IntegrityError):
                store.download(uri)
            with pytest.raises(IntegrityError):
                store.get_metadata(uri)
        assert [m.uri for m in store.search(spec_name="spec")] == [good]
        assert store.download(good) == b"fine"
        record.write_bytes(text)  # the record restored: the artifact is back
        store.rebuild_index()
        assert store.download(bad) == b"damaged record"


# -- #6: upload sources that are not bytes --------------------------------------------------


class _TextReader:
    def read(self, size: int = -1) -> object:
        return "text, not bytes"


class _IntReader:
    def read(self, size: int = -1) -> object:
        return 5


def _closed_binary_file(tmp_path: Path) -> object:
    path = tmp_path / "closed.bin"
    path.write_bytes(b"bytes")
    handle = path.open("rb")
    handle.close()
    return handle


@pytest.mark.parametrize(
    "make",
    [
        lambda p: [1, 2, 3],
        lambda p: iter([65, 66]),
        lambda p: [b"fine", 7],
        lambda p: ["a", "b"],
        lambda p: {"a": 1},
        lambda p: (p / "text.txt").open("r", encoding="utf-8"),
        lambda p: io.StringIO("text"),
        _closed_binary_file,
        lambda p: _closed(io.BytesIO(b"abc")),
        lambda p: _TextReader(),
        lambda p: _IntReader(),
        lambda p: None,
        lambda p: 12,
    ],
    ids=[
        "ints",
        "int-iterator",
        "bytes-then-int",
        "strs",
        "dict",
        "text-file",
        "stringio",
        "closed-file",
        "closed-bytesio",
        "read-gives-str",
        "read-gives-int",
        "none",
        "int",
    ],
)
def test_upload_sources_that_are_not_bytes_are_refused(tmp_path: Path, make: Any) -> None:
    """#6: InvalidInputError for each, nothing stored (never NUL bytes for ints)."""
    (tmp_path / "text.txt").write_text("some text", encoding="utf-8")
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        content = make(tmp_path)
        try:
            with pytest.raises(InvalidInputError, match="content"):
                store.upload("1.1", "spec", "log", content)
        finally:
            if hasattr(content, "close"):
                content.close()
        assert _store_files(tmp_path / "store") == set()
        assert store.search() == []
        uri = store.upload("1.1", "spec", "log", io.BytesIO(b"binary works"))
        assert store.download(uri) == b"binary works"


def _closed(stream: io.BytesIO) -> io.BytesIO:
    stream.close()
    return stream


# -- #4: download -o / export -o never replace what is not a regular file --------------------


def _special_targets(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not to be touched")
    link = tmp_path / "link"
    link.symlink_to(outside)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere" / "file")
    targets = {"fifo": fifo, "symlink": link, "dangling-symlink": dangling}
    # A node of its own (a copy of /dev/null's numbers), never a real one of the system:
    # a regression would replace it.
    device = tmp_path / "null-device"
    with contextlib.suppress(StoragePermissionError):
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        targets["char-device"] = device
    return targets


def _describe(path: Path) -> tuple[int, str | None]:
    info = os.lstat(path)
    return info.st_mode, os.readlink(path) if path.is_symlink() else None


@pytest.mark.parametrize("kind", ["fifo", "symlink", "dangling-symlink", "char-device"])
def test_download_and_export_refuse_targets_that_are_not_regular_files(
    tmp_path: Path, kind: str
) -> None:
    """#4: InvalidInputError (CLI: exit 2 naming the path); the special file survives."""
    targets = _special_targets(tmp_path)
    if kind not in targets:
        pytest.skip("creating a device node needs CAP_MKNOD")
    target = targets[kind]
    before = _describe(target)
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        uri = store.upload("1.1", "spec", "diff", b"content")
        with pytest.raises(InvalidInputError, match=re.escape(str(target))):
            store.download_to(uri, target)
        with pytest.raises(InvalidInputError, match=re.escape(str(target))):
            store.export_by_spec("spec", output_path=target)
    for args in (
        ["download", "spec/1.1/diff", "-o", str(target)],
        ["export", "-s", "spec", "-o", str(target)],
    ):
        _usage_error(_cli(tmp_path, *args), str(target))
    assert _describe(target) == before
    assert (tmp_path / "outside.txt").read_bytes() == b"not to be touched"
    assert not list(target.parent.glob(f".{target.name}.part-*"))


# -- #7: the index file removed under a running process -------------------------------------


def test_uploads_after_the_index_was_removed_under_a_process_reach_the_new_index(
    tmp_path: Path,
) -> None:
    """#7: a process notices its index file was deleted and moves to the new one."""
    config = ArtifactStoreConfig(base_path=tmp_path / "store")
    with ArtifactStore(config) as first:
        early = first.upload("1.1", "spec", "diff", b"before")
        index = config.effective_state_dir / "index.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{index}{suffix}").unlink(missing_ok=True)
        with ArtifactStore(config) as second:  # opens (and rebuilds) a new index file
            late = first.upload("1.2", "spec", "diff", b"after")
            first.add_tags(early, ["seen"])
            assert {m.uri for m in second.search(spec_name="spec")} == {early, late}
            assert second.search(tags=["seen"])[0].uri == early
        third_uri = first.upload("1.3", "spec", "diff", b"third")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{index}{suffix}").unlink(missing_ok=True)
        # Alone, the process rebuilds the index from the records.
        assert {m.uri for m in first.search(spec_name="spec")} >= {early, late, third_uri}
    with ArtifactStore(config) as again:
        assert len(again.search(spec_name="spec")) == 3


# -- #8: a read-only store can be read ------------------------------------------------------


@pytest.mark.parametrize("index_present", [True, False], ids=["with-index", "without-index"])
def test_a_read_only_store_can_be_searched_downloaded_and_verified(
    tmp_path: Path, index_present: bool
) -> None:
    """#8: on a read-only mount the index opens read-only (or in memory), reads work,
    and writes fail with the store's PermissionError."""
    with tiny_tmpfs("8m") as disk:
        config = ArtifactStoreConfig(base_path=disk / "store")
        with ArtifactStore(config) as store:
            uri = store.upload("1.1", "spec", "diff", b"read me")
            store.upload("1.2", "spec", "log", b"and me")
        if not index_present:
            for leftover in config.effective_state_dir.glob("index.sqlite3*"):
                leftover.unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        with ArtifactStore(config) as store:
            assert len(store.search(spec_name="spec")) == 2
            assert store.download(uri) == b"read me"
            assert store.get_metadata(uri).original_size == 7
            assert store.get_storage_usage().artifact_count == 2
            assert store.verify_all().healthy
            with pytest.raises(StoragePermissionError):
                store.upload("1.3", "spec", "diff", b"no room for writes")
        result = _cli(tmp_path, "ls", "--json", base_path=str(disk / "store"))
        assert result.exit_code == 0, result.stderr
        assert len(json.loads(result.stdout)) == 2


# -- #9: a symlinked folder that leaves the root ----------------------------------------------


def test_writes_through_a_symlink_out_of_the_root_are_refused_and_verify_reports_it(
    tmp_path: Path,
) -> None:
    """#9: PermissionError, nothing lands outside the root; verify lists the link."""
    base = tmp_path / "store"
    outside = tmp_path / "outside"
    outside.mkdir()
    with ArtifactStore(ArtifactStoreConfig(base_path=base)) as store:
        kept = store.upload("1.1", "spec", "diff", b"inside")
        (base / "escape").symlink_to(outside, target_is_directory=True)
        (base / "spec" / "2.1").symlink_to(outside, target_is_directory=True)
        inner = base / "inner-target"
        inner.mkdir()
        (base / "alias").symlink_to(inner, target_is_directory=True)
        for spec, task in (("escape", "1.1"), ("spec", "2.1")):
            with pytest.raises(StoragePermissionError, match="symbolic link"):
                store.upload(task, spec, "diff", b"would leave the root")
        assert list(outside.iterdir()) == []
        report = store.verify_all()
        assert sorted(report.escaping) == ["escape", "spec/2.1"]
        assert "escaping" in report.to_dict()
        result = _cli(tmp_path, "verify")
        assert "escape" in result.stdout + result.stderr
        assert store.download(kept) == b"inside"
        assert store.upload("1.2", "spec", "diff", b"still fine")


# -- #10: errors that confuse ------------------------------------------------------------------


def _cli_with_config_text(tmp_path: Path, text: bytes, *args: str) -> Result:
    config = tmp_path / "raw.yaml"
    config.write_bytes(text)
    return CliRunner().invoke(app, ["--config", str(config), *args])


def test_a_config_file_with_invalid_utf8_is_a_config_error(tmp_path: Path) -> None:
    """#10: ConfigError naming the file; CLI exit 2, one line."""
    raw = b"artifact_store:\n  base_path: /tmp/caf\xe9\n"
    (tmp_path / "bad.yaml").write_bytes(raw)
    with pytest.raises(ConfigError, match="UTF-8"):
        ArtifactStoreConfig.from_yaml(tmp_path / "bad.yaml")
    _usage_error(_cli_with_config_text(tmp_path, raw, "ls"), "raw.yaml", "UTF-8")


def test_duplicate_keys_in_a_config_file_are_a_config_error(tmp_path: Path) -> None:
    """#10: a key given twice is refused, naming the key (YAML would keep the last)."""
    text = f"artifact_store:\n  base_path: {tmp_path}/a\n  base_path: {tmp_path}/b\n".encode()
    _usage_error(_cli_with_config_text(tmp_path, text, "ls"), "raw.yaml", "base_path")
    nested = (
        f"artifact_store:\n  base_path: {tmp_path}/a\n"
        "  retention_policy:\n    diff: 3\n    diff: 4\n"
    ).encode()
    _usage_error(_cli_with_config_text(tmp_path, nested, "ls"), "diff")


@pytest.mark.parametrize("key", ["base_path", "state_dir"])
def test_empty_paths_in_the_config_are_config_errors(tmp_path: Path, key: str) -> None:
    """#10: ``base_path: ""`` does not silently mean the current folder."""
    with pytest.raises(ConfigError, match=key):
        ArtifactStoreConfig.from_dict({"base_path": str(tmp_path), key: ""})
    _usage_error(_cli(tmp_path, "ls", **{key: ""}), key)


@pytest.mark.parametrize("key", ["state_dir", "base_path"])
def test_a_path_setting_that_names_a_regular_file_is_a_config_error(
    tmp_path: Path, key: str
) -> None:
    """#10: state_dir or base_path naming a file: one line naming the setting, exit 2."""
    regular = tmp_path / "a-file"
    regular.write_text("not a folder")
    settings = {"base_path": tmp_path / "store", key: regular}
    with pytest.raises(ConfigError, match=key):
        ArtifactStore(ArtifactStoreConfig.model_validate(settings))
    _usage_error(_cli(tmp_path, "ls", **{key: str(regular)}), key, str(regular))
    assert regular.read_text() == "not a folder"


def test_download_into_a_missing_folder_names_the_folder_not_a_temp_file(tmp_path: Path) -> None:
    """#10: exit 2 naming the missing folder; no internal temporary name in the message."""
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        store.upload("1.1", "spec", "diff", b"x")
        target = tmp_path / "missing" / "dir" / "x"
        with pytest.raises(InvalidInputError, match=re.escape(str(target.parent))):
            store.download_to(ArtifactKey.of("spec", "1.1", "diff").uri(store.root_uri), target)
    result = _cli(tmp_path, "download", "spec/1.1/diff", "-o", str(target))
    _usage_error(result, str(target.parent))
    assert ".part-" not in result.stderr


# -- #11: repair leaves the temporary files of live uploads alone ---------------------------


def test_repair_with_no_grace_leaves_an_upload_in_progress_alone(tmp_path: Path) -> None:
    """#11: age is no proof: the writer's lock protects its temporary file."""
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        started, release = threading.Event(), threading.Event()
        outcome: list[object] = []

        def slow_source() -> Iterator[bytes]:
            yield b"first half, "
            started.set()
            assert release.wait(30)
            yield b"second half"

        def upload() -> None:
            try:
                outcome.append(store.upload("1.1", "spec", "log", slow_source()))
            except Exception as exc:
                outcome.append(exc)

        writer = threading.Thread(target=upload)
        writer.start()
        try:
            assert started.wait(30)
            assert list(store.backend.list_incomplete()), "the upload has a temporary file"
            report = store.repair(older_than=timedelta(0))
            assert report.removed_incomplete == []
            assert report.skipped_busy
        finally:
            release.set()
            writer.join(30)
        assert isinstance(outcome[0], str), outcome
        assert store.download(outcome[0]) == b"first half, second half"
        # Once the writer is gone, a leftover of the same kind is collected.
        leftover = tmp_path / "store" / "spec" / "1.1" / ".log.txt.v000009.abc.gz.tmp-dead"
        leftover.write_bytes(b"left by a killed writer")
        assert store.repair(older_than=timedelta(0)).removed_incomplete
        assert not leftover.exists()


def test_an_intent_that_comes_back_never_removes_a_newer_version(tmp_path: Path) -> None:
    """#12: an intent brought back (a power cut undid its removal) spares a version that
    reused a removed number: only records naming the intent's objects are removed."""
    config = ArtifactStoreConfig(base_path=tmp_path / "store")
    with ArtifactStore(config) as store:
        uri = store.upload("1.1", "spec", "diff", b"old life")
        old = store.get_metadata(uri)
        store.delete(uri)
        new_uri = store.upload("1.1", "spec", "diff", b"new life")
        assert store.get_metadata(new_uri).version == old.version
        key, _ = ArtifactKey.from_uri(uri, store.root_uri)
        store.metadata.intents.begin([DeleteIntent(key, (old.version,), (old.object_key,))])
    with ArtifactStore(config) as store:  # opening finishes the returned intent
        assert store.metadata.intents.pending(key) is None
        assert store.download(new_uri) == b"new life"
        assert [m.uri for m in store.search()] == [new_uri]


def test_get_metadata_reads_the_record_so_a_damaged_one_is_never_served_from_the_index(
    tmp_path: Path,
) -> None:
    """#5: get_metadata answers from the record: damage is an IntegrityError at once,
    the row is dropped, and a record changed behind the index's back is seen."""
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        uri = store.upload("1.1", "spec", "diff", b"content")
        changed = store.upload("1.2", "spec", "diff", b"content")
        record = _record_path(store, uri)
        record.write_bytes(record.read_bytes()[:30])
        with pytest.raises(IntegrityError):
            store.get_metadata(uri)
        assert [m.uri for m in store.search(spec_name="spec")] == [changed]
        other = _record_path(store, changed)
        data = json.loads(other.read_text())
        data["tags"] = ["set-elsewhere"]
        other.write_text(json.dumps(data))
        assert store.get_metadata(changed).tags == ("set-elsewhere",)
        assert store.search(tags=["set-elsewhere"])[0].uri == changed
