"""The trigram indexes take new rows in batches: rows wait in a pending list that
searches scan, and enter the index together (``index/insights.py``).

Every search must find the same artifacts whether their rows wait or are indexed;
deletes of either kind keep the index equal to its table; an index of the schema
before the lists gains them on open without a refill, also on a read-only mount.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.index import insights
from necrocode.artifact_store.index.insights import flush_pending

from .conftest import subprocess_env
from .fault_tools import tiny_tmpfs

pytestmark = pytest.mark.skipif(
    not insights.TRIGRAM_AVAILABLE, reason="this SQLite has no FTS5 trigram tokenizer"
)
TEXT_TABLES = ("insight_tests", "insight_files")


def junit(*failing: str) -> bytes:
    """A JUnit report whose failing tests are ``failing`` (class ``suite``), plus one pass."""
    cases = "".join(
        f'<testcase classname="suite" name="{name}"><failure message="no">x</failure></testcase>'
        for name in failing
    )
    return (
        '<?xml version="1.0"?><testsuite name="s" tests="9">'
        f'{cases}<testcase classname="suite" name="test_fine"/></testsuite>'
    ).encode()


def diff(*paths: str) -> bytes:
    return "".join(
        f"diff --git a/{p} b/{p}\nindex 1111111..2222222 100644\n--- a/{p}\n+++ b/{p}\n"
        "@@ -1 +1 @@\n-old\n+new\n"
        for p in paths
    ).encode()


def index_of(store: ArtifactStore) -> sqlite3.Connection:
    return sqlite3.connect(store.config.effective_state_dir / "index.sqlite3")


def counts(index: sqlite3.Connection, table: str, trigram: str) -> tuple[int, int, int]:
    """(rows of the table, rows waiting, indexed rows holding ``trigram``)."""
    rows = index.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    waiting = index.execute(f"SELECT COUNT(*) FROM {table}_pending").fetchone()[0]
    indexed = index.execute(
        f"SELECT COUNT(*) FROM {table}_fts WHERE {table}_fts MATCH ?", (f'"{trigram}"',)
    ).fetchone()[0]
    return rows, waiting, indexed


def assert_index_matches_tables(index: sqlite3.Connection) -> None:
    """Every row waits or is indexed, never both; once moved in, FTS5's own check
    finds the index equal to its table."""
    for table in TEXT_TABLES:
        waiting = {r[0] for r in index.execute(f"SELECT id FROM {table}_pending")}
        rows = {r[0] for r in index.execute(f"SELECT id FROM {table}")}
        assert waiting <= rows
    with index:
        flush_pending(index)
    for table in TEXT_TABLES:
        index.execute(f"INSERT INTO {table}_fts ({table}_fts, rank) VALUES ('integrity-check', 1)")
        assert index.execute(f"SELECT COUNT(*) FROM {table}_pending").fetchone() == (0,)


def test_rows_wait_then_enter_the_index_together_and_are_found_either_way(
    store: ArtifactStore,
) -> None:
    uris = []
    waiting_seen = set()
    index = index_of(store)
    try:
        for i in range(insights.MAX_PENDING_ROWS * 2 + 5):
            uris.append(store.upload(f"t{i}", "s", "test", junit(f"test_login_case_{i:03d}")))
            waiting_seen.add(
                index.execute("SELECT COUNT(*) FROM insight_tests_pending").fetchone()[0]
            )
            # Found at once, whether its row waits or was just moved in.
            assert [m.uri for m in store.search(test=f"login_case_{i:03d}")] == [uris[i]]
        assert max(waiting_seen) == insights.MAX_PENDING_ROWS - 1
        assert 0 in waiting_seen  # it was moved in, twice
        assert counts(index, "insight_tests", "log") == (len(uris), 5, len(uris) - 5)
        assert len(store.search(test="test_login_case_")) == len(uris)
        # Deleting an indexed row and a waiting one.
        store.delete(uris[0])
        store.delete(uris[-1])
        assert store.search(test="login_case_000") == []
        assert store.search(test=f"login_case_{len(uris) - 1:03d}") == []
        assert len(store.search(test="test_login_case_")) == len(uris) - 2
        assert_index_matches_tables(index)
    finally:
        index.close()


def test_many_characters_move_rows_in_sooner(store: ArtifactStore) -> None:
    """A big diff's paths count by their characters, so the scanned list stays small."""
    index = index_of(store)
    try:
        per_diff = [f"src/pkg/module_{n:04d}_with_a_long_name.py" for n in range(400)]
        store.upload("d0", "s", "diff", diff(*(f"{p}.0" for p in per_diff)))
        (chars,) = index.execute("SELECT length(paths) FROM insight_files").fetchone()
        needed = -(-insights.MAX_PENDING_CHARS // chars)
        assert 1 < needed < insights.MAX_PENDING_ROWS
        for i in range(1, needed):
            assert counts(index, "insight_files", "src")[1] == i
            store.upload(f"d{i}", "s", "diff", diff(*(f"{p}.{i}" for p in per_diff)))
        # The upload that passed the limit moved them all in.
        assert counts(index, "insight_files", "src") == (needed, 0, needed)
        store.upload("last", "s", "diff", diff("docs/readme.md"))
        assert [m.task_id for m in store.search(touches="docs/**")] == ["last"]
        assert len(store.search(touches="src/pkg/module_0007_with_a_long_name.py.*")) == needed
        assert len(store.search(touches="src/pkg/module_0007_with_a_long_name.py.1")) == 1
        assert_index_matches_tables(index)
    finally:
        index.close()


_NAMES = st.sampled_from(["alpha_login", "beta_login", "gamma_ui", "delta_api", "eps"])
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("test"), st.lists(_NAMES, min_size=1, max_size=3, unique=True)),
        st.tuples(st.just("diff"), st.lists(_NAMES, min_size=1, max_size=3, unique=True)),
        st.tuples(st.just("delete"), st.integers(min_value=0, max_value=40)),
        st.tuples(st.just("tag"), st.integers(min_value=0, max_value=40)),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=25, deadline=None)
