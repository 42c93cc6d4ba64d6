"""Shared models: which platform offer a Compose model binds to, and what the policy says. Pure.

A ComposeApp offers a model with `x-kubernetes.offer`, if the operator's settings let its
namespace offer (`sharing.offerNamespaces` / `offerNamespaceSelector`; nobody by default): an
offered model receives other teams' prompts, so an offer from anywhere else is refused, and
consumers never see it. Another app's model with the same normalised reference binds to a
trusted offer when the offer admits the app's namespace (a list, or a label selector on the
Namespace's labels), the app accepts the offer's namespace (`x-kubernetes.shared: {from: [..]}`)
and the offer satisfies the request: its `context_size` is at least the app's, the app's
`runtime_flags` are empty or identical, and the app names no other engine. Several matches:
the one already bound while it still matches, else the first by namespace/app/model, so a
binding never flaps.

An app never learns of offers it may not use: offers that do not admit its namespace are
counted in a refusal, never named or described.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from compose_operator import names, references
from compose_operator.errors import Problem, Warning
from compose_operator.plan import OfferRef
from compose_operator.project import ComposeProject, Model
from compose_operator.render import env, labels
from compose_operator.render.placement import place
from compose_operator.settings import Settings, SharingPolicy
from compose_operator.settings import Sharing as SharingSettings

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every Namespace; lets a list of names be a NetworkPolicy selector."""


@dataclass(frozen=True)
class Offer:
    """One offered model, as a consumer's reconcile sees it."""

    namespace: str
    app: str
    key: str
    model: str
    """The reference as the offering app wrote it."""
    reference: str
    """Normalised (`ai/x` → `docker.io/ai/x:latest`): what matching compares."""
    engine: str
    endpoint: str
    service: str
    context_size: int | None = None
    runtime_flags: tuple[str, ...] = ()
    gpus: int = 0
    namespaces: tuple[str, ...] = ()
    namespace_selector: Mapping[str, Any] | None = None
    available: bool = True
    """False until the offering app has applied it (its Service may not exist yet)."""

    @property
    def ref(self) -> OfferRef:
        return OfferRef(self.namespace, self.app, self.key)

    @property
    def name(self) -> str:
        """`ns/app/model`, as messages name the offer."""
        return str(self.ref)

    @property
    def source(self) -> str:
        """What a bound app's status shows for the model."""
        return self.ref.source

    @property
    def uses_selector(self) -> bool:
        return self.namespace_selector is not None


@dataclass(frozen=True)
class SharingInput:
    """What the shell knows about offers when it plans one app."""

    offers: tuple[Offer, ...] = ()
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    """The app namespace's labels (read when a selector needs them)."""
    bound: Mapping[str, OfferRef] = field(default_factory=dict)
    """Model key → the offer the app is bound to now (from its status)."""
    offerer_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Labels of the offers' namespaces, read when `sharing.offerNamespaceSelector` is set."""


@dataclass(frozen=True)
class Decision:
    """Per model: the offer it binds to, or (under `require`) why it may not run, or the
    offer it waits for (one that matches but is not applied yet)."""

    bindings: Mapping[str, Offer] = field(default_factory=dict)
    refusals: Mapping[str, str] = field(default_factory=dict)
    waiting: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    offer: Offer | None
    reasons: list[tuple[str | None, str]]
    """(offer name, or None for offers that do not admit the namespace; why not taken)."""
    pending: list[Offer]
    """Offers that match but are not applied yet."""


def bindings_in_status(status: Mapping[str, Any]) -> dict[str, OfferRef]:
    """Model key → offer, from `models[].source` (`shared: ns/app/model`): parsed here, once."""
    found: dict[str, OfferRef] = {}
    for entry in status.get("models", []) or []:
        if not isinstance(entry, Mapping):
            continue
        ref = OfferRef.from_source(entry.get("source"))
        if ref is not None:
            found[str(entry.get("name", ""))] = ref
    return found


def normalised(reference: str) -> str | None:
    """The comparable reference, or None for text that is no reference (never matches)."""
    try:
        return references.normalise(reference)
    except ValueError:
        return None


