"""``ArtifactStore.upload_many``: several artifacts in one call, one shared commit,
all-or-nothing per artifact with a result per item (issue 14).

Every semantic test runs on a durable filesystem store (where the items share
one fsync round and one index transaction) and on a memory-backend store
(items committed one after the other): the results must be the same.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from necrocode.artifact_store import (
    ArtifactExistsError,
    ArtifactStore,
    ArtifactStoreConfig,
    ArtifactType,
    InvalidInputError,
    InvalidNameError,
    RemoteArtifactStore,
    StorageFullError,
    UploadItem,
    UploadResult,
)
from necrocode.artifact_store.backends.filesystem import sync_counts
from necrocode.artifact_store.cli import app
from necrocode.artifact_store.index.sqlite import SQLiteIndex

from .service_server import ThreadServer

StoreFactory = Callable[..., ArtifactStore]


@pytest.fixture(params=["filesystem", "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Open stores of the parametrised kind (closed after the test)."""
    opened: list[ArtifactStore] = []

    def make(**settings: object) -> ArtifactStore:
        if request.param == "filesystem":
            config = ArtifactStoreConfig(base_path=tmp_path / "store", **settings)
        else:
            config = ArtifactStoreConfig.from_dict(
                {
                    "backend": {"backend_type": "memory", "space": f"many-{uuid.uuid4().hex}"},
                    "state_dir": str(tmp_path / "state"),
                    **settings,
                }
            )
        store = ArtifactStore(config)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def task_items(task: str = "1.1", spec: str = "chat-app") -> list[UploadItem]:
    """A task's diff, log and test result."""
    return [
        UploadItem(task, spec, ArtifactType.DIFF, b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"),
        UploadItem(task, spec, "log", "step 1 ok\nstep 2 ok\n", tags=["ci", "nightly"]),
        UploadItem(task, spec, "test", b"<testsuite tests='1' failures='0'/>", metadata={"n": 1}),
    ]


def test_a_tasks_three_artifacts_are_stored_in_one_call(make_store: StoreFactory) -> None:
    store = make_store()
    items = task_items()
    results = store.upload_many(items)
    assert [r.index for r in results] == [0, 1, 2]
    assert [r.item for r in results] == items
    assert all(r.ok and r.error is None for r in results)
    for result, item in zip(results, items, strict=True):
        assert result.uri is not None
        expected = item.content.encode() if isinstance(item.content, str) else item.content
        assert store.download(result.uri) == expected
        assert result.unwrap() == store.get_metadata(result.uri)
    assert results[1].unwrap().tags == ("ci", "nightly")
    assert results[2].unwrap().metadata == {"n": 1}
    assert {m.uri for m in store.search(task_id="1.1")} == {r.uri for r in results}
    # The same URI as upload() gives for the same artifact.
    assert results[0].uri == store.upload("1.1", "chat-app", "diff", b"again")


def test_the_items_of_a_durable_batch_share_their_commits(tmp_path: Path) -> None:
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        index = store.metadata.index
        assert isinstance(index, SQLiteIndex)
        store.upload("0", "warm", "log", b"creates the spec folder's parents")
        syncs, transactions = sync_counts()[0], index.put_commits[0]
        results = store.upload_many(task_items("2.1"))
        assert all(r.ok for r in results)
        # One round for data, objects and folders, one for the records' folder: not 2 x 3.
        assert sync_counts()[0] - syncs == 2
        assert index.put_commits[0] - transactions == 1


def test_a_failing_item_gets_its_typed_error_and_the_others_are_stored(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    items = [
        UploadItem("1.1", "chat-app", "diff", b"good diff"),
        UploadItem("../escape", "chat-app", "log", b"never stored"),
        UploadItem("1.1", "chat-app", "no-such-type", b"never stored"),
        UploadItem("1.1", "chat-app", "test", b"good test", retention_days=-1),
        UploadItem("1.1", "chat-app", "log", b"good log", tags=["bad/tag"]),
        UploadItem(ref="chat-app/1.2/log", content=b"named by ref"),
        UploadItem("1.1", "chat-app", "test"),
    ]
    results = store.upload_many(items)
    assert [r.ok for r in results] == [True, False, False, False, False, True, False]
    assert isinstance(results[1].error, InvalidNameError)
    assert isinstance(results[2].error, InvalidInputError)
    assert isinstance(results[3].error, InvalidInputError)
    assert isinstance(results[4].error, InvalidNameError)
    assert isinstance(results[6].error, InvalidInputError)  # no content
    assert results[1].uri is None and results[1].metadata is None
    with pytest.raises(InvalidNameError):
        results[1].unwrap()
    stored = {(m.task_id, m.type.value) for m in store.search(spec_name="chat-app")}
    assert stored == {("1.1", "diff"), ("1.2", "log")}
    assert store.verify_all().healthy


def test_content_that_fails_to_read_fails_its_item_with_its_own_exception(
    make_store: StoreFactory,
) -> None:
    store = make_store()

    def broken() -> Iterator[bytes]:
        yield b"half of it"
        raise ConnectionResetError("the agent's stream broke")

    results = store.upload_many(
        [
            UploadItem("1", "spec", "diff", b"fine"),
            UploadItem("1", "spec", "log", broken()),
            UploadItem("1", "spec", "test", b"also fine"),
        ]
    )
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, ConnectionResetError)
    assert {m.type.value for m in store.search(task_id="1")} == {"diff", "test"}
    report = store.verify_all()
    assert report.healthy and report.orphaned == [], report.to_dict()


def test_the_quota_refuses_the_item_that_would_exceed_it(make_store: StoreFactory) -> None:
    # Room for about two incompressible 4 KiB artifacts.
    store = make_store(storage_quota={"max_size_gb": 9_000 / 2**30}, compression_enabled=False)
    body = bytes(range(256)) * 16
    results = store.upload_many(
        [UploadItem(f"t{n}", "spec", "log", body + bytes([n])) for n in range(3)]
    )
    assert [r.ok for r in results] == [True, True, False]
    assert isinstance(results[2].error, StorageFullError)
    assert store.get_storage_usage().stored_bytes <= 9_000
    assert {m.task_id for m in store.search(spec_name="spec")} == {"t0", "t1"}


def test_the_same_artifact_twice_in_a_batch_becomes_two_versions_in_order(
    make_store: StoreFactory,
) -> None:
    store = make_store(versioning_enabled=True)
    first = store.upload_version("1", "spec", "log", b"v1 before the batch")
    results = store.upload_many(
        [
            UploadItem("1", "spec", "log", b"v2 from the batch"),
            UploadItem("1", "spec", "diff", b"another artifact"),
            UploadItem("1", "spec", "log", b"v3 from the batch"),
        ]
    )
    assert [r.unwrap().version for r in results] == [2, 1, 3]
    uri = first.uri
    assert store.download(uri) == b"v3 from the batch"
    assert store.download(f"{uri}?version=2") == b"v2 from the batch"
    assert [m.version for m in store.get_all_versions(uri)] == [1, 2, 3]


def test_without_versioning_the_later_item_replaces_the_earlier(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    results = store.upload_many(
        [
            UploadItem("1", "spec", "log", b"first"),
            UploadItem("1", "spec", "log", b"second"),
        ]
    )
    assert all(r.ok for r in results)
    uri = results[0].uri
    assert uri is not None and uri == results[1].uri
    assert store.download(uri) == b"second"
    assert [m.version for m in store.get_all_versions(uri)] == [results[1].unwrap().version]
    assert store.verify_all().healthy


def test_if_absent_and_if_changed_work_per_item(make_store: StoreFactory) -> None:
    store = make_store(versioning_enabled=True)
    existing = store.upload_version("1", "spec", "log", b"same bytes")
    results = store.upload_many(
        [
            UploadItem("1", "spec", "log", b"other bytes", if_absent=True),
            UploadItem("1", "spec", "log", b"same bytes", if_changed=True),
            UploadItem("1", "spec", "diff", b"new", if_absent=True),
        ]
    )
    assert isinstance(results[0].error, ArtifactExistsError)
    assert results[1].unwrap() == existing  # unchanged: the version stored before
    assert results[2].unwrap().version == 1
    assert [m.version for m in store.get_all_versions(existing.uri)] == [1]


def test_an_empty_batch_does_nothing_and_a_non_item_is_refused(make_store: StoreFactory) -> None:
    store = make_store()
    assert store.upload_many([]) == []
    with pytest.raises(InvalidInputError, match="UploadItem"):
        store.upload_many([UploadItem("1", "s", "log", b"x"), ("1", "s", "log", b"y")])  # type: ignore[list-item]
    assert store.search(spec_name="s") == []


def test_items_and_results_are_frozen_values() -> None:
    item = UploadItem("1", "spec", "log", b"x", tags=["b", "a"])
    assert item.tags == ("b", "a")
    with pytest.raises(AttributeError):
        item.task_id = "2"  # type: ignore[misc]
    result = UploadResult(0, item, error=InvalidInputError("no"))
    assert not result.ok and result.uri is None


# -- over HTTP and on the command line ------------------------------------------------------


def test_the_service_stores_a_batch_with_one_result_per_item(service: ThreadServer) -> None:
    good = base64.b64encode(b"--- a\n+++ b\n").decode()
    body = {
        "items": [
            {"spec_name": "chat", "task_id": "1", "artifact_type": "diff", "content_base64": good},
            {"spec_name": "chat", "task_id": "..", "artifact_type": "log", "content_base64": good},
            {"spec_name": "chat", "task_id": "1", "artifact_type": "log", "content_base64": "*"},
            {
                "spec_name": "chat",
                "task_id": "1",
                "artifact_type": "test",
                "content_base64": good,
                "tags": ["ci"],
                "metadata": {"agent": "r1"},
            },
        ]
    }
    answer = httpx.post(f"{service.url}/v1/batch", json=body)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["status"] for r in results] == [201, 422, 422, 201]
    assert results[1]["error"]["code"] == "invalid_name"
    assert results[2]["error"]["code"] == "invalid_input"
    assert results[3]["artifact"]["tags"] == ["ci"]
    assert results[3]["artifact"]["metadata"] == {"agent": "r1"}
    assert httpx.get(results[0]["artifact"]["uri"]).content == b"--- a\n+++ b\n"
    # The same bytes again: unchanged (200), nothing new stored.
    again = httpx.post(f"{service.url}/v1/batch", json={"items": body["items"][:1]})
    assert again.json()["results"][0]["status"] == 200
    assert again.json()["results"][0]["artifact"]["version"] == 1
    # A malformed manifest stores nothing.
    bad = httpx.post(f"{service.url}/v1/batch", json={"items": [{"spec_name": "x"}]})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_error"


def test_the_remote_client_gets_the_same_results_and_errors(service: ThreadServer) -> None:
    with RemoteArtifactStore(service.url) as remote:
        results = remote.upload_many(
            [
                *task_items(),
                UploadItem("../x", "chat-app", "log", b"bad name"),
                UploadItem("1.1", "chat-app", "diff", b"exists", if_absent=True),
            ]
        )
        assert [r.ok for r in results] == [True, True, True, False, False]
        assert isinstance(results[3].error, InvalidNameError)
        assert isinstance(results[4].error, ArtifactExistsError)
        assert results[1].unwrap().tags == ("ci", "nightly")
        assert remote.download(results[2].uri or "") == b"<testsuite tests='1' failures='0'/>"
        assert results[0].uri == f"{service.url}/artifacts/chat-app/1.1/diff"


def test_the_command_line_uploads_several_files_with_one_call(tmp_path: Path) -> None:
    base = tmp_path / "store"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"artifact_store": {"base_path": str(base)}}))
    (tmp_path / "change.diff").write_bytes(b"--- a\n+++ b\n")
    (tmp_path / "run.log").write_bytes(b"ok\n")
    (tmp_path / "report.xml").write_bytes(b"<testsuite tests='0'/>")
    files = [str(tmp_path / name) for name in ("change.diff", "run.log", "report.xml")]
    runner = CliRunner()
    result = runner.invoke(
        app, ["--config", str(config), "upload", *files, "-s", "chat", "-t", "7", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    stored = json.loads(result.stdout)
    assert [m["type"] for m in stored] == ["diff", "log", "test"]
    with ArtifactStore(ArtifactStoreConfig(base_path=base)) as store:
        assert store.download(stored[1]["uri"]) == b"ok\n"
    # One file that cannot be stored (the quota) does not keep the others out.
    config.write_text(
        yaml.safe_dump(
            {"artifact_store": {"base_path": str(base), "storage_quota": {"max_size_gb": 1e-6}}}
        )
    )
    (tmp_path / "run.log").write_bytes(random.Random(8).randbytes(4096))  # incompressible
    result = runner.invoke(
        app, ["--config", str(config), "upload", *files, "-s", "chat", "-t", "8"]
    )
    assert result.exit_code == 1
    assert "storage quota exceeded" in result.stderr
    assert "stored " in result.stderr
