"""Content insights through the public API: summaries at upload, search by them, backfill."""

from __future__ import annotations

import json
import sqlite3
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from necrocode.artifact_store import (
    ArtifactStore,
    ArtifactStoreConfig,
    InvalidInputError,
    Summary,
)
from necrocode.artifact_store.content import SUMMARY_VERSION, summariser
from necrocode.artifact_store.content.summariser import Summariser
from necrocode.artifact_store.index.insights import flush_pending

from .content_inputs import git, make_repo, run_tiny_suite

TRACEBACK_LOG = (
    b"\x1b[32mINFO\x1b[0m starting\n"
    b"Traceback (most recent call last):\n"
    b'  File "app.py", line 3, in <module>\n'
    b"ValueError: boom\n"
    b"\x1b[33mWARNING\x1b[0m retrying\n"
)
CLEAN_LOG = b"INFO all good\nINFO done\n"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    repo = make_repo(tmp_path_factory.mktemp("repo"))
    reports = run_tiny_suite(tmp_path_factory.mktemp("suite"))
    passing = {
        "success": True,
        "test_results": [{"command": "pytest", "success": True, "exit_code": 0}],
        "total_duration_seconds": 1.0,
    }
    return {
        "diff": git(repo, "diff", "--cached", "-M", "--binary").encode(),
        "junit": reports["junit"],
        "passing": json.dumps(passing).encode(),
    }


def fill(store: ArtifactStore, inputs: dict[str, bytes]) -> dict[str, str]:
    """One artifact of every interesting kind, uploaded in this order."""
    uris = {
        "diff": store.upload("auth-1", "chat", "diff", inputs["diff"]),
        "other-diff": store.upload(
            "ui-1", "chat", "diff", b"--- a/ui/page.tsx\n+++ b/ui/page.tsx\n@@ -1 +1 @@\n-a\n+b\n"
        ),
        "failing": store.upload("auth-1", "chat", "test", inputs["junit"]),
        "passing": store.upload("ui-1", "chat", "test", inputs["passing"]),
        "traceback": store.upload("auth-1", "chat", "log", TRACEBACK_LOG),
        "clean": store.upload("ui-1", "chat", "log", CLEAN_LOG),
        "garbage": store.upload("bad-1", "chat", "test", b"this is not a report"),
    }
    return uris


def uris_of(found: list[Any]) -> list[str]:
    return [meta.uri for meta in found]


def test_summaries_are_made_at_upload_and_kept_in_the_record(
    store: ArtifactStore, inputs: dict[str, bytes]
) -> None:
    uris = fill(store, inputs)
    diff = store.get_metadata(uris["diff"]).summary
    assert diff is not None and diff.diff is not None
    assert diff.parser_version == SUMMARY_VERSION
    assert diff.diff.files_changed == 8 and diff.diff.binary_files == 1
    statuses = {f.path: f.status for f in diff.diff.files}
    assert statuses["auth/new_name.py"] == "renamed" and statuses["gone.txt"] == "deleted"
    assert "old_name.py" in diff.paths()

    test = store.get_metadata(uris["failing"]).summary
    assert test is not None and test.test is not None and test.failed is True
    assert (test.test.format, test.test.failed, test.test.errors) == ("junit", 2, 1)
    assert "test_tiny.test_login_fails" in test.failing_tests()

    log = store.get_metadata(uris["traceback"]).summary
    assert log is not None and log.log is not None and log.has_errors
    assert (log.log.tracebacks, log.log.first_error_line, log.log.warning_lines) == (1, 2, 1)

    garbage = store.get_metadata(uris["garbage"])
    assert garbage.summary is None
    assert garbage.summary_reason is not None and "not a test report" in garbage.summary_reason

    # The JSON record in the backend is the truth and carries the summary.
    record_path = next((store.config.base_path / "chat" / "auth-1").glob("*test*.json"))
    record = json.loads(record_path.read_text())
    assert record["summary"]["test"]["failed"] == 2
    assert Summary.from_dict(record["summary"]) == test


