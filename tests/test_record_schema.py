"""The metadata record's one schema: every layout follows the field declarations."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from necrocode.artifact_store import ArtifactMetadata, ArtifactType, IntegrityError
from necrocode.artifact_store.content.summary import (
    ChangedFile,
    DiffSummary,
    LogSummary,
    Summary,
    TestSummary,
)
from necrocode.artifact_store.record import LAYOUT_0_1_0
from necrocode.artifact_store.service.schemas import ArtifactOut


def _meta(**changes: Any) -> ArtifactMetadata:
    base = ArtifactMetadata(
        uri="file:///s/spec/1/log.txt",
        task_id="1",
        spec_name="spec",
        type=ArtifactType.LOG,
        size=20,
        checksum="sha256:" + "a" * 64,
        created_at=datetime(2026, 1, 1, 12, 30, tzinfo=UTC),
        compressed=True,
        stored_size=10,
        mime_type="text/plain",
        codec="gzip",
    )
    return base.with_changes(**changes)


def _stdlib_json(meta: ArtifactMetadata) -> str:
    """The record as json.dumps writes its data: the spelling of release 0.1.0."""
    return json.dumps(json.loads(meta.to_json()), sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    "custom",
    [
        {},
        {"runner": "pytest", "n\u00e9": [1, {"x": None}]},  # escaped as \u00e9
        {"del": "\x7f", "ctl": "\x01\n\t", "line": "\u2028"},
        {"tiny": 1e-05, "huge": 1e16, "fine": 0.25, "zero": 0.0, "big": 2**70},
        {"z": {"b": 1, "a": 2}, "a": [{"y": 1, "x": 2}]},  # nested keys sorted too
    ],
)
def test_records_are_spelt_as_json_dumps_spells_them(custom: dict[str, Any]) -> None:
    meta = _meta(metadata=custom)
    assert meta.to_json() == _stdlib_json(meta)
    assert meta.to_json().isascii()
    assert ArtifactMetadata.from_json(meta.to_json()) == meta


def _floats(value: Any, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if isinstance(value, float):
        return {path}
    if isinstance(value, dict):
        return {found for key, item in value.items() for found in _floats(item, (*path, key))}
    if isinstance(value, list):
        return {found for item in value for found in _floats(item, (*path, "[]"))}
    return set()


@pytest.mark.parametrize("duration", [1e-05, 1e16, 0.25, None])
def test_a_summarys_floats_are_spelt_as_json_dumps_spells_them(duration: float | None) -> None:
    """The record writer looks for exponent-spelt floats only where a summary has
    floats: the test report's duration (and no other field of any summary kind)."""
    files = (ChangedFile("a.py", "renamed", 1, 2, True, "b.py"),)
    summaries = [
        Summary("test", 2, test=TestSummary("junit", False, 1, 2, 3, 4, duration, ("t.x",))),
        Summary("diff", 2, diff=DiffSummary(1, 1, 2, 1, files), capped=True),
        Summary("log", 2, log=LogSummary(9, 1, 2, 3, 4)),
    ]
    for summary in summaries:
        floats = _floats(summary.to_dict())
        assert floats <= {("test", "duration")}
        meta = _meta(summary=summary)
        assert meta.to_json() == _stdlib_json(meta)
        assert ArtifactMetadata.from_json(meta.to_json()) == meta
    assert _floats(summaries[0].to_dict()) == ({("test", "duration")} if duration else set())


def test_later_fields_are_written_only_once_set() -> None:
    """A record that never used a field added after 0.1.0 keeps the 0.1.0 keys."""
    plain = json.loads(_meta().to_json())
    assert set(plain) == {"schema", "original_size"} | (LAYOUT_0_1_0 - {"stored_size"})
    failed = json.loads(_meta(summary_reason="not a log").to_json())
    assert (failed["summary"], failed["summary_reason"]) == (None, "not a log")
    summary = Summary("log", 1, log=LogSummary(3, 1, 0, 0, 2))
    summarised = _meta(summary=summary)
    record = json.loads(summarised.to_json())
    assert record["summary"] == summary.to_dict() and record["summary_reason"] is None
    assert ArtifactMetadata.from_trusted_json(summarised.to_json()) == summarised


def test_the_api_model_is_the_public_layout_plus_urls() -> None:
    meta = _meta(tags=("a",), retention_days=3)
    public = meta.to_dict()
    api = ArtifactOut.of(meta, "http://h").model_dump(mode="json")
    urls = {"artifact_uri", "artifact_type"}
    later = set(meta.__struct_fields__) - LAYOUT_0_1_0  # null in the API until set
    assert set(api) == (set(public) - {"schema", "object_key"}) | urls | later
    assert all(api[name] is None for name in later)
    assert {k: v for k, v in api.items() if k in public and k != "uri"} == {
        k: v for k, v in public.items() if k in api and k != "uri"
    }
    schema = ArtifactOut.model_json_schema()
    assert schema["properties"]["size"]["minimum"] == 0
    assert schema["properties"]["version"]["minimum"] == 1
    assert "bytes uploaded" in schema["properties"]["size"]["description"]
    assert schema["properties"]["type"]["enum"] == [t.value for t in ArtifactType]
    assert "summary" not in schema["required"] and "pinned" in schema["required"]


def test_a_public_layout_text_still_reads_as_a_record() -> None:
    meta = _meta()
    public = meta.to_dict()
    for text in (
        json.dumps(public),
        json.dumps({k: v for k, v in public.items() if k != "schema"}),
    ):
        assert ArtifactMetadata.from_json(text) == meta


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(metadata=[]), "metadata: expected dict, got list"),
        (lambda d: d.update(pinned="yes"), "pinned: expected bool, got str"),
        (lambda d: d.update(version=2**63), "version: must be <= 9223372036854775807"),
        (lambda d: d.update(summary="x"), "summary: expected dict"),
    ],
)
def test_malformed_records_name_the_key(mutate: Any, reason: str) -> None:
    data = json.loads(_meta().to_json())
    mutate(data)
    for load in (ArtifactMetadata.from_json, ArtifactMetadata.from_trusted_json):
        with pytest.raises(IntegrityError, match=reason):
            load(json.dumps(data))


def test_the_deprecated_original_size_keyword() -> None:
    positional = ArtifactMetadata(
        "file:///s/spec/1/log.txt", "1", "spec", ArtifactType.LOG, 10, "sha256:" + "a" * 64,
        datetime(2026, 1, 1, 12, 30, tzinfo=UTC), True, original_size=20, mime_type="text/plain",
        codec="gzip",
    )  # fmt: skip
    assert positional == _meta()
    with pytest.raises(TypeError, match="original_size"):
        ArtifactMetadata(**{**_fields(_meta()), "original_size": 1})


def _fields(meta: ArtifactMetadata) -> dict[str, Any]:
    return {name: getattr(meta, name) for name in meta.__struct_fields__}


def test_the_command_line_starts_without_the_record_schema() -> None:
    """``--help`` and ``--version`` need no record: msgspec loads with the first one."""
    code = (
        "import sys, necrocode.artifact_store.cli.commands, necrocode.artifact_store.models;"
        "assert 'msgspec' not in sys.modules, 'msgspec loaded at start-up'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
