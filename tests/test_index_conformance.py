"""The index conformance suite (``index_conformance.py``) bound to every index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from necrocode.artifact_store.index import MetadataIndex, SQLiteIndex
from necrocode.artifact_store.index.postgres import PostgresIndex

from .index_conformance import IndexConformance


class TestSQLiteIndex(IndexConformance):
    shared = False

    @pytest.fixture
    def index(self, tmp_path: Path) -> Iterator[MetadataIndex]:
        opened = SQLiteIndex(tmp_path / "index.sqlite3")
        yield opened
        opened.close()


class TestPostgresIndex(IndexConformance):
    shared = True

    @pytest.fixture
    def index(self, pg_url: str) -> Iterator[MetadataIndex]:
        opened = PostgresIndex(pg_url, "memory://conformance", connect_timeout=5)
        yield opened
        opened.close()
