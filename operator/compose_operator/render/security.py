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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from compose_operator.errors import Problem
from compose_operator.project import Service
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


def refusals(service: Service, policy: Policy, path: str) -> list[Problem]:
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