def test_search_by_content(store: ArtifactStore, inputs: dict[str, bytes]) -> None:
    uris = fill(store, inputs)
    assert uris_of(store.search(failed=True)) == [uris["failing"]]
    assert uris_of(store.search(failed=False)) == [uris["passing"]]
    assert uris_of(store.search(has_errors=True)) == [uris["traceback"], uris["failing"]]
    assert uris_of(store.search(has_errors=False, artifact_type="log")) == [uris["clean"]]
    assert uris_of(store.search(test="login_fails")) == [uris["failing"]]
    assert uris_of(store.search(test="LOGIN")) == [uris["failing"]]  # case-insensitive
    assert uris_of(store.search(test="ny")) == [uris["failing"]]  # short: no trigram index
    assert store.search(test="test_ok") == []  # passed tests are not failing ids
    assert uris_of(store.search(touches="auth/**")) == [uris["diff"]]
    assert uris_of(store.search(touches="auth")) == [uris["diff"]]  # a folder
    assert uris_of(store.search(touches="**/*.tsx")) == [uris["other-diff"]]
    assert uris_of(store.search(touches="old_name.py")) == [uris["diff"]]  # a rename's source
    assert uris_of(store.search(touches="*.md")) == [uris["diff"]]  # top level only
    assert store.search(touches="*/*.py/*") == []  # "*" stays inside one segment
    assert store.search(touches="b*/new_name.py") == []
    assert uris_of(store.search(touches="au*/new_name.py")) == [uris["diff"]]
    assert uris_of(store.search(touches="**/new_name.py")) == [uris["diff"]]
    # Combined with the other filters, newest first, with a limit.
    assert uris_of(store.search(task_id="ui-1", has_errors=False)) == [
        uris["clean"],
        uris["passing"],
        uris["other-diff"],
    ]
    assert uris_of(store.search(has_errors=False, limit=1)) == [uris["clean"]]
    assert uris_of(store.search(has_errors=False, order="oldest", limit=1)) == [uris["diff"]]
    assert store.search(failed=True, spec_name="other") == []


def test_only_latest_versions_are_found(tmp_path: Path, inputs: dict[str, bytes]) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path / "v", versioning_enabled=True)
    with ArtifactStore(config) as store:
        uri = store.upload("t", "s", "test", inputs["junit"])
        assert uris_of(store.search(failed=True)) == [uri]
        store.upload("t", "s", "test", inputs["passing"])  # the fix
        assert store.search(failed=True) == []
        assert uris_of(store.search(failed=False)) == [uri]


def test_side_rows_follow_record_changes_and_deletes(
    store: ArtifactStore, inputs: dict[str, bytes]
) -> None:
    uris = fill(store, inputs)
    store.add_tags(uris["failing"], ["triaged"])
    assert uris_of(store.search(failed=True, tags=["triaged"])) == [uris["failing"]]
    store.delete(uris["failing"])
    assert store.search(failed=True) == []
    assert store.search(test="login") == []
    index = sqlite3.connect(store.config.effective_state_dir / "index.sqlite3")
    try:
        count = index.execute("SELECT COUNT(*) FROM insight_tests WHERE task_id = 'auth-1'")
        assert count.fetchone() == (0,)
        # The trigram index forgot the deleted ids too.
        fts = index.execute(
            "SELECT COUNT(*) FROM insight_tests_fts WHERE insight_tests_fts MATCH '\"login\"'"
        )
        assert fts.fetchone() == (0,)
    finally:
        index.close()


def test_rebuild_index_restores_summaries_from_records(
    store: ArtifactStore, inputs: dict[str, bytes]
) -> None:
    uris = fill(store, inputs)
    index_file = store.config.effective_state_dir / "index.sqlite3"
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index_file}{suffix}").unlink(missing_ok=True)
    with ArtifactStore(store.config) as reopened:
        assert reopened.rebuild_index() == 7
        assert uris_of(reopened.search(failed=True)) == [uris["failing"]]
        assert uris_of(reopened.search(touches="auth/**")) == [uris["diff"]]
        assert uris_of(reopened.search(test="login")) == [uris["failing"]]


