"""Renders per second, load + plan, for a small and a large Compose file (one core).

Run: `.venv/bin/python -m benchmarks.render_bench [--seconds N]`. The operator re-plans on
every reconcile and the webhook plans on every `kubectl apply`, so planning must stay cheap.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from compose_operator.compose import load_project
from compose_operator.render import plan
from compose_operator.settings import Settings

SMALL = """
services:
  web:
    image: chat-app:latest
    ports: ["8080:8080"]
    models: [llm]
models:
  llm:
    model: ai/smollm2
    context_size: 4096
"""


def large(count: int = 50) -> str:
    """`count` models (half on vLLM with a cache) and `count` services, each bound to one."""
    models = "".join(
        f"  model-{i}:\n    model: ai/model-{i}\n    context_size: {1024 * (1 + i % 8)}\n"
        + ("    x-kubernetes: {engine: vllm, gpus: 2, cache: {size: 10Gi}}\n" if i % 2 else "")
        for i in range(count)
    )
    services = "".join(
        f"  svc-{i}:\n    image: app-{i}:1\n    ports: ['{8000 + i}:8080']\n"
        f"    environment: {{LEVEL: info}}\n    models: [model-{i}]\n"
        for i in range(count)
    )
    return f"services:\n{services}models:\n{models}"


def rate(render: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Renders per wall-clock second and per CPU second (the latter is fair on a busy host)."""
    render()  # warm the caches (compiled templates) as a running operator has them
    count, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        render()
        count += 1
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    seconds = parser.parse_args().seconds
    settings = Settings()
    files = (("small (1 model, 1 service)", SMALL), ("large (50 models, 50 services)", large()))
    for label, text in files:

        def render(text: str = text) -> object:
            return plan(load_project(text), app="chat", namespace="team", settings=settings)

        per_wall_second, per_cpu_second = rate(render, seconds)
        print(
            f"{label}: {per_cpu_second:,.0f} renders per CPU second "
            f"({1000 / per_cpu_second:.2f} ms each); {per_wall_second:,.0f} per wall-clock second"
        )


if __name__ == "__main__":
    main()
