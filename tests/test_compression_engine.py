"""Streaming codecs: round trips, bounded output, and damage detection."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from necrocode.artifact_store import CompressionEngine, ConfigError, IntegrityError
from necrocode.artifact_store.backends.base import CHUNK_SIZE

CODECS = ["gzip", "zstd", "none"]


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=20_000), codec=st.sampled_from(CODECS), cut=st.integers(1, 5000))
def test_round_trip_any_bytes(data: bytes, codec: str, cut: int) -> None:
    engine = CompressionEngine(codec)  # type: ignore[arg-type]
    pieces = [data[i : i + cut] for i in range(0, len(data), cut)]
    stored = b"".join(engine.compress_stream(pieces))
    restored = b"".join(
        engine.decompress_stream(
            engine.codec, [stored[i : i + 7] for i in range(0, len(stored), 7)]
        )
    )
    assert restored == data


def test_gzip_output_is_standard_gzip() -> None:
    data = b"diff --git a/x b/x\n" * 1000
    stored = CompressionEngine("gzip").compress(data)
    assert gzip.decompress(stored) == data
    assert len(stored) < len(data) // 10


def test_level_changes_the_output() -> None:
    data = bytes(range(256)) * 4000 + b"abc" * 100_000
    fast = CompressionEngine("gzip", level=1).compress(data)
    best = CompressionEngine("gzip", level=9).compress(data)
    assert len(best) < len(fast)


def test_disabled_engine_stores_as_is() -> None:
    engine = CompressionEngine("gzip", enabled=False)
    assert engine.codec == "none" and not engine.enabled
    assert engine.compress(b"abc") == b"abc"


def test_multi_member_gzip_is_read_whole() -> None:
    stored = gzip.compress(b"first ") + gzip.compress(b"second")
    assert CompressionEngine.decompress(stored, "gzip") == b"first second"


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_output_per_read_is_bounded(codec: str) -> None:
    """A tiny object that inflates to 64 MiB never yields more than asked per read."""
    engine = CompressionEngine(codec)  # type: ignore[arg-type]
    stored = engine.compress(b"\0" * (64 * CHUNK_SIZE))
    assert len(stored) < 2 * CHUNK_SIZE // 10
    source = io.BytesIO(stored)
    read = CompressionEngine.decompressing_reader(engine.codec, source.read)
    total = 0
    while piece := read(CHUNK_SIZE):
        assert len(piece) <= CHUNK_SIZE
        total += len(piece)
    assert total == 64 * CHUNK_SIZE


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[:5],  # cut inside the header
        lambda b: b"",  # empty object
        lambda b: b[:20] + bytes([b[20] ^ 0xFF]) + b[21:],  # flipped byte in the deflate data
        lambda b: b + b"garbage!",  # trailing junk
    ],
)
def test_damaged_gzip_raises_integrity_error(damage: object) -> None:
    stored = CompressionEngine("gzip").compress(bytes(range(256)) * 200)
    with pytest.raises(IntegrityError):
        CompressionEngine.decompress(damage(stored), "gzip")  # type: ignore[operator]


def test_corrupt_zstd_raises_integrity_error() -> None:
    stored = CompressionEngine("zstd").compress(bytes(range(256)) * 200)
    with pytest.raises(IntegrityError):
        CompressionEngine.decompress(stored + b"garbage!", "zstd")


def test_unknown_codec_and_bad_levels() -> None:
    with pytest.raises(ConfigError):
        CompressionEngine("lz4")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="gzip levels are 1-9"):
        CompressionEngine("gzip", level=10)
    with pytest.raises(IntegrityError):
        CompressionEngine.decompress(b"x", "brotli")  # type: ignore[arg-type]


def test_zlib_errors_are_not_leaked() -> None:
    with pytest.raises(IntegrityError) as caught:
        CompressionEngine.decompress(b"\x1f\x8b\x08\x00garbage-garbage", "gzip")
    assert isinstance(caught.value.__cause__, zlib.error)
