"""Many processes write one store while others read it (DESIGN invariant 3).

Writers upload self-describing content (see ``stress_workload``): half to
artifacts every writer shares, half to their own. Two readers download all the
while. Afterwards every upload must be accounted for: the URI downloads intact,
search finds every artifact, version numbers are unique and gap-free, the
index agrees with the records, and no reader ever saw a torn or foreign artifact.
The default run is small; ``-m stress`` runs the full size (8 writers x 200 uploads).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .stress_workload import StressOutcome, StressPlan, check_store, run_stress

READERS = 2
#: The default run: 4 writers x 25 uploads. ``-m stress``: 8 writers x 200 (16 times as many).
SMALL = (4, 25)
FULL = (8, 200)


def _run(tmp_path: Path, size: tuple[int, int], versioning: bool) -> StressOutcome:
    writers, uploads = size
    plan = StressPlan(
        base_path=str(tmp_path / "store"),
        writers=writers,
        uploads_per_writer=uploads,
        readers=READERS,
        versioning=versioning,
        seed=uploads * 2 + versioning,
    )
    outcome = run_stress(plan, tmp_path)
    assert outcome.uploads == writers * uploads
    problems = check_store(outcome)
    assert problems == [], "\n".join(problems)
    errors = [error for reader in outcome.readers for error in reader.errors]
    assert errors == [], "\n".join(errors[:20])
    for name in ("torn", "mismatched", "vanished"):
        assert outcome.reader_total(name) == 0, name
    assert outcome.reader_total("reads") > 0
    return outcome


@pytest.mark.parametrize("versioning", [False, True], ids=["overwrite", "versioned"])
def test_concurrent_writers_and_readers(tmp_path: Path, versioning: bool) -> None:
    _run(tmp_path, SMALL, versioning)


@pytest.mark.stress
@pytest.mark.parametrize("versioning", [False, True], ids=["overwrite", "versioned"])
def test_concurrent_writers_and_readers_full_size(tmp_path: Path, versioning: bool) -> None:
    _run(tmp_path, FULL, versioning)
