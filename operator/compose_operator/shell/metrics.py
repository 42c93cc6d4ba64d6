"""Prometheus metrics: reconciles, their duration, API requests, apps and models by readiness.

Metrics live in their own registry, so tests and several runners in one process never
collide on prometheus-client's global one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from time import perf_counter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.reconciles = Counter(
            "compose_operator_reconciles",
            "Reconciles of ComposeApps by result.",
            ["result"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "compose_operator_reconcile_duration_seconds",
            "Time one reconcile took, API calls included.",
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.api_requests = Counter(
            "compose_operator_api_requests",
            "Kubernetes API requests the reconciler made, by verb and resource.",
            ["verb", "resource"],
            registry=self.registry,
        )
        self.apps = Gauge(
            "compose_operator_apps",
            "ComposeApps by readiness.",
            ["ready"],
            registry=self.registry,
        )
        self.models = Gauge(
            "compose_operator_models",
            "Models of all ComposeApps by readiness.",
            ["ready"],
            registry=self.registry,
        )
        self.offers = Gauge(
            "compose_operator_offers",
            "Models offered to other namespaces (x-kubernetes.offer).",
            registry=self.registry,
        )
        self.bound_apps = Gauge(
            "compose_operator_bound_apps",
            "ComposeApps with at least one model bound to an offer.",
            registry=self.registry,
        )
        self.gpu_deployments_avoided = Gauge(
            "compose_operator_gpu_deployments_avoided",
            "Model bindings to GPU-backed offers: GPU Deployments that do not run.",
            registry=self.registry,
        )
        self.sharing_triggers = Counter(
            "compose_operator_sharing_triggers",
            "Reconciles asked for because an offer, a binding or a namespace changed.",
            registry=self.registry,
        )
        self._apps: dict[tuple[str, str], tuple[bool, int, int]] = {}

    def count_request(self, verb: str, resource: str) -> None:
        self.api_requests.labels(verb=verb, resource=resource).inc()

    @contextmanager
    def timed(self) -> Iterator[None]:
        start = perf_counter()
        try:
            yield
        finally:
            self.reconcile_seconds.observe(perf_counter() - start)

    def record_app(
        self, key: tuple[str, str], *, ready: bool, models: int, ready_models: int
    ) -> None:
        self._apps[key] = (ready, models, ready_models)
        self._refresh()

    def record_sharing(self, *, offers: int, bound_apps: int, gpu_deployments_avoided: int) -> None:
        self.offers.set(offers)
        self.bound_apps.set(bound_apps)
        self.gpu_deployments_avoided.set(gpu_deployments_avoided)

    def forget_app(self, key: tuple[str, str]) -> None:
        self._apps.pop(key, None)
        self._refresh()

    def _refresh(self) -> None:
        ready_apps = sum(1 for ready, _, _ in self._apps.values() if ready)
        self.apps.labels(ready="true").set(ready_apps)
        self.apps.labels(ready="false").set(len(self._apps) - ready_apps)
        ready_models = sum(r for _, _, r in self._apps.values())
        all_models = sum(m for _, m, _ in self._apps.values())
        self.models.labels(ready="true").set(ready_models)
        self.models.labels(ready="false").set(all_models - ready_models)

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
