"""The Python API as boto3 users expect it (issue 19): argument order, paths, progress."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from necrocode.artifact_store import (
    ArgumentOrderWarning,
    ArtifactStore,
    ArtifactType,
    InvalidInputError,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ArtifactStore]:
    with ArtifactStore({"base_path": str(tmp_path / "s"), "durable_writes": False}) as opened:
        yield opened


def test_upload_takes_keywords_and_the_reference_form(store: ArtifactStore) -> None:
    by_keyword = store.upload(
        content=b"k", artifact_type="log", spec_name="chat-app", task_id="1.1"
    )
    by_ref = store.upload(ref="chat-app/1.2/diff", content=b"r")
    by_file_name = store.upload(ref="chat-app/1.3/test-result.json", content=b"{}")
    assert by_keyword.endswith("/chat-app/1.1/log.txt")
    assert by_ref.endswith("/chat-app/1.2/diff.txt")
    assert by_file_name.endswith("/chat-app/1.3/test-result.json")
    with pytest.raises(InvalidInputError, match="not both"):
        store.upload("1", "s", "log", b"x", ref="s/1/log")  # type: ignore[call-overload]
    with pytest.raises(InvalidInputError, match="spec/task/type"):
        store.upload(ref="s/1", content=b"x")


def test_a_likely_swap_of_spec_and_task_warns(store: ArtifactStore) -> None:
    with pytest.warns(ArgumentOrderWarning, match="looks swapped") as caught:
        uri = store.upload("chat-app", "8", "diff", b"x")
    assert caught[0].filename == __file__  # points at the caller's line
    assert uri.endswith("/8/chat-app/diff.txt")  # still stored: numeric specs are valid
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.upload("8", "chat-app", "diff", b"x")  # the documented order: silent
        store.upload("build", "nightly", ArtifactType.LOG, b"x")  # neither looks like a task


def test_str_content_is_text_and_upload_file_reads_a_path(
    store: ArtifactStore, tmp_path: Path
) -> None:
    source = tmp_path / "change.diff"
    source.write_bytes(b"--- a\n+++ b\n")
    as_text = store.upload("1", "s", "diff", str(source))
    assert store.download(as_text) == str(source).encode()
    as_file = store.upload_file(str(source), "2", "s", "diff")
    assert store.download(as_file) == b"--- a\n+++ b\n"
    assert store.download(store.upload_file(source, ref="s/3/diff")) == b"--- a\n+++ b\n"
    with pytest.raises(InvalidInputError, match="cannot read content file"):
        store.upload_file(tmp_path / "missing.diff", ref="s/4/diff")
    with pytest.raises(InvalidInputError, match="path must be"):
        store.upload_file(b"bytes", ref="s/4/diff")  # type: ignore[arg-type]


def test_upload_reports_progress(store: ArtifactStore, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    data = b"z" * (3 * 1024 * 1024 + 7)
    store.upload("1", "s", "log", data, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(data), len(data))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) >= 3
    streamed: list[tuple[int, int]] = []
    store.upload(
        "2", "s", "log", iter([b"ab", b"cde"]), progress=lambda d, t: streamed.append((d, t))
    )
    assert streamed == [(2, 0), (5, 0)]  # total unknown for a stream
    path = tmp_path / "big.log"
    path.write_bytes(data)
    seen: list[int] = []
    store.upload_file(path, ref="s/3/log", progress=lambda d, t: seen.append(t))
    assert set(seen) == {len(data)}


def test_content_filters_page_like_any_search(store: ArtifactStore) -> None:
    failing = b'{"test_results": [{"name": "t1", "status": "failed"}]}'
    uris = [store.upload(str(n), "s", "test", failing) for n in range(4)]
    store.upload("9", "s", "log", b"all good\n")  # no failures: never listed
    seen: list[str] = []
    cursor = None
    while True:
        page = store.search_page(failed=True, limit=1, cursor=cursor)
        seen += [m.uri for m in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == uris[::-1]  # newest first by default with a content filter
    assert [m.uri for m in store.iter_search(failed=True, reverse=False, page_size=3)] == uris
    with pytest.raises(InvalidInputError, match="not both"):
        store.search(order="newest", reverse=True)
    with pytest.raises(InvalidInputError, match="creation time only"):
        store.search(failed=True, sort="size")
