"""The ComposeApp status, built from the plan and what the cluster shows. Pure.

Semantics are kstatus's (what Flux and `kubectl wait`-style tools read): `Reconciling=True`
while a Deployment is rolling out or a retry is pending, `Stalled=True` when retrying cannot
help (invalid Compose, a refused binding, a name taken by someone else), `Ready=True` only when
every model and service, and the model gateway when there is one, is available. Each condition
carries `observedGeneration`; an unchanged condition keeps its `lastTransitionTime`, so an
unchanged world gives an equal status and the shell writes nothing.

A model that is not ready says why, read from its pods: the scheduler's Unschedulable message,
a container waiting in ImagePullBackOff or CrashLoopBackOff, or the terminated container's
message (engine containers use FallbackToLogsOnError, so that is the log's tail), with the
well-known exit codes in plain words (132: built for CPU instructions the node lacks; 137
OOMKilled: the memory limit, with its value; 139, 143); with no pod to read, the ReplicaSet's
FailedCreate message (a Pod Security or quota refusal).

A container that keeps crashing with the same exit code is remembered in the status (`crash`
on the model or service entry: pod, container, exit code, how many crashes in a row), since
the kubelet only keeps the last termination. At the settings' `stallAfterCrashes` the app goes
`Stalled` (reason CrashLoop): kstatus reads Failed, so Flux and Argo CD stop waiting. A
container that turns ready again, or a spec change, ends that (back to Reconciling).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from compose_operator.plan import OfferRef, Plan
from compose_operator.settings import Settings

Manifest = Mapping[str, Any]
Status = dict[str, Any]

READY, RECONCILING, STALLED = "Ready", "Reconciling", "Stalled"
OWNED_KEYS = (
    "observedGeneration",
    "conditions",
    "models",
    "services",
    "gateway",
    "warnings",
    "ready",
)
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
CRASH_LOOP = "CrashLoop"
_CRASH_IDENTITY = ("pod", "container", "exitCode")

EXIT_MEANINGS = {
    132: "SIGILL: the image was built for CPU instructions this node lacks; "
    "use an image built for this node's CPU, or a portable build",
    134: "SIGABRT: the program aborted, e.g. on a failed assertion; the log says where",
    137: "SIGKILL: killed from outside, not for lack of memory, e.g. after its stop grace period",
    139: "SIGSEGV: the program crashed on a bad memory access: a bug, a damaged model file, "
    "or a model the engine cannot run",
    143: "SIGTERM: the container was told to stop, "
    "e.g. after failing its liveness probe, or by an eviction or a node shutdown",
}
"""Exit codes a container's process commonly dies with (128 + the signal), in plain words."""


@dataclass(frozen=True)
class Outcome:
    """What the reconcile managed to do, as far as status cares."""

    failure: FailureReason = ""
    messages: tuple[str, ...] = ()
    refused: Mapping[str, str] = field(default_factory=dict)
    """Compose service name → why its Deployment was not patched."""
    served: Mapping[str, Sequence[tuple[str, str]]] = field(default_factory=dict)
    """Model key of an offer of this app → (namespace, app) of every app bound to it."""
    unready_offers: Mapping[OfferRef, str] = field(default_factory=dict)
    """Offer name (`ns/app/model`) → why the offered model does not serve yet."""
    missing_secrets: Mapping[str, str] = field(default_factory=dict)
    """Secret name → what is missing and how to make it, for Secrets the pods mount."""


@dataclass(frozen=True)
class EventSpec:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MESSAGE_TAIL else "…" + text[-MESSAGE_TAIL:]


def exit_meaning(terminated: Manifest, memory_limit: str | None = None) -> str | None:
    """What an exit code means, in words; None for an ordinary error exit."""
    if terminated.get("reason") == "OOMKilled":
        if memory_limit:
            return (
                f"OOMKilled: the container used all of its memory limit ({memory_limit}); "
                "raise the limit or make the work smaller (e.g. context_size)"
            )
        return "OOMKilled: the node ran out of memory (the container has no memory limit)"
    return EXIT_MEANINGS.get(terminated.get("exitCode", 0))


