"""The log viewer's line access (loglines) and spool cache (logspool): ranges, head, search."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig, ArtifactType
from necrocode.artifact_store.service.viewer import loglines, logspool
from necrocode.artifact_store.service.viewer.loglines import (
    MAX_LINE_CHARS,
    LineMarker,
    decode_line,
    head_lines,
)
from necrocode.artifact_store.service.viewer.logspool import LineCache, Prefilter


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[LineCache]:
    built = LineCache(tmp_path / "spool")
    yield built
    built.close()


def _upload(store: ArtifactStore, data: bytes, task: str = "1") -> str:
    return store.upload(task, "spec", ArtifactType.LOG, data)


def _expected(data: bytes) -> list[str]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [decode_line(line) for line in lines]


def test_ranges_match_the_lines_across_checkpoints(
    store: ArtifactStore, cache: LineCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logspool, "CHECKPOINT_BYTES", 100)
    data = b"".join(f"line {n} {'x' * (n % 17)}\n".encode() for n in range(1, 2001))
    uri = _upload(store, data)
    index = cache.get(store, store.get_metadata(uri))
    assert index.total_lines == 2000
    assert len(index.offsets) > 100  # many checkpoints: ranges start mid-way
    expected = _expected(data)
    for start, count in [(1, 5), (99, 3), (1000, 50), (1990, 100), (2000, 1), (2001, 4)]:
        assert index.lines(start, count) == expected[start - 1 : start - 1 + count]


def test_a_log_without_final_newline_and_crlf_lines(store: ArtifactStore, cache: LineCache) -> None:
    uri = _upload(store, b"a\r\nb\r\nlast")
    index = cache.get(store, store.get_metadata(uri))
    assert index.total_lines == 3
    assert index.lines(1, 10) == ["a", "b", "last"]


def test_head_reads_only_what_it_shows(store: ArtifactStore) -> None:
    uri = _upload(store, b"".join(b"%d\n" % n for n in range(100)))
    assert head_lines(store, uri, 3) == (["0", "1", "2"], True)
    assert head_lines(store, uri, 100)[1] is False
    assert head_lines(store, uri, 500) == ([str(n) for n in range(100)], False)


def test_huge_lines_are_cut_for_display(store: ArtifactStore, cache: LineCache) -> None:
    uri = _upload(store, b"short\n" + b"y" * (3 * 1024 * 1024) + b"\nafter\n")
    head, more = head_lines(store, uri, 3)
    assert head[0] == "short" and head[2] == "after" and not more
    assert head[1].startswith("y" * MAX_LINE_CHARS) and "more characters" in head[1]
    index = cache.get(store, store.get_metadata(uri))
    assert index.lines(2, 2)[1] == "after"
    assert len(index.lines(2, 1)[0]) < MAX_LINE_CHARS + 100


def test_invalid_utf8_is_replaced_not_fatal(store: ArtifactStore, cache: LineCache) -> None:
    uri = _upload(store, b"ok\n\xff\xfe bad \xc3\n")
    index = cache.get(store, store.get_metadata(uri))
    assert index.lines(1, 2) == ["ok", "\ufffd\ufffd bad \ufffd"]


def test_search_pages_through_hits(store: ArtifactStore, cache: LineCache) -> None:
    data = b"".join(b"ERROR %d\n" % n if n % 10 == 0 else b"fine %d\n" % n for n in range(1, 301))
    index = cache.get(store, store.get_metadata(_upload(store, data)))
    hits, last = index.search("error", limit=5)
    assert [h.line for h in hits] == [10, 20, 30, 40, 50] and last == 50
    assert hits[0].text == "ERROR 10"
    more, last = index.search("error", after=last, limit=100)
    assert [h.line for h in more] == list(range(60, 301, 10)) and last == 300
    assert index.search("nothing here") == ([], 300)


def test_compressed_logs_spool_the_original_bytes(tmp_path: Path, cache: LineCache) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path / "gz", compression_enabled=True)
    with ArtifactStore(config) as store:
        data = b"".join(b"row %d\n" % n for n in range(50_000))
        meta = store.get_metadata(_upload(store, data))
        assert meta.compressed and meta.stored_size < len(gzip.compress(data)) * 2
        index = cache.get(store, meta)
        assert index.total_bytes == len(data)
        assert index.lines(40_000, 2) == ["row 39999", "row 40000"]


def test_markers_found_while_spooling(store: ArtifactStore, tmp_path: Path) -> None:
    def scanner(number: int, text: str) -> list[LineMarker]:
        return [LineMarker(number, "error", text)] if "boom" in text else []

    cache = LineCache(tmp_path / "m", scanner=scanner, prefilter=Prefilter(("boom",)))
    try:
        data = b"".join(b"boom %d\n" % n if n in (3, 70_000) else b"ok\n" for n in range(1, 80_001))
        index = cache.get(store, store.get_metadata(_upload(store, data)))
        assert [(m.line, m.text) for m in index.markers] == [(3, "boom 3"), (70_000, "boom 70000")]
        assert index.marker_counts == {"error": 2}
    finally:
        cache.close()


def test_the_cache_is_shared_and_bounded(store: ArtifactStore, tmp_path: Path) -> None:
    cache = LineCache(tmp_path / "b", budget_bytes=150)
    try:
        first = store.get_metadata(_upload(store, b"a" * 100 + b"\n", "1"))
        second = store.get_metadata(_upload(store, b"b" * 100 + b"\n", "2"))
        index = cache.get(store, first)
        assert cache.get(store, first) is index and cache.peek(first) is index
        cache.get(store, second)
        assert cache.peek(first) is None and not index.path.exists()
        assert cache.peek(second) is not None
    finally:
        cache.close()
    assert not (tmp_path / "b").joinpath("x").exists()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.lists(
        st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), min_size=0, max_size=60
    ).map(b"\n".join),
    start=st.integers(min_value=-3, max_value=70),
    count=st.integers(min_value=0, max_value=70),
)
def test_any_range_of_any_bytes_matches_a_plain_split(
    data: bytes, start: int, count: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("prop")
    with ArtifactStore(ArtifactStoreConfig(base_path=root / "s")) as store:
        cache = LineCache(root / "c")
        try:
            old = logspool.CHECKPOINT_BYTES
            logspool.CHECKPOINT_BYTES = 16
            try:
                index = cache.get(store, store.get_metadata(_upload(store, data)))
            finally:
                logspool.CHECKPOINT_BYTES = old
            expected = _expected(data) if data else []
            assert index.total_lines == len(expected)
            first = max(1, start)
            assert index.lines(start, count) == expected[first - 1 : first - 1 + max(0, count)]
        finally:
            cache.close()


def test_one_enormous_line_is_cut_and_skipped(
    store: ArtifactStore, cache: LineCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loglines, "LONG_LINE_BYTES", 64 * 1024)
    data = b"first\n" + b"needle " + b"z" * (3 * 1024 * 1024) + b" needle\nneedle after\nlast"
    index = cache.get(store, store.get_metadata(_upload(store, data)))
    assert index.total_lines == 4
    lines = index.lines(1, 10)
    assert [lines[0], lines[2], lines[3]] == ["first", "needle after", "last"]
    assert lines[1].startswith("needle zzz") and len(lines[1]) < MAX_LINE_CHARS + 100
    hits, last = index.search("NEEDLE")
    assert [h.line for h in hits] == [2, 3] and last == 4
    assert index.search("needle", after=2)[0][0].line == 3
