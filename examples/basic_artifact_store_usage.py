"""Basic use of the NecroCode Artifact Store from Python.

Stores the three artifacts an agent task produces, finds them again, reads
them back (whole and streamed), tags, verifies, measures, exports and deletes
them. Runs on a throw-away filesystem store in a temporary folder, so it
leaves nothing behind; pass ``--base-path`` to use a folder of your own.

    python examples/basic_artifact_store_usage.py
    python examples/basic_artifact_store_usage.py --base-path ~/.necrocode/artifacts
"""

from __future__ import annotations

import argparse
import json
import tempfile
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from necrocode.artifact_store import (
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreConfig,
    ArtifactType,
)

SPEC = "chat-app"
TASK = "1.1"

DIFF = """\
--- a/chat/server.py
+++ b/chat/server.py
@@ -10,3 +10,4 @@ def handle(message):
     room = rooms[message.room]
+    room.touch()
     room.broadcast(message)
"""
TEST_RESULT = {"passed": 41, "failed": 0, "skipped": 2, "duration_s": 12.5}


def run(base_path: Path) -> None:
    """Walk through the API on a store under ``base_path``."""
    config = ArtifactStoreConfig(base_path=base_path)
    with ArtifactStore(config) as store:
        # 1. Upload: bytes, text or a file path; the URI names the artifact from now on.
        diff_uri = store.upload(TASK, SPEC, ArtifactType.DIFF, DIFF, tags=["reviewed"])
        log_file = base_path.parent / "agent.log"
        log_file.write_text("".join(f"step {n}: ok\n" for n in range(1000)), encoding="utf-8")
        log_uri = store.upload(TASK, SPEC, ArtifactType.LOG, log_file)
        test_uri = store.upload(
            TASK,
            SPEC,
            ArtifactType.TEST_RESULT,
            json.dumps(TEST_RESULT).encode(),
            metadata={"runner": "pytest", "python": "3.11"},
        )
        print("uploaded:")
        for uri in (diff_uri, log_uri, test_uri):
            print(f"  {uri}")

        # 2. Metadata: sizes before and after compression, SHA-256, time, MIME type.
        meta = store.get_metadata(log_uri)
        print(
            f"log: {meta.size} bytes stored as {meta.stored_size} ({meta.codec}), "
            f"{meta.checksum[:19]}..., {meta.mime_type}"
        )

        # 3. Download: all at once (verified), or streamed in chunks for large artifacts.
        assert store.download(diff_uri).decode() == DIFF
        with store.open(log_uri) as reader:
            lines = sum(chunk.count(b"\n") for chunk in reader)
        print(f"streamed the log: {lines} lines")
        print(f"test result: {json.loads(store.download(test_uri))}")

        # 4. Search by task, spec, type, time range and tags, in any combination.
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        found = store.search(spec_name=SPEC, created_after=an_hour_ago)
        print(f"artifacts of {SPEC} from the last hour: {[m.type.value for m in found]}")
        print(f"diffs of task {TASK}: {len(store.search(task_id=TASK, artifact_type='diff'))}")
        store.add_tags(log_uri, ["reviewed", "long"])
        tagged = store.search_by_tags(["reviewed"])
        print(f"tagged 'reviewed': {sorted(m.type.value for m in tagged)}")

        # 5. Integrity: one artifact, or everything in the store.
        assert store.verify_checksum(diff_uri)
        report = store.verify_all()
        print(f"verify_all: {report.checked} checked, healthy={report.healthy}")

        # 6. Usage, in total and per spec/type.
        usage = store.get_storage_usage()
        print(
            f"usage: {usage.artifact_count} artifacts, {usage.stored_bytes} bytes stored "
            f"({usage.original_bytes} uploaded)"
        )

        # 7. Export a spec to a ZIP file (artifacts plus a manifest with their metadata).
        archive = store.export_by_spec(SPEC, output_path=base_path.parent / f"{SPEC}.zip")
        with zipfile.ZipFile(archive) as zipped:
            print(f"exported {archive.name}: {sorted(zipped.namelist())}")

        # 8. Delete: by URI, by task or by spec; the count of deleted artifacts comes back.
        print(f"deleted {store.delete_by_task_id(TASK, spec_name=SPEC)} artifacts of {TASK}")
        try:
            store.download(diff_uri)
        except ArtifactNotFoundError as exc:
            print(f"as expected: {exc}")


def main() -> None:
    """Parse the arguments and run the walk-through."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-path", type=Path, help="store folder (default: a temporary one)")
    args = parser.parse_args()
    if args.base_path is not None:
        base = args.base_path.expanduser()
        base.mkdir(parents=True, exist_ok=True)
        run(base)
        return
    with tempfile.TemporaryDirectory(prefix="necrocode-example-") as folder:
        run(Path(folder) / "artifacts")
    print("done")


if __name__ == "__main__":
    main()
