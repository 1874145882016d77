"""Backend conformance: one suite, bound to every backend in one line each.

``BackendConformance`` holds the tests; a class per backend supplies the
``backend`` fixture (cloud backends bind it in their own test modules).
Capability flags describe real differences between backends.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from necrocode.artifact_store import (
    ArtifactNotFoundError,
    FilesystemBackend,
    InvalidNameError,
    StorageBackend,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from necrocode.artifact_store.backends.base import (
    CHUNK_SIZE,
    BackendCapabilities,
    ObjectExistsError,
)
from necrocode.artifact_store.backends.memory import MemoryBackend

from .conftest import subprocess_env

SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 7]


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-ish bytes."""
    return bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(size))


class BackendConformance:
    """Behaviour every :class:`StorageBackend` must show."""

    #: URI scheme the backend's root must use.
    scheme = ""
    #: How many keys the pagination test writes (cloud backends page at 1,000).
    many_keys = 1100

    @pytest.fixture
    def backend(self) -> Iterator[StorageBackend]:
        raise NotImplementedError("bind the fixture in the backend's test class")

    def test_root_uri_scheme(self, backend: StorageBackend) -> None:
        assert backend.root_uri.startswith(f"{self.scheme}://")

    @pytest.mark.parametrize("size", SIZES)
    def test_round_trip_bytes(self, backend: StorageBackend, size: int) -> None:
        data = payload(size)
        assert backend.upload("spec/1/blob", data) == size
        assert backend.download("spec/1/blob") == data
        assert backend.get_size("spec/1/blob") == size
        assert backend.exists("spec/1/blob")

    @pytest.mark.parametrize("size", SIZES)
    def test_round_trip_file_object_and_iterable(self, backend: StorageBackend, size: int) -> None:
        data = payload(size, seed=1)
        backend.upload("a/b/from-file", io.BytesIO(data))
        pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
        backend.upload("a/b/from-iter", iter(pieces))
        assert backend.download("a/b/from-file") == data
        assert backend.download("a/b/from-iter") == data

    def test_streaming_read_in_bounded_chunks(self, backend: StorageBackend) -> None:
        data = payload(3 * CHUNK_SIZE + 7, seed=2)
        backend.upload("s/t/big", data)
        with backend.open_read("s/t/big") as stream:
            chunks = list(stream)
        assert all(0 < len(chunk) <= CHUNK_SIZE for chunk in chunks)
        assert b"".join(chunks) == data
        with backend.open_read("s/t/big") as stream:
            head = stream.read(10)
            rest = stream.read()
        assert head + rest == data
        assert stream.closed

    def test_overwrite_replaces(self, backend: StorageBackend) -> None:
        backend.upload("s/t/x", b"old")
        backend.upload("s/t/x", b"new!")
        assert backend.download("s/t/x") == b"new!"

    def test_create_if_absent(self, backend: StorageBackend) -> None:
        backend.upload("s/t/once", b"first", if_absent=True)
        with pytest.raises(ObjectExistsError):
            backend.upload("s/t/once", b"second", if_absent=True)
        assert backend.download("s/t/once") == b"first"

    def test_staged_object_then_the_write_that_refers_to_it(self, backend: StorageBackend) -> None:
        staged = backend.stage("st/1/object", payload(5000, seed=3))
        assert staged.size == 5000
        assert backend.download("st/1/object") == payload(5000, seed=3)
        assert backend.upload_after(staged, "st/1/record", b"refers", if_absent=True) == 6
        assert staged.settled
        assert backend.download("st/1/record") == b"refers"
        # Settling again (after a lost version race, say) is harmless.
        staged.settle()
        assert backend.download("st/1/object") == payload(5000, seed=3)

    def test_write_after_a_staged_object_keeps_create_if_absent(
        self, backend: StorageBackend
    ) -> None:
        backend.upload("st/2/record", b"first", if_absent=True)
        staged = backend.stage("st/2/object", b"bytes")
        with pytest.raises(ObjectExistsError):
            backend.upload_after(staged, "st/2/record", b"second", if_absent=True)
        assert backend.download("st/2/record") == b"first"
        assert backend.download("st/2/object") == b"bytes"

    @pytest.mark.parametrize("offset", [0, 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 7])
    def test_read_from_an_offset(self, backend: StorageBackend, offset: int) -> None:
        data = payload(3 * CHUNK_SIZE + 7, seed=4)
        backend.upload("r/1/blob", data)
        with backend.open_read("r/1/blob") as first:
            revision = first.revision
        with backend.open_read_from("r/1/blob", offset, revision=revision) as rest:
            assert rest.read() == data[offset:]

    def test_capabilities_are_declared(self, backend: StorageBackend) -> None:
        caps = backend.capabilities
        assert isinstance(caps, BackendCapabilities)
        # A backend that renames files into place keeps its state beside them.
        assert not caps.atomic_rename or caps.local_locks

    def test_missing_key(self, backend: StorageBackend) -> None:
        assert not backend.exists("s/t/none")
        assert backend.delete("s/t/none") is False
        with pytest.raises(ArtifactNotFoundError):
            backend.open_read("s/t/none")
        with pytest.raises(ArtifactNotFoundError):
            backend.get_size("s/t/none")
        with pytest.raises(FileNotFoundError):  # the built-in mix-in
            backend.download("s/t/none")

    def test_delete(self, backend: StorageBackend) -> None:
        backend.upload("s/t/gone", b"x")
        assert backend.delete("s/t/gone") is True
        assert not backend.exists("s/t/gone")

    def test_delete_many(self, backend: StorageBackend) -> None:
        for key in ["m/1/a", "m/1/b", "m/2/a", "m/3/keep"]:
            backend.upload(key, key.encode())
        assert backend.delete_many(["m/1/a", "m/1/missing", "m/2/a", "m/1/b"]) == [
            True,
            False,
            True,
            True,
        ]
        assert [i.key for i in backend.list("m/")] == ["m/3/keep"]
        assert backend.delete_many([]) == []

    def test_list_by_prefix(self, backend: StorageBackend) -> None:
        for key in ["p/1/a", "p/1/b", "p/2/a", "q/1/a", "p/10/z"]:
            backend.upload(key, key.encode())
        assert [i.key for i in backend.list("p/1/")] == ["p/1/a", "p/1/b"]
        assert [i.key for i in backend.list("p/1")] == ["p/1/a", "p/1/b", "p/10/z"]
        assert [i.key for i in backend.list("p/1/a")] == ["p/1/a"]
        listed = list(backend.list(""))
        assert [i.key for i in listed] == sorted(i.key for i in listed)
        assert {i.key for i in listed} >= {"p/1/a", "q/1/a"}
        assert {i.key: i.size for i in listed}["p/10/z"] == len(b"p/10/z")

    def test_list_pages_through_many_keys(self, backend: StorageBackend) -> None:
        keys = [f"many/k/{i:05d}" for i in range(self.many_keys)]
        for key in keys:
            backend.upload(key, b"")
        assert [i.key for i in backend.list("many/")] == keys

    def test_failed_upload_leaves_nothing(self, backend: StorageBackend) -> None:
        def broken() -> Iterator[bytes]:
            yield b"x" * CHUNK_SIZE
            raise RuntimeError("source failed")

        with pytest.raises(RuntimeError):
            backend.upload("s/t/broken", broken())
        assert not backend.exists("s/t/broken")
        assert list(backend.list("s/t/")) == []
        assert list(backend.list_incomplete("s/")) == []

    def test_failed_overwrite_keeps_old(self, backend: StorageBackend) -> None:
        backend.upload("s/t/keep", b"old")

        def broken() -> Iterator[bytes]:
            yield b"partial"
            raise RuntimeError("source failed")

        with pytest.raises(RuntimeError):
            backend.upload("s/t/keep", broken())
        assert backend.download("s/t/keep") == b"old"

    @pytest.mark.parametrize("key", ["../x", "/abs/x", "a//b", "a/./b", "a/../b", "", "a/b/.."])
    def test_unsafe_keys_refused(self, backend: StorageBackend, key: str) -> None:
        with pytest.raises(InvalidNameError):
            backend.upload(key, b"x")
        with pytest.raises(ValueError):
            backend.exists(key)


