"""Shared models in the pure core: matching, every rejection reason, policy, and the plan."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from compose_operator.compose import load_project
from compose_operator.errors import ComposeError
from compose_operator.plan import OfferRef, Plan
from compose_operator.project import ComposeProject, KubernetesOptions, Model, OfferSpec
from compose_operator.render import plan, sharing
from compose_operator.render.sharing import Offer, SharingInput
from compose_operator.settings import Settings, Sharing, SharingPolicy

OFFERERS = ("platform", "a-platform", "b-platform", "z-platform")
"""Namespaces the platform lets offer models in these tests."""


def settings(policy: SharingPolicy = "prefer", **extra: Any) -> Settings:
    trust = Sharing(policy=policy, offer_namespaces=OFFERERS)
    return Settings(sharing=trust, **extra)


PLATFORM = Offer(
    namespace="platform",
    app="models",
    key="llm",
    model="ai/llama3.2",
    reference="docker.io/ai/llama3.2:latest",
    engine="llama.cpp",
    endpoint="http://models-llm.platform.svc.cluster.local/v1/",
    service="models-llm",
    context_size=8192,
    runtime_flags=("--temp", "0.7"),
    gpus=1,
    namespaces=("team-a", "team-b"),
)
BY_SELECTOR = replace(
    PLATFORM, app="shared", namespaces=(), namespace_selector={"matchLabels": {"tier": "ai"}}
)


def model(**kwargs: Any) -> Model:
    options = kwargs.pop("kubernetes", KubernetesOptions())
    return Model(key=kwargs.pop("key", "llm"), model=kwargs.pop("ref", "ai/llama3.2"),
                 kubernetes=options, **kwargs)  # fmt: skip


@pytest.mark.parametrize(
    ("case", "offer", "request_", "namespace", "labels", "reason"),
    [
        ("same request", PLATFORM, model(), "team-a", {}, None),
        ("smaller context", PLATFORM, model(context_size=4096), "team-a", {}, None),
        ("equal context", PLATFORM, model(context_size=8192), "team-a", {}, None),
        (
            "larger context",
            PLATFORM,
            model(context_size=16384),
            "team-a",
            {},
            "context_size: the offer serves 8192, 16384 needed",
        ),
        (
            "offer without context",
            replace(PLATFORM, context_size=None),
            model(context_size=2048),
            "team-a",
            {},
            "context_size: the offer sets none, 2048 needed",
        ),
        ("identical flags", PLATFORM, model(runtime_flags=("--temp", "0.7")), "team-a", {}, None),
        (
            "other flags",
            PLATFORM,
            model(runtime_flags=("--temp", "0.1")),
            "team-a",
            {},
            "runtime_flags: asked for '--temp 0.1', the offer runs '--temp 0.7'",
        ),
        (
            "flags against none",
            replace(PLATFORM, runtime_flags=()),
            model(runtime_flags=("--top-k", "5")),
            "team-a",
            {},
            "runtime_flags: asked for '--top-k 5', the offer runs 'none'",
        ),
        (
            "same engine",
            PLATFORM,
            model(kubernetes=KubernetesOptions(engine="llama.cpp")),
            "team-a",
            {},
            None,
        ),
        (
            "other engine",
            PLATFORM,
            model(kubernetes=KubernetesOptions(engine="vllm")),
            "team-a",
            {},
            "engine: asked for vllm, the offer runs llama.cpp",
        ),
        (
            "namespace not listed",
            PLATFORM,
            model(),
            "team-c",
            {},
            "not offered to namespace team-c",
        ),
        ("selector matches", BY_SELECTOR, model(), "team-c", {"tier": "ai"}, None),
        (
            "selector does not match",
            BY_SELECTOR,
            model(),
            "team-c",
            {"tier": "web"},
            "not offered to namespace team-c",
        ),
        (
            "admission is checked before the request",
            PLATFORM,
            model(context_size=99999),
            "team-c",
            {},
            "not offered to namespace team-c",
        ),
    ],
)
def test_matching_and_each_rejection_reason(
    case: str,
    offer: Offer,
    request_: Model,
    namespace: str,
    labels: dict[str, str],
    reason: str | None,
) -> None:
    choice = sharing.choose(
        request_, [offer], namespace=namespace, namespace_labels=labels, bound=None
    )
    chosen, reasons = choice.offer, choice.reasons
    if reason is None:
        assert (chosen, reasons) == (offer, []), case
    else:
        assert chosen is None, case
        assert [why for _, why in reasons] == [reason], case


@pytest.mark.parametrize(
    ("selector", "labels", "admitted"),
    [
        ({}, {}, True),
        ({"matchLabels": {"tier": "ai"}}, {"tier": "ai", "x": "y"}, True),
        ({"matchLabels": {"tier": "ai"}}, {}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["ai"]}]},
         {"tier": "ai"}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["ai"]}]},
         {"tier": "ai"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["ai"]}]}, {}, True),
        ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {"gpu": ""}, True),
        ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, {"gpu": ""}, False),
        ({"matchExpressions": [{"key": "gpu", "operator": "Bogus"}]}, {"gpu": ""}, False),
        ({"matchExpressions": ["not a mapping"]}, {}, False),
        ({"matchLabels": ["a list"]}, {}, False),
    ],
)  # fmt: skip
def test_label_selectors(selector: dict[str, Any], labels: dict[str, str], admitted: bool) -> None:
    assert sharing.selector_matches(selector, labels) is admitted


def test_rejections_name_admitting_offers_and_only_count_the_others() -> None:
    too_small = replace(PLATFORM, app="small", context_size=1024)
    hidden = replace(PLATFORM, app="secret", namespaces=("elsewhere",))
    choice = sharing.choose(
        model(context_size=4096),
        [too_small, hidden, replace(hidden, key="other")],
        namespace="team-a",
        namespace_labels={},
        bound=None,
    )
    chosen, reasons = choice.offer, choice.reasons
    assert chosen is None
    assert sharing.refusal_message(model(context_size=4096), "team-a", reasons) == (
        "models.llm: sharing policy is require and no offer of ai/llama3.2 matches: "
        "platform/small/llm: context_size: the offer serves 1024, 4096 needed; "
        "2 offers not offered to namespace team-a"
    )
    assert "secret" not in sharing.refusal_message(model(), "team-a", reasons)


def test_refusal_when_no_offer_exists() -> None:
    assert sharing.refusal_message(model(), "team-a", []) == (
        "models.llm: sharing policy is require and no offer of ai/llama3.2 matches: "
        "no offer of this model exists; ask the platform team to offer it"
    )


def test_several_matches_keep_the_bound_one_else_the_first_by_name() -> None:
    first = replace(PLATFORM, namespace="a-platform")
    second = replace(PLATFORM, namespace="z-platform")
    common: dict[str, Any] = {"namespace": "team-a", "namespace_labels": {}}
    assert sharing.choose(model(), [first, second], bound=None, **common).offer == first
    assert sharing.choose(model(), [first, second], bound=second.ref, **common).offer == second
    gone = replace(second, context_size=16)
    chosen = sharing.choose(model(context_size=64), [first, gone], bound=gone.ref, **common).offer
    assert chosen == first, "the bound offer no longer matches: move to the first"


def project_of(text: str) -> ComposeProject:
    return load_project(text)


CONSUMER = """
services:
  app: {image: chat, models: [llm]}
