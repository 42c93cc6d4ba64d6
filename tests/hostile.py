"""Compose files built to cost the operator as much as the input limits let them.

Each is at most 1 MiB. `cost()` loads and plans one in a fresh interpreter: `test_compose_bounds`
checks the peak memory of each, `benchmarks/input_bench.py` prints the time and memory of all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from compose_operator.compose.toplevel import MAX_ENTRIES
from compose_operator.crd import MAX_ENVIRONMENT_VALUE

ENVIRONMENT = {"X": "v" * MAX_ENVIRONMENT_VALUE}
"""The largest interpolation value the CRD admits."""


def alias_bomb(scalar: int, aliases: int) -> str:
    """A scalar of `scalar` characters, listed `aliases` times by alias: a small file."""
    refs = ", ".join(["*big"] * aliases)
    return f"x-big: &big {'a' * scalar}\nx-many: [{refs}]\nservices: {{}}\n"


def interpolation_bomb(uses: int) -> str:
    """`${X}` (the largest value) aliased `uses` times."""
    return "x-a: &x '${X}'\nx-b: [" + ", ".join(["*x"] * uses) + "]\nservices: {}\n"


def inline_interpolation(uses: int) -> str:
    """`${X}` written `uses` times in one scalar."""
    return "x-a: '" + "${X}" * uses + "'\nservices: {}\n"


def merge_bomb(keys: int, merges: int) -> str:
    """A mapping of `keys` entries merged (`<<`) into `merges` services."""
    base = ", ".join(f"k{n}: {'v' * 20}" for n in range(keys))
    services = "".join(f"  s{n}: {{<<: *base, image: x}}\n" for n in range(merges))
    return f"x-base: &base {{{base}}}\nservices:\n{services}"


def deep_long_keys(depth: int, key: int, aliases: int) -> str:
    """Nested mappings with long keys (long paths), aliased."""
    inner = "v"
    for level in range(depth):
        inner = f"{{{chr(97 + level % 26) * key}: {inner}}}"
    return f"x-a: &a {inner}\nx-b: [" + ", ".join(["*a"] * aliases) + "]\nservices: {}\n"


def unknown_keys(count: int) -> str:
    return "services:\n  app: {image: x, " + ", ".join(f"k{n}: 1" for n in range(count)) + "}\n"


def invalid_values(count: int) -> str:
    """`count` ports that are not ports: a problem each."""
    return "services:\n  app: {image: x, ports: [" + ", ".join(["x"] * count) + "]}\n"


def services_at_the_cap(value: int) -> str:
    """The most services and models, each service bound and with a long variable."""
    services = "".join(
        f"  s{n}:\n    image: x:1\n    ports: ['{8000 + n}']\n"
        f"    environment: {{A: '{'v' * value}'}}\n    models: [m{n % MAX_ENTRIES['models']}]\n"
        for n in range(MAX_ENTRIES["services"])
    )
    models = "".join(
        f"  m{n}: {{model: ai/m{n}, x-kubernetes: {{engine: vllm, cache: {{size: 1Gi}}}}}}\n"
        for n in range(MAX_ENTRIES["models"])
    )
    return f"services:\n{services}models:\n{models}"


CASES = {
    "alias bomb (80 KB x 100)": alias_bomb(80_000, 100),
    "alias bomb over the cap (85 KB x 12,000)": alias_bomb(85_000, 12_000),
    "interpolation (32 KiB x 250)": interpolation_bomb(250),
    "interpolation over the cap (32 KiB x 30,000)": interpolation_bomb(30_000),
    "inline interpolation (32 KiB x 200,000)": inline_interpolation(200_000),
    "merge keys (400 keys x 240)": merge_bomb(400, 240),
    "deep long keys (60 x 1,000, aliased twice)": deep_long_keys(60, 1_000, 2),
    "deep long keys (60 x 1,000, aliased 1,000 times)": deep_long_keys(60, 1_000, 1_000),
    "90,000 unknown keys": unknown_keys(90_000),
    "90,000 invalid ports": invalid_values(90_000),
    "256 services and 64 models": services_at_the_cap(3_000),
}


MEASURE = f"""
import json, resource, sys, time
from compose_operator import compose, render
from compose_operator.errors import ComposeError
from compose_operator.settings import Settings
imported = time.process_time()
text = sys.stdin.read()
try:
    project = compose.load_project(text, environment={{"X": "v" * {MAX_ENVIRONMENT_VALUE}}})
    plan = render.plan(project, app="a", namespace="n", settings=Settings())
    outcome = f"rendered {{len(plan.objects)}} objects"
except ComposeError as error:
    outcome = f"refused ({{len(error.problems)}} problems): {{error.problems[0].message[:60]}}"
seconds = time.process_time() - imported
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": seconds, "peak_mib": peak_mib, "outcome": outcome}}))
"""


@dataclass(frozen=True)
class Cost:
    seconds: float
    """CPU seconds to load and plan, the imports left out."""
    peak_mib: float
    """The interpreter's peak resident memory, imports included."""
    outcome: str


def cost(text: str) -> Cost:
    """Load and plan `text` with the largest environment value, in a fresh interpreter (so the
    peak memory is this file's own)."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent / "operator")},
    )
    return Cost(**json.loads(result.stdout))
