"""Regenerate the DragBench fixtures under tests/fixtures/ (sdelab.bench.examples, from scikit-image's pictures).

    python tools/make_dragbench_fixtures.py
"""

from __future__ import annotations

from pathlib import Path

from sdelab.bench.examples import write_examples

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"

if __name__ == "__main__":
    for folder in write_examples(FIXTURES):
        for path in sorted(folder.rglob("*.*")):
            print(f"{path.relative_to(FIXTURES)}  {path.stat().st_size} bytes")