def offers_of(
    project: ComposeProject, *, app: str, namespace: str, settings: Settings
) -> tuple[Offer, ...]:
    """The models this app offers, in key order."""
    offers: list[Offer] = []
    for key, model in sorted(project.models.items()):
        spec = model.kubernetes.offer
        reference = normalised(model.model)
        if spec is None or reference is None:
            continue
        service = names.model(app, key)
        placement, _, _ = place(model, settings, f"models.{key}")
        offers.append(
            Offer(
                namespace=namespace,
                app=app,
                key=key,
                model=model.model,
                reference=reference,
                engine=model.kubernetes.engine or settings.default_engine,
                endpoint=env.model_url(
                    service, namespace=namespace, cluster_domain=settings.cluster_domain
                ),
                service=service,
                context_size=model.context_size,
                runtime_flags=model.runtime_flags,
                gpus=placement.gpus,
                namespaces=spec.namespaces,
                namespace_selector=spec.namespace_selector,
            )
        )
    return tuple(offers)


def wanted_references(project: ComposeProject) -> frozenset[str]:
    """References of the models this app could bind (everything it does not offer itself)."""
    found = (normalised(m.model) for m in project.models.values() if m.kubernetes.offer is None)
    return frozenset(reference for reference in found if reference is not None)


def _expression_matches(expression: Any, labels: Mapping[str, str]) -> bool:
    if not isinstance(expression, Mapping):
        return False
    key, operator = expression.get("key"), expression.get("operator")
    values = expression.get("values") or []
    if not isinstance(key, str) or not isinstance(values, list):
        return False
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions); a malformed one never
    matches, and an empty one matches every namespace, as in Kubernetes."""
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        return False
    return all(labels.get(k) == v for k, v in match_labels.items()) and all(
        _expression_matches(e, labels) for e in expressions
    )


def may_offer(
    namespace: str, namespace_labels: Mapping[str, str] | None, settings: SharingSettings
) -> bool | None:
    """Whether the settings let apps in `namespace` offer models; None when that depends on
    labels not known here (`render` offline, with `offerNamespaceSelector` set)."""
    if namespace in settings.offer_namespaces:
        return True
    selector = settings.offer_namespace_selector
    if selector is None:
        return False
    if namespace_labels is None:
        return None
    return selector_matches(selector, namespace_labels)


def offer_refusals(
    project: ComposeProject,
    *,
    namespace: str,
    namespace_labels: Mapping[str, str] | None,
    settings: SharingSettings,
) -> tuple[list[Problem], list[Warning]]:
    """An offer from a namespace the platform did not trust: refused at each offer."""
    offered = sorted(key for key, model in project.models.items() if model.kubernetes.offer)
    if not offered:
        return [], []
    allowed = may_offer(namespace, namespace_labels, settings)
    if allowed:
        return [], []
    if allowed is None:
        message = (
            f"whether namespace {namespace} may offer models depends on its labels "
            "(the operator's setting sharing.offerNamespaceSelector); the cluster decides"
        )
        return [], [Warning(f"models.{key}.x-kubernetes.offer", message) for key in offered]
    who = _offerers(settings)
    message = (
        f"namespace {namespace} may not offer models: the operator's setting "
        f"sharing.offerNamespaces / offerNamespaceSelector admits {who}; ask the platform team"
    )
    return [Problem(f"models.{key}.x-kubernetes.offer", message) for key in offered], []


def _offerers(settings: SharingSettings) -> str:
    named = ", ".join(settings.offer_namespaces)
    if settings.offer_namespace_selector is not None:
        return f"{named + ' and ' if named else ''}namespaces matching its selector"
    return named or "no namespace"


def admits(offer: Offer, namespace: str, namespace_labels: Mapping[str, str]) -> bool:
    if offer.namespace_selector is not None:
        return selector_matches(offer.namespace_selector, namespace_labels)
    return namespace in offer.namespaces


def unmet(offer: Offer, model: Model) -> str | None:
    """Why an admitting offer does not satisfy the model's request; None when it does."""
    wanted = model.context_size
    if wanted is not None and offer.context_size is None:
        return f"context_size: the offer sets none, {wanted} needed"
    if wanted is not None and offer.context_size is not None and offer.context_size < wanted:
        return f"context_size: the offer serves {offer.context_size}, {wanted} needed"
    if model.runtime_flags and model.runtime_flags != offer.runtime_flags:
        asked, served = " ".join(model.runtime_flags), " ".join(offer.runtime_flags) or "none"
        return f"runtime_flags: asked for {asked!r}, the offer runs {served!r}"
    engine = model.kubernetes.engine
    if engine is not None and engine != offer.engine:
        return f"engine: asked for {engine}, the offer runs {offer.engine}"
    return None