@given(ops=_OPS)
def test_searches_match_a_model_through_uploads_deletes_and_batches(
    ops: list[tuple[str, object]],
) -> None:
    """Random uploads (new artifacts and new versions), deletes and tag changes with a
    pending list of three rows: every search equals a model's answer."""
    with (
        tempfile.TemporaryDirectory() as folder,
        mock.patch.object(insights, "MAX_PENDING_ROWS", 3),
        ArtifactStore(ArtifactStoreConfig(base_path=Path(folder))) as store,
    ):
        live: dict[str, tuple[str, list[str]]] = {}  # latest uri -> (kind, names)
        order: list[str] = []
        for number, (op, arg) in enumerate(ops):
            if op in ("test", "diff"):
                names = list(arg)  # type: ignore[call-overload]
                task = f"t{number % 4}"  # versions of the same artifacts too
                body = junit(*names) if op == "test" else diff(*(f"{n}/f.py" for n in names))
                uri = store.upload(task, "s", op, body)
                # A new version of the same artifact replaces the old one.
                live[uri] = (op, names)
                order.append(uri)
            elif order:
                uri = order[int(arg) % len(order)]  # type: ignore[call-overload]
                if uri not in live:
                    continue
                if op == "delete":
                    store.delete(uri)
                    del live[uri]
                else:
                    store.add_tags(uri, ["seen"])
        for needle in ("login", "alpha_login", "gamma", "api", "eps"):
            found = {m.uri for m in store.search(test=needle)}
            assert found == {
                u for u, (k, ns) in live.items() if k == "test" and any(needle in n for n in ns)
            }
            found = {m.uri for m in store.search(touches=f"{needle}*/**")}
            assert found == {
                u
                for u, (k, ns) in live.items()
                if k == "diff" and any(n.startswith(needle) for n in ns)
            }
        index = index_of(store)
        try:
            assert_index_matches_tables(index)
        finally:
            index.close()


def _as_schema_2(index_file: Path) -> None:
    """Turn an index back into insights schema 2: no pending lists, every row indexed
    by the insert trigger."""
    index = sqlite3.connect(index_file)
    with index:
        flush_pending(index)
        for table, column in (("insight_tests", "test_ids"), ("insight_files", "paths")):
            index.execute(f"DROP TRIGGER {table}_fts_add")
            index.execute(f"DROP TRIGGER {table}_fts_drop")
            index.execute(f"DROP TABLE {table}_pending")
            index.execute(
                f"CREATE TRIGGER {table}_fts_add AFTER INSERT ON {table} BEGIN"
                f" INSERT INTO {table}_fts (rowid, {column}) VALUES (new.id, new.{column}); END"
            )
            index.execute(
                f"CREATE TRIGGER {table}_fts_drop AFTER DELETE ON {table} BEGIN"
                f" INSERT INTO {table}_fts ({table}_fts, rowid, {column})"
                f" VALUES ('delete', old.id, old.{column}); END"
            )
        index.execute("UPDATE index_state SET value = '2' WHERE name = 'insights'")
    index.close()