def test_text_indexes_built_by_a_rebuild_keep_following_uploads_and_deletes(
    store: ArtifactStore, inputs: dict[str, bytes]
) -> None:
    """A rebuild fills the trigram indexes in one pass (their insert triggers are off
    during the load): afterwards they match the rows, and new uploads and deletes are
    indexed row by row again."""
    uris = fill(store, inputs)
    assert store.rebuild_index() == 7
    assert store.rebuild_index() == 7  # over a full index too
    assert uris_of(store.search(test="login")) == [uris["failing"]]
    assert uris_of(store.search(touches="auth/**")) == [uris["diff"]]
    again = store.upload("auth-2", "chat", "test", inputs["junit"])
    assert sorted(uris_of(store.search(test="login"))) == sorted([uris["failing"], again])
    store.delete(uris["failing"])
    assert uris_of(store.search(test="login")) == [again]
    index = sqlite3.connect(store.config.effective_state_dir / "index.sqlite3")
    try:
        # New rows wait in the pending lists; once moved in, the trigram indexes
        # hold exactly the rows of their tables.
        assert index.execute("SELECT COUNT(*) FROM insight_tests_pending").fetchone() == (1,)
        with index:
            flush_pending(index)
        for table in ("insight_tests_fts", "insight_files_fts"):
            index.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('integrity-check', 1)")
    finally:
        index.close()


def test_an_index_without_side_tables_fills_them_on_open(
    store: ArtifactStore, inputs: dict[str, bytes]
) -> None:
    uris = fill(store, inputs)
    store.close()
    index = sqlite3.connect(store.config.effective_state_dir / "index.sqlite3")
    with index:
        for table in ("insights", "insight_files", "insight_tests"):
            index.execute(f"DELETE FROM {table}")
        index.execute("DELETE FROM index_state WHERE name = 'insights'")
    index.close()
    with ArtifactStore(store.config) as reopened:
        assert uris_of(reopened.search(failed=True)) == [uris["failing"]]
        assert uris_of(reopened.search(test="login")) == [uris["failing"]]


