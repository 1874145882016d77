"""Real inputs for the content tests: a git repository with every kind of change, and
the reports pytest itself writes for a tiny failing suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "core.quotepath=true", *args],
        cwd=repo,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return result.stdout.decode("utf-8", "surrogateescape")


def make_repo(root: Path) -> Path:
    """A git repository in ``root`` with one staged change of every kind a diff parser meets."""
    git(root, "init", "-q")
    git(root, "config", "user.email", "test@example.invalid")
    git(root, "config", "user.name", "test")
    (root / "keep.py").write_text("".join(f"line{i}\n" for i in range(1, 21)))
    (root / "gone.txt").write_text("x\ny\n")
    (root / "old_name.py").write_text("".join(f"{c}\n" for c in "abcdefghij"))
    (root / "template.py").write_text("".join(f"template line {i}\n" for i in range(30)))
    (root / "img.bin").write_bytes(b"\x00\x01\x02\x03" * 64)
    (root / "auth").mkdir()
    (root / "auth" / "with space.py").write_text("hi\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    git(root, "mv", "old_name.py", "auth/new_name.py")
    with (root / "auth" / "new_name.py").open("a") as handle:
        handle.write("k\n")
    git(root, "rm", "-q", "gone.txt")
    lines = [f"line{i}\n" for i in range(1, 21)]
    lines[1] = "CHANGED\n"
    lines[15] = "-- looks like a header\n"
    (root / "keep.py").write_text("".join(lines) + "no newline")
    (root / "img.bin").write_bytes(b"\x00\xff\x10\x20" * 64)
    (root / "copy_of_template.py").write_text((root / "template.py").read_text() + "extra\n")
    (root / "added.md").write_text("new\n")
    (root / "auth" / "with space.py").chmod(0o755)
    (root / "auth" / "ünï.txt").write_text("ü\n")
    git(root, "add", "-A")
    return root


TINY_SUITE = """
import pytest

def test_ok():
    assert True

def test_login_fails():
    assert 1 + 1 == 3, "math is broken"

@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")

def test_uses_broken(broken):
    pass

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

class TestAuth:
    def test_token(self):
        print("some stdout")
        raise ValueError("bad token")
"""


def run_tiny_suite(folder: Path) -> dict[str, bytes]:
    """Run a tiny failing suite through pytest in ``folder``; return every report it wrote
    (``junit``, ``pytest-json``, ``ctrf``) and its coloured ``stdout``."""
    (folder / "test_tiny.py").write_text(TINY_SUITE)
    (folder / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--color=yes",
            "--junitxml=junit.xml",
            "--json-report",
            "--json-report-file=report.json",
            "--ctrf",
            "ctrf.json",
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout.decode()
    return {
        "junit": (folder / "junit.xml").read_bytes(),
        "pytest-json": (folder / "report.json").read_bytes(),
        "ctrf": (folder / "ctrf.json").read_bytes(),
        "stdout": result.stdout,
    }
