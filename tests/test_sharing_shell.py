"""Shared models in the shell: the index and its re-reconcile rules, and the reconciler's
sharing paths against the recording fake API."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

from compose_operator.plan import OfferRef
from compose_operator.settings import Settings, SharingPolicy
from compose_operator.settings import Sharing as SharingSettings
from compose_operator.shell import kube
from compose_operator.shell.controller import Controller
from compose_operator.shell.metrics import Metrics
from compose_operator.shell.queue import ReconcileQueue
from compose_operator.shell.reconcile import FINALIZER, Sharing, real_core
from compose_operator.shell.sharing import SharingIndex
from tests.shell_fakes import FakeApi, WatchedReconciler, unused_reconciler

LLM_OFFER = OfferRef("platform", "models", "llm")

NOW = "2026-11-29T10:00:00Z"
TRUSTED = Settings(sharing=SharingSettings(offer_namespaces=("platform",)))
"""The platform namespace may offer models."""

PLATFORM = """\
models:
  llm:
    model: ai/llama3.2
    context_size: 8192
    x-kubernetes:
      offer: {namespaces: [team-a, team-b]}
"""
SELECTOR_PLATFORM = """\
models:
  llm:
    model: docker.io/ai/llama3.2:latest
    context_size: 8192
    x-kubernetes:
      offer:
        namespaceSelector: {matchLabels: {tier: ai}}
"""
TEAM = """\
services:
  chat:
    image: chat:1
    models: [llm]
models:
  llm:
    model: ai/llama3.2
    context_size: 4096
