"""Artifact types are data: one entry in the registry adds a type everywhere.

The test copies the package, adds one line (a ``coverage`` type) to the
registry in ``models.py`` and nothing else, and runs the store, its
configuration, retention and the command line on the copy in a child process.
"""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from necrocode.artifact_store import ArtifactStoreConfig, ArtifactType, RetentionPolicy

from .conftest import SRC, subprocess_env

ENTRY = '    COVERAGE = ("coverage", "coverage.xml", "application/xml", 21)\n'

SCRIPT = r"""
import json, sys
from datetime import timedelta
from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig, ArtifactType, RetentionDays
from necrocode.artifact_store.models import utc_now

base = sys.argv[1]
config = ArtifactStoreConfig.from_dict(
    {"base_path": base, "retention_policy": {"coverage": 2}, "durable_writes": False}
)
facts = {}
with ArtifactStore(config) as store:
    uri = store.upload("1.1", "spec", "coverage", b"<coverage lines='9'/>")
    meta = store.get_metadata(uri)
    facts["uri"] = uri[len(store.root_uri):]
    facts["mime"] = meta.mime_type
    facts["type"] = meta.type.value
    facts["download"] = store.download(uri).decode()
    facts["search"] = [m.uri == uri for m in store.search(artifact_type=ArtifactType.COVERAGE)]
    facts["usage_types"] = sorted(store.get_usage_by_type())
    facts["expired_now"] = len(store.find_expired())
    facts["expired_in_3_days"] = [
        m.uri == uri for m in store.find_expired(now=utc_now() + timedelta(days=3))
    ]
    facts["rebuilt"] = store.rebuild_index()
facts["default_days"] = RetentionDays().coverage
facts["configured_days"] = config.retention_policy["coverage"]
print(json.dumps(facts))
"""


def _package_with_one_more_type(tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(SRC / "necrocode", copy / "necrocode")
    models = copy / "necrocode" / "artifact_store" / "models.py"
    lines = models.read_text().splitlines(keepends=True)
    anchor = next(i for i, line in enumerate(lines) if line.lstrip().startswith("TEST_RESULT = ("))
    lines.insert(anchor + 1, ENTRY)
    models.write_text("".join(lines))
    return copy


def test_a_fourth_type_is_one_entry(tmp_path: Path) -> None:
    copy = _package_with_one_more_type(tmp_path)
    original = (SRC / "necrocode/artifact_store/models.py").read_text().splitlines()
    changed = (copy / "necrocode/artifact_store/models.py").read_text().splitlines()
    added = [line for line in difflib.ndiff(original, changed) if line.startswith(("+ ", "- "))]
    assert added == ["+ " + ENTRY.rstrip("\n")]

    env = subprocess_env()
    env["PYTHONPATH"] = str(copy)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts == {
        "uri": "/spec/1.1/coverage.xml",
        "mime": "application/xml",
        "type": "coverage",
        "download": "<coverage lines='9'/>",
        "search": [True],
        "usage_types": ["coverage"],
        "expired_now": 0,
        "expired_in_3_days": [True],
        "rebuilt": 1,
        "default_days": 21,
        "configured_days": 2,
    }

    # The command line offers it too, and the environment variable of its retention.
    env["NECROCODE_ARTIFACT_STORE_BASE_PATH"] = str(tmp_path / "store")
    env["NECROCODE_ARTIFACT_STORE_RETENTION_POLICY__COVERAGE"] = "5"
    shown = subprocess.run(
        [sys.executable, "-m", "necrocode.artifact_store", "config", "show", "--json"],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    settings = {s["key"]: s for s in json.loads(shown.stdout)["settings"]}
    assert settings["retention_policy.coverage"]["value"] == 5
    listed = subprocess.run(
        [sys.executable, "-m", "necrocode.artifact_store", "ls", "--type", "coverage", "--json"],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert [row["type"] for row in json.loads(listed.stdout)] == ["coverage"]


def test_the_registry_gives_every_fact_of_a_type() -> None:
    assert [(t.value, t.filename, t.mime_type, t.default_retention_days) for t in ArtifactType] == [
        ("diff", "diff.txt", "text/x-diff", 30),
        ("log", "log.txt", "text/plain", 7),
        ("test", "test-result.json", "application/json", 14),
    ]
    config = ArtifactStoreConfig()
    assert config.retention_policy.as_dict() == {"diff": 30, "log": 7, "test": 14}
    assert config.retention_policy["log"] == config.retention_policy.log == 7


def test_retention_policy_takes_a_mapping_of_type_to_days() -> None:
    policy = RetentionPolicy({"log": 1})
    assert policy.days_by_type() == {"diff": 30, "log": 1, "test": 14}
