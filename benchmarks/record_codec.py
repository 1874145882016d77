"""What one metadata record costs to write and read, per call (a micro-benchmark).

``python -m benchmarks.record_codec [--number N]`` times the record codecs the
hot paths use on the records of ``tests/fixtures/store-0.1.0`` plus one with a
summary: ``to_json`` (every upload writes one), ``from_trusted_json`` (every
indexed read decodes one), ``from_json`` (reading a record from the backend),
``to_dict`` (the CLI's ``--json``, the API) and ``with_changes`` (an upload
copies its record a few times). Only public methods are timed, so the same
script measures any version of the package; it prints microseconds per call
(the best of five runs) as a Markdown table.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from pathlib import Path

from necrocode.artifact_store import ArtifactMetadata
from necrocode.artifact_store.content.summary import LogSummary, Summary

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "store-0.1.0"


def _records() -> list[ArtifactMetadata]:
    records = [ArtifactMetadata.from_json(p.read_bytes()) for p in sorted(FIXTURE.rglob("*.json"))]
    summary = Summary("log", 1, log=LogSummary(120, 2, 3, 1, 17))
    records.append(records[0].with_changes(summary=summary))
    return records


def _per_call(work: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(work, number=number, repeat=5)) / number * 1e6


def measure(number: int) -> dict[str, float]:
    """Microseconds per record for each codec operation."""
    records = _records()
    texts = [meta.to_json() for meta in records]
    n = len(records)

    def each(operation: Callable[[int], object]) -> Callable[[], None]:
        def run() -> None:
            for i in range(n):
                operation(i)

        return run

    operations: dict[str, Callable[[int], object]] = {
        "to_json (upload: write the record)": lambda i: records[i].to_json(),
        "from_trusted_json (read: decode the index row)": lambda i: (
            ArtifactMetadata.from_trusted_json(texts[i])
        ),
        "from_json (read a record from the backend)": lambda i: ArtifactMetadata.from_json(
            texts[i]
        ),
        "to_dict (CLI --json, API)": lambda i: records[i].to_dict(),
        "with_changes(version=2)": lambda i: records[i].with_changes(version=2),
    }
    return {label: _per_call(each(op), number) / n for label, op in operations.items()}


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="calls per run and record")
    args = parser.parse_args()
    results = measure(args.number)
    print("| Operation | µs per record |")
    print("|---|---|")
    for label, micros in results.items():
        print(f"| {label} | {micros:.2f} |")
    write = results["to_json (upload: write the record)"]
    read = results["from_trusted_json (read: decode the index row)"]
    print(f"| encode + decode (to_json + from_trusted_json) | {write + read:.2f} |")


if __name__ == "__main__":
    main()