def _exit(terminated: Manifest, memory_limit: str | None) -> str:
    """`code 132 (SIGILL: ...): <log tail>`."""
    text = f"code {terminated.get('exitCode')}"
    meaning = exit_meaning(terminated, memory_limit)
    if meaning:
        text += f" ({meaning})"
    if terminated.get("message"):
        text += f": {_tail(terminated['message'])}"
    return text


def _memory_limits(pod: Manifest) -> dict[str, str]:
    spec = pod.get("spec", {})
    return {
        str(c.get("name", "")): str(c["resources"]["limits"]["memory"])
        for key in ("initContainers", "containers")
        for c in spec.get(key, [])
        if c.get("resources", {}).get("limits", {}).get("memory")
    }


def _container_problem(container: Manifest, memory_limits: Mapping[str, str]) -> str | None:
    name = container.get("name", "?")
    state = container.get("state", {})
    limit = memory_limits.get(name)
    waiting = state.get("waiting")
    if waiting and waiting.get("reason") in WAITING_PROBLEMS:
        text = f"container {name}: {waiting['reason']}"
        if waiting.get("message"):
            text += f": {waiting['message']}"
        last = container.get("lastState", {}).get("terminated")
        if last:
            text += f"; last exit {_exit(last, limit)}"
        return text
    terminated = state.get("terminated")
    if terminated and terminated.get("exitCode", 0) != 0:
        return f"container {name} exited with {_exit(terminated, limit)}"
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
    limits = _memory_limits(pod)
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key, []):
            problem = _container_problem(container, limits)
            if problem:
                return f"pod {name}: {problem}"
    return None


def _last_crash(container: Manifest, init: bool) -> Manifest | None:
    """The termination of a container that crashed and has not recovered, if any."""
    state = container.get("state", {})
    terminated = state.get("terminated")
    if terminated is not None:
        return terminated if terminated.get("exitCode", 0) != 0 else None
    if not init and container.get("ready"):
        return None
    last = container.get("lastState", {}).get("terminated")
    return last if last and last.get("exitCode", 0) != 0 else None


def _template_hash(pod: Manifest) -> str:
    return str(pod.get("metadata", {}).get("labels", {}).get("pod-template-hash", ""))


