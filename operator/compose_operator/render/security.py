"""Security contexts and policy: every pod we render meets Pod Security "restricted".

One place decides the security context of every pod the operator renders (model servers, the
puller init container, Compose services, the model gateway): `harden` takes a pod spec and
returns it with the restricted profile's fields set (non-root, no privilege escalation, all
capabilities dropped, the runtime's default seccomp profile, no service links, no API token).
What a Compose service may ask for beyond that (root, capabilities, privileged mode, host
namespaces, devices, host paths) is refused unless the platform's settings allow it: a Compose
file is often written by someone other than the cluster's operators.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from compose_operator.errors import Problem
from compose_operator.project import Model, Service
from compose_operator.settings import Policy

NON_ROOT_ID = 65532
"""The operator image's user and group (distroless "nonroot"); model pods, the puller and the
gateway run as it, and it owns what they write to the model volume (`fsGroup`)."""
ALLOWED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
"""The one capability the restricted profile lets a container add back after dropping all."""
ESCALATING_CAPABILITIES = frozenset({"SYS_ADMIN", "ALL"})
"""Capabilities the API server refuses beside `allowPrivilegeEscalation: false`."""
ROOT_NAMES = frozenset({"0", "root"})
POD_FIELDS = ("automountServiceAccountToken", "enableServiceLinks", "securityContext")


@dataclass(frozen=True)
class Identity:
    """Who a pod's processes run as. None leaves the image's own user (still non-root)."""

    user: int | None = None
    group: int | None = None
    fs_group: int | None = None
    """Group that owns the pod's volumes (PVCs, emptyDirs), so a non-root user can write."""


MODEL_SERVER = Identity(user=NON_ROOT_ID, group=NON_ROOT_ID, fs_group=NON_ROOT_ID)
"""Model pods: engine images (llama.cpp, vLLM) run as root by default; here they run as the
puller's user, which wrote the weights."""


def harden(pod: Mapping[str, Any], identity: Identity = Identity()) -> dict[str, Any]:
    """`pod` (a pod spec) with the restricted profile's fields set; its own choices kept where
    the profile allows them (a template's `runAsUser: 1000`, a container's added
    `NET_BIND_SERVICE`, an allowed root user or privileged container)."""
    given = copy.deepcopy(dict(pod))
    context: dict[str, Any] = given.pop("securityContext", {})
    # The pod-wide fields first, where a reader of `render` looks for them.
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": context,
        **{key: value for key, value in given.items() if key not in POD_FIELDS},
    }
    containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
    for container in containers:
        _harden_container(container)
    root = any(_runs_as_root(c.get("securityContext", {}), context) for c in containers)
    for key, value in (
        ("runAsUser", identity.user),
        ("runAsGroup", identity.group),
        ("fsGroup", identity.fs_group),
    ):
        if value is not None and not root:
            context.setdefault(key, value)
    if identity.fs_group is not None:
        # Large model caches: change ownership only when the volume's root does not match.
        context.setdefault("fsGroupChangePolicy", "OnRootMismatch")
    if root:
        context.pop("runAsNonRoot", None)
    else:
        context["runAsNonRoot"] = True
    if context.get("seccompProfile", {}).get("type") != "Localhost":
        context["seccompProfile"] = {"type": "RuntimeDefault"}
    return spec


def _harden_container(container: dict[str, Any]) -> None:
    context = container.setdefault("securityContext", {})
    if context.get("privileged"):
        return  # an allowed privileged container: the fields below would contradict it
    added = sorted(set(context.get("capabilities", {}).get("add", [])))
    context["capabilities"] = {"drop": ["ALL"], **({"add": added} if added else {})}
    if ESCALATING_CAPABILITIES.isdisjoint(added):
        context["allowPrivilegeEscalation"] = False
    else:
        context.pop("allowPrivilegeEscalation", None)
    if context.get("runAsNonRoot") is False and context.get("runAsUser") != 0:
        del context["runAsNonRoot"]
    seccomp = context.get("seccompProfile", {}).get("type")
    if seccomp not in (None, "RuntimeDefault", "Localhost"):
        del context["seccompProfile"]


