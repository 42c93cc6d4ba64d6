"""The ComposeApp status, built from the plan and what the cluster shows. Pure.

Semantics are kstatus's (what Flux and `kubectl wait`-style tools read): `Reconciling=True`
while a Deployment is rolling out or a retry is pending, `Stalled=True` when retrying cannot
help (invalid Compose, a refused binding, a name taken by someone else), `Ready=True` only when
every model and service is available. Each condition carries `observedGeneration`; an
unchanged condition keeps its `lastTransitionTime`, so an unchanged world gives an equal
status and the shell writes nothing.

A model that is not ready says why, read from its pods: the scheduler's Unschedulable message,
a container waiting in ImagePullBackOff or CrashLoopBackOff, or the terminated container's
message (engine containers use FallbackToLogsOnError, so that is the log's tail); with no pod
to read, the ReplicaSet's FailedCreate message (a Pod Security or quota refusal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from compose_operator.plan import Plan

Manifest = Mapping[str, Any]
Status = dict[str, Any]

READY, RECONCILING, STALLED = "Ready", "Reconciling", "Stalled"
OWNED_KEYS = ("observedGeneration", "conditions", "models", "services", "warnings", "ready")
"""Every status key the operator writes; a key left out of a new status is removed."""

MESSAGE_TAIL = 1024
"""Characters of a termination message quoted in status; the end says the most."""

WAITING_PROBLEMS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)

FailureReason = Literal[
    "",
    "InvalidCompose",
    "ComposeSourceMissing",
    "NameConflict",
    "ReconcileFailed",
    "SharingRefused",
    "WaitingForOffer",
]
STALLING_FAILURES = frozenset({"InvalidCompose", "NameConflict", "SharingRefused"})
SHARED_PREFIX = "shared: "


@dataclass(frozen=True)
class Outcome:
    """What the reconcile managed to do, as far as status cares."""

    failure: FailureReason = ""
    messages: tuple[str, ...] = ()
    refused: Mapping[str, str] = field(default_factory=dict)
    """Compose service name → why its Deployment was not patched."""
    served: Mapping[str, Sequence[tuple[str, str]]] = field(default_factory=dict)
    """Model key of an offer of this app → (namespace, app) of every app bound to it."""
    unready_offers: Mapping[str, str] = field(default_factory=dict)
    """Offer name (`ns/app/model`) → why the offered model does not serve yet."""


@dataclass(frozen=True)
class EventSpec:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MESSAGE_TAIL else "…" + text[-MESSAGE_TAIL:]


def _container_problem(container: Manifest) -> str | None:
    name = container.get("name", "?")
    state = container.get("state", {})
    waiting = state.get("waiting")
    if waiting and waiting.get("reason") in WAITING_PROBLEMS:
        text = f"container {name}: {waiting['reason']}"
        if waiting.get("message"):
            text += f": {waiting['message']}"
        last = container.get("lastState", {}).get("terminated")
        if last:
            text += f"; last exit code {last.get('exitCode')}"
            if last.get("message"):
                text += f": {_tail(last['message'])}"
        return text
    terminated = state.get("terminated")
    if terminated and terminated.get("exitCode", 0) != 0:
        text = f"container {name} exited with code {terminated.get('exitCode')}"
        if terminated.get("message"):
            text += f": {_tail(terminated['message'])}"
        return text
    return None


def pod_problem(pod: Manifest) -> str | None:
    """Why this pod is not serving, when the pod itself can say."""
    name = pod.get("metadata", {}).get("name", "?")
    status = pod.get("status", {})
    for condition in status.get("conditions", []):
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return f"pod {name} cannot be scheduled: {condition.get('message', '')}".rstrip(": ")
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key, []):
            problem = _container_problem(container)
            if problem:
                return f"pod {name}: {problem}"
    return None


def _matches(selector: Mapping[str, str], pod: Manifest) -> bool:
    labels = pod.get("metadata", {}).get("labels", {})
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def replica_failure(deployment: Manifest) -> str | None:
    """Why pods cannot even be created (a Pod Security or quota refusal), as the ReplicaSet
    reported it: the Deployment controller copies its `ReplicaFailure` condition."""
    for condition in deployment.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            reason = condition.get("reason") or "ReplicaFailure"
            return _tail(f"{reason}: {condition.get('message', '')}".rstrip(": "))
    return None


def deployment_availability(
    name: str, deployment: Manifest | None, pods: Sequence[Manifest]
) -> tuple[bool, str]:
    """Whether the Deployment serves its desired replicas, and if not, why (pods first)."""
    if deployment is None:
        return False, f"Deployment {name} does not exist yet"
    spec = deployment.get("spec", {})
    status = deployment.get("status", {})
    desired = spec.get("replicas", 1)
    generation = deployment.get("metadata", {}).get("generation", 0)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    if status.get("observedGeneration", 0) >= generation and (
        updated >= desired and available >= desired and total <= desired
    ):
        return True, ""
    selector = spec.get("selector", {}).get("matchLabels", {})
    for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("name", ""))):
        if _matches(selector, pod):
            problem = pod_problem(pod)
            if problem:
                return False, problem
    failure = replica_failure(deployment)
    if failure:
        return False, f"Deployment {name}: {failure}"
    if status.get("observedGeneration", 0) < generation:
        return False, f"Deployment {name}: rollout not observed yet"
    if updated < desired:
        return False, f"Deployment {name}: {updated}/{desired} replicas updated"
    if available < desired:
        return False, f"Deployment {name}: {available}/{desired} replicas available"
    return False, f"Deployment {name}: {total - desired} old replicas terminating"


def _condition(
    kind: str,
    value: bool,
    reason: str,
    message: str,
    generation: int,
    previous: Mapping[str, Manifest],
    now: str,
) -> Manifest:
    status = "True" if value else "False"
    before = previous.get(kind, {})
    since = before.get("lastTransitionTime") if before.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since or now,
    }


def _counted(entries: Sequence[Manifest], ready: Sequence[bool]) -> str:
    return f"{sum(ready)}/{len(entries)}"


def build_status(
    *,
    generation: int,
    plan: Plan | None,
    outcome: Outcome,
    deployments: Mapping[str, Manifest],
    pods: Sequence[Manifest],
    previous: Mapping[str, Any],
    now: str,
) -> Status:
    """The whole status. With no plan (a failure before planning), the last lists are kept."""
    old_conditions = {c.get("type", ""): c for c in previous.get("conditions", [])}
    status: Status = {"observedGeneration": generation}
    waiting: list[str] = []
    if plan is not None:
        models: list[Manifest] = []
        model_ready: list[bool] = []
        refusals = dict(plan.refusals)
        for model in plan.models:
            entry: dict[str, Any] = {
                "name": model.key,
                "model": model.model,
                "engine": model.engine,
                "endpoint": model.endpoint,
                "source": model.source,
                "replicas": model.replicas,
            }
            if model.source == "refused":
                entry = {"name": model.key, "model": model.model, "source": model.source}
                ok, why = False, refusals.get(model.key, "")
            elif refusals:
                ok, why = False, ""  # nothing of the app runs while a model is refused
            elif model.source == "own":
                live = deployments.get(model.deployment)
                ok, why = deployment_availability(model.deployment, live, pods)
                entry["readyReplicas"] = (live or {}).get("status", {}).get("readyReplicas", 0)
            else:
                offer = model.source[len(SHARED_PREFIX) :]
                why = outcome.unready_offers.get(offer, "")
                ok, why = not why, f"offer {offer}: {why}" if why else ""
            if model.offered:
                apps = outcome.served.get(model.key, ())
                entry["servedApps"] = len(apps)
                entry["servedNamespaces"] = sorted({namespace for namespace, _ in apps})
            if why:
                entry["message"] = why
                waiting.append(f"model {model.key}: {why}")
            models.append(entry)
            model_ready.append(ok)
        services: list[Manifest] = []
        service_ready: list[bool] = []
        for service in plan.services:
            entry = {"name": service.name, "mode": service.mode, "models": list(service.models)}
            refusal = outcome.refused.get(service.name)
            if refusals:
                ok, why = False, ""
            elif refusal is not None:
                entry["mode"] = "refused"
                ok, why = False, refusal
            else:
                live = deployments.get(service.deployment)
                ok, why = deployment_availability(service.deployment, live, pods)
                if why:
                    waiting.append(f"service {service.name}: {why}")
            if why:
                entry["message"] = why
            services.append(entry)
            service_ready.append(ok)
        status["models"] = models
        status["services"] = services
        if plan.warnings:
            status["warnings"] = [str(w) for w in plan.warnings]
        status["ready"] = {
            "models": _counted(models, model_ready),
            "services": _counted(services, service_ready),
            "shared": f"{sum(1 for m in plan.models if m.source.startswith(SHARED_PREFIX))}"
            f"/{len(plan.models)}",
        }
        if any(model.offered for model in plan.models):
            status["ready"]["serving"] = sum(len(apps) for apps in outcome.served.values())
    else:
        for key in ("models", "services", "warnings", "ready"):
            if key in previous:
                status[key] = previous[key]

    def condition(kind: str, value: bool, reason: str, message: str) -> Manifest:
        return _condition(kind, value, reason, message, generation, old_conditions, now)

    refused = sorted(outcome.refused.items())
    if outcome.failure in STALLING_FAILURES:
        message = "\n".join(outcome.messages)
        conditions = [
            condition(READY, False, outcome.failure, message),
            condition(RECONCILING, False, "", ""),
            condition(STALLED, True, outcome.failure, message),
        ]
    elif outcome.failure:
        message = "\n".join(outcome.messages)
        conditions = [
            condition(READY, False, outcome.failure, message),
            condition(RECONCILING, True, outcome.failure, "retrying: " + message),
            condition(STALLED, False, "", ""),
        ]
    elif refused:
        message = "\n".join(f"service {name}: {why}" for name, why in refused)
        conditions = [
            condition(READY, False, "BindingRefused", message),
            condition(RECONCILING, False, "", ""),
            condition(STALLED, True, "BindingRefused", message),
        ]
    elif waiting:
        message = "\n".join(waiting)
        conditions = [
            condition(READY, False, "NotReady", message),
            condition(RECONCILING, True, "Progressing", message),
            condition(STALLED, False, "", ""),
        ]
    else:
        conditions = [
            condition(READY, True, "Ready", "every model and service is available"),
            condition(RECONCILING, False, "", ""),
            condition(STALLED, False, "", ""),
        ]
    status["conditions"] = [{k: v for k, v in c.items() if v != ""} for c in conditions]
    return status


def status_patch(previous: Mapping[str, Any], new: Status) -> Status | None:
    """The merge patch that turns the previous status into the new one; None when equal."""
    patch: Status = {key: new.get(key) for key in OWNED_KEYS if previous.get(key) != new.get(key)}
    return patch or None


def _ready(status: Mapping[str, Any]) -> Manifest:
    for condition in status.get("conditions", []):
        if condition.get("type") == READY:
            return dict(condition)
    return {}


def _modes(status: Mapping[str, Any]) -> dict[str, str]:
    return {s.get("name", ""): s.get("mode", "") for s in status.get("services", [])}


def transition_events(previous: Mapping[str, Any], new: Mapping[str, Any]) -> list[EventSpec]:
    """Events for what changed between two statuses; nothing when nothing changed."""
    events: list[EventSpec] = []
    before, after = _ready(previous), _ready(new)
    changed = (before.get("status"), before.get("reason"), before.get("message")) != (
        after.get("status"),
        after.get("reason"),
        after.get("message"),
    )
    reason, message = after.get("reason", ""), after.get("message", "")
    if changed and after.get("status") == "True":
        events.append(EventSpec("Normal", "Ready", message))
    elif changed and reason in {
        "InvalidCompose",
        "ComposeSourceMissing",
        "NameConflict",
        "ReconcileFailed",
        "SharingRefused",
    }:
        events.append(EventSpec("Warning", reason, message))
    elif before.get("status") == "True" and after.get("status") == "False":
        events.append(EventSpec("Warning", "NotReady", message))
    events += _sharing_events(previous, new)
    old_modes, new_modes = _modes(previous), _modes(new)
    for name in sorted(set(old_modes) | set(new_modes)):
        old, mode = old_modes.get(name), new_modes.get(name)
        if old == mode:
            continue
        if mode == "patched":
            events.append(
                EventSpec("Normal", "Bound", f"service {name}: model env added to its Deployment")
            )
        elif mode == "refused":
            events.append(
                EventSpec("Warning", "BindingRefused", f"service {name}: binding refused")
            )
        elif old == "patched":
            events.append(
                EventSpec(
                    "Normal", "Unbound", f"service {name}: model env removed from its Deployment"
                )
            )
    return events


def _by_name(status: Mapping[str, Any]) -> dict[str, Manifest]:
    return {m.get("name", ""): m for m in status.get("models", []) or []}


def _sharing_events(previous: Mapping[str, Any], new: Mapping[str, Any]) -> list[EventSpec]:
    """A model binding to or leaving an offer; an offer's set of served apps changing."""
    events: list[EventSpec] = []
    before, after = _by_name(previous), _by_name(new)
    for name in sorted(set(before) | set(after)):
        old, now = before.get(name, {}), after.get(name, {})
        old_source, source = str(old.get("source", "")), str(now.get("source", ""))
        if source != old_source and source.startswith(SHARED_PREFIX):
            events.append(
                EventSpec("Normal", "BoundToOffer", f"model {name}: {source}, no own Deployment")
            )
        elif source != old_source and old_source.startswith(SHARED_PREFIX) and source:
            events.append(
                EventSpec(
                    "Normal" if source == "own" else "Warning",
                    "UnboundFromOffer",
                    f"model {name}: was {old_source}, now {source}",
                )
            )
        served = (now.get("servedApps"), now.get("servedNamespaces"))
        if "servedApps" in now and served != (old.get("servedApps"), old.get("servedNamespaces")):
            namespaces = ", ".join(now.get("servedNamespaces", [])) or "none"
            events.append(
                EventSpec(
                    "Normal",
                    "OfferServing",
                    f"model {name}: offered, serving {now['servedApps']} apps "
                    f"(namespaces: {namespaces})",
                )
            )
    return events
