"""Metrics: the reconciler's API requests are counted by verb, apps and models by readiness."""

from __future__ import annotations

from compose_operator.settings import Settings
from compose_operator.shell import kube
from compose_operator.shell.metrics import Metrics
from tests.shell_fakes import FakeApi, WatchedReconciler
from tests.test_shell_reconcile import COMPOSE, compose_app


class CountingApi(FakeApi):
    metrics: Metrics

    def _count(self, verb: str, resource: kube.Resource) -> None:
        self.metrics.count_request(verb, resource.plural)

    def apply(
        self, resource: kube.Resource, body: kube.Manifest, *, force: bool = True
    ) -> kube.Manifest:
        self._count("apply", resource)
        return super().apply(resource, body, force=force)


def value(metrics: Metrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_apply_requests_and_readiness_are_counted() -> None:
    metrics = Metrics()
    api = CountingApi()
    api.metrics = metrics
    api.seed(kube.COMPOSE_APPS, compose_app(COMPOSE))
    report = WatchedReconciler(api, Settings(), now=lambda: "t").reconcile("team", "chat")
    metrics.record_app(
        ("team", "chat"), ready=report.ready, models=report.models, ready_models=report.ready_models
    )

    labels = {"verb": "apply", "resource": "deployments"}
    assert value(metrics, "compose_operator_api_requests_total", labels) == 4  # with the gateway
    assert value(metrics, "compose_operator_apps", {"ready": "false"}) == 1
    assert value(metrics, "compose_operator_models", {"ready": "false"}) == 2
    assert value(metrics, "compose_operator_models", {"ready": "true"}) == 0
    metrics.forget_app(("team", "chat"))
    assert value(metrics, "compose_operator_apps", {"ready": "false"}) == 0


def test_durations_and_results() -> None:
    metrics = Metrics()
    with metrics.timed():
        pass
    metrics.reconciles.labels(result="unchanged").inc()
    assert value(metrics, "compose_operator_reconcile_duration_seconds_count", {}) == 1
    assert value(metrics, "compose_operator_reconciles_total", {"result": "unchanged"}) == 1
