"""The README's set-up commands and quick start stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_ci_runs_the_readme_test_command() -> None:
    commands = [b.strip() for b in _blocks("bash")]
    test_command = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()


def test_quick_start_runs_as_written(tmp_path: Path) -> None:
    quick_start = next(b for b in _blocks("python") if "ArtifactStore(" in b)
    env = subprocess_env()
    env["HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", quick_start], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"file://{tmp_path}/.necrocode/artifacts/chat-app/1.1/diff.txt" in result.stdout
    assert "True" in result.stdout
