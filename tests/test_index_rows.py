"""An index row's record text decodes to exactly what the checked decoder gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from necrocode.artifact_store import (
    ArtifactMetadata,
    ArtifactStore,
    ArtifactStoreConfig,
    IntegrityError,
)
from necrocode.artifact_store.index.rows import decode_record

JUNIT = b"""<?xml version="1.0"?>
<testsuite name="s" tests="3" failures="1" errors="0" skipped="1" time="0.5">
  <testcase classname="pkg.test_a" name="test_ok" time="0.1"/>
  <testcase classname="pkg.test_a" name="test_bad" time="0.2">
    <failure message="x">boom</failure>
  </testcase>
  <testcase classname="pkg.test_a" name="test_skip"><skipped/></testcase>
</testsuite>
"""
DIFF = (
    b"diff --git a/src/app.py b/src/app.py\n--- a/src/app.py\n+++ b/src/app.py\n"
    b"@@ -1,2 +1,2 @@\n-old\n+new\n same\n"
    b"diff --git a/old.txt b/new.txt\nsimilarity index 100%\nrename from old.txt\n"
    b"rename to new.txt\n"
)
LOG = b"INFO start\nERROR it broke\nTraceback (most recent call last):\n  x\nValueError: y\n"


@pytest.fixture
def records(tmp_path: Path) -> list[str]:
    """The stored records of artifacts with every summary kind, a pinned one, metadata."""
    config = ArtifactStoreConfig(base_path=tmp_path / "store", content_summaries=True)
    with ArtifactStore(config) as store:
        uris = [
            store.upload("t1", "s", "test", JUNIT, tags=["a", "b"]),
            store.upload("t1", "s", "diff", DIFF, metadata={"k": [1, {"x": None}]}),
            store.upload("t1", "s", "log", LOG, retention_days=3),
            store.upload("t2", "s", "log", b"plain"),
            store.upload("t2", "s", "log", b"second version"),
        ]
        store.pin(uris[0])
        metas = [store.get_metadata(uri) for uri in uris]
        metas.append(store.get_all_versions(uris[-1])[0])
    plain = ArtifactStoreConfig(
        base_path=tmp_path / "plain", content_summaries=False, compression_enabled=False
    )
    with ArtifactStore(plain) as store:
        metas.append(store.get_metadata(store.upload("t3", "s", "diff", DIFF)))
    return [meta.to_json() for meta in metas]


def test_row_decode_equals_the_checked_decode(records: list[str]) -> None:
    kinds = set()
    for text in records:
        meta = decode_record(text)
        assert meta == ArtifactMetadata.from_json(text)
        assert decode_record(text.encode()) == meta
        kinds.add(None if meta.summary is None else meta.summary.kind)
        assert meta.to_json() == text  # every field reads back, byte for byte
    assert kinds == {None, "test", "diff", "log"}


def test_unexpected_rows_are_still_checked(records: list[str]) -> None:
    data: dict[str, Any] = json.loads(records[0])
    older = dict(data, schema=99)
    with pytest.raises(Exception, match="schema"):
        decode_record(json.dumps(older))
    missing = {k: v for k, v in data.items() if k != "pinned"}
    # The checked path accepts a record without "pinned" (default False): so must this.
    assert decode_record(json.dumps(missing)) == ArtifactMetadata.from_json(json.dumps(missing))
    local = dict(data, created_at="2026-01-01T10:00:00+02:00")
    assert decode_record(json.dumps(local)).created_at.hour == 8


def test_a_row_whose_summary_surprises_gets_the_checked_answer(records: list[str]) -> None:
    decode_record(records[0])  # the typed summary reader is in use from here on
    data: dict[str, Any] = json.loads(records[0])  # the test report's record
    assert data["summary"]["kind"] == "test"
    data["summary"]["test"]["passed"] = "three"
    text = json.dumps(data)
    with pytest.raises(IntegrityError) as from_row:
        decode_record(text)
    with pytest.raises(IntegrityError) as checked:
        ArtifactMetadata.from_json(text)
    assert str(from_row.value) == str(checked.value)
    data["summary"]["test"].update(passed=3, duration=2)  # an int where a float is written
    data["summary"]["extra"] = {"from": "a later release"}
    text = json.dumps(data)
    assert decode_record(text) == ArtifactMetadata.from_json(text)
    assert decode_record(text).summary.test.duration == 2.0  # type: ignore[union-attr]
