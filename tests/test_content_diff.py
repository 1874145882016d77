"""Diff parsing on ``git diff`` of a real repository, plain unified diffs and damaged input."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from necrocode.artifact_store.content import DiffParser, FileDiff, parse_diff

from .content_inputs import git, make_repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("repo"))


def _by_path(diff: str) -> dict[str, FileDiff]:
    return {file.path: file for file in parse_diff(diff.splitlines(keepends=True))}


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary-patch"])
def test_git_diff_of_a_real_repository(repo: Path, binary: bool) -> None:
    args = ["diff", "--cached", "-M", "-C", "--find-copies-harder"]
    files = _by_path(git(repo, *args, *(["--binary"] if binary else [])))
    assert set(files) == {
        "added.md",
        "auth/new_name.py",
        "auth/with space.py",
        "auth/ünï.txt",
        "copy_of_template.py",
        "gone.txt",
        "img.bin",
        "keep.py",
    }
    added = files["added.md"]
    assert (added.status, added.old_path, added.new_path, added.added) == (
        "added",
        None,
        "added.md",
        1,
    )
    renamed = files["auth/new_name.py"]
    assert (renamed.status, renamed.old_path, renamed.added, renamed.removed) == (
        "renamed",
        "old_name.py",
        1,
        0,
    )
    assert renamed.similarity is not None and 50 <= renamed.similarity < 100
    copied = files["copy_of_template.py"]
    assert (copied.status, copied.old_path, copied.added) == ("copied", "template.py", 1)
    deleted = files["gone.txt"]
    assert (deleted.status, deleted.new_path, deleted.removed) == ("deleted", None, 2)
    assert deleted.path == "gone.txt"
    mode = files["auth/with space.py"]
    assert (mode.status, mode.old_mode, mode.new_mode, mode.hunk_count) == (
        "modified",
        "100644",
        "100755",
        0,
    )
    assert files["auth/ünï.txt"].status == "added"
    image = files["img.bin"]
    assert image.binary and (image.added, image.removed, image.hunks) == (0, 0, [])
    keep = files["keep.py"]
    assert (keep.added, keep.removed) == (3, 2)
    kinds = [(line.kind, line.text) for hunk in keep.hunks for line in hunk.lines]
    assert ("del", "line2") in kinds and ("add", "CHANGED") in kinds
    # A content line starting with "--" is a deletion/addition, never a new file header.
    assert ("add", "-- looks like a header") in kinds
    assert kinds[-1] == ("note", "No newline at end of file")


def test_line_numbers_follow_both_sides(repo: Path) -> None:
    keep = _by_path(git(repo, "diff", "--cached", "-M"))["keep.py"]
    first = keep.hunks[0]
    assert (first.old_start, first.new_start) == (1, 1)
    numbered = {line.text: (line.old_no, line.new_no) for line in first.lines}
    assert numbered["line1"] == (1, 1)
    assert numbered["line2"] == (2, None)
    assert numbered["CHANGED"] == (None, 2)
    assert numbered["line3"] == (3, 3)


def test_cap_keeps_counts_exact(repo: Path) -> None:
    diff = git(repo, "diff", "--cached", "-M")
    capped = {f.path: f for f in parse_diff(diff.splitlines(), max_lines_per_file=2)}
    full = _by_path(diff)
    for path, file in capped.items():
        assert (file.added, file.removed, file.hunk_count) == (
            full[path].added,
            full[path].removed,
            full[path].hunk_count,
        )
        assert sum(len(h.lines) for h in file.hunks) <= 2
    assert capped["keep.py"].truncated
    assert not capped["added.md"].truncated
    counts_only = next(iter(parse_diff(diff.splitlines(), max_lines_per_file=0)))
    assert counts_only.hunks == [] and counts_only.added >= 1


def test_plain_unified_diffs() -> None:
    old = [f"row {i}\n" for i in range(10)]
    new = [*old[:3], "inserted\n", *old[4:]]
    text = "".join(
        difflib.unified_diff(old, new, "src/app.py.orig", "src/app.py", "2026-01-01", "2026-01-02")
    )
    text += "".join(difflib.unified_diff([], ["hello\n"], "/dev/null", "b/new.txt"))
    text += "".join(difflib.unified_diff(["bye\n"], [], "a/old.txt", "/dev/null"))
    files = list(parse_diff(text.splitlines(keepends=True)))
    assert [(f.old_path, f.new_path, f.status, f.added, f.removed) for f in files] == [
        ("src/app.py.orig", "src/app.py", "modified", 1, 1),
        (None, "new.txt", "added", 1, 0),
        ("old.txt", None, "deleted", 0, 1),
    ]


def test_diff_r_preamble_and_binary_lines() -> None:
    text = (
        "Only in a: stray\n"
        "diff -ruN a/x.txt b/x.txt\n"
        "--- a/x.txt\t2026-01-01 00:00:00\n"
        "+++ b/x.txt\t2026-01-02 00:00:00\n"
        "@@ -1 +1 @@\n"
        "-old\n"
        "+new\n"
        "Binary files a/logo.png and b/logo.png differ\n"
    )
    files = list(parse_diff(text.splitlines()))
    assert [(f.path, f.binary, f.added, f.removed) for f in files] == [
        ("x.txt", False, 1, 1),
        ("logo.png", True, 0, 0),
    ]


def test_parsing_streams_one_file_at_a_time() -> None:
    consumed = []

    def lines() -> Iterator[str]:
        for i in range(1000):
            consumed.append(i)
            yield from (
                f"diff --git a/f{i} b/f{i}\n",
                f"--- a/f{i}\n",
                f"+++ b/f{i}\n",
                "@@ -1 +1 @@\n",
                "-a\n",
                "+b\n",
            )

    first = next(parse_diff(lines()))
    assert first.path == "f0"
    assert len(consumed) == 2  # the next file's header closed the first one


def test_push_parser_matches_parse_diff(repo: Path) -> None:
    diff = git(repo, "diff", "--cached", "-M")
    parser = DiffParser()
    pushed: list[FileDiff] = []
    for line in diff.splitlines():
        pushed.extend(parser.feed(line))
    pushed.extend(parser.close())
    assert pushed == list(parse_diff(diff.splitlines()))


def test_damaged_hunks_are_tolerated() -> None:
    text = (
        "--- a/x\n+++ b/x\n"
        "@@ -1,5 +1,5 @@\n"  # promises five lines, delivers two
        " keep\n-gone\n"
        "@@ garbage @@\n"
        "--- a/y\n+++ b/y\n@@ -0,0 +1 @@\n+y\n"
    )
    files = list(parse_diff(text.splitlines()))
    assert [(f.path, f.added, f.removed) for f in files] == [("x", 0, 1), ("y", 1, 0)]


_DIFFISH = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "diff --git a/x b/x",
                "--- a/x",
                "+++ b/x",
                "@@ -1,2 +1,2 @@",
                "@@ -1 +1 @@ f()",
                "rename from q",
                "rename to r",
                "GIT binary patch",
                "Binary files a/x and b/x differ",
                "\\ No newline at end of file",
                "new file mode 100644",
                "",
            ]
        ),
        st.text(max_size=20).map(lambda t: "+" + t),
        st.text(max_size=20).map(lambda t: "-" + t),
        st.text(max_size=20).map(lambda t: " " + t),
        st.text(max_size=30),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_DIFFISH)
def test_any_input_parses_without_error_and_counts_match(lines: list[str]) -> None:
    for file in parse_diff(lines):
        kept = [line for hunk in file.hunks for line in hunk.lines]
        assert file.added == sum(line.kind == "add" for line in kept)
        assert file.removed == sum(line.kind == "del" for line in kept)
        assert file.hunk_count == len(file.hunks)


def _bytes_parse(data: bytes, cuts: list[int]) -> list[FileDiff]:
    """Parse through ``feed_bytes`` in blocks cut at the line ends nearest to ``cuts``."""
    parser = DiffParser(max_lines_per_file=0)
    files: list[FileDiff] = []
    position = 0
    for cut in sorted(cuts):
        end = data.find(b"\n", cut)
        if end < 0 or end < position:
            continue
        files += parser.feed_bytes(data[position : end + 1])
        position = end + 1
    files += parser.feed_bytes(data[position:])
    return files + parser.close()


@settings(max_examples=300, deadline=None)
@given(_DIFFISH, st.lists(st.integers(min_value=0, max_value=2000), max_size=5))
def test_byte_fast_path_equals_the_line_parser(lines: list[str], cuts: list[int]) -> None:
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    expected = list(parse_diff(data.decode("utf-8", "replace").split("\n"), max_lines_per_file=0))
    assert _bytes_parse(data, cuts) == expected


def test_byte_fast_path_on_a_real_diff(repo: Path) -> None:
    data = git(repo, "diff", "--cached", "-M", "--binary").encode("utf-8", "surrogateescape")
    expected = list(parse_diff(data.decode("utf-8", "replace").splitlines(), max_lines_per_file=0))
    assert _bytes_parse(data, [100, 700, 1500]) == expected
    assert sum(f.added for f in expected) > 0