def test_an_index_of_the_path_table_schema_is_refilled_on_open(
    store: ArtifactStore, inputs: dict[str, bytes]
) -> None:
    """Insights schema 1 kept changed paths in ``insight_paths`` (one row a path),
    with a delete trigger that named it: opening the index replaces both."""
    uris = fill(store, inputs)
    store.close()
    index = sqlite3.connect(store.config.effective_state_dir / "index.sqlite3")
    with index:
        index.execute("DELETE FROM insight_files")
        index.execute("DROP TRIGGER insight_rows_on_delete")
        index.executescript(
            """
            CREATE TABLE insight_paths (
                path TEXT NOT NULL, spec_name TEXT NOT NULL, task_id TEXT NOT NULL,
                type TEXT NOT NULL, version INTEGER NOT NULL,
                PRIMARY KEY (path, spec_name, task_id, type, version)) WITHOUT ROWID;
            CREATE TRIGGER insights_on_delete AFTER DELETE ON artifacts BEGIN
                DELETE FROM insight_paths WHERE spec_name = old.spec_name
                    AND task_id = old.task_id AND type = old.type AND version = old.version;
            END;
            """
        )
        index.execute("UPDATE index_state SET value = '1' WHERE name = 'insights'")
    index.close()
    with ArtifactStore(store.config) as reopened:
        assert uris_of(reopened.search(touches="auth/**")) == [uris["diff"]]
        assert uris_of(reopened.search(touches="ui/page.tsx")) == [uris["other-diff"]]
        reopened.delete(uris["diff"])
        assert reopened.search(touches="auth/**") == []
    index = sqlite3.connect(store.config.effective_state_dir / "index.sqlite3")
    names = {row[0] for row in index.execute("SELECT name FROM sqlite_master")}
    index.close()
    assert "insight_paths" not in names and "insights_on_delete" not in names
    assert {"insight_files", "insight_files_fts", "insight_rows_on_delete"} <= names


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ({"failed": "yes"}, "failed must be True, False or None"),
        ({"has_errors": 1}, "has_errors must be"),
        ({"test": ""}, "test must be a non-empty string"),
        ({"touches": "  "}, "touches must be a non-empty string"),
        ({"touches": "a\x00b"}, "without NUL"),
        ({"touches": "//"}, "touches must name a path or a glob"),
        ({"test": "x" * 2000}, "at most 1024"),
        ({"order": "sideways"}, "order must be 'oldest' or 'newest'"),
    ],
)
def test_bad_filters_are_refused(
    store: ArtifactStore, filters: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        store.search(**filters)


def test_a_parser_bug_never_fails_an_upload(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(data: bytes, **_: Any) -> Any:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(summariser, "parse_test_report", explode)
    uri = store.upload("t", "s", "test", b'{"test_results": []}')
    meta = store.get_metadata(uri)
    assert meta.summary is None
    assert meta.summary_reason == "summariser failed: RuntimeError: parser bug"
    assert store.download(uri) == b'{"test_results": []}'


def test_binary_and_oversized_content() -> None:
    binary = Summariser("log")
    binary.feed(b"\x00\x01 error")
    assert binary.finish() == (None, "binary content")
    big = Summariser("log", max_bytes=10)
    big.feed(b"line one\nline two ERROR\n")
    summary, _ = big.finish()
    assert summary is not None and summary.capped and summary.log is not None
    # Only "line one\nl" was read: two lines, no error.
    assert (summary.log.lines, summary.log.error_lines) == (2, 0)
    report = Summariser("test")
    report.feed(b"<testsuite>")
    report.feed(b" " * (summariser.MAX_TEST_REPORT_BYTES + 1))
    assert report.finish()[1] == "test report larger than 32 MiB is not summarised"
    assert Summariser("diff").finish()[0] is not None  # an empty diff: no changes
    assert Summariser("diff").finish()[0].diff.files_changed == 0  # type: ignore[union-attr]
    not_a_diff = Summariser("diff")
    not_a_diff.feed(b"hello\n")
    assert not_a_diff.finish() == (None, "no file changes found: not a diff")
    picture = Summariser("picture")  # a type without a parser: stored, not summarised
    picture.feed(b"\x89PNG")
    assert picture.finish() == (None, "no summariser for artifact type 'picture'")


def test_summaries_off_then_backfilled(tmp_path: Path, inputs: dict[str, bytes]) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path / "s", content_summaries=False)
    with ArtifactStore(config) as store:
        uris = fill(store, inputs)
        assert store.get_metadata(uris["failing"]).summary is None
        assert store.search(failed=True) == []
        calls: list[tuple[int, int]] = []
        report = store.refresh_summaries(progress=lambda done, total: calls.append((done, total)))
        assert (report.checked, report.summarised, report.unparsed) == (7, 6, 1)
        assert calls[-1] == (7, 7)
        assert uris_of(store.search(failed=True)) == [uris["failing"]]
        again = store.refresh_summaries()  # everything current: nothing read
        assert (again.checked, again.skipped) == (0, 7)
        forced = store.refresh_summaries(force=True)
        assert forced.checked == 7


def test_backfill_resumes_after_an_interruption(
    tmp_path: Path, inputs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from necrocode.artifact_store.maintenance import summaries as backfill

    monkeypatch.setattr(backfill, "CHECKPOINT_EVERY", 2)
    config = ArtifactStoreConfig(base_path=tmp_path / "s", content_summaries=False)
    with ArtifactStore(config) as store:
        fill(store, inputs)

        def interrupt(done: int, total: int) -> None:
            if done == 5:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            store.refresh_summaries(progress=interrupt)
        checkpoint = store.config.effective_state_dir / "summaries-refresh.json"
        assert checkpoint.exists()
        report = store.refresh_summaries()
        assert report.resumed_after is not None
        assert report.skipped >= 4  # the versions before the checkpoint were not read again
        assert not checkpoint.exists()
        assert len(store.search(has_errors=True)) == 2


def test_backfill_reports_corrupt_artifacts(tmp_path: Path) -> None:
    config = ArtifactStoreConfig(
        base_path=tmp_path / "s", content_summaries=False, compression_enabled=False
    )
    with ArtifactStore(config) as store:
        uri = store.upload("t", "s", "log", CLEAN_LOG)
        obj = config.base_path / store.get_metadata(uri).object_key
        obj.write_bytes(b"X" + obj.read_bytes()[1:])
        report = store.refresh_summaries()
        assert report.problems and report.problems[0][0].startswith(uri)
        assert "IntegrityError" in report.problems[0][1]
        assert store.get_metadata(uri).summary is None  # never summarised from bad bytes


@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from(["diff", "log", "test"]),
    st.lists(st.binary(max_size=300), max_size=6),
)
def test_the_summariser_never_raises(kind: str, chunks: list[bytes]) -> None:
    summariser_ = Summariser(kind)
    for chunk in chunks:
        summariser_.feed(chunk)
    summary, reason = summariser_.finish()
    assert (summary is None) == (reason is not None)
    if summary is not None:
        assert Summary.from_dict(summary.to_dict()) == summary


def _single_line(kind: str, megabytes: int) -> tuple[Summary | None, int]:
    """Feed one line of ``megabytes`` MiB; return the summary and the peak memory."""
    chunk = b"+" * (1 << 20) if kind == "diff" else b"x" * (1 << 20)
    head = b"--- a/f\n+++ b/f\n@@ -0,0 +1 @@\n" if kind == "diff" else b"ERROR start\n"
    tracemalloc.start()
    try:
        summariser_ = Summariser(kind)
        summariser_.feed(head)
        for _ in range(megabytes):
            summariser_.feed(chunk)
        summary, _ = summariser_.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return summary, peak


@pytest.mark.parametrize("kind", ["diff", "log"])
def test_a_huge_single_line_keeps_memory_bounded(kind: str) -> None:
    summary, peak = _single_line(kind, 8)
    assert summary is not None
    assert peak < 4 << 20  # a few chunks, never the 8 MiB line
    if summary.diff is not None:
        assert (summary.diff.files_changed, summary.diff.added) == (1, 1)
    else:
        assert summary.log is not None and (summary.log.lines, summary.log.error_lines) == (2, 1)


@pytest.mark.stress
@pytest.mark.parametrize("kind", ["diff", "log"])
def test_a_hundred_megabyte_single_line(kind: str) -> None:
    summary, peak = _single_line(kind, 100)
    assert summary is not None and peak < 4 << 20


def test_records_round_trip_with_summaries(store: ArtifactStore, inputs: dict[str, bytes]) -> None:
    from necrocode.artifact_store import ArtifactMetadata, IntegrityError

    uris = fill(store, inputs)
    for uri in uris.values():
        meta = store.get_metadata(uri)
        text = meta.to_json()
        assert ArtifactMetadata.from_trusted_json(text) == meta
        assert ArtifactMetadata.from_json(text) == meta
    broken = json.loads(store.get_metadata(uris["diff"]).to_json())
    broken["summary"]["diff"]["files"][0]["added"] = -1
    with pytest.raises(IntegrityError, match="malformed summary"):
        ArtifactMetadata.from_json(json.dumps(broken))
    del broken["summary"]["kind"]
    with pytest.raises(IntegrityError, match="malformed summary"):
        ArtifactMetadata.from_trusted_json(json.dumps(broken))