models:
  llm: {model: docker.io/ai/llama3.2:latest, context_size: 4096}
  embed: {model: ai/embeddinggemma}
"""
OPTED_OUT = CONSUMER.replace(
    "context_size: 4096}", "context_size: 4096, x-kubernetes: {shared: false}}"
)


@pytest.mark.parametrize(
    ("policy", "text", "offers", "bindings", "refused"),
    [
        ("prefer", CONSUMER, (PLATFORM,), {"llm": PLATFORM.name}, []),
        ("prefer", CONSUMER, (), {}, []),
        ("prefer", OPTED_OUT, (PLATFORM,), {}, []),
        ("never", CONSUMER, (PLATFORM,), {}, []),
        ("require", CONSUMER, (PLATFORM,), {"llm": PLATFORM.name}, ["embed"]),
        ("require", OPTED_OUT, (PLATFORM,), {"llm": PLATFORM.name}, ["embed"]),
        ("require", CONSUMER, (), {}, ["embed", "llm"]),
    ],
)
def test_policy_outcomes(
    policy: SharingPolicy,
    text: str,
    offers: tuple[Offer, ...],
    bindings: dict[str, str],
    refused: list[str],
) -> None:
    decision = sharing.decide(
        project_of(text),
        app="chat",
        namespace="team-a",
        settings=settings(policy),
        sharing=SharingInput(offers=offers),
    )
    assert {key: offer.name for key, offer in decision.bindings.items()} == bindings
    assert sorted(decision.refusals) == refused


def test_an_app_never_binds_to_its_own_offer() -> None:
    own = replace(PLATFORM, namespace="team-a", app="chat")
    decision = sharing.decide(
        project_of(CONSUMER),
        app="chat",
        namespace="team-a",
        settings=settings(),
        sharing=SharingInput(offers=(own,)),
    )
    assert decision.bindings == {}


OFFERING = """
models:
  llm:
    model: ai/llama3.2
    context_size: 8192
    x-kubernetes:
      gpus: 2
      offer: {namespaces: [team-a, team-b]}
  private: {model: ai/smollm2}