def test_an_index_of_schema_2_gains_the_lists_without_a_refill(tmp_path: Path) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path / "store")
    with ArtifactStore(config) as store:
        kept = store.upload("a", "s", "test", junit("test_login_old"))
        gone = store.upload("b", "s", "test", junit("test_login_gone"))
    index_file = config.effective_state_dir / "index.sqlite3"
    _as_schema_2(index_file)
    index = sqlite3.connect(index_file)
    ids_before = index.execute("SELECT id, test_ids FROM insight_tests ORDER BY id").fetchall()
    index.close()
    with ArtifactStore(config) as store:
        assert [m.uri for m in store.search(test="login_old")] == [kept]
        new = store.upload("c", "s", "test", junit("test_login_new"))
        store.delete(gone)  # an indexed row of the old schema leaves the index
        assert sorted(m.uri for m in store.search(test="test_login")) == sorted([kept, new])
    index = sqlite3.connect(index_file)
    try:
        state = index.execute("SELECT value FROM index_state WHERE name = 'insights'").fetchone()
        assert state == (str(insights.INSIGHTS_SCHEMA_VERSION),)
        # Not refilled: the old rows kept their ids.
        assert (
            index.execute(
                "SELECT id, test_ids FROM insight_tests WHERE id = ?", (ids_before[0][0],)
            ).fetchone()
            == ids_before[0]
        )
        assert_index_matches_tables(index)
    finally:
        index.close()


def test_a_read_only_index_of_schema_2_is_searched(tmp_path: Path) -> None:
    with tiny_tmpfs("8m") as disk:
        config = ArtifactStoreConfig(base_path=disk / "store")
        with ArtifactStore(config) as store:
            failing = store.upload("a", "s", "test", junit("test_login_fails"))
            changed = store.upload("a", "s", "diff", diff("auth/login.py"))
        _as_schema_2(config.effective_state_dir / "index.sqlite3")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        with ArtifactStore(config) as store:
            assert [m.uri for m in store.search(test="login_fails")] == [failing]
            assert [m.uri for m in store.search(touches="auth/**")] == [changed]


def write_many(root: str, writer: int, count: int) -> None:
    """One writer process's share of the test below: failing reports and diffs, and a
    delete of an earlier report every tenth round."""
    with ArtifactStore(ArtifactStoreConfig(base_path=Path(root), durable_writes=False)) as store:
        for i in range(count):
            store.upload(f"w{writer}-t{i}", "s", "test", junit(f"test_w{writer}_case_{i:03d}"))
            store.upload(f"w{writer}-t{i}", "s", "diff", diff(f"w{writer}/mod_{i:03d}.py"))
            if i % 10 == 5:
                store.delete(
                    f"{store.config.base_path.as_uri()}/s/w{writer}-t{i - 1}/test-result.json"
                )


@pytest.mark.parametrize("count", [40, pytest.param(300, marks=pytest.mark.stress)])
def test_writer_processes_share_the_pending_lists(tmp_path: Path, count: int) -> None:
    """Several processes upload and delete in one index at once: whoever fills a list
    moves every process's rows in, and every artifact is found afterwards."""
    root = tmp_path / "store"
    ArtifactStore(ArtifactStoreConfig(base_path=root)).close()
    code = "import sys; from tests.test_insights_pending import write_many as w; " + (
        "w(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))"
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(root), str(n), str(count)],
            cwd=Path(__file__).resolve().parents[1],
            env=subprocess_env(),
        )
        for n in range(3)
    ]
    assert [w.wait(timeout=240) for w in writers] == [0, 0, 0]
    with ArtifactStore(ArtifactStoreConfig(base_path=root)) as store:
        for n in range(3):
            deleted = {i - 1 for i in range(count) if i % 10 == 5}
            failing = {m.task_id for m in store.search(test=f"test_w{n}_case_")}
            assert failing == {f"w{n}-t{i}" for i in range(count) if i not in deleted}
            touched = {m.task_id for m in store.search(touches=f"w{n}/**")}
            assert touched == {f"w{n}-t{i}" for i in range(count)}
    index = index_of(store)
    try:
        assert_index_matches_tables(index)
    finally:
        index.close()