def decide(
    project: ComposeProject,
    *,
    app: str,
    namespace: str,
    settings: Settings,
    sharing: SharingInput,
) -> Decision:
    """Bind each model that may be shared; under `require`, say why each unbound one may not run."""
    policy: SharingPolicy = settings.sharing.policy
    if policy == "never":
        return Decision()
    by_reference: dict[str, list[Offer]] = {}
    for offer in sorted(sharing.offers, key=lambda o: (o.namespace, o.app, o.key)):
        trusted = may_offer(
            offer.namespace, sharing.offerer_labels.get(offer.namespace, {}), settings.sharing
        )
        if trusted and (offer.namespace, offer.app) != (namespace, app):
            by_reference.setdefault(offer.reference, []).append(offer)
    bindings: dict[str, Offer] = {}
    refusals: dict[str, str] = {}
    waiting: dict[str, str] = {}
    for key, model in sorted(project.models.items()):
        if model.kubernetes.offer is not None:
            continue  # the platform's own offered model runs here
        if policy == "prefer" and not model.kubernetes.shared:
            continue
        reference = normalised(model.model)
        candidates = by_reference.get(reference, []) if reference is not None else []
        choice = choose(
            model,
            candidates,
            namespace=namespace,
            namespace_labels=sharing.namespace_labels,
            bound=sharing.bound.get(key),
        )
        if choice.offer is not None:
            bindings[key] = choice.offer
        elif choice.pending:
            waiting[key] = f"models.{key}: waiting for offer {choice.pending[0].name} to be applied"
        elif policy == "require":
            refusals[key] = refusal_message(model, namespace, choice.reasons)
    return Decision(bindings=bindings, refusals=refusals, waiting=waiting)


def choose(
    model: Model,
    candidates: Sequence[Offer],
    *,
    namespace: str,
    namespace_labels: Mapping[str, str],
    bound: OfferRef | None,
) -> Choice:
    """The offer to bind to, and for every candidate not taken, (offer name or None, why).

    The name is None for offers that do not admit the namespace: those stay anonymous.
    """
    matching: list[Offer] = []
    pending: list[Offer] = []
    reasons: list[tuple[str | None, str]] = []
    accepted = model.kubernetes.shared_from
    for offer in candidates:
        if not admits(offer, namespace, namespace_labels):
            reasons.append((None, f"not offered to namespace {namespace}"))
            continue
        if accepted is not None and offer.namespace not in accepted:
            reasons.append((offer.name, "its namespace is not in x-kubernetes.shared.from"))
            continue
        why = unmet(offer, model)
        if why is not None:
            reasons.append((offer.name, why))
        elif offer.available:
            matching.append(offer)
        else:
            pending.append(offer)
            reasons.append((offer.name, "not applied yet"))
    kept = [offer for offer in matching if offer.ref == bound]
    ordered = kept or matching
    return Choice(ordered[0] if ordered else None, reasons, pending)


def refusal_message(model: Model, namespace: str, reasons: Iterable[tuple[str | None, str]]) -> str:
    named = [f"{name}: {why}" for name, why in reasons if name is not None]
    hidden = sum(1 for name, _ in reasons if name is None)
    head = f"models.{model.key}: sharing policy is require and no offer of {model.model} matches"
    if not named and not hidden:
        return f"{head}: no offer of this model exists; ask the platform team to offer it"
    parts = named[:]
    if hidden:
        parts.append(
            f"{hidden} offer{'s' if hidden > 1 else ''} not offered to namespace {namespace}"
        )
    return f"{head}: " + "; ".join(parts)


def build_network_policy(offer: Offer, *, port: int) -> dict[str, Any]:
    """Ingress to an offered model's pods only from the namespaces the offer names (and its own)."""
    if offer.namespace_selector is not None:
        peers = [{"namespaceSelector": dict(offer.namespace_selector)}]
    else:
        admitted = sorted({*offer.namespaces, offer.namespace})
        peers = [
            {
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": admitted}
                    ]
                }
            }
        ]
    if offer.namespace_selector is not None:
        own = {"matchLabels": {NAMESPACE_NAME_LABEL: offer.namespace}}
        peers.append({"namespaceSelector": own})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": names.dns_label(offer.app, offer.key, "offer"),
            "namespace": offer.namespace,
            "labels": labels.for_model(offer.app, offer.key),
        },
        "spec": {
            "podSelector": {"matchLabels": labels.model_selector(offer.app, offer.key)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": port}]}],
        },
    }