"""


def test_offers_of_a_project() -> None:
    offers = sharing.offers_of(
        project_of(OFFERING), app="models", namespace="platform", settings=settings()
    )
    assert offers == (replace(PLATFORM, runtime_flags=(), gpus=2),)
    assert sharing.wanted_references(project_of(OFFERING)) == {"docker.io/ai/smollm2:latest"}


def test_a_bound_model_has_no_workload_and_services_point_across_namespaces() -> None:
    result = plan(
        project_of(CONSUMER),
        app="chat",
        namespace="team-a",
        settings=settings(model_endpoint="direct"),
        offers=SharingInput(offers=(PLATFORM,)),
    )
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in result.objects)
    assert kinds == ["Deployment/app", "Deployment/chat-embed", "Service/chat-embed"]
    (app,) = [o for o in result.objects if o["metadata"]["name"] == "app"]
    env = {e["name"]: e["value"] for e in app["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {
        "LLM_URL": "http://models-llm.platform.svc.cluster.local/v1/",
        "LLM_MODEL": "docker.io/ai/llama3.2:latest",
    }
    assert [(m.key, m.source, m.endpoint) for m in result.models] == [
        ("embed", "own", "http://chat-embed.team-a.svc.cluster.local/v1/"),
        ("llm", "shared: platform/models/llm", PLATFORM.endpoint),
    ]


def test_behind_the_gateway_a_bound_model_is_routed_to_the_offer_across_namespaces() -> None:
    result = plan(
        project_of(CONSUMER),
        app="chat",
        namespace="team-a",
        settings=settings(),
        offers=SharingInput(offers=(PLATFORM,)),
    )
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in result.objects)
    assert kinds == [
        "ConfigMap/chat-models",
        "Deployment/app",
        "Deployment/chat-embed",
        "Deployment/chat-models",
        "Service/chat-embed",
        "Service/chat-models",
    ]
    (app,) = [o for o in result.objects if o["metadata"]["name"] == "app"]
    env = {e["name"]: e["value"] for e in app["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LLM_URL"] == "http://chat-models.team-a.svc.cluster.local/v1/"
    (table,) = [o for o in result.objects if o["kind"] == "ConfigMap"]
    routes = json.loads(table["data"]["routes.json"])
    llm = next(m for m in routes["models"] if m["key"] == "llm")
    # The offering app's engine serves its own spelling (llama-server ignores the name).
    assert llm == {
        "key": "llm",
        "model": "docker.io/ai/llama3.2:latest",
        "engine": PLATFORM.engine,
        "upstream": "http://models-llm.platform.svc.cluster.local",
        "served": PLATFORM.model,
    }
    assert routes["names"]["ai/llama3.2"] == "llm"
    assert [(m.key, m.endpoint) for m in result.models] == [
        ("embed", "http://chat-embed.team-a.svc.cluster.local/v1/"),
        ("llm", PLATFORM.endpoint),
    ]


def test_an_offers_network_policy_admits_the_consumers_gateway_pods() -> None:
    """The policy admits whole namespaces (no podSelector on its peers), so the gateway pods
    of an admitted namespace reach the offered model like any other pod there."""
    policy = sharing.build_network_policy(PLATFORM, port=8080)
    (rule,) = policy["spec"]["ingress"]
    assert all(set(peer) == {"namespaceSelector"} for peer in rule["from"])
    (peer,) = rule["from"]
    (expression,) = peer["namespaceSelector"]["matchExpressions"]
    assert "team-a" in expression["values"]


def test_require_without_match_applies_nothing() -> None:
    result = plan(
        project_of(CONSUMER),
        app="chat",
        namespace="team-c",
        settings=settings("require"),
        offers=SharingInput(offers=(PLATFORM,)),
    )
    assert (result.objects, result.bindings) == ((), ())
    assert [key for key, _ in result.refusals] == ["embed", "llm"]
    assert dict(result.refusals)["llm"].endswith("1 offer not offered to namespace team-c")
    assert [m.source for m in result.models] == ["refused", "refused"]


def test_without_offers_render_plans_everything_as_own() -> None:
    result = plan(
        project_of(CONSUMER), app="chat", namespace="team-a", settings=settings("require")
    )
    assert [m.source for m in result.models] == ["own", "own"]
    assert result.refusals == ()


def test_an_offered_model_gets_a_network_policy_when_enabled() -> None:
    project = project_of(OFFERING)
    quiet = plan(project, app="models", namespace="platform", settings=settings())
    assert [o["kind"] for o in quiet.objects].count("NetworkPolicy") == 0
    assert [m.offered for m in quiet.models] == [True, False]
    result = plan(
        project, app="models", namespace="platform", settings=settings(network_policies=True)
    )
    (policy,) = [o for o in result.objects if o["kind"] == "NetworkPolicy"]
    assert policy == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "models-llm-offer",
            "namespace": "platform",
            "labels": {
                "app.kubernetes.io/managed-by": "compose-operator",
                "app.kubernetes.io/part-of": "models",
                "compose-operator.io/app": "models",
                "compose-operator.io/model": "llm",
            },
        },
        "spec": {
            "podSelector": {
                "matchLabels": {
                    "compose-operator.io/app": "models",
                    "compose-operator.io/model": "llm",
                }
            },
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/metadata.name",
                                        "operator": "In",
                                        "values": ["platform", "team-a", "team-b"],
                                    }
                                ]
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 8080}],
                }
            ],
        },
    }


def test_a_selector_offer_policy_admits_the_selector_and_its_own_namespace() -> None:
    offer = replace(BY_SELECTOR, namespace_selector={"matchLabels": {"tier": "ai"}})
    policy = sharing.build_network_policy(offer, port=8000)
    assert policy["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"tier": "ai"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "platform"}}},
    ]


def test_shared_false_under_require_is_ignored_with_a_warning() -> None:
    result = plan(
        project_of(OPTED_OUT),
        app="chat",
        namespace="team-a",
        settings=settings("require"),
        offers=SharingInput(offers=(PLATFORM, replace(PLATFORM, key="e", model="ai/embeddinggemma",
                                                      reference="docker.io/ai/embeddinggemma:latest"))),
    )  # fmt: skip
    assert [str(w) for w in result.warnings] == [
        "models.llm.x-kubernetes.shared: " + plan_module_warning()
    ]
    assert [m.source for m in result.models] == [
        "shared: platform/models/e",
        "shared: platform/models/llm",
    ]


def plan_module_warning() -> str:
    from compose_operator.render.plan import NOT_SHARED_IGNORED

    return NOT_SHARED_IGNORED


def test_offer_spec_roundtrip_from_the_loader() -> None:
    loaded = project_of(OFFERING).models["llm"].kubernetes.offer
    assert loaded == OfferSpec(namespaces=("team-a", "team-b"))


def test_a_matching_offer_not_applied_yet_is_waited_for_under_any_policy() -> None:
    pending = replace(PLATFORM, available=False)
    choice = sharing.choose(model(), [pending], namespace="team-a", namespace_labels={}, bound=None)
    assert (choice.offer, choice.pending, choice.reasons) == (
        None,
        [pending],
        [(pending.name, "not applied yet")],
    )
    for policy in ("prefer", "require"):
        result = plan(
            project_of(CONSUMER),
            app="chat",
            namespace="team-a",
            settings=settings(policy),
            offers=SharingInput(offers=(pending,)),
        )
        assert result.waiting == (
            ("llm", "models.llm: waiting for offer platform/models/llm to be applied"),
        )
        assert (result.objects, result.models) == ((), ())
    applied_elsewhere = replace(PLATFORM, namespace="b-platform")
    choice = sharing.choose(
        model(), [pending, applied_elsewhere], namespace="team-a", namespace_labels={}, bound=None
    )
    assert choice.offer == applied_elsewhere, "an applied match wins over waiting"


@pytest.mark.parametrize(
    ("written", "spellings"),
    [
        ("ai/llama3.2", ("ai/llama3.2", "ai/llama3.2:latest", "docker.io/ai/llama3.2",
                         "docker.io/ai/llama3.2:latest")),
        ("docker.io/ai/llama3.2:latest", ("docker.io/ai/llama3.2:latest", "ai/llama3.2",
                                          "ai/llama3.2:latest", "docker.io/ai/llama3.2")),
        ("ai/qwen3:8B-Q4", ("ai/qwen3:8B-Q4", "docker.io/ai/qwen3:8B-Q4")),
        ("registry.local:5000/m/x", ("registry.local:5000/m/x", "registry.local:5000/m/x:latest")),
        ("hf.co/org/repo:Q4_K_M", ("hf.co/org/repo:Q4_K_M",)),
        ("ai/x@sha256:" + "a" * 64, ("ai/x@sha256:" + "a" * 64,)),
    ],
)  # fmt: skip
def test_spellings_of_a_reference(written: str, spellings: tuple[str, ...]) -> None:
    from compose_operator import references

    assert references.spellings(written) == spellings
    assert {references.normalise(s) for s in spellings} == {references.normalise(written)}


def test_an_offered_vllm_model_answers_to_every_spelling() -> None:
    offered = project_of(OFFERING.replace("gpus: 2", "engine: vllm"))
    result = plan(offered, app="models", namespace="platform", settings=settings())
    (deployment,) = [o for o in result.objects if o["metadata"]["name"] == "models-llm"
                     and o["kind"] == "Deployment"]  # fmt: skip
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    start = args.index("--served-model-name") + 1
    assert args[start : start + 5] == [
        "ai/llama3.2",
        "ai/llama3.2:latest",
        "docker.io/ai/llama3.2",
        "docker.io/ai/llama3.2:latest",
        "--max-model-len",
    ]


# Trusted offers: who may offer is the platform's decision (issue 12).

EVIL = replace(PLATFORM, namespace="aaa-evil", app="models", namespaces=(), namespace_selector={})
"""An offer to every namespace from a namespace nobody trusted, first by name."""
OTHER_TRUSTED = replace(PLATFORM, namespace="b-platform")
FROM_PLATFORM = CONSUMER.replace(
    "context_size: 4096}", "context_size: 4096, x-kubernetes: {shared: {from: [platform]}}}"
)


@pytest.mark.parametrize(
    ("case", "trust", "text", "offers", "offerer_labels", "bound_to", "reasons"),
    [
        (
            "an untrusted offer is never taken: the app's own model stays",
            Sharing(policy="prefer"),
            CONSUMER,
            (EVIL,),
            {},
            None,
            [],
        ),
        (
            "the platform's explicit offer wins over an untrusted one first by name",
            Sharing(policy="prefer", offer_namespaces=("platform",)),
            CONSUMER,
            (EVIL, PLATFORM),
            {},
            PLATFORM.name,
            [],
        ),
        (
            "an offerer selected by its Namespace's labels",
            Sharing(policy="prefer", offer_namespace_selector={"matchLabels": {"offers": "yes"}}),
            CONSUMER,
            (EVIL, PLATFORM),
            {"platform": {"offers": "yes"}, "aaa-evil": {"offers": "no"}},
            PLATFORM.name,
            [],
        ),
        (
            "under require an untrusted offer does not exist",
            Sharing(policy="require"),
            CONSUMER,
            (EVIL,),
            {},
            None,
            ["no offer of this model exists"],
        ),
        (
            "the consumer accepts offers only from the namespaces it names",
            Sharing(policy="require", offer_namespaces=("platform", "b-platform")),
            FROM_PLATFORM,
            (OTHER_TRUSTED,),
            {},
            None,
            ["b-platform/models/llm: its namespace is not in x-kubernetes.shared.from"],
        ),
        (
            "and binds to the one it names",
            Sharing(policy="require", offer_namespaces=("platform", "b-platform")),
            FROM_PLATFORM,
            (OTHER_TRUSTED, PLATFORM),
            {},
            PLATFORM.name,
            [],
        ),
    ],
)
def test_offers_bind_only_when_trusted(
    case: str,
    trust: Sharing,
    text: str,
    offers: tuple[Offer, ...],
    offerer_labels: dict[str, dict[str, str]],
    bound_to: str | None,
    reasons: list[str],
) -> None:
    result = plan(
        project_of(text),
        app="chat",
        namespace="team-a",
        settings=Settings(sharing=trust),
        offers=SharingInput(offers=offers, offerer_labels=offerer_labels),
    )
    llm = next(m for m in result.models if m.key == "llm")
    if bound_to is not None:
        assert llm.source == f"shared: {bound_to}", case
    elif trust.policy == "prefer":
        assert (llm.source, llm.deployment) == ("own", "chat-llm"), case
        assert any(o["metadata"]["name"] == "chat-llm" for o in result.objects), case
    else:
        why = dict(result.refusals)["llm"]
        assert all(reason in why for reason in reasons), (case, why)
        assert "aaa-evil" not in why, "an app never learns of offers it may not use"


@pytest.mark.parametrize(
    ("trust", "labels", "outcome"),
    [
        (Sharing(), None, "refused"),
        (Sharing(offer_namespaces=("platform",)), None, "planned"),
        (Sharing(offer_namespace_selector={"matchLabels": {"offers": "yes"}}), {}, "refused"),
        (
            Sharing(offer_namespace_selector={"matchLabels": {"offers": "yes"}}),
            {"offers": "yes"},
            "planned",
        ),
        (Sharing(offer_namespace_selector={"matchLabels": {"offers": "yes"}}), None, "warned"),
    ],
)
def test_an_offer_from_a_namespace_that_may_not_offer_is_refused(
    trust: Sharing, labels: dict[str, str] | None, outcome: str
) -> None:
    """Issue 12: any namespace could publish `offer: {namespaceSelector: {}}` and capture other
    teams' traffic. Offline (labels unknown) a selector cannot be decided: a warning says so."""

    def run() -> Plan:
        return plan(
            project_of(OFFERING),
            app="models",
            namespace="platform",
            settings=Settings(sharing=trust),
            namespace_labels=labels,
        )

    if outcome == "refused":
        with pytest.raises(ComposeError) as raised:
            run()
        who = "no namespace" if labels is None else "namespaces matching its selector"
        assert raised.value.messages == [
            "compose.yaml: models.llm.x-kubernetes.offer: namespace platform may not offer "
            "models: the operator's setting sharing.offerNamespaces / offerNamespaceSelector "
            f"admits {who}; ask the platform team"
        ]
        return
    result = run()
    warned = [str(w) for w in result.warnings if "x-kubernetes.offer" in w.path]
    assert bool(warned) == (outcome == "warned")
    assert any(o["metadata"]["name"] == "models-llm" for o in result.objects)