#: Backends that need no server: each is bound to the whole suite by one line here.
#: (Cloud backends bind it in test_backend_s3.py / test_backend_gcs.py with their servers.)
SERVERLESS_BACKENDS: dict[str, Callable[[str], StorageBackend]] = {
    "memory": lambda space: MemoryBackend(space, "prefix"),
}


class TestServerlessBackends(BackendConformance):
    @pytest.fixture(params=sorted(SERVERLESS_BACKENDS))
    def backend(
        self, request: pytest.FixtureRequest, memory_space: str
    ) -> Iterator[StorageBackend]:
        opened = SERVERLESS_BACKENDS[request.param](memory_space)
        self.scheme = opened.root_uri.partition("://")[0]
        yield opened
        opened.close()


class TestMemoryBackend:
    """What the memory backend adds: spaces shared in the process, visible sessions."""

    def test_spaces_are_shared_by_name_and_isolated_by_prefix(self, memory_space: str) -> None:
        one, two = MemoryBackend(memory_space, "a"), MemoryBackend(memory_space, "a")
        other_prefix = MemoryBackend(memory_space, "b")
        one.upload("s/t/k", b"shared")
        assert two.download("s/t/k") == b"shared"
        assert not other_prefix.exists("s/t/k")
        assert one.root_uri == f"memory://{memory_space}/a"
        MemoryBackend.drop_space(memory_space)
        assert not MemoryBackend(memory_space, "a").exists("s/t/k")

    def test_an_unfinished_session_is_incomplete_until_removed(self, memory_space: str) -> None:
        backend = MemoryBackend(memory_space)
        session = backend._start_upload("s/t/big", "s/t/big", if_absent=False)
        session.write(b"part")
        assert not backend.exists("s/t/big")
        [leftover] = backend.list_incomplete("s/")
        assert leftover.key.startswith("s/t/big?session=")
        assert backend.remove_incomplete(leftover.key) is True
        assert list(backend.list_incomplete()) == []
        assert backend.remove_incomplete("s/t/big") is False

    def test_large_uploads_go_through_a_session(self, memory_space: str) -> None:
        backend = MemoryBackend(memory_space)
        data = payload(3 * backend.single_request_limit + 5)
        backend.upload("s/t/big", iter([data[:100], data[100:]]), if_absent=True)
        assert backend.download("s/t/big") == data
        with pytest.raises(ObjectExistsError):
            backend.upload("s/t/big", data, if_absent=True)
        assert list(backend.list_incomplete()) == []


