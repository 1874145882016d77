"""The standing fault campaign: a hostile user and a failing machine against the store.

Everything here is marked ``faults``. The default run plays a smaller campaign
(fewer hypothesis examples, every few write points, fewer kills); ``pytest -m
faults`` plays the full one. Every case checks the same promise: nothing is
lost, failures are typed errors of the store's hierarchy (never a raw
OverflowError, TypeError, UnicodeDecodeError, AttributeError, ...), the command
line exits 2 with one line naming the bad value, and the store keeps working.

Parts: hostile configurations, hostile numbers (API and command line), damaged
records and indexes, non-regular output targets, ENOSPC at every write point,
SIGKILL during repair and cleanup.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from necrocode.artifact_store import (
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreConfig,
    ArtifactStoreError,
    ConfigError,
    IntegrityError,
    InvalidInputError,
)
from necrocode.artifact_store.cli import app
from necrocode.artifact_store.models import utc_now
from necrocode.artifact_store.naming import ArtifactKey
from necrocode.artifact_store.settings import env_var_for, resolve_config, setting_defaults

from .conftest import subprocess_env
from .fault_tools import WritePoints, full_campaign

pytestmark = pytest.mark.faults

EXIT_USAGE = 2
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Scale:
    """How much of the campaign this run plays."""

    full: bool
    examples: int
    cli_examples: int
    #: Every how many-th write point gets its ENOSPC (1: every one).
    every: int


@pytest.fixture
def scale(request: pytest.FixtureRequest) -> Scale:
    if full_campaign(request.config):
        return Scale(full=True, examples=300, cli_examples=80, every=1)
    return Scale(full=False, examples=25, cli_examples=8, every=3)


def _settings(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def _cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", str(config), *args])


def _write_config(path: Path, base: Path, **values: Any) -> Path:
    path.write_text(
        yaml.safe_dump({"artifact_store": {"base_path": str(base), **values}}), encoding="utf-8"
    )
    return path


def _assert_clean_exit(result: Result, *names: str) -> None:
    """0, 1 or 2; a failure is one line without a traceback; a usage error names ``names``."""
    assert result.exit_code in (0, 1, EXIT_USAGE), (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    if result.exit_code != 0:
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, result.stderr
        if result.exit_code == EXIT_USAGE:
            assert any(name in lines[0] for name in names), (names, lines[0])


def _canary(store: ArtifactStore) -> str:
    return store.upload("canary", "campaign", "log", b"still here")


def _still_working(store: ArtifactStore, canary: str) -> None:
    """The canary downloads, a new upload round-trips, verify is healthy."""
    assert store.download(canary) == b"still here"
    uri = store.upload("after", "campaign", "diff", b"works afterwards")
    assert store.download(uri) == b"works afterwards"
    assert store.verify_all().healthy


# -- hostile configurations -------------------------------------------------------------------

_HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "\x00", "../..", "1e400", ".inf", "-1", "nan", "0x10", "~"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
_PATH_KEYS = {"base_path", "state_dir"}
_SETTING_KEYS = sorted(setting_defaults())


def test_hostile_setting_values_are_config_errors_or_work(tmp_path: Path, scale: Scale) -> None:
    """Any value for any setting: a ConfigError naming the key, or a store that works."""
    base = tmp_path / "store"

    @_settings(scale.examples)
    @given(key=st.sampled_from(_SETTING_KEYS), value=_HOSTILE_VALUES)
    def check(key: str, value: Any) -> None:
        section, _, leaf = key.partition(".")
        data: dict[str, Any] = {section: {leaf: value}} if leaf else {key: value}
        if key not in _PATH_KEYS:
            data["base_path"] = str(base)
        try:
            config = ArtifactStoreConfig.from_dict(data)
        except ConfigError as exc:
            assert exc.key is None or exc.key.split(".")[0] == section, (exc.key, key)
            return
        if key in _PATH_KEYS:
            return  # valid, but never opened: it may name any folder of the machine
        try:
            store = ArtifactStore(config)
        except ArtifactStoreError:
            return
        with store:
            try:
                uri = store.upload("1.1", "spec", "diff", b"configured")
                assert store.download(uri) == b"configured"
            except ArtifactStoreError:
                pass

    check()


def test_hostile_environment_overrides_are_config_errors_or_work(
    tmp_path: Path, scale: Scale
) -> None:
    """Any text in any NECROCODE_ARTIFACT_STORE_* variable: a ConfigError naming the
    variable, or a valid configuration."""
    texts = st.one_of(
        st.text(max_size=12),
        _HUGE_TEXT,
        st.sampled_from(["1e400", "-1e400", ".nan", "[1, 2]", "{a: 1}", "!!binary AA==", "'"]),
    )

    @_settings(scale.examples)
    @given(key=st.sampled_from(_SETTING_KEYS), text=texts)
    def check(key: str, text: str) -> None:
        env = {"HOME": str(tmp_path), env_var_for(key): text}
        if key not in _PATH_KEYS:
            env[env_var_for("base_path")] = str(tmp_path / "store")
        try:
            resolve_config(environ=env)
        except ConfigError as exc:
            assert env_var_for(key) in str(exc) or "base_path" in str(exc), str(exc)

    check()


_HOSTILE_FILES = {
    "invalid-utf8": b"artifact_store:\n  base_path: caf\xe9\n",
    "duplicate-key": b"artifact_store:\n  verify_checksum: true\n  verify_checksum: false\n",
    "deep-nesting": b"artifact_store: " + b"[" * 1500 + b"]" * 1500,
    "python-tag": b"artifact_store: !!python/object/apply:os.system ['true']\n",
    "top-level-list": b"- 1\n- 2\n",
    "binary": bytes(range(256)),
    "tabs": b"artifact_store:\n\tbase_path: x\n",
    "alias-bomb": b"a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nartifact_store: *c\n",
    "unknown-key": b"artifact_store:\n  base_pth: /tmp/x\n",
    "section-not-mapping": b"artifact_store:\n  retention_policy: 7\n",
    "huge-number": b"artifact_store:\n  retention_policy: {diff: 1" + b"0" * 5000 + b"}\n",
    "empty-base": b'artifact_store:\n  base_path: ""\n',
}


@pytest.mark.parametrize("name", sorted(_HOSTILE_FILES))
def test_hostile_config_files_are_one_line_usage_errors(tmp_path: Path, name: str) -> None:
    """Broken configuration files: exit 2 and one line naming the file; library: ConfigError."""
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(_HOSTILE_FILES[name])
    with pytest.raises(ConfigError):
        ArtifactStoreConfig.from_yaml(path)
    result = _cli(path, "ls")
    assert result.exit_code == EXIT_USAGE, (result.exit_code, result.output)
    _assert_clean_exit(result, str(path))


# -- hostile numbers: the library ----------------------------------------------------------------

_EXTREME_INTS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**100]),
)
_ODD_NUMBERS = st.one_of(
    _EXTREME_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)
_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=23, minutes=59)), timezone(timedelta(hours=-23, minutes=-59))]
)
_MOMENTS = st.one_of(
    st.datetimes(timezones=_ZONES),
    st.sampled_from([datetime.min, datetime.max]).map(lambda d: d.replace(tzinfo=UTC)),
    st.datetimes(),  # naive: refused
)


def _call(operation: Callable[[], object]) -> None:
    """Run ``operation``: success or a typed error, nothing else."""
    with contextlib.suppress(ArtifactStoreError):
        operation()


def test_hostile_numbers_in_every_numeric_parameter(tmp_path: Path, scale: Scale) -> None:
    """Integers, floats and dates at their extremes for every numeric parameter."""
    config = ArtifactStoreConfig(base_path=tmp_path / "store", versioning_enabled=True)
    with ArtifactStore(config) as store:
        canary = _canary(store)
        uri = store.upload("1.1", "spec", "diff", b"v1")
        store.upload("1.1", "spec", "diff", b"v2")
        pruned = store.upload("3.1", "spec", "diff", b"p1")
        store.upload("3.1", "spec", "diff", b"p2")

        calls: dict[str, Callable[[Any], object]] = {
            "retention_days": lambda n: store.upload("2.1", "spec", "log", b"x", retention_days=n),
            "version": lambda n: store.download_version(uri, n),
            "keep": lambda n: store.delete_old_versions(pruned, keep=n),
            "limit": lambda n: store.search(limit=n),
            "uri_version": lambda n: store.download(f"{uri}?version={n}"),
        }

        @_settings(scale.examples)
        @given(name=st.sampled_from(sorted(calls)), value=_ODD_NUMBERS)
        def numbers(name: str, value: Any) -> None:
            _call(lambda: calls[name](value))

        @_settings(scale.examples)
        @given(after=_MOMENTS, before=_MOMENTS, now=_MOMENTS)
        def moments(after: datetime, before: datetime, now: datetime) -> None:
            _call(lambda: store.search(created_after=after, created_before=before))
            _call(lambda: store.find_expired(now=now))
            _call(lambda: store.cleanup_expired(dry_run=True, now=now))

        @_settings(scale.examples)
        @given(st.timedeltas())
        def durations(grace: timedelta) -> None:
            _call(lambda: store.repair(older_than=grace))

        numbers()
        moments()
        durations()
        assert store.download(uri) == b"v2"
        _still_working(store, canary)


# -- hostile numbers: the command line -------------------------------------------------------------

_HUGE_TEXT = st.one_of(
    _EXTREME_INTS.map(str),
    st.text(alphabet="0123456789", min_size=1, max_size=400),
    st.sampled_from(["1e23", "-0", "inf", "nan", "0x1f", "", " 5"]),
)
_DURATION_TEXT = st.one_of(
    st.tuples(_HUGE_TEXT, st.sampled_from("smhdw")).map("".join),
    st.sampled_from(["9999-12-31T23:59:59+14:00", "0001-01-01", "0001-01-01T00:00:00-23:59"]),
    st.text(max_size=8),
)


def _cli_cases() -> st.SearchStrategy[tuple[list[str], str]]:
    """``(arguments, what a usage error must name)``."""
    return st.one_of(
        _HUGE_TEXT.map(lambda n: (["ls", "--limit", n], "--limit")),
        _DURATION_TEXT.map(lambda d: (["ls", "--since", d], "--since")),
        _DURATION_TEXT.map(lambda d: (["repair", "--older-than", d], "--older-than")),
        _HUGE_TEXT.map(lambda n: (["prune-versions", "spec/3.1/diff", "--keep", n], "--keep")),
        _HUGE_TEXT.map(lambda n: (["download", f"spec/1.1/diff?version={n}"], "version")),
        _HUGE_TEXT.map(
            lambda n: (
                ["upload", "-", "-s", "spec", "-t", "9.9", "--type", "log", "--retention-days", n],
                "--retention-days",
            )
        ),
    )


def test_hostile_numbers_on_the_command_line(tmp_path: Path, scale: Scale) -> None:
    """Every numeric option at its extremes: exit 0/1/2, a usage error names the option."""
    base = tmp_path / "store"
    config = _write_config(tmp_path / "store.yaml", base, versioning_enabled=True)
    with ArtifactStore(ArtifactStoreConfig(base_path=base, versioning_enabled=True)) as store:
        canary = _canary(store)
        store.upload("1.1", "spec", "diff", b"v1")
        store.upload("3.1", "spec", "diff", b"p1")
        store.upload("3.1", "spec", "diff", b"p2")

    @_settings(scale.cli_examples * 6)
    @given(_cli_cases())
    def check(case: tuple[list[str], str]) -> None:
        args, name = case
        _assert_clean_exit(_cli(config, *args), name, "Invalid value", "version")

    check()
    with ArtifactStore(ArtifactStoreConfig(base_path=base, versioning_enabled=True)) as store:
        _still_working(store, canary)


# -- damaged records and indexes ---------------------------------------------------------------


def _record_of(store: ArtifactStore, uri: str) -> Path:
    key, version = ArtifactKey.from_uri(uri, store.root_uri)
    meta = store.get_metadata(uri)
    return Path(store.config.base_path) / key.record_key(version or meta.version)


_FIELD_VALUES = st.one_of(
    _EXTREME_INTS,
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def _damage(draw: st.DrawFn, original: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "random", "field", "drop-field"]))
    if kind == "truncate":
        return original[: draw(st.integers(0, len(original) - 1))]
    if kind == "flip":
        at = draw(st.integers(0, len(original) - 1))
        return (
            original[:at] + bytes([original[at] ^ draw(st.integers(1, 255))]) + original[at + 1 :]
        )
    if kind == "random":
        return draw(st.binary(max_size=200))
    data = json.loads(original)
    field = draw(st.sampled_from(sorted(data)))
    if kind == "drop-field":
        del data[field]
    else:
        data[field] = draw(_FIELD_VALUES)
    return json.dumps(data).encode()


def test_damaged_records_are_reported_and_never_lose_bytes(tmp_path: Path, scale: Scale) -> None:
    """Any damage to a record: verify finishes, downloads are right or typed errors,
    repair keeps the object, and restoring the record restores the artifact."""
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        canary = _canary(store)
        uri = store.upload("1.1", "spec", "diff", b"the original bytes")
        record = _record_of(store, uri)
        original = record.read_bytes()
        object_path = Path(store.config.base_path) / store.get_metadata(uri).object_key

        @_settings(scale.examples)
        @given(_damage(original))
        def check(damaged: bytes) -> None:
            record.write_bytes(damaged)
            try:
                store.rebuild_index()
                report = store.verify_all()
                assert report.checked >= 1
                for operation in (lambda: store.download(uri), lambda: store.get_metadata(uri)):
                    try:
                        result = operation()
                    except (IntegrityError, ArtifactNotFoundError):
                        continue
                    if isinstance(result, bytes):
                        assert result == b"the original bytes"
                listed = {m.uri for m in store.search(spec_name="spec")}
                if uri in listed:  # listed: found (a damaged one is an IntegrityError)
                    with contextlib.suppress(IntegrityError):
                        assert store.download(uri) == b"the original bytes"
                store.repair(older_than=timedelta(0))
                assert object_path.exists(), "repair deleted the object of an existing record"
            finally:
                record.write_bytes(original)
                store.rebuild_index()
            assert store.download(uri) == b"the original bytes"

        check()
        _still_working(store, canary)


_INDEX_DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:100]),
    "garbage": lambda p: p.write_bytes(os.urandom(4096)),
    "empty": lambda p: p.write_bytes(b""),
    "deleted": lambda p: p.unlink(),
    "wal-garbage": lambda p: Path(f"{p}-wal").write_bytes(os.urandom(8192)),
    "shm-garbage": lambda p: Path(f"{p}-shm").write_bytes(os.urandom(32768)),
    "a-folder": lambda p: (p.unlink(), p.mkdir()),
    "old-schema": lambda p: _sql(p, "UPDATE index_state SET value = '0' WHERE name = 'schema'"),
    "dropped-table": lambda p: _sql(p, "DROP TABLE tags"),
    "bad-row": lambda p: _sql(p, "UPDATE artifacts SET record = 'not json', size = -5"),
}


def _sql(path: Path, statement: str) -> None:
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute(statement)
    conn.close()


@pytest.mark.parametrize("damage", sorted(_INDEX_DAMAGE))
def test_a_damaged_index_is_rebuilt_and_loses_nothing(tmp_path: Path, damage: str) -> None:
    """The index is a cache: whatever happened to it, everything is found again."""
    config = ArtifactStoreConfig(base_path=tmp_path / "store")
    with ArtifactStore(config) as store:
        canary = _canary(store)
        uris = {store.upload(f"1.{n}", "spec", "diff", f"body {n}".encode()): n for n in range(4)}
    index = config.effective_state_dir / "index.sqlite3"
    _INDEX_DAMAGE[damage](index)
    try:
        with ArtifactStore(config) as store:
            store.rebuild_index() if damage in ("bad-row", "a-folder") else None
            listed = {m.uri for m in store.search(spec_name="spec")}
            assert listed == set(uris)
            for uri, n in uris.items():
                assert store.download(uri) == f"body {n}".encode()
            _still_working(store, canary)
    except ArtifactStoreError as exc:
        # Only a folder where the index file belongs may stop the store, and then
        # with a typed error naming the index.
        assert damage == "a-folder", exc
        assert "index" in str(exc)


# -- non-regular output targets ----------------------------------------------------------------


def _targets(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"untouched")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    yield "fifo", fifo
    link = tmp_path / "link-to-file"
    link.symlink_to(outside / "keep.txt")
    yield "symlink", link
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "diff.txt").symlink_to(outside / "keep.txt")
    yield "folder-with-symlinked-name", folder
    try:
        device = tmp_path / "device"
        os.mknod(device, 0o20666, os.makedev(1, 7))  # a private node with /dev/full's numbers
        yield "device", device
    except PermissionError:
        pass


def test_output_targets_that_are_not_regular_files(tmp_path: Path) -> None:
    """download -o and export -o: refused with exit 2; the target and its link target survive."""
    base = tmp_path / "store"
    config = _write_config(tmp_path / "store.yaml", base)
    with ArtifactStore(ArtifactStoreConfig(base_path=base)) as store:
        canary = _canary(store)
        store.upload("1.1", "spec", "diff", b"payload")
    for _, target in _targets(tmp_path):
        before = os.lstat(target).st_mode
        for args in (
            ["download", "spec/1.1/diff", "-o", str(target)],
            ["export", "-s", "spec", "-o", str(target)],
        ):
            result = _cli(config, *args)
            if target.is_dir() and args[0] == "export":
                assert result.exit_code == 0, result.stderr  # a ZIP inside the folder
                continue
            assert result.exit_code == EXIT_USAGE, (target, result.output)
            _assert_clean_exit(result, str(target))
        assert os.lstat(target).st_mode == before
    assert (tmp_path / "outside" / "keep.txt").read_bytes() == b"untouched"
    with ArtifactStore(ArtifactStoreConfig(base_path=base)) as store:
        _still_working(store, canary)


# -- ENOSPC at every write point -----------------------------------------------------------------

_OPERATIONS: dict[str, Callable[[ArtifactStore, str], object]] = {
    "upload-new": lambda s, u: s.upload("9.9", "spec", "diff", b"new artifact"),
    "upload-replace": lambda s, u: s.upload("1.1", "spec", "diff", b"replacement"),
    "add-tags": lambda s, u: s.add_tags(u, ["full"]),
    "pin": lambda s, u: s.pin(u),
    "delete": lambda s, u: s.delete(u),
    "cleanup": lambda s, u: s.cleanup_expired(now=utc_now() + timedelta(days=3650)),
    "repair": lambda s, u: s.repair(older_than=timedelta(0)),
    "reindex": lambda s, u: s.rebuild_index(),
    "delete-old-versions": lambda s, u: s.delete_old_versions(u, keep=1),
    "export": lambda s, u: s.export_by_spec("spec", output_path=Path(s.config.base_path).parent),
}
_UPLOADED = {b"first", b"second", b"replacement", b"new artifact"}


def _enospc_store(base: Path, versioning: bool) -> tuple[str, str]:
    with ArtifactStore(ArtifactStoreConfig(base_path=base, versioning_enabled=versioning)) as store:
        canary = _canary(store)
        store.pin(canary)  # cleanup keeps it
        store.upload("1.1", "spec", "diff", b"first")
        uri = store.upload("1.1", "spec", "diff", b"second")
        leftover = base / "spec" / "1.1" / ".diff.txt.v000099.abc.gz.tmp-dead"
        leftover.write_bytes(b"leftover")
    return canary, uri


def _consistent_after(base: Path, versioning: bool, canary: str) -> None:
    """Search and download agree, every listed artifact is an uploaded one, nothing else lost."""
    with ArtifactStore(ArtifactStoreConfig(base_path=base, versioning_enabled=versioning)) as store:
        assert store.download(canary) == b"still here"
        for meta in store.search():
            assert store.download(meta.uri) in _UPLOADED | {b"still here"}
        for kind in ("spec/1.1/diff", "spec/9.9/diff"):
            spec, task, artifact = kind.split("/")
            uri = ArtifactKey.of(spec, task, artifact).uri(store.root_uri)
            if uri not in {m.uri for m in store.search()}:
                with pytest.raises(ArtifactNotFoundError):
                    store.download(uri)
        assert store.verify_all().healthy
        _still_working(store, canary)


@pytest.mark.parametrize("versioning", [False, True], ids=["plain", "versioned"])
@pytest.mark.parametrize("operation", sorted(_OPERATIONS))
def test_enospc_at_every_write_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scale: Scale, operation: str, versioning: bool
) -> None:
    """Disk full at the N-th write point of an operation, for every N: a typed error (or
    success when the failure only touched the cache), and a consistent store afterwards."""
    probe = tmp_path / "probe"
    _, uri = _enospc_store(probe, versioning)
    with (
        ArtifactStore(ArtifactStoreConfig(base_path=probe, versioning_enabled=versioning)) as store,
        monkeypatch.context() as patch,
    ):
        points = WritePoints(patch)
        _OPERATIONS[operation](store, uri)
    assert points.count > 0, "the operation writes nothing?"
    offset = hash(operation) % scale.every
    for fail_at in range(1 + offset, points.count + 1, scale.every):
        base = tmp_path / f"at-{fail_at}"
        canary, uri = _enospc_store(base, versioning)
        config = ArtifactStoreConfig(base_path=base, versioning_enabled=versioning)
        with ArtifactStore(config) as store, monkeypatch.context() as patch:
            injected = WritePoints(patch, fail_at)
            with contextlib.suppress(ArtifactStoreError):
                _OPERATIONS[operation](store, uri)
            assert injected.failed
        _consistent_after(base, versioning, canary)


# -- SIGKILL during repair and cleanup ----------------------------------------------------------


def _kill_store(base: Path) -> list[str]:
    config = ArtifactStoreConfig(base_path=base, versioning_enabled=True)
    with ArtifactStore(config) as store:
        kept = [store.upload(f"k.{n}", "keep", "log", f"kept {n}".encode()) for n in range(3)]
        for n in range(3):
            store.upload("1.1", "spec", "diff", f"version {n}".encode())
        folder = base / "spec" / "1.1"
        (folder / ".diff.txt.v000099.abc.gz.tmp-dead").write_bytes(b"leftover")
        (folder / "diff.txt.v000042.deadbeefdeadbeef.gz").write_bytes(b"orphan")
        store.pin(kept[0])
    return kept


@pytest.mark.parametrize("operation", ["repair", "cleanup"])
def test_sigkill_at_every_step_of_repair_and_cleanup(
    tmp_path: Path, scale: Scale, operation: str
) -> None:
    """A kill at any step of repair or cleanup loses nothing it should keep, leaves search
    and download in agreement, and the next run finishes the job."""
    kill_at = 1
    while True:
        base = tmp_path / f"{operation}-{kill_at}"
        kept = _kill_store(base)
        uri = ArtifactKey.of("spec", "1.1", "diff").uri(Path(base).absolute().as_uri())
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.crash_points",
                str(base),
                "1",
                operation,
                uri,
                str(kill_at),
            ],
            env=subprocess_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode in (0, -signal.SIGKILL), result.stderr
        config = ArtifactStoreConfig(base_path=base, versioning_enabled=True)
        with ArtifactStore(config) as store:
            listed = {m.uri: m for m in store.search()}
            for listed_uri in listed:
                store.download(listed_uri)
            assert store.download(kept[0]) == b"kept 0"  # pinned: cleanup keeps it
            if operation == "repair":
                for n, kept_uri in enumerate(kept):
                    assert store.download(kept_uri) == f"kept {n}".encode()
            again = store.repair(older_than=timedelta(0))
            assert again.unreadable_records == []
            report = store.verify_all()
            assert report.healthy and report.orphaned == [] and report.incomplete == []
        if result.returncode == 0:
            break
        kill_at += 1 if scale.full else 2
    assert kill_at > 1


def test_interrupted_removal_is_finished_by_the_next_writer(tmp_path: Path) -> None:
    """An intent left by a killed delete is completed before the artifact's next write."""
    base = tmp_path / "store"
    config = ArtifactStoreConfig(base_path=base)
    with ArtifactStore(config) as store:
        uri = store.upload("1.1", "spec", "diff", b"to delete")
    result = subprocess.run(
        [sys.executable, "-m", "tests.crash_points", str(base), "0", "delete", uri, "2"],
        env=subprocess_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    intents = list((config.effective_state_dir / "intents").glob("*.intent.json"))
    assert len(intents) == 1
    with ArtifactStore(config) as store:  # opening finishes it
        assert not intents[0].exists()
        with pytest.raises(ArtifactNotFoundError):
            store.download(uri)
        assert store.search() == []
        new = store.upload("1.1", "spec", "diff", b"new life")
        assert store.download(new) == b"new life"
    with pytest.raises(InvalidInputError):
        ArtifactKey.from_uri(f"{uri}?version=0", Path(base).absolute().as_uri())
