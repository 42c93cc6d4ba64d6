"""Hostile Compose files at the input limits: seconds and peak memory to load and plan each.

Run: `.venv/bin/python -m benchmarks.input_bench`. Each file runs in a fresh interpreter (so
peak memory is its own) on one core; the goal is at most 2 s and 256 MiB for any file the
limits admit (`tests/hostile.py` builds them; a test checks the memory bound).
"""

from __future__ import annotations

import sys

from tests import hostile


def main() -> int:
    worst_seconds = worst_peak = 0.0
    print(f"{'case':46} {'KiB':>6} {'CPU s':>6} {'peak MiB':>9}  outcome")
    for name, text in hostile.CASES.items():
        measured = hostile.cost(text)
        worst_seconds = max(worst_seconds, measured.seconds)
        worst_peak = max(worst_peak, measured.peak_mib)
        size = len(text.encode()) / 1024
        print(
            f"{name:46} {size:6.0f} {measured.seconds:6.2f} {measured.peak_mib:9.1f}"
            f"  {measured.outcome}"
        )
    print(f"worst: {worst_seconds:.2f} s CPU, {worst_peak:.1f} MiB peak (goal: 2 s, 256 MiB)")
    return 0 if worst_seconds <= 2 and worst_peak <= 256 else 1


if __name__ == "__main__":
    sys.exit(main())
