"""Retention: how long artifacts are kept, and how cleanup removes the expired ones.

Each artifact type has its own retention period (defaults: diff 30 days, log
7, test 14); one upload can override it with ``retention_days``, and a pinned
artifact is never deleted. This example configures a policy, stores a few
artifacts, then looks 10 days into the future (``now=``) to show what a
cleanup run would delete, and runs it. Uses a temporary store.

The same policy in ``~/.necrocode/config/artifact-store.yaml``::

    artifact_store:
      retention_policy: {diff: 90, log: 3, test: 14}
      versioning_enabled: true

and a nightly cleanup from cron::

    15 3 * * *  necrocode-artifacts --quiet cleanup

    python examples/retention_policy_setup.py
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from necrocode.artifact_store import (
    ArtifactStore,
    ArtifactStoreConfig,
    ArtifactType,
    RetentionDays,
)

#: How far ahead the example looks when it asks what has expired.
LOOK_AHEAD = timedelta(days=10)


def run(base_path: Path) -> None:
    """Configure a policy, store artifacts, preview and run a cleanup."""
    config = ArtifactStoreConfig(
        base_path=base_path,
        retention_policy=RetentionDays(diff=90, log=3, test=14),
        versioning_enabled=True,
    )
    with ArtifactStore(config) as store:
        print(f"policy (days): {store.retention_policy.days_by_type()}")

        store.upload("1.1", "chat-app", ArtifactType.DIFF, "--- a\n+++ b\n")
        store.upload("1.1", "chat-app", ArtifactType.LOG, "build log\n")
        store.upload("1.1", "chat-app", ArtifactType.TEST_RESULT, b'{"passed": 3}')
        # An audit log kept a year, whatever the policy for logs says.
        audit = store.upload("1.2", "chat-app", ArtifactType.LOG, "audit\n", retention_days=365)
        # A log needed for an investigation: pinned, so never cleaned up.
        incident = store.upload("1.3", "chat-app", ArtifactType.LOG, "incident\n")
        store.pin(incident)
        # Versioning keeps every upload; old versions can be pruned on their own.
        for attempt in range(3):
            store.upload("2.1", "chat-app", ArtifactType.DIFF, f"attempt {attempt}\n")
        versions = store.get_all_versions(store.search(task_id="2.1")[0].uri)
        print(f"task 2.1 diff has versions {[m.version for m in versions]}")
        pruned = store.delete_old_versions(versions[0].uri, keep=1)
        print(f"pruned {pruned} old versions of the 2.1 diff")

        def short(uri: str) -> str:
            return uri.removeprefix(store.root_uri + "/")

        later = datetime.now(UTC) + LOOK_AHEAD
        expired = store.find_expired(now=later)
        print(f"expired {LOOK_AHEAD.days} days from now: {[short(m.uri) for m in expired]}")

        preview = store.cleanup_expired(dry_run=True, now=later)
        print(f"dry run: would delete {preview.count} ({preview.bytes_freed} bytes stored)")

        report = store.cleanup_expired(now=later)
        print(f"cleanup deleted {report.count}: {[short(uri) for uri in report.uris]}")
        kept = sorted(f"{m.task_id}/{m.type.value}" for m in store.search())
        print(f"kept: {kept}")
        assert store.exists(audit)
        assert store.exists(incident)

        # Every run, dry or not, is one JSON line in the cleanup log.
        log_file = config.effective_state_dir / "cleanup.log"
        runs = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
        print(f"{log_file.name} records {len(runs)} runs; dry runs: {[r['dry_run'] for r in runs]}")


def main() -> None:
    """Run the example on a temporary store."""
    with tempfile.TemporaryDirectory(prefix="necrocode-retention-") as folder:
        run(Path(folder) / "artifacts")
    print("done")


if __name__ == "__main__":
    main()
