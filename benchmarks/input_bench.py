"""Hostile Compose files at the input limits: seconds and peak memory to load and plan each.

Run: `.venv/bin/python -m benchmarks.input_bench`. Each file runs in a fresh interpreter (so
peak memory is its own) on one core; the goal is at most 2 s and 256 MiB for any file the
limits admit (`tests/hostile.py` builds them; a test checks the memory bound).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests import hostile

ROOT = Path(__file__).resolve().parent.parent

MEASURE = """
import json, resource, sys, time
start = time.process_time()
from compose_operator import compose, render
from compose_operator.errors import ComposeError
from compose_operator.settings import Settings
imported = time.process_time()
text = sys.stdin.read()
try:
    project = compose.load_project(text, environment={"X": "v" * 32 * 1024})
    plan = render.plan(project, app="a", namespace="n", settings=Settings())
    outcome = f"rendered {len(plan.objects)} objects"
except ComposeError as error:
    outcome = f"refused ({len(error.problems)} problems): {error.problems[0].message[:60]}"
seconds = time.process_time() - imported
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak, "outcome": outcome}))
"""


def main() -> int:
    worst_seconds = worst_peak = 0.0
    print(f"{'case':46} {'KiB':>6} {'CPU s':>6} {'peak MiB':>9}  outcome")
    for name, text in hostile.CASES.items():
        result = subprocess.run(
            [sys.executable, "-c", MEASURE],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(ROOT / "operator")},
        )
        measured = json.loads(result.stdout)
        worst_seconds = max(worst_seconds, measured["seconds"])
        worst_peak = max(worst_peak, measured["peak_mib"])
        size = len(text.encode()) / 1024
        print(
            f"{name:46} {size:6.0f} {measured['seconds']:6.2f} {measured['peak_mib']:9.1f}"
            f"  {measured['outcome']}"
        )
    print(f"worst: {worst_seconds:.2f} s CPU, {worst_peak:.1f} MiB peak (goal: 2 s, 256 MiB)")
    return 0 if worst_seconds <= 2 and worst_peak <= 256 else 1


if __name__ == "__main__":
    sys.exit(main())