def test_shared_from_loads_and_is_checked() -> None:
    assert project_of(FROM_PLATFORM).models["llm"].kubernetes.shared_from == ("platform",)
    assert project_of(CONSUMER).models["llm"].kubernetes.shared_from is None
    with pytest.raises(ComposeError) as raised:
        project_of("models:\n  llm:\n    model: ai/x\n    x-kubernetes: {shared: {frm: [a]}}\n")
    assert raised.value.messages == [
        "compose.yaml: models.llm.x-kubernetes.shared.frm: unknown key 'frm'; did you mean "
        "'from'? (line 4)",
        "compose.yaml: models.llm.x-kubernetes.shared: 'from' is required: the namespaces whose "
        "offers to accept (line 4)",
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("shared: platform/models/llm", OfferRef("platform", "models", "llm")),
        ("own", None),
        ("refused", None),
        ("shared: platform/models", None),
        ("shared: platform//llm", None),
        ("shared: a/b/c/d", None),
        (None, None),
        (42, None),
    ],
)
def test_a_bound_source_is_parsed_once_into_a_typed_reference(
    source: object, expected: OfferRef | None
) -> None:
    assert OfferRef.from_source(source) == expected
    if expected is not None:
        assert (expected.source, str(expected)) == (source, "platform/models/llm")


def test_a_status_is_read_back_into_typed_bindings() -> None:
    status = {
        "models": [
            {"name": "llm", "source": "shared: platform/models/llm"},
            {"name": "embed", "source": "own"},
            "not a model",
        ]
    }
    assert sharing.bindings_in_status(status) == {"llm": OfferRef("platform", "models", "llm")}
