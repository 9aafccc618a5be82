"""`python -m bench <name> [args]`: run `bench/<name>.py`'s `main(argv)`, then print its figures as the last line.

A benchmark's `main` returns its figures instead of printing them, so the JSON line comes after everything
else, server shutdown included. A benchmark that computes a wrong answer raises: no JSON line, exit status 1.
"""

import importlib
import logging
import pkgutil
import sys

import bench
from bench.harness import emit

NOT_BENCHMARKS = {"__main__", "harness", "consumer_cpu"}


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name not in NOT_BENCHMARKS)


def main(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] not in names:
        if argv:
            print(f"unknown benchmark {argv[0]!r}")
        print("usage: python -m bench <name> [args]   (<name> --help for its options)\navailable:")
        for name in names:
            doc = importlib.import_module(f"bench.{name}").__doc__ or ""
            print(f"  {name:<16} {doc.strip().splitlines()[0] if doc.strip() else ''}")
        return 2 if argv else 0
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up live when piped
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    emit(importlib.import_module(f"bench.{argv[0]}").main(argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