class TestFilesystemBackend(BackendConformance):
    scheme = "file"

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[StorageBackend]:
        yield FilesystemBackend(tmp_path / "root")

    def test_layout_is_plain_files(self, backend: StorageBackend, tmp_path: Path) -> None:
        backend.upload("chat-app/1.1/diff.txt", b"x")
        assert (tmp_path / "root" / "chat-app" / "1.1" / "diff.txt").read_bytes() == b"x"

    def test_interrupted_write_is_incomplete_not_listed(
        self, backend: StorageBackend, tmp_path: Path
    ) -> None:
        folder = tmp_path / "root" / "s" / "t"
        folder.mkdir(parents=True)
        (folder / ".obj.tmp-abc123").write_bytes(b"partial")
        assert list(backend.list("s/")) == []
        leftovers = [i.key for i in backend.list_incomplete("s/")]
        assert leftovers == ["s/t/.obj.tmp-abc123"]
        assert backend.remove_incomplete(leftovers[0])
        assert list(backend.list_incomplete()) == []

    def test_whole_file_reads(self, tmp_path: Path) -> None:
        """``download`` and ``read_small`` read a file with descriptor calls: all of it,
        also when it changed between its size and its read; ``None`` past the limit."""
        backend = FilesystemBackend(tmp_path / "root")
        backend.upload("s/t/a.bin", b"a" * 1000)
        backend.upload("s/t/empty.bin", b"")
        assert backend.download("s/t/a.bin") == b"a" * 1000
        assert backend.download("s/t/empty.bin") == b""
        assert backend.read_small("s/t/a.bin", 1000) == b"a" * 1000
        assert backend.read_small("s/t/a.bin", 999) is None
        real_fstat = os.fstat

        def stale(size: int) -> Callable[[int], os.stat_result]:
            def fstat(fd: int) -> os.stat_result:
                info = list(real_fstat(fd))
                info[6] = size  # st_size as it was a moment before
                return os.stat_result(info)

            return fstat

        for seen in (10, 999, 2000):  # grown, grown by a byte, shrunk since
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(os, "fstat", stale(seen))
                assert backend.download("s/t/a.bin") == b"a" * 1000
                assert backend.read_small("s/t/a.bin", 5000) == b"a" * 1000
                assert backend.read_small("s/t/a.bin", 500) is None
        for missing in ("s/t/none.bin", "s/t"):  # absent, a folder
            with pytest.raises(ArtifactNotFoundError):
                backend.download(missing)
            with pytest.raises(ArtifactNotFoundError):
                backend.read_small(missing, 1 << 20)

    def test_a_names_only_listing_lists_what_the_full_listing_does(self, tmp_path: Path) -> None:
        """``list_names_with_incomplete`` (verify's walk) skips the stat of each file:
        the same keys and leftovers in the same order, sizes and times unknown."""
        backend = FilesystemBackend(tmp_path / "root")
        for key in ("s/t/b.txt", "s/t/a.txt", "s/u/deep/c.txt", "sx/t/d.txt", "r.txt"):
            backend.upload(key, b"12345")
        (tmp_path / "root" / "s" / "t" / ".a.txt.tmp-abc123").write_bytes(b"partial")
        (tmp_path / "root" / "s" / "t" / ".hidden").write_bytes(b"not listed")
        for prefix in ("", "s/", "s/t/a", "sx/"):
            full = [(i.key, tmp) for i, tmp in backend.list_with_incomplete(prefix)]
            names = list(backend.list_names_with_incomplete(prefix))
            assert [(i.key, tmp) for i, tmp in names] == full, prefix
            assert all(i.size == -1 and i.modified is None for i, _ in names)
        assert ("s/t/.a.txt.tmp-abc123", True) in [
            (i.key, tmp) for i, tmp in backend.list_names_with_incomplete("s/")
        ]

    def test_staged_object_is_durable_before_the_write_after_it_appears(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every fsync that makes the staged object durable ends before the record's link."""
        backend = FilesystemBackend(tmp_path / "root")
        events: list[tuple[str, str]] = []
        real_fsync, real_link = os.fsync, os.link

        def fsync(fd: int) -> None:
            real_fsync(fd)
            events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))

        def link(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
            events.append(("link", str(dst)))
            real_link(src, dst)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "link", link)
        staged = backend.stage("spec/task/object", b"bytes")
        assert events == []  # nothing synced yet: that waits for the write after it
        backend.upload_after(staged, "spec/task/record", b"record", if_absent=True)
        folder = str(tmp_path / "root" / "spec" / "task")
        linked = events.index(("link", f"{folder}/record"))
        before = {path for _, path in events[:linked]}
        # The object's data, its folder entry, the new folders and the record's data.
        assert f"{folder}/object" in before
        assert {folder, str(tmp_path / "root" / "spec"), str(tmp_path / "root")} <= before
        assert any(path.startswith(f"{folder}/.record.tmp-") for path in before)
        # Then the record's own entry.
        assert events[linked + 1 :] == [("fsync", folder)]

    def test_a_forked_child_writes_with_its_own_fsync_threads(self, tmp_path: Path) -> None:
        """The parent's fsync threads do not survive fork(); the child starts its own."""
        backend = FilesystemBackend(tmp_path / "root")
        backend.upload_after(backend.stage("a/1/o", b"x"), "a/1/r", b"y")  # threads running
        pid = os.fork()
        if pid == 0:  # the child: exit status says whether its staged write worked
            code = 1
            try:
                backend.upload_after(backend.stage("a/2/o", b"x"), "a/2/r", b"child")
                code = 0 if backend.download("a/2/r") == b"child" else 1
            finally:
                os._exit(code)
        deadline = 60.0
        while deadline > 0:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 0
                return
            deadline -= 0.05
            time.sleep(0.05)
        os.kill(pid, 9)
        pytest.fail("the forked child hung on its fsync threads")

    def test_empty_folders_are_pruned(self, backend: StorageBackend, tmp_path: Path) -> None:
        backend.upload("spec/task/x", b"1")
        backend.upload("spec/other/y", b"2")
        backend.delete("spec/task/x")
        assert not (tmp_path / "root" / "spec" / "task").exists()
        assert (tmp_path / "root" / "spec" / "other" / "y").is_file()

    @pytest.mark.parametrize(
        ("code", "error"),
        [
            (errno.ENOSPC, StorageFullError),
            (errno.EDQUOT, StorageFullError),
            (errno.EACCES, StoragePermissionError),
            (errno.EPERM, StoragePermissionError),
            (errno.EIO, StorageError),
        ],
    )
    def test_os_errors_are_mapped(
        self,
        backend: StorageBackend,
        monkeypatch: pytest.MonkeyPatch,
        code: int,
        error: type[Exception],
    ) -> None:
        """Fault injection on fsync: each errno becomes its typed error, nothing left behind."""
        backend.upload("s/t/old", b"old")

        def failing_fsync(fd: int) -> None:
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "fsync", failing_fsync)
        with pytest.raises(error) as caught:
            backend.upload("s/t/old", b"new")
        monkeypatch.undo()
        assert isinstance(caught.value.__cause__, OSError)
        assert backend.download("s/t/old") == b"old"
        assert list(backend.list_incomplete()) == []
        if error is StoragePermissionError:
            assert isinstance(caught.value, builtins.PermissionError)

    def test_unwritable_folder_gives_permission_error(self) -> None:
        """A real unwritable folder, written to by a process without permission to write."""
        folder = Path(tempfile.mkdtemp(prefix="necrocode-ro-"))
        try:
            folder.chmod(0o755)  # readable by everyone, writable by its owner only
            code = (
                "import builtins, sys\n"
                "from necrocode.artifact_store import FilesystemBackend, StoragePermissionError\n"
                "backend = FilesystemBackend(sys.argv[1], create=False)\n"
                "try:\n"
                "    backend.upload('s/t/x', b'x')\n"
                "except StoragePermissionError as exc:\n"
                "    assert isinstance(exc, builtins.PermissionError)\n"
                "    print('mapped', type(exc.__cause__).__name__)\n"
            )
            folder.chmod(0o555)
            command = [sys.executable, "-c", code, str(folder)]
            if os.geteuid() == 0:
                # Root ignores mode bits through CAP_DAC_OVERRIDE: drop it for the writer.
                setpriv = shutil.which("setpriv")
                if setpriv is None:
                    pytest.skip("running as root and setpriv (util-linux) is not installed")
                caps = "-dac_override,-dac_read_search"
                command = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *command]
            result = subprocess.run(
                command, capture_output=True, text=True, env=subprocess_env(), check=False
            )
            assert result.stdout.strip() == "mapped PermissionError", result.stderr
            assert list(folder.iterdir()) == []
        finally:
            folder.chmod(0o755)
            shutil.rmtree(folder)