"""
OTHER_MODEL = TEAM.replace("ai/llama3.2", "ai/smollm2")


def app(namespace: str, name: str, compose: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "generation": 1,
        },
        "spec": {"compose": compose},
    }
    for key, value in extra.items():
        body[key] = value
    return body


def bound_status(*sources: tuple[str, str]) -> dict[str, Any]:
    return {"models": [{"name": key, "source": source} for key, source in sources]}


@pytest.fixture
def index() -> SharingIndex:
    return SharingIndex(real_core(), TRUSTED)


def test_an_offer_appearing_affects_exactly_the_apps_that_want_its_model(
    index: SharingIndex,
) -> None:
    assert index.observe(("team-a", "chat"), app("team-a", "chat", TEAM)) == set()
    assert index.observe(("team-b", "chat"), app("team-b", "chat", TEAM)) == set()
    assert index.observe(("team-c", "chat"), app("team-c", "chat", TEAM)) == set()
    for n in range(20):
        index.observe(("team-x", f"other-{n}"), app("team-x", f"other-{n}", OTHER_MODEL))

    affected = index.observe(("platform", "models"), app("platform", "models", PLATFORM))

    assert affected == {("team-a", "chat"), ("team-b", "chat"), ("team-c", "chat")}, (
        "every app that wants the reference (admitted or not: a require-stalled app's "
        "message changes too), none of the 20 others"
    )


def test_an_unchanged_offer_affects_nobody(index: SharingIndex) -> None:
    index.observe(("team-a", "chat"), app("team-a", "chat", TEAM))
    index.observe(("platform", "models"), app("platform", "models", PLATFORM))
    status_only = app("platform", "models", PLATFORM, status={"ready": {"models": "1/1"}})
    assert index.observe(("platform", "models"), status_only) == set()


def test_changing_an_offer_affects_its_users_and_bound_apps(index: SharingIndex) -> None:
    index.observe(("team-a", "chat"), app("team-a", "chat", TEAM))
    index.observe(("team-z", "quiet"), app("team-z", "quiet", OTHER_MODEL))
    index.observe(("platform", "models"), app("platform", "models", PLATFORM))
    smaller = app("platform", "models", PLATFORM.replace("8192", "2048"))
    smaller["metadata"]["generation"] = 2
    assert index.observe(("platform", "models"), smaller) == {("team-a", "chat")}


def test_an_offer_being_deleted_is_withdrawn_at_once(index: SharingIndex) -> None:
    bound = bound_status(("llm", "shared: platform/models/llm"))
    index.observe(("team-a", "chat"), app("team-a", "chat", TEAM, status=bound))
    index.observe(("platform", "models"), app("platform", "models", PLATFORM))
    deleting = app("platform", "models", PLATFORM)
    deleting["metadata"]["deletionTimestamp"] = NOW
    assert index.observe(("platform", "models"), deleting) == {("team-a", "chat")}
    assert index.view(("team-a", "chat")).offers == ()
    assert index.view(("platform", "models")).served == {"llm": (("team-a", "chat"),)}, (
        "withdrawn, yet serving its bound app until that moved: the deletion waits"
    )
    assert index.forget(("platform", "models")) == set()


def test_a_binding_change_re_reconciles_the_offering_apps(index: SharingIndex) -> None:
    index.observe(("platform", "models"), app("platform", "models", PLATFORM))
    index.observe(("team-a", "chat"), app("team-a", "chat", TEAM))
    affected = index.learn(("team-a", "chat"), offers=(), wants=None, bound={"llm": LLM_OFFER})
    assert affected == {("platform", "models")}
    assert index.view(("platform", "models")).served == {"llm": (("team-a", "chat"),)}
    assert index.learn(("team-a", "chat"), offers=None, wants=None, bound={}) == {
        ("platform", "models")
    }
    assert index.view(("platform", "models")).served == {"llm": ()}


def test_bindings_survive_a_restart_through_the_status(index: SharingIndex) -> None:
    bound = bound_status(("llm", "shared: platform/models/llm"), ("embed", "own"))
    index.observe(("team-a", "chat"), app("team-a", "chat", TEAM, status=bound))
    index.observe(("platform", "models"), app("platform", "models", PLATFORM))
    assert index.view(("platform", "models")).served == {"llm": (("team-a", "chat"),)}
    totals = index.totals()
    assert (totals.offers, totals.bound_apps, totals.bindings) == (1, 1, 1)
    assert totals.gpu_deployments_avoided == 1, "the offer runs on the default 1 GPU"


def test_compose_from_apps_are_learned_from_their_reconcile(index: SharingIndex) -> None:
    from_config_map = app("platform", "models", "")
    from_config_map["spec"] = {"composeFrom": {"configMapKeyRef": {"name": "m", "key": "k"}}}
    index.observe(("team-a", "chat"), app("team-a", "chat", TEAM))
    assert index.observe(("platform", "models"), from_config_map) == set()
    offers = SharingIndex(real_core(), TRUSTED)
    offers.observe(("platform", "models"), app("platform", "models", PLATFORM))
    learned = offers.view(("x", "y")).offers
    assert index.learn(("platform", "models"), offers=learned, wants=None, bound=None) == {
        ("team-a", "chat")
    }


def test_a_namespace_label_change_checks_only_its_apps_that_selector_offers_could_admit(
    index: SharingIndex,
) -> None:
    index.observe(("team-a", "chat"), app("team-a", "chat", TEAM))
    index.observe(("team-a", "other"), app("team-a", "other", OTHER_MODEL))
    index.observe(("team-b", "chat"), app("team-b", "chat", TEAM))
    index.observe(("platform", "models"), app("platform", "models", PLATFORM))
    assert index.apps_to_check_in("team-a") == set(), "list offers do not read labels"
    index.observe(("platform", "shared"), app("platform", "shared", SELECTOR_PLATFORM))
    assert index.apps_to_check_in("team-a") == {("team-a", "chat")}


async def never_run(key: tuple[str, str], resync: bool) -> float | None:
    raise AssertionError(f"the recording queue reconciles nothing, {key} included")


class RecordingQueue(ReconcileQueue):
    """Records what the controller enqueues; reconciles nothing."""

    def __init__(self) -> None:
        super().__init__(never_run)
        self.enqueued: list[tuple[str, str]] = []

    def enqueue(self, key: tuple[str, str], *, resync: bool = False) -> None:
        self.enqueued.append(key)

    def forget(self, key: tuple[str, str]) -> None:
        pass


def test_index_updates_wait_for_the_next_event_handler() -> None:
    """kopf runs index handlers for the whole initial listing before any other handler:
    triggers collected then go out with the first event, never against a half-built index."""
    index = SharingIndex(real_core(), TRUSTED)
    metrics = Metrics()
    controller = Controller(unused_reconciler(), metrics, resync_seconds=300, sharing=index)
    queue = RecordingQueue()
    controller.queue = queue
    controller.app_observed(("team-a", "chat"), app("team-a", "chat", TEAM))
    controller.app_observed(("platform", "models"), app("platform", "models", PLATFORM))
    assert queue.enqueued == []
    controller.flush()  # the first event handler kopf runs once every index is built
    assert queue.enqueued == [("platform", "models"), ("team-a", "chat")]
    assert metrics.offers._value.get() == 1
    controller.app_deleted(("platform", "models"), app("platform", "models", PLATFORM))
    assert queue.enqueued[-1] == ("team-a", "chat")


def test_an_opt_in_naming_an_apps_uid_triggers_that_app() -> None:
    controller = Controller(unused_reconciler(), Metrics(), resync_seconds=300)
    queue = RecordingQueue()
    controller.queue = queue
    controller.app_observed(("team-a", "chat"), app("team-a", "chat", TEAM))
    controller.trigger(("team-a", "uid-team-a-chat"))
    controller.trigger(("team-a", "chat"))
    assert queue.enqueued == [("team-a", "chat"), ("team-a", "chat")]
    controller.app_deleted(("team-a", "chat"))
    assert controller.by_uid == {}


# The reconciler's sharing paths.


APPLIED = {"models": [{"name": "llm", "source": "own"}]}


def offer_view(compose: str = PLATFORM, served: Any = None) -> Sharing:
    index = SharingIndex(real_core(), TRUSTED)
    index.observe(("platform", "models"), app("platform", "models", compose, status=APPLIED))
    offers = index.view(("platform", "models")).offers
    return Sharing(offers=offers, served=served or {})


def reconciler(
    api: FakeApi, sharing: SharingPolicy = "prefer", **settings: Any
) -> WatchedReconciler:
    # Per-model URLs, so the env shows where each binding points; the gateway: test_sharing.py.
    settings.setdefault("model_endpoint", "direct")
    trust = SharingSettings(policy=sharing, offer_namespaces=("platform",))
    return WatchedReconciler(api, Settings(sharing=trust, **settings), now=lambda: NOW)


def live_status(api: FakeApi, namespace: str, name: str) -> dict[str, Any]:
    live = api.live(kube.COMPOSE_APPS, namespace, name)
    assert live is not None
    return dict(live.get("status", {}))


def kinds(api: FakeApi) -> list[str]:
    return sorted(f"{r.resource}/{r.name}" for r in api.writes() if r.verb == "apply")


def test_a_bound_app_runs_no_model_and_points_across_namespaces() -> None:
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("team-a", "chat", TEAM))
    report = reconciler(api).reconcile("team-a", "chat", shared=offer_view())
    assert kinds(api) == ["deployments/chat"]
    chat = api.live(kube.DEPLOYMENTS, "team-a", "chat")
    assert chat is not None
    env = chat["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [
        {"name": "LLM_MODEL", "value": "ai/llama3.2"},
        {"name": "LLM_URL", "value": "http://models-llm.platform.svc.cluster.local/v1/"},
    ]
    status = live_status(api, "team-a", "chat")
    assert status["models"] == [
        {
            "name": "llm",
            "model": "ai/llama3.2",
            "engine": "llama.cpp",
            "endpoint": "http://models-llm.platform.svc.cluster.local/v1/",
            "source": "shared: platform/models/llm",
            "replicas": 0,
        }
    ]
    assert status["ready"]["shared"] == "1/1"
    assert report.bound == {"llm": LLM_OFFER}
    assert [e["reason"] for e in api.events if e["reason"] == "BoundToOffer"] == ["BoundToOffer"]


def test_a_namespace_not_admitted_runs_its_own_under_prefer() -> None:
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("team-c", "chat", TEAM))
    report = reconciler(api).reconcile("team-c", "chat", shared=offer_view())
    assert kinds(api) == ["deployments/chat", "deployments/chat-llm", "services/chat-llm"]
    assert report.bound == {}


def test_require_without_a_match_applies_nothing_and_stalls_with_the_reasons() -> None:
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("team-c", "chat", TEAM))
    reconciler(api, sharing="require").reconcile("team-c", "chat", shared=offer_view())
    assert kinds(api) == []
    status = live_status(api, "team-c", "chat")
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "SharingRefused")
    assert stalled["message"] == (
        "models.llm: sharing policy is require and no offer of ai/llama3.2 matches: "
        "1 offer not offered to namespace team-c"
    )
    assert status["models"] == [
        {
            "name": "llm",
            "model": "ai/llama3.2",
            "source": "refused",
            "message": stalled["message"],
        }
    ]
    assert "SharingRefused" in [e["reason"] for e in api.events]


def test_require_after_losing_the_offer_removes_what_ran() -> None:
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("team-a", "chat", TEAM))
    rec = reconciler(api, sharing="require")
    rec.reconcile("team-a", "chat", shared=offer_view())
    assert api.live(kube.DEPLOYMENTS, "team-a", "chat") is not None
    rec.reconcile("team-a", "chat", shared=offer_view(PLATFORM.replace("8192", "1024")))
    assert api.live(kube.DEPLOYMENTS, "team-a", "chat") is None, (
        "no service may keep an endpoint whose offer no longer serves it"
    )
    message = live_status(api, "team-a", "chat")["conditions"][2]["message"]
    assert message.endswith("platform/models/llm: context_size: the offer serves 1024, 4096 needed")


def test_prefer_after_losing_the_offer_runs_its_own_before_the_env_moves() -> None:
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("team-a", "chat", TEAM))
    rec = reconciler(api)
    rec.reconcile("team-a", "chat", shared=offer_view())
    api.clear()
    rec.reconcile("team-a", "chat", shared=Sharing())
    applied = [f"{r.resource}/{r.name}" for r in api.writes() if r.verb == "apply"]
    assert applied == ["services/chat-llm", "deployments/chat", "deployments/chat-llm"], (
        "the Service the env will name exists before the env names it"
    )
    events = [e["reason"] for e in api.events]
    assert "UnboundFromOffer" in events


def test_an_offer_serving_apps_holds_its_deletion_until_they_moved() -> None:
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("platform", "models", PLATFORM))
    served = {"llm": (("team-a", "chat"), ("team-b", "chat"))}
    rec = reconciler(api)
    rec.reconcile("platform", "models", shared=offer_view(served=served))
    live = api.live(kube.COMPOSE_APPS, "platform", "models")
    assert live is not None and FINALIZER in live["metadata"]["finalizers"]
    status = live_status(api, "platform", "models")
    assert status["models"][0]["servedApps"] == 2
    assert status["models"][0]["servedNamespaces"] == ["team-a", "team-b"]
    assert status["ready"]["serving"] == 2
    serving = [e["message"] for e in api.events if e["reason"] == "OfferServing"]
    assert serving == ["model llm: offered, serving 2 apps (namespaces: team-a, team-b)"]

    api.others["composeapps", "platform", "models"]["metadata"]["deletionTimestamp"] = NOW
    rec.reconcile("platform", "models", shared=offer_view(served=served))
    live = api.live(kube.COMPOSE_APPS, "platform", "models")
    assert live is not None and FINALIZER in live["metadata"]["finalizers"]
    rec.reconcile("platform", "models", shared=offer_view(served={"llm": ()}))
    live = api.live(kube.COMPOSE_APPS, "platform", "models")
    assert live is not None and FINALIZER not in live["metadata"].get("finalizers", [])


def test_selector_offers_read_the_namespace_labels() -> None:
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("team-c", "chat", TEAM))
    namespace = {"metadata": {"name": "team-c", "namespace": "", "labels": {"tier": "ai"}}}
    api.seed(kube.NAMESPACES, copy.deepcopy(namespace))
    report = reconciler(api).reconcile("team-c", "chat", shared=offer_view(SELECTOR_PLATFORM))
    assert report.bound == {"llm": LLM_OFFER}
    assert ("get", "namespaces", "team-c") in [(r.verb, r.resource, r.name) for r in api.requests]


def test_without_a_selector_offer_no_namespace_is_read() -> None:
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("team-a", "chat", TEAM))
    reconciler(api).reconcile("team-a", "chat", shared=offer_view())
    assert "namespaces" not in {r.resource for r in api.requests}


def test_the_namespace_resource_is_cluster_scoped() -> None:
    assert kube.NAMESPACES.path("", "team-a") == "/api/v1/namespaces/team-a"
    assert kube.DEPLOYMENTS.path("team-a", "x") == "/apis/apps/v1/namespaces/team-a/deployments/x"


def test_an_offered_model_becoming_ready_re_reconciles_only_its_bound_apps(
    index: SharingIndex,
) -> None:
    bound = bound_status(("llm", "shared: platform/models/llm"))
    index.observe(("team-a", "chat"), app("team-a", "chat", TEAM, status=bound))
    index.observe(("team-b", "chat"), app("team-b", "chat", TEAM))
    index.observe(("platform", "models"), app("platform", "models", PLATFORM))
    assert index.view(("team-a", "chat")).unready == {LLM_OFFER: "not reconciled yet"}
    pending = {"models": [{"name": "llm", "message": "pod models-llm-1: ImagePullBackOff"}]}
    assert index.observe(
        ("platform", "models"), app("platform", "models", PLATFORM, status=pending)
    ) == {("team-a", "chat"), ("team-b", "chat")}, "applied at last: every app that waits"
    serving = {"models": [{"name": "llm", "source": "own", "servedApps": 1}]}
    assert index.observe(
        ("platform", "models"), app("platform", "models", PLATFORM, status=serving)
    ) == {("team-a", "chat")}
    assert index.view(("team-a", "chat")).unready == {}


def test_a_bound_model_is_ready_only_when_its_offer_serves() -> None:
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("team-a", "chat", TEAM))
    waiting = Sharing(offers=offer_view().offers, unready={LLM_OFFER: "pod x: ImagePullBackOff"})
    reconciler(api).reconcile("team-a", "chat", shared=waiting)
    (model,) = live_status(api, "team-a", "chat")["models"]
    assert model["message"] == "offer platform/models/llm: pod x: ImagePullBackOff"
    assert live_status(api, "team-a", "chat")["ready"]["models"] == "0/1"


def test_an_offer_not_applied_yet_leaves_the_app_as_it_is_and_reconciling() -> None:
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("team-a", "chat", TEAM))
    index = SharingIndex(real_core(), TRUSTED)
    index.observe(("platform", "models"), app("platform", "models", PLATFORM))
    report = reconciler(api).reconcile("team-a", "chat", shared=index.view(("team-a", "chat")))
    assert kinds(api) == []
    assert report.bound is None, "no binding learned while waiting"
    conditions = {c["type"]: c for c in live_status(api, "team-a", "chat")["conditions"]}
    assert (conditions["Reconciling"]["status"], conditions["Reconciling"]["reason"]) == (
        "True",
        "WaitingForOffer",
    )
    assert conditions["Stalled"]["status"] == "False"
    assert conditions["Ready"]["message"] == (
        "models.llm: waiting for offer platform/models/llm to be applied"
    )


def test_an_offering_app_holds_the_finalizer_even_while_nobody_is_bound() -> None:
    """A consumer may bind at any moment: deleting the offer must always wait for the
    operator, which lets it go only when the index shows nobody bound."""
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("platform", "models", PLATFORM))
    rec = reconciler(api)
    rec.reconcile("platform", "models", shared=offer_view())
    live = api.live(kube.COMPOSE_APPS, "platform", "models")
    assert live is not None and live["metadata"]["finalizers"] == [FINALIZER]
    api.others["composeapps", "platform", "models"]["metadata"]["deletionTimestamp"] = NOW
    rec.reconcile("platform", "models", shared=offer_view())
    live = api.live(kube.COMPOSE_APPS, "platform", "models")
    assert live is not None and live["metadata"]["finalizers"] == []


class SharingController(Controller):
    """Records the sharing calls the handlers make into the controller, and does none of them."""

    def __init__(self) -> None:
        super().__init__(unused_reconciler(), Metrics(), resync_seconds=300)
        self.calls: list[tuple[str, Any]] = []
        self.parsed_in: list[int] = []

    def prepare(self, key: tuple[str, str], spec: Any, generation: Any) -> None:
        self.parsed_in.append(threading.get_ident())

    def app_observed(self, key: tuple[str, str], body: Any) -> None:
        self.calls.append(("observed", key))

    def namespace_changed(self, namespace: str, body: Any, *, deleted: bool) -> None:
        self.calls.append(("namespace", namespace))


def test_handlers_feed_the_index_and_watch_namespaces_only_when_asked() -> None:
    import asyncio

    import kopf

    from compose_operator.shell import handlers

    controller = SharingController()
    quiet = kopf.OperatorRegistry()
    handlers.register(quiet, controller)
    assert "namespace-event" not in {h.id for h in quiet._watching.get_all_handlers()}
    registry = kopf.OperatorRegistry()
    handlers.register(registry, controller, watch_namespaces=True)
    indexes: dict[str, Any] = {h.id: h for h in registry._indexing.get_all_handlers()}
    watching: dict[str, Any] = {h.id: h for h in registry._watching.get_all_handlers()}
    body = app("team-a", "chat", TEAM)
    index_fn: Any = indexes["sharing"].fn
    namespace_fn: Any = watching["namespace-event"].fn
    assert asyncio.run(index_fn(namespace="team-a", name="chat", body=body)) is None
    namespace = {"metadata": {"name": "team-a", "labels": {"tier": "gold"}}}
    asyncio.run(namespace_fn(name="team-a", type="MODIFIED", body=namespace))
    assert controller.calls == [("observed", ("team-a", "chat")), ("namespace", "team-a")]
    assert controller.parsed_in and threading.get_ident() not in controller.parsed_in, (
        "the Compose text is parsed in a worker thread, never on the event loop"
    )


@pytest.mark.parametrize(
    "consumer",
    [
        pytest.param({"spec": {"compose": TEAM, "suspend": True}}, id="suspended"),
        pytest.param(
            {"status": {"conditions": [{"type": "Ready", "reason": "InvalidCompose"}]}},
            id="invalid",
        ),
    ],
)
def test_a_suspended_or_invalid_consumer_releases_its_binding(
    index: SharingIndex, consumer: dict[str, Any]
) -> None:
    """Issue 12: such a consumer kept the offer serving, so deleting the offering app waited
    forever."""
    bound = bound_status(("llm", "shared: platform/models/llm"))
    index.observe(("platform", "models"), app("platform", "models", PLATFORM))
    index.observe(("team-a", "chat"), app("team-a", "chat", TEAM, status=bound))
    assert index.view(("platform", "models")).serving
    body = app("team-a", "chat", TEAM, status=bound)
    for part, value in consumer.items():
        body[part] = {**body.get(part, {}), **value}
    assert index.observe(("team-a", "chat"), body) == {("platform", "models")}
    assert not index.view(("platform", "models")).serving


def by_labels(api: FakeApi, sharing: SharingPolicy = "prefer") -> WatchedReconciler:
    trust = SharingSettings(
        policy=sharing,
        offer_namespace_selector={"matchLabels": {"compose-operator.io/offers": "true"}},
    )
    return WatchedReconciler(api, Settings(sharing=trust, model_endpoint="direct"), now=lambda: NOW)


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "", "labels": labels}}


@pytest.mark.parametrize(("offers", "bound"), [("true", True), ("false", False)])
def test_an_offerer_is_trusted_by_its_namespaces_labels(offers: str, bound: bool) -> None:
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("team-a", "chat", TEAM))
    api.seed(kube.NAMESPACES, namespace("platform", **{"compose-operator.io/offers": offers}))
    report = by_labels(api).reconcile("team-a", "chat", shared=offer_view())
    assert report.bound == ({"llm": LLM_OFFER} if bound else {})
    if not bound:
        assert "deployments/chat-llm" in kinds(api), "its own model runs, untouched"


def test_an_offering_app_in_an_untrusted_namespace_is_stalled_and_applies_nothing() -> None:
    api = FakeApi()
    api.seed(kube.COMPOSE_APPS, app("platform", "models", PLATFORM))
    api.seed(kube.NAMESPACES, namespace("platform", team="platform"))
    report = by_labels(api).reconcile("platform", "models", shared=Sharing())
    assert (report.result, kinds(api)) == ("invalid", [])
    stalled = next(
        c for c in live_status(api, "platform", "models")["conditions"] if c["type"] == "Stalled"
    )
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidCompose")
    assert "namespace platform may not offer models" in stalled["message"]
    api.others["namespaces", "", "platform"]["metadata"]["labels"] = {
        "compose-operator.io/offers": "true"
    }
    assert by_labels(api).reconcile("platform", "models", shared=Sharing()).result == "applied"
