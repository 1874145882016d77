"""Index conformance: one suite, bound to every :class:`MetadataIndex` implementation.

``IndexConformance`` holds the tests; ``tests/test_index_conformance.py`` binds the
``index`` fixture to SQLite and PostgreSQL. Every test starts from an empty index.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from necrocode.artifact_store import ArtifactMetadata, ArtifactType, Summary
from necrocode.artifact_store.content.summariser import Summariser
from necrocode.artifact_store.index import MetadataIndex, SearchQuery
from necrocode.artifact_store.index.insights import InsightFilter
from necrocode.artifact_store.maintenance.retention import RetentionPolicy, expired_conditions
from necrocode.artifact_store.naming import ArtifactKey

START = datetime(2026, 3, 1, tzinfo=UTC)
DIFF, LOG, TEST = ArtifactType.DIFF, ArtifactType.LOG, ArtifactType.TEST_RESULT


def meta(
    spec: str,
    task: str,
    kind: ArtifactType,
    *,
    version: int = 1,
    when: datetime = START,
    size: int = 10,
    tags: tuple[str, ...] = (),
    retention_days: int | None = None,
    pinned: bool = False,
    summary: Summary | None = None,
) -> ArtifactMetadata:
    """A record as an upload would write it."""
    return ArtifactMetadata(
        uri="",
        task_id=task,
        spec_name=spec,
        type=kind,
        size=size,
        checksum="sha256:" + "2" * 64,
        created_at=when,
        compressed=False,
        original_size=size * 2,
        mime_type=kind.mime_type,
        version=version,
        tags=tags,
        pinned=pinned,
        retention_days=retention_days,
        summary=summary,
        object_key=f"{spec}/{task}/{kind.filename}.v{version:06d}.0000000000000000.raw",
    )


def summarised(kind: ArtifactType, content: bytes) -> Summary:
    """The summary an upload of ``content`` gets."""
    summariser = Summariser(kind)
    for _ in summariser.tap([content]):
        pass
    summary, reason = summariser.finish()
    assert summary is not None, reason
    return summary


JUNIT = (
    b'<testsuite name="s" tests="2" failures="1"><testcase classname="tests.test_auth"'
    b' name="test_login"><failure message="x"/></testcase>'
    b'<testcase classname="tests.test_ui" name="test_ok"/></testsuite>'
)
PASSING = b'<testsuite name="s" tests="1"><testcase classname="t" name="test_ok"/></testsuite>'


def diff_of(*paths: str) -> bytes:
    return b"".join(f"--- a/{p}\n+++ b/{p}\n@@ -1 +1 @@\n-a\n+b\n".encode() for p in paths)


def key_of(m: ArtifactMetadata) -> ArtifactKey:
    return ArtifactKey(m.spec_name, m.task_id, m.type)


def fill(index: MetadataIndex) -> list[ArtifactMetadata]:
    """Two specs x three tasks x three types, one day apart."""
    metas = []
    for s, spec in enumerate(["chat-app", "iot"]):
        for t in range(3):
            for k, kind in enumerate(ArtifactType):
                when = START + timedelta(days=s * 10 + t * 3 + k)
                m = meta(spec, f"1.{t}", kind, when=when, tags=(f"t{t}", spec))
                index.put(m)
                metas.append(m)
    return metas


class IndexConformance:
    """Behaviour every search index must show."""

    #: Whether the index is shared by every host (PostgreSQL) or per host (SQLite).
    shared = False

    @pytest.fixture
    def index(self) -> Iterator[MetadataIndex]:
        raise NotImplementedError("bind the fixture in the implementation's test class")

    def test_satisfies_the_protocol(self, index: MetadataIndex) -> None:
        assert isinstance(index, MetadataIndex)
        assert index.shared is self.shared
        assert index.describe().split()[0].split(":")[0] in ("sqlite", "postgresql")

    def test_empty_index(self, index: MetadataIndex) -> None:
        assert index.count() == 0
        assert index.usage_sums() == (0, 0, 0, 0)
        assert index.usage_totals() == []
        assert index.keys() == set()
        assert index.search(SearchQuery()) == []
        assert index.get(ArtifactKey.of("s", "t", "diff")) is None

    def test_put_then_get_round_trips_the_record(self, index: MetadataIndex) -> None:
        m = meta("chat-app", "1.1", DIFF, tags=("b", "a"), retention_days=3)
        index.put(m)
        assert index.get(key_of(m)) == m
        assert index.get(key_of(m), 1) == m
        assert index.get(key_of(m), 2) is None
        assert index.count() == 1

    def test_put_with_record_text(self, index: MetadataIndex) -> None:
        m = meta("s", "t", LOG)
        index.put(m, record=m.to_json())
        assert index.get(key_of(m)) == m

    def test_versions_and_latest(self, index: MetadataIndex) -> None:
        v1, v2, v3 = (meta("s", "t", LOG, version=n, size=n) for n in (1, 2, 3))
        index.put(v2)
        index.put(v1)  # an older version arriving late stays behind
        index.put(v3)
        key = key_of(v1)
        assert [m.version for m in index.versions(key)] == [1, 2, 3]
        assert index.get(key) == v3
        assert index.count() == 1
        assert index.usage_sums() == (1, 3, 6, 12)
        index.remove(key, [3])
        assert index.get(key) == v2
        assert [m.version for m in index.search(SearchQuery())] == [2]
        assert index.usage_sums() == (1, 2, 3, 6)

    def test_put_replacing_versions_in_one_step(self, index: MetadataIndex) -> None:
        v1 = meta("s", "t", DIFF, size=5)
        index.put(v1)
        v2 = meta("s", "t", DIFF, version=2, size=7)
        index.put(v2, remove_versions=[1])
        assert [m.version for m in index.versions(key_of(v1))] == [2]
        assert index.usage_sums() == (1, 1, 7, 14)

    def test_update_in_place_keeps_totals(self, index: MetadataIndex) -> None:
        m = meta("s", "t", DIFF, tags=("x",))
        index.put(m)
        changed = m.with_changes(tags=("y",), pinned=True)
        index.put(changed)
        assert index.get(key_of(m)) == changed
        assert index.search(SearchQuery(tags=("x",))) == []
        assert index.search(SearchQuery(tags=("y",))) == [changed]
        assert index.usage_sums() == (1, 1, 10, 20)

    def test_remove_every_version(self, index: MetadataIndex) -> None:
        for n in (1, 2):
            index.put(meta("s", "t", DIFF, version=n, tags=("k",)))
        index.put(meta("s", "u", DIFF))
        index.remove(ArtifactKey.of("s", "t", "diff"))
        assert index.versions(ArtifactKey.of("s", "t", "diff")) == []
        assert index.search(SearchQuery(tags=("k",))) == []
        assert index.keys() == {("s", "u", "diff", 1)}
        assert index.usage_totals() == [("s", "diff", 1, 1, 10, 20)]

    def test_search_filters(self, index: MetadataIndex) -> None:
        metas = fill(index)
        assert index.search(SearchQuery()) == sorted(metas, key=lambda m: m.created_at)
        found = index.search(SearchQuery(task_id="1.1", spec_name="iot"))
        assert {(m.spec_name, m.task_id) for m in found} == {("iot", "1.1")}
        assert len(found) == 3
        assert len(index.search(SearchQuery(task_id="1.1"))) == 6
        assert len(index.search(SearchQuery(artifact_type=LOG))) == 6
        window = index.search(
            SearchQuery(
                created_after=START + timedelta(days=3), created_before=START + timedelta(days=6)
            )
        )
        assert [m.created_at for m in window] == [START + timedelta(days=d) for d in (3, 4, 5)]
        assert len(index.search(SearchQuery(limit=4))) == 4
        assert index.search(SearchQuery(limit=1)) == [metas[0]]

    def test_search_by_tags(self, index: MetadataIndex) -> None:
        fill(index)
        assert len(index.search(SearchQuery(tags=("t1",)))) == 6
        assert len(index.search(SearchQuery(tags=("t1", "iot")))) == 3
        assert len(index.search(SearchQuery(tags=("t1", "t2"), match_all_tags=False))) == 12
        assert index.search(SearchQuery(tags=("t1", "t2"))) == []
        assert len(index.search(SearchQuery(tags=("t0",), spec_name="iot"))) == 3
        assert len(index.search(SearchQuery(tags=("t0", "nope"), task_id="1.0"))) == 0

    def test_search_all_versions(self, index: MetadataIndex) -> None:
        for n in (1, 2, 3):
            index.put(meta("s", "t", DIFF, version=n, when=START + timedelta(hours=n)))
        assert len(index.search(SearchQuery())) == 1
        assert [m.version for m in index.search(SearchQuery(latest_only=False))] == [1, 2, 3]

    def test_expired(self, index: MetadataIndex) -> None:
        now = START + timedelta(days=10)
        old_diff = meta("s", "a", DIFF, when=START)
        young_diff = meta("s", "b", DIFF, when=now - timedelta(days=1))
        pinned_log = meta("s", "c", LOG, when=START, pinned=True)
        own_days = meta("s", "d", TEST, when=now - timedelta(days=3), retention_days=2)
        kept_long = meta("s", "e", TEST, when=START, retention_days=100)
        for m in (old_diff, young_diff, pinned_log, own_days, kept_long):
            index.put(m)
        conditions = expired_conditions({"diff": 5, "log": 5, "test": 5}, now, index.placeholder)
        assert index.records_where(conditions) == [old_diff, own_days]

    def test_retention_sql_agrees_with_the_python_predicate(self, index: MetadataIndex) -> None:
        """The rule exists once (maintenance/retention.py) in two forms: the index's SQL
        and the re-check under the lock must pick the same versions, at the edges too."""
        days = {"diff": 3, "log": 1, "test": 2}
        policy = RetentionPolicy(days)
        now = START + timedelta(days=4)
        records = []
        for n, offset in enumerate((0.0, 1.0, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)):
            for kind in (DIFF, LOG, TEST):
                for own, pinned in ((None, False), (1, False), (4, False), (None, True)):
                    when = now - timedelta(days=offset)
                    records.append(
                        meta(f"s{n}", f"t{own}{pinned}", kind, when=when, retention_days=own,
                             pinned=pinned)
                    )  # fmt: skip
        for m in records:
            index.put(m)
        conditions = expired_conditions(days, now, index.placeholder)
        found = {(m.spec_name, m.task_id, m.type) for m in index.records_where(conditions)}
        expected = {(m.spec_name, m.task_id, m.type) for m in records if policy.is_expired(m, now)}
        assert found == expected and len(expected) > 10

    def test_usage_totals_by_spec_and_type(self, index: MetadataIndex) -> None:
        fill(index)
        index.put(meta("chat-app", "1.0", DIFF, version=2, size=4))
        rows = index.usage_totals()
        assert rows[0] == ("chat-app", "diff", 3, 4, 34, 68)
        assert len(rows) == 6
        assert index.usage_sums() == (18, 19, 184, 368)
        assert index.stored_bytes() == 184

    def test_replace_all_and_is_built(self, index: MetadataIndex) -> None:
        index.put(meta("gone", "x", LOG))
        records = [meta("s", "t", DIFF, version=n, size=n) for n in (1, 2)]
        records.append(meta("s", "u", LOG, tags=("q",)))
        assert index.replace_all(iter(records)) == 3
        assert index.is_built()
        assert index.keys() == {("s", "t", "diff", 1), ("s", "t", "diff", 2), ("s", "u", "log", 1)}
        assert index.get(ArtifactKey.of("s", "t", "diff")) == records[1]
        assert index.usage_sums() == (2, 3, 13, 26)
        assert index.search(SearchQuery(tags=("q",))) == [records[2]]

    def test_exclusive_groups_writes(self, index: MetadataIndex) -> None:
        a, b = meta("s", "a", DIFF), meta("s", "b", DIFF)
        with index.exclusive():
            index.put(a)
            index.put(b)
        assert index.count() == 2
        with pytest.raises(RuntimeError), index.exclusive():
            index.put(meta("s", "c", DIFF))
            raise RuntimeError("roll back")
        assert index.count() == 2

    def test_exclusive_keeps_other_writers_out(self, index: MetadataIndex) -> None:
        started, done = threading.Event(), threading.Event()

        def writer() -> None:
            started.set()
            index.put(meta("s", "w", LOG))
            done.set()

        with index.exclusive():
            thread = threading.Thread(target=writer)
            thread.start()
            started.wait(5)
            assert not done.wait(0.3)
            index.put(meta("s", "inside", LOG))
        thread.join(10)
        assert done.is_set()
        assert index.count() == 2

    def test_destroy_then_use_again(self, index: MetadataIndex) -> None:
        index.put(meta("s", "t", DIFF))
        index.destroy()
        assert index.count() == 0
        index.put(meta("s", "t", DIFF))
        assert index.count() == 1

    def test_close_then_use_again(self, index: MetadataIndex) -> None:
        index.put(meta("s", "t", DIFF))
        index.close()
        assert index.count() == 1

    def test_claims_are_held_for_the_block_then_free(self, index: MetadataIndex) -> None:
        seen: list[bool] = []

        def other_host() -> None:
            with index.claim("cleanup", "spec/task") as got:
                seen.append(got)

        with index.claim("cleanup", "spec/task") as mine:
            assert mine
            thread = threading.Thread(target=other_host)
            thread.start()
            thread.join(10)
            with index.claim("cleanup", "spec/other") as different:
                assert different
        # A shared index hands a batch to one host at a time; the embedded one has one host.
        assert seen == [not self.shared]
        with index.claim("cleanup", "spec/task") as again:
            assert again

    def _insights(self, index: MetadataIndex) -> dict[str, ArtifactMetadata]:
        made = {
            "failing": meta("s", "a", TEST, when=START, summary=summarised(TEST, JUNIT)),
            "passing": meta(
                "s", "b", TEST, when=START + timedelta(1), summary=summarised(TEST, PASSING)
            ),
            "auth": meta(
                "s",
                "a",
                DIFF,
                when=START + timedelta(2),
                summary=summarised(DIFF, diff_of("src/auth/login.py", "README.md")),
            ),
            "ui": meta(
                "s",
                "b",
                DIFF,
                when=START + timedelta(3),
                summary=summarised(DIFF, diff_of("ui/page.tsx")),
            ),
            "traceback": meta(
                "s",
                "a",
                LOG,
                when=START + timedelta(4),
                summary=summarised(LOG, b"Traceback (most recent call last):\nValueError: x\n"),
            ),
            "clean": meta(
                "s", "b", LOG, when=START + timedelta(5), summary=summarised(LOG, b"all good\n")
            ),
            "plain": meta("s", "c", LOG, when=START + timedelta(6)),
        }
        for m in made.values():
            index.put(m)
        return made

    def _found(
        self, index: MetadataIndex, newest_first: bool = False, **filters: object
    ) -> list[str]:
        query = SearchQuery(
            insights=InsightFilter.build(**filters),  # type: ignore[arg-type]
            newest_first=newest_first,
        )
        return [f"{m.task_id}/{m.type.value}" for m in index.search(query)]

    def test_search_by_content(self, index: MetadataIndex) -> None:
        self._insights(index)
        assert self._found(index, failed=True) == ["a/test"]
        assert self._found(index, failed=False) == ["b/test"]
        assert self._found(index, test="LOGIN") == ["a/test"]
        assert self._found(index, test="test_ok") == []  # passing ids are not kept
        assert self._found(index, touches="src/auth") == ["a/diff"]
        assert self._found(index, touches="**/*.tsx") == ["b/diff"]
        assert self._found(index, touches="src/*.py") == []
        assert self._found(index, touches="src/**/login.py") == ["a/diff"]
        assert self._found(index, touches="README.md") == ["a/diff"]
        assert self._found(index, has_errors=True) == ["a/test", "a/log"]
        assert self._found(index, has_errors=False) == ["b/test", "a/diff", "b/diff", "b/log"]
        assert self._found(index, True, has_errors=True) == ["a/log", "a/test"]
        assert self._found(index, failed=True, touches="src/auth") == []

    def test_a_test_substring_is_literal(self, index: MetadataIndex) -> None:
        """``%``, ``_`` and ``\\`` in a needle are characters, not wildcards."""
        report = (
            b'<testsuite><testcase classname="t" name="test_50%_off\\x"><failure/></testcase>'
            b'<testcase classname="t" name="test_ok"/></testsuite>'
        )
        index.put(meta("s", "w", TEST, when=START, summary=summarised(TEST, report)))
        for needle in ("50%_off", "%_", "_50%", "off\\x", "T.TEST_50"):
            assert self._found(index, test=needle) == ["w/test"], needle
        for needle in ("50_%", "5%off", "off_x", "test_ok", "t_test"):
            assert self._found(index, test=needle) == [], needle

    def test_touches_is_exact_whatever_the_paths_hold(self, index: MetadataIndex) -> None:
        """Paths with newlines and backslashes, renames, globs without a literal part."""
        from necrocode.artifact_store.content import SUMMARY_VERSION, ChangedFile, DiffSummary

        files = (
            ChangedFile("src/new\nline.py", "added", 1, 0),
            ChangedFile("back\\slash/x.py", "modified", 1, 1),
            ChangedFile("lib/moved.rs", "renamed", 0, 0, old_path="old/place.rs"),
            ChangedFile("x.py", "modified", 1, 1),
        )
        summary = Summary("diff", SUMMARY_VERSION, diff=DiffSummary(4, 3, 2, 0, files))
        index.put(meta("s", "odd", DIFF, when=START, summary=summary))
        nested = Summary(
            "diff",
            SUMMARY_VERSION,
            diff=DiffSummary(1, 1, 0, 0, (ChangedFile("deep/a/b/x.py", "added", 1, 0),)),
        )
        index.put(meta("s", "deep", DIFF, when=START + timedelta(1), summary=nested))
        cases = {
            "src/new\nline.py": ["odd/diff"],
            "src/new": [],  # a path is never cut at its newline
            "line.py": [],
            "**/line.py": [],
            "src/*line.py": ["odd/diff"],
            "back\\slash": ["odd/diff"],
            "back\\slash/*.py": ["odd/diff"],
            "back": [],
            "old/place.rs": ["odd/diff"],
            "old/**": ["odd/diff"],
            "lib": ["odd/diff"],
            "**/x.py": ["odd/diff", "deep/diff"],
            "x.py": ["odd/diff"],
            "*/x.py": ["odd/diff"],  # back\\slash is one segment
            "deep/*/*/x.py": ["deep/diff"],
            "d?ep/**": ["deep/diff"],
            "*": ["odd/diff"],
            "**": ["odd/diff", "deep/diff"],
            "X.PY": [],  # paths are case-sensitive
        }
        for pattern, expected in cases.items():
            assert self._found(index, touches=pattern) == expected, pattern

    def test_content_filters_follow_updates_and_deletes(self, index: MetadataIndex) -> None:
        made = self._insights(index)
        failing = made["failing"]
        index.put(failing.with_changes(summary=summarised(TEST, PASSING)))
        assert self._found(index, failed=True) == []
        index.remove(key_of(made["auth"]))
        assert self._found(index, touches="src/auth") == []
        assert index.replace_all(iter(made.values())) == 7
        assert self._found(index, failed=True) == ["a/test"]
        assert self._found(index, touches="src/auth") == ["a/diff"]

    def test_newest_first(self, index: MetadataIndex) -> None:
        metas = fill(index)
        found = index.search(SearchQuery(newest_first=True, limit=3))
        assert found == sorted(metas, key=lambda m: m.created_at, reverse=True)[:3]
