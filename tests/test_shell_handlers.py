"""kopf registrations: only handlers that write nothing themselves, each forwarding one key."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import kopf
import pytest

from compose_operator.settings import Settings
from compose_operator.shell import handlers
from compose_operator.shell.reconcile import APP_LABEL, real_core


class RecordingController:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, str]]] = []

    def app_changed(self, key: tuple[str, str]) -> None:
        self.calls.append(("changed", key))

    def app_deleted(self, key: tuple[str, str]) -> None:
        self.calls.append(("deleted", key))

    def trigger(self, key: tuple[str, str]) -> None:
        self.calls.append(("trigger", key))


@pytest.fixture
def controller() -> RecordingController:
    return RecordingController()


@pytest.fixture
def registry(controller: RecordingController) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, controller, validation=(real_core(), Settings()))  # type: ignore[arg-type]
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


def test_events_forward_the_app_key(
    registry: kopf.OperatorRegistry, controller: RecordingController
) -> None:
    found = watching(registry)
    call(found["compose-app-event"], type=None, namespace="ns", name="chat")
    call(found["compose-app-event"], type="DELETED", namespace="ns", name="chat")
    meta_labels = {"labels": {"compose-operator.io/app": "chat"}}
    call(found["deployments-labels-compose-operator.io/app"], namespace="ns", meta=meta_labels)
    meta_annotations = {"annotations": {"compose-operator.io/bound-by": "chat"}}
    call(
        found["deployments-annotations-compose-operator.io/bound-by"],
        namespace="ns",
        meta=meta_annotations,
    )
    index = {("ns", "chat-compose"): ["chat", "other"]}
    event = found["config-map-event"]
    call(event, namespace="ns", name="chat-compose", compose_sources=index, meta={})
    call(event, namespace="ns", name="unrelated", compose_sources=index, meta={})
    gateway_routes = {"labels": {APP_LABEL: "gw"}}  # the model gateway's routing table
    call(event, namespace="ns", name="gw-models", compose_sources=index, meta=gateway_routes)
    assert controller.calls == [
        ("changed", ("ns", "chat")),
        ("deleted", ("ns", "chat")),
        ("trigger", ("ns", "chat")),
        ("trigger", ("ns", "chat")),
        ("trigger", ("ns", "chat")),
        ("trigger", ("ns", "other")),
        ("trigger", ("ns", "gw")),
    ]


def test_owned_object_handlers_filter_on_our_marks(registry: kopf.OperatorRegistry) -> None:
    filters: dict[str, Any] = {
        h.id: (h.labels, h.annotations)
        for h in registry._watching.get_all_handlers()
        if h.id.startswith(("deployments", "services", "persistentvolumeclaims", "pods"))
    }
    assert set(filters) == {
        "deployments-labels-compose-operator.io/app",
        "services-labels-compose-operator.io/app",
        "persistentvolumeclaims-labels-compose-operator.io/app",
        "pods-labels-compose-operator.io/app",
        "deployments-annotations-compose-operator.io/app",
        "deployments-annotations-compose-operator.io/bound-by",
    }
    assert filters["services-labels-compose-operator.io/app"] == (
        {"compose-operator.io/app": kopf.PRESENT},
        None,
    )


def test_the_index_maps_config_maps_to_apps(registry: kopf.OperatorRegistry) -> None:
    indexes = {h.id: h for h in registry._indexing.get_all_handlers()}
    assert set(indexes) == {"compose_sources", "sharing"}, "kopf passes each index by its id"
    index = indexes["compose_sources"]
    ref = {"composeFrom": {"configMapKeyRef": {"name": "chat-compose", "key": "compose.yaml"}}}
    assert call(index, namespace="ns", name="chat", spec=ref) == {("ns", "chat-compose"): "chat"}
    assert call(index, namespace="ns", name="chat", spec={"compose": "x"}) is None


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
