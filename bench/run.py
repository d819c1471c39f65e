"""Run the benchmark suites: ``python bench/run.py [SUITE ...]`` (default: all).

Each suite is a module ``bench/bench_<suite>.py`` with a ``main(argv) -> int`` that prints a table
of ours versus the peer on the same work.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def suites() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    wanted = argv or suites()
    unknown = [s for s in wanted if s not in suites()]
    if unknown:
        print(f"unknown suite(s) {unknown}; known: {', '.join(suites())}", file=sys.stderr)
        return 2
    status = 0
    for name in wanted:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"bench_{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"\n=== {name} ===", flush=True)
        status |= int(module.main([]) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
