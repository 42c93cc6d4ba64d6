"""What a Compose service may ask for that could escape its pod, checked against policy.

Everything here is refused unless the platform's settings allow it: a Compose file is
often written by someone other than the cluster's operators.
"""

from __future__ import annotations

from typing import Any

from compose_operator.errors import Problem
from compose_operator.project import Service
from compose_operator.settings import Policy


def refusals(service: Service, policy: Policy, path: str) -> list[Problem]:
    asks = service.escalations
    found: list[tuple[bool, bool, str, str]] = [
        (asks.privileged, policy.allow_privileged, "privileged", "allowPrivileged"),
        (asks.host_network, policy.allow_host_namespaces, "network_mode", "allowHostNamespaces"),
        (asks.host_pid, policy.allow_host_namespaces, "pid", "allowHostNamespaces"),
        (asks.host_ipc, policy.allow_host_namespaces, "ipc", "allowHostNamespaces"),
        (bool(asks.cap_add), policy.allow_capabilities, "cap_add", "allowCapabilities"),
        (bool(asks.devices), policy.allow_devices, "devices", "allowDevices"),
    ]
    problems = [
        Problem(f"{path}.{key}", f"{what(key)} is not allowed by the operator's policy ({flag})")
        for asked, allowed, key, flag in found
        if asked and not allowed
    ]
    if not policy.allow_bind_mounts:
        problems += [
            Problem(
                f"{path}.volumes[{index}]",
                f"bind mount of host path {mount.source!r} is not allowed by the operator's "
                "policy (allowBindMounts); use a named volume",
            )
            for index, mount in enumerate(service.volumes)
            if mount.bind
        ]
    return problems


def what(key: str) -> str:
    return {
        "privileged": "a privileged container",
        "network_mode": "the host's network namespace",
        "pid": "the host's PID namespace",
        "ipc": "the host's IPC namespace",
        "cap_add": "adding Linux capabilities",
        "devices": "host devices",
    }[key]


def pod_fields(service: Service) -> dict[str, Any]:
    """Host namespaces, for a service the policy allowed them."""
    asks = service.escalations
    fields = {"hostNetwork": asks.host_network, "hostPID": asks.host_pid, "hostIPC": asks.host_ipc}
    return {key: True for key, value in fields.items() if value}


def container_security(service: Service) -> dict[str, Any]:
    """The container's securityContext: escalations (already allowed) and the user."""
    asks = service.escalations
    context: dict[str, Any] = {}
    if asks.privileged:
        context["privileged"] = True
    if asks.cap_add:
        context["capabilities"] = {"add": list(asks.cap_add)}
    return context