def _runs_as_root(container: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    return bool(container.get("runAsUser", pod.get("runAsUser")) == 0)


def capability(name: str) -> str:
    """Docker's spelling (`CAP_NET_ADMIN`, `net_admin`) as Kubernetes names it (`NET_ADMIN`)."""
    upper = name.upper()
    return upper.removeprefix("CAP_")


def parse_user(user: str) -> tuple[str, str]:
    """`uid[:gid]` as written: (`1000`, `1000`), (`root`, ``)."""
    uid, _, gid = user.partition(":")
    return uid, gid


CONTROL_PLANE_LABELS = frozenset(
    {"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}
)
CLOUD_LABELS = frozenset({"cloud.instance-type", "cloud.region", "cloud.zone"})
"""Model labels the planner turns into scheduling, never into annotations."""


def denied(name: str, patterns: Iterable[str]) -> str | None:
    """The first glob pattern that matches `name`, if any."""
    return next((pattern for pattern in patterns if fnmatch.fnmatchcase(name, pattern)), None)


def binding_refusals(service: Service, policy: Policy, path: str) -> list[Problem]:
    """Model variables on the policy's denylist (`PATH`, `LD_*`, `*_PROXY`, ...): in bind mode
    they would go into a Deployment someone else owns."""
    problems = []
    for binding in service.models:
        for var, at, key in (
            (binding.endpoint_var, binding.endpoint_at, "endpoint_var"),
            (binding.model_var, binding.model_at, "model_var"),
        ):
            pattern = denied(var, policy.denied_env_names)
            if pattern is not None:
                problems.append(
                    Problem(
                        at or f"{path}.models.{binding.model}",
                        f"{var} may not be set by a model binding: it changes what a process "
                        f"loads or where its traffic goes (the operator's policy "
                        f"deniedEnvNames: {pattern}); choose another name with {key}",
                    )
                )
    return problems


def annotation_refusals(keys: Iterable[str], policy: Policy, path: str) -> list[Problem]:
    """Compose `labels` that would become security-relevant pod annotations."""
    problems = []
    for key in sorted(keys):
        pattern = denied(key, policy.denied_annotations)
        if pattern is not None:
            problems.append(
                Problem(
                    f"{path}.{key}",
                    f"{key} may not be set from a Compose file: it would change how the pod is "
                    f"secured, meshed or identified (the operator's policy deniedAnnotations: "
                    f"{pattern})",
                )
            )
    return problems


def placement_refusals(
    node_selector: Mapping[str, str],
    tolerations: Sequence[Mapping[str, Any]],
    policy: Policy,
    path: str,
) -> list[Problem]:
    """Control-plane nodes and tolerating every taint, unless the policy allows any node."""
    if policy.allow_any_node:
        return []
    problems = [
        Problem(
            f"{path}.nodeSelector.{key}",
            "scheduling onto control-plane nodes is not allowed by the operator's policy "
            "(allowAnyNode)",
        )
        for key in sorted(node_selector)
        if key in CONTROL_PLANE_LABELS
    ]
    for index, toleration in enumerate(tolerations):
        key = toleration.get("key")
        if not key and toleration.get("operator") == "Exists":
            why = "tolerating every taint (operator: Exists without a key)"
        elif key in CONTROL_PLANE_LABELS:
            why = "tolerating the control-plane taint"
        else:
            continue
        problems.append(
            Problem(
                f"{path}.tolerations[{index}]",
                f"{why} is not allowed by the operator's policy (allowAnyNode)",
            )
        )
    return problems


def model_refusals(model: Model, policy: Policy, path: str) -> list[Problem]:
    options = model.kubernetes
    annotations = [key for key in model.labels if key not in CLOUD_LABELS]
    return [
        *annotation_refusals(annotations, policy, f"{path}.labels"),
        *placement_refusals(
            options.node_selector, options.tolerations, policy, f"{path}.x-kubernetes"
        ),
    ]


def refusals(service: Service, policy: Policy, path: str) -> list[Problem]:
    """What a service with an image asks for that the policy does not allow."""
    asks = service.escalations
    extra_capabilities = sorted(
        {capability(c) for c in asks.cap_add} - ALLOWED_CAPABILITIES, key=str
    )
    uid = parse_user(service.user)[0] if service.user is not None else None
    found: list[tuple[bool, bool, str, str]] = [
        (asks.privileged, policy.allow_privileged, "privileged", "allowPrivileged"),
        (asks.host_network, policy.allow_host_namespaces, "network_mode", "allowHostNamespaces"),
        (asks.host_pid, policy.allow_host_namespaces, "pid", "allowHostNamespaces"),
        (asks.host_ipc, policy.allow_host_namespaces, "ipc", "allowHostNamespaces"),
        (bool(extra_capabilities), policy.allow_capabilities, "cap_add", "allowCapabilities"),
        (bool(asks.devices), policy.allow_devices, "devices", "allowDevices"),
        (uid in ROOT_NAMES, policy.allow_root, "user", "allowRoot"),
    ]
    problems = [
        Problem(
            f"{path}.{key}",
            f"{what(key, extra_capabilities)} is not allowed by the operator's policy ({flag})",
        )
        for asked, allowed, key, flag in found
        if asked and not allowed
    ]
    problems += annotation_refusals(service.labels, policy, f"{path}.labels")
    problems += placement_refusals(
        service.node_selector, service.tolerations, policy, f"{path}.x-kubernetes"
    )
    if not policy.allow_bind_mounts:
        problems += [
            Problem(f"{path}.volumes[{index}]", host_path_refusal(mount.source))
            for index, mount in enumerate(service.volumes)
            if mount.bind and not mount.project
        ]
    return problems


DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


def host_path_refusal(source: str) -> str:
    """Why a bind mount of a host path is refused, and what to do instead."""
    where = " (outside the project folder)" if source.startswith("..") else ""
    message = (
        f"bind mount of host path {source!r}{where} is not allowed by the operator's policy "
        "(allowBindMounts); use a named volume, or a path inside the project"
    )
    if source in DOCKER_SOCKETS:
        message += (
            "; the Docker socket would not help anyway: Kubernetes nodes run containerd, with "
            "no Docker API"
        )
    return message


def what(key: str, capabilities: Sequence[str] = ()) -> str:
    return {
        "privileged": "a privileged container",
        "network_mode": "the host's network namespace",
        "pid": "the host's PID namespace",
        "ipc": "the host's IPC namespace",
        "cap_add": "adding Linux capabilities other than NET_BIND_SERVICE "
        f"({', '.join(capabilities)})",
        "devices": "host devices",
        "user": "running as root (user 0)",
    }[key]


def pod_fields(service: Service) -> dict[str, Any]:
    """Host namespaces, for a service the policy allowed them."""
    asks = service.escalations
    fields = {"hostNetwork": asks.host_network, "hostPID": asks.host_pid, "hostIPC": asks.host_ipc}
    return {key: True for key, value in fields.items() if value}


def container_security(service: Service) -> dict[str, Any]:
    """What the service asks for in its container's securityContext (already allowed by
    policy); `harden` adds the restricted profile around it."""
    asks = service.escalations
    context: dict[str, Any] = {}
    if asks.privileged:
        context["privileged"] = True
    added = sorted({capability(c) for c in asks.cap_add})
    if added:
        context["capabilities"] = {"add": added}
    if service.read_only:
        context["readOnlyRootFilesystem"] = True
    return context