def crash_record(
    pods: Sequence[Manifest], previous: Manifest | None, *, same_spec: bool
) -> tuple[Manifest, str] | None:
    """The crashed container of the newest pods (of the Deployment's newest template), how many
    times in a row it crashed that way, and its last exit in words (with the log's tail).

    The kubelet keeps only the last termination, so the count lives in the status: it grows
    by the restarts seen since the previous record while pod, container and exit code stay
    the same, and starts again at 1 when one of them changes, when the container had
    recovered in between (no earlier record) or when the spec changed.
    """
    newest_first = sorted(
        pods,
        key=lambda p: (
            str(p.get("metadata", {}).get("creationTimestamp", "")),
            str(p.get("metadata", {}).get("name", "")),
        ),
        reverse=True,
    )
    if newest_first:
        # Only the newest template's pods: during a rollout the old ones may crash on.
        template = _template_hash(newest_first[0])
        newest_first = [pod for pod in newest_first if _template_hash(pod) == template]
    for pod in newest_first:
        status = pod.get("status", {})
        for key in ("initContainerStatuses", "containerStatuses"):
            for container in status.get(key, []):
                terminated = _last_crash(container, key == "initContainerStatuses")
                if terminated is None:
                    continue
                name = container.get("name", "?")
                limit = _memory_limits(pod).get(name)
                record: dict[str, Any] = {
                    "pod": pod.get("metadata", {}).get("name", "?"),
                    "container": name,
                    "exitCode": terminated.get("exitCode"),
                }
                meaning = exit_meaning(terminated, limit)
                if meaning:
                    record["meaning"] = meaning
                restarts = int(container.get("restartCount", 0))
                before = previous or {}
                crashes = 1
                if same_spec and all(before.get(k) == record[k] for k in _CRASH_IDENTITY):
                    seen = int(before.get("restartCount", restarts))
                    crashes = int(before.get("crashes", 1)) + max(0, restarts - seen)
                record |= {"restartCount": restarts, "crashes": crashes}
                return record, _exit(terminated, limit)
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
    stall_after_crashes: int = Settings.stall_after_crashes,
) -> Status:
    """The whole status. With no plan (a failure before planning), the last lists are kept.

    `stall_after_crashes`: crashes in a row with one exit code that make the app Stalled
    (0: never).
    """
    old_conditions = {c.get("type", ""): c for c in previous.get("conditions", [])}
    status: Status = {"observedGeneration": generation}
    waiting: list[str] = []
    secrets_missing: list[str] = []
    crash_loops: list[str] = []
    same_spec = previous.get("observedGeneration") == generation

    def track_crashes(
        label: str, entry: dict[str, Any], live: Manifest | None, before: Manifest
    ) -> None:
        selector = (live or {}).get("spec", {}).get("selector", {}).get("matchLabels", {})
        found = crash_record(
            [pod for pod in pods if _matches(selector, pod)],
            before.get("crash"),
            same_spec=same_spec,
        )
        if found is None:
            return
        record, last_exit = found
        entry["crash"] = record
        if 0 < stall_after_crashes <= record["crashes"]:
            crash_loops.append(
                f"{label}: container {record['container']} of pod {record['pod']} crashed "
                f"{record['crashes']} times in a row, last with exit {last_exit}"
            )

    if plan is not None:
        old_models, old_services = _by_name(previous), _by_name(previous, "services")
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
                if not ok:
                    before = old_models.get(model.key, {})
                    track_crashes(f"model {model.key}", entry, live, before)
            elif model.shared is not None:
                why = outcome.unready_offers.get(model.shared, "")
                ok, why = not why, f"offer {model.shared}: {why}" if why else ""
            else:
                ok, why = False, f"model {model.key}: source {model.source} unknown"
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
        lacking = {
            user: outcome.missing_secrets[secret.name]
            for secret in reversed(plan.secrets)
            if secret.name in outcome.missing_secrets
            for user in secret.services
        }
        for service in plan.services:
            entry = {"name": service.name, "mode": service.mode, "models": list(service.models)}
            refusal = outcome.refused.get(service.name)
            if refusals:
                ok, why = False, ""
            elif refusal is not None:
                entry["mode"] = "refused"
                ok, why = False, refusal
            elif service.name in lacking:
                ok, why = False, lacking[service.name]
                secrets_missing.append(f"service {service.name}: {why}")
            else:
                live = deployments.get(service.deployment)
                ok, why = deployment_availability(service.deployment, live, pods)
                if why:
                    waiting.append(f"service {service.name}: {why}")
                if not ok:
                    before = old_services.get(service.name, {})
                    track_crashes(f"service {service.name}", entry, live, before)
            if why:
                entry["message"] = why
            services.append(entry)
            service_ready.append(ok)
        status["models"] = models
        status["services"] = services
        if plan.gateway is not None:
            gateway = plan.gateway
            live = deployments.get(gateway.name)
            ok, why = (False, "") if refusals else deployment_availability(gateway.name, live, pods)
            status["gateway"] = {
                "url": gateway.url,
                "name": gateway.name,
                "ready": ok,
                "replicas": gateway.replicas,
                "readyReplicas": (live or {}).get("status", {}).get("readyReplicas", 0),
            }
            if why:
                status["gateway"]["message"] = why
                waiting.append(f"model gateway: {why}")
        if plan.warnings:
            status["warnings"] = [str(w) for w in plan.warnings]
        status["ready"] = {
            "models": _counted(models, model_ready),
            "services": _counted(services, service_ready),
            "shared": f"{sum(1 for m in plan.models if m.shared is not None)}/{len(plan.models)}",
        }
        if any(model.offered for model in plan.models):
            status["ready"]["serving"] = sum(len(apps) for apps in outcome.served.values())
    else:
        for key in ("models", "services", "gateway", "warnings", "ready"):
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
    elif crash_loops:
        message = "\n".join(crash_loops)
        conditions = [
            condition(READY, False, CRASH_LOOP, message),
            condition(RECONCILING, False, "", ""),
            condition(STALLED, True, CRASH_LOOP, message),
        ]
    elif secrets_missing:
        message = "\n".join(secrets_missing + waiting)
        conditions = [
            condition(READY, False, "SecretMissing", message),
            condition(RECONCILING, True, "SecretMissing", message),
            condition(STALLED, False, "", ""),
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
    """The merge patch that turns the previous status into the new one; None when equal.

    A merge patch merges mappings, so a key a mapping no longer has (the gateway's `message`
    once it is ready) is sent as null, which removes it."""
    patch: Status = {
        key: _replacing(previous.get(key), new.get(key))
        for key in OWNED_KEYS
        if previous.get(key) != new.get(key)
    }
    return patch or None


def _replacing(old: Any, new: Any) -> Any:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return {**{key: None for key in old if key not in new}, **new}
    return new


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
    elif reason == CRASH_LOOP:
        if before.get("reason") != CRASH_LOOP:
            events.append(EventSpec("Warning", CRASH_LOOP, message))
    elif changed and reason in {
        "InvalidCompose",
        "ComposeSourceMissing",
        "NameConflict",
        "ReconcileFailed",
        "SharingRefused",
        "SecretMissing",
    }:
        events.append(EventSpec("Warning", reason, message))
    elif before.get("status") == "True" and after.get("status") == "False":
        events.append(EventSpec("Warning", "NotReady", message))
    events += _crash_events(previous, new)
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


def _by_name(status: Mapping[str, Any], key: str = "models") -> dict[str, Manifest]:
    return {m.get("name", ""): m for m in status.get(key, []) or []}


def _crash_events(previous: Mapping[str, Any], new: Mapping[str, Any]) -> list[EventSpec]:
    """A container seen crashing: once per pod, container and exit code, not per restart."""
    events: list[EventSpec] = []
    for kind in ("models", "services"):
        before, after = _by_name(previous, kind), _by_name(new, kind)
        for name, entry in sorted(after.items()):
            crash = entry.get("crash")
            old = before.get(name, {}).get("crash") or {}
            if crash and any(old.get(key) != crash.get(key) for key in _CRASH_IDENTITY):
                why = entry.get("message") or (
                    f"container {crash.get('container')} of pod {crash.get('pod')} exited "
                    f"with code {crash.get('exitCode')}"
                )
                events.append(
                    EventSpec("Warning", "ContainerCrashed", f"{kind[:-1]} {name}: {why}")
                )
    return events


def _sharing_events(previous: Mapping[str, Any], new: Mapping[str, Any]) -> list[EventSpec]:
    """A model binding to or leaving an offer; an offer's set of served apps changing."""
    events: list[EventSpec] = []
    before, after = _by_name(previous), _by_name(new)
    for name in sorted(set(before) | set(after)):
        old, now = before.get(name, {}), after.get(name, {})
        old_source, source = str(old.get("source", "")), str(now.get("source", ""))
        if source != old_source and OfferRef.from_source(source):
            events.append(
                EventSpec("Normal", "BoundToOffer", f"model {name}: {source}, no own Deployment")
            )
        elif source != old_source and OfferRef.from_source(old_source) and source:
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
