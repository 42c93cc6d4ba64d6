"""kopf registrations: only handlers that write nothing themselves, each forwarding one key."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import kopf
import pytest

from compose_operator.settings import Settings
from compose_operator.shell import handlers, kube
from compose_operator.shell.controller import Controller
from compose_operator.shell.metrics import Metrics
from compose_operator.shell.reconcile import real_core
from tests.shell_fakes import unused_reconciler


class RecordingController(Controller):
    """Records each call the handlers make into the controller, and does none of them."""

    def __init__(self) -> None:
        super().__init__(unused_reconciler(), Metrics(), resync_seconds=300)
        self.calls: list[tuple[str, Any]] = []

    def prepare(self, key: tuple[str, str], spec: Any, generation: Any) -> None:
        pass

    def app_observed(self, key: tuple[str, str], body: Any) -> None:
        self.calls.append(("observed", key))

    def app_deleted(self, key: tuple[str, str], body: Any = None) -> None:
        self.calls.append(("deleted", key))

    def object_observed(self, kind: str, body: Any) -> None:
        self.calls.append(("object", (kind, body["metadata"]["name"])))

    def object_deleted(self, kind: str, body: Any) -> None:
        self.calls.append(("object deleted", (kind, body["metadata"]["name"])))

    def flush(self) -> None:
        self.calls.append(("flush", None))

    def trigger(self, key: tuple[str, str]) -> None:
        self.calls.append(("trigger", key))


@pytest.fixture
def controller() -> RecordingController:
    return RecordingController()


@pytest.fixture
def registry(controller: RecordingController) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, controller, validation=(real_core(), Settings()))
    return registry


def call(handler: Any, **kwargs: Any) -> Any:
    result = handler.fn(**kwargs)
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


def watching(registry: kopf.OperatorRegistry) -> dict[str, Any]:
    return {h.id: h for h in registry._watching.get_all_handlers()}


def test_no_handler_makes_kopf_write_to_objects(registry: kopf.OperatorRegistry) -> None:
    assert list(registry._changing.get_all_handlers()) == [], "no diff-base or progress writes"
    assert list(registry._spawning.get_all_handlers()) == [], "no timers/daemons: no kopf finalizer"
    assert [h.id for h in registry._webhooks.get_all_handlers()] == ["validate-compose"]


def test_events_feed_the_index_then_enqueue_what_it_says_changed(
    registry: kopf.OperatorRegistry, controller: RecordingController
) -> None:
    found = watching(registry)
    indexes = {str(h.id): h for h in registry._indexing.get_all_handlers()}
    app = {"metadata": {"name": "chat", "namespace": "ns"}}
    deployment = {"metadata": {"name": "chat-llm", "namespace": "ns"}}
    call(indexes["sharing"], namespace="ns", name="chat", body=app)
    call(found["compose-app-event"], type=None, namespace="ns", name="chat", body=app)
    call(indexes["live-deployments"], body=deployment)
    call(found["deployments-event"], type="MODIFIED", body=deployment)
    call(found["deployments-event"], type="DELETED", body=deployment)
    call(found["compose-app-event"], type="DELETED", namespace="ns", name="chat", body=app)
    index = {("ns", "chat-compose"): ["chat", "other"]}
    call(
        found["config-map-event"],
        type="MODIFIED",
        namespace="ns",
        name="chat-compose",
        body={"metadata": {"name": "chat-compose"}},
        compose_sources=index,
    )
    assert controller.calls == [
        ("observed", ("ns", "chat")),
        ("flush", None),
        ("object", ("Deployment", "chat-llm")),
        ("flush", None),
        ("object deleted", ("Deployment", "chat-llm")),
        ("deleted", ("ns", "chat")),
        ("flush", None),
        ("trigger", ("ns", "chat")),
        ("trigger", ("ns", "other")),
    ]


@pytest.mark.parametrize("network_policies", [False, True])
def test_every_watch_but_the_apps_is_filtered_by_the_api_server(network_policies: bool) -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, RecordingController(), network_policies=network_policies)
    settings = kopf.OperatorSettings()
    handlers.label_selectors(settings, network_policies=network_policies)
    watched = {
        (h.selector.group or "", str(h.selector.any_name))
        for h in [*registry._indexing.get_all_handlers(), *registry._watching.get_all_handlers()]
        if h.selector is not None
    }
    selectors = {
        (group, plural): settings.watching.label_selectors.collect(
            kopf.Resource(group, "v1", plural, namespaced=True)
        )
        for group, plural in sorted(watched)
    }
    expected = {
        ("compose-operator.io", "composeapps"): [],
        ("apps", "deployments"): ["compose-operator.io/app"],
        ("", "services"): ["compose-operator.io/app"],
        ("", "persistentvolumeclaims"): ["compose-operator.io/app"],
        ("", "pods"): ["compose-operator.io/app"],
        ("", "configmaps"): ["compose-operator.io/app"],
        ("policy", "poddisruptionbudgets"): ["compose-operator.io/app"],
    }
    if network_policies:
        expected["networking.k8s.io", "networkpolicies"] = ["compose-operator.io/app"]
    assert selectors == expected
    assert all(h.labels is None for h in registry._watching.get_all_handlers()), (
        "no client-side label filters: the API server sends only what matches"
    )


def test_every_kind_the_operator_creates_feeds_the_live_index() -> None:
    """Reconciles read live objects from the index only: a kind the operator creates but does
    not watch would be applied again on every reconcile, never restored when deleted, and
    never pruned."""
    registry = kopf.OperatorRegistry()
    handlers.register(registry, RecordingController(), network_policies=True)
    indexed = {
        (h.selector.group or "", str(h.selector.any_name))
        for h in registry._indexing.get_all_handlers()
        if h.selector is not None
    }
    assert {(r.group, r.plural) for r in kube.BY_KIND.values()} <= indexed


def test_the_index_maps_config_maps_to_apps(registry: kopf.OperatorRegistry) -> None:
    indexes = {str(h.id): h for h in registry._indexing.get_all_handlers()}
    assert {"compose_sources", "sharing"} <= set(indexes), "kopf passes each index by its id"
    index = indexes["compose_sources"]
    ref = {"composeFrom": {"configMapKeyRef": {"name": "chat-compose", "key": "compose.yaml"}}}
    assert call(index, namespace="ns", name="chat", spec=ref) == {("ns", "chat-compose"): "chat"}
    assert call(index, namespace="ns", name="chat", spec={"compose": "x"}) is None
    files = {
        "compose": "x",
        "files": [
            {"path": "a.db", "configMapKeyRef": {"name": "big-db", "key": "a.db"}},
            {"path": "b.txt", "content": "inline"},
        ],
    }
    assert call(index, namespace="ns", name="chat", spec=files) == {("ns", "big-db"): "chat"}


def test_the_admission_handler_refuses_with_messages(registry: kopf.OperatorRegistry) -> None:
    (validate,) = registry._webhooks.get_all_handlers()
    bad = {"compose": "models:\n  llm:\n    context_size: many\n"}
    with pytest.raises(kopf.AdmissionError) as refused:
        call(validate, spec=bad, namespace="ns", name="chat", meta={})
    assert str(refused.value).startswith("spec.compose: models.llm")
    assert (
        call(
            validate,
            spec={"compose": "models:\n  llm:\n    model: ai/x\n"},
            namespace="ns",
            name="",
            meta={"generateName": "chat-"},
        )
        is None
    )


def test_the_admission_handler_never_blocks_a_deletion(registry: kopf.OperatorRegistry) -> None:
    (validate,) = registry._webhooks.get_all_handlers()
    assert validate.operations is not None
    assert sorted(validate.operations) == ["CREATE", "UPDATE"]
    assert validate.ignore_failures
    bad = {"compose": "models:\n  llm:\n    context_size: many\n"}
    leaving = {"deletionTimestamp": "2026-11-29T10:00:00Z"}
    assert call(validate, spec=bad, namespace="ns", name="chat", meta=leaving) is None


def test_the_admission_handler_parses_off_the_event_loop(registry: kopf.OperatorRegistry) -> None:
    """kopf runs a plain (not async) handler in its thread-pool executor; a large Compose
    file then never stalls the watches, the probes and other admission requests."""
    (validate,) = registry._webhooks.get_all_handlers()
    assert not inspect.iscoroutinefunction(validate.fn)
