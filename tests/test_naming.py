"""Names that come from other programs can never leave the store's root."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from necrocode.artifact_store import InvalidNameError, InvalidURIError
from necrocode.artifact_store.models import ArtifactType
from necrocode.artifact_store.naming import (
    ArtifactKey,
    parse_key,
    validate_name,
    validate_tag,
    validate_tags,
)

BAD_NAMES = [
    "",
    ".",
    "..",
    "../x",
    "a/b",
    "a\\b",
    "/etc",
    "/abs/path",
    ".hidden",
    "nul\x00byte",
    "tab\there",
    "new\nline",
    "del\x7f",
    "x" * 256,
    "space here",
    "query?x",
    "frag#x",
    "ünïcode",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_refused(name: str) -> None:
    with pytest.raises(InvalidNameError) as caught:
        validate_name("spec_name", name)
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == "spec_name"


def test_good_names() -> None:
    for name in ["chat-app", "1.1", "task_42", "A.b-c_d", "x" * 255, "-dash", "v1..2"]:
        assert validate_name("task_id", name) == name


@given(st.text(max_size=300))
def test_accepted_names_are_single_safe_path_components(name: str) -> None:
    try:
        validate_name("task_id", name)
    except InvalidNameError:
        return
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in (".", "..") and not name.startswith(".")
    assert 0 < len(name.encode()) <= 255
    assert name.isascii() and name.isprintable()


def test_uri_round_trip_with_and_without_version() -> None:
    key = ArtifactKey.of("chat-app", "1.1", "diff")
    root = "file:///srv/artifacts"
    assert key.uri(root) == "file:///srv/artifacts/chat-app/1.1/diff.txt"
    assert ArtifactKey.from_uri(key.uri(root), root) == (key, None)
    assert ArtifactKey.from_uri(key.uri(root, 7), root) == (key, 7)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///elsewhere/chat-app/1.1/diff.txt",
        "file:///srv/artifacts/chat-app/diff.txt",
        "file:///srv/artifacts/chat-app/1.1/extra/diff.txt",
        "file:///srv/artifacts/chat-app/1.1/other.txt",
        "file:///srv/artifacts/chat-app/1.1/diff.txt?version=0",
        "file:///srv/artifacts/chat-app/1.1/diff.txt?v=1",
    ],
)
def test_foreign_or_malformed_uris_refused(uri: str) -> None:
    with pytest.raises(InvalidURIError):
        ArtifactKey.from_uri(uri, "file:///srv/artifacts")


def test_uri_with_escaping_parts_refused() -> None:
    with pytest.raises(InvalidNameError):
        ArtifactKey.from_uri("file:///srv/artifacts/../1.1/diff.txt", "file:///srv/artifacts")


def test_keys_parse_back() -> None:
    key = ArtifactKey.of("spec", "t1", ArtifactType.TEST_RESULT)
    record = parse_key(key.record_key(12))
    assert record is not None and (record.artifact, record.version, record.kind) == (
        key,
        12,
        "record",
    )
    obj = parse_key(key.object_key(3, "0123456789abcdef", "gzip"))
    assert obj is not None and (obj.kind, obj.codec, obj.version) == ("object", "gzip", 3)
    assert parse_key("spec/t1/test-result.json") is None
    assert parse_key("spec/t1/.test-result.json.v000001.meta.json.tmp-1") is None


def test_tags() -> None:
    assert validate_tags(["b", "a", "b"]) == ("a", "b")
    assert validate_tags(None) == ()
    assert validate_tag("env:prod") == "env:prod"
    for bad in ["", "-x", "a b", "x" * 129, "a/b", "ü"]:
        with pytest.raises(InvalidNameError):
            validate_tag(bad)
    with pytest.raises(InvalidNameError, match="too many tags"):
        validate_tags([f"t{i}" for i in range(65)])
    with pytest.raises(InvalidNameError):
        validate_tags([1])  # type: ignore[list-item]
