"""The Pod Security Standard "restricted" (Kubernetes 1.36, `restricted:latest`) as a checker.

Written from the standard's published checks (kubernetes.io/docs/concepts/security/
pod-security-standards, and k8s.io/pod-security-admission/policy): the baseline checks, then the
restricted ones. The e2e suites check the same with the real admission controller; this lets
every rendered pod be checked in a unit test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def violations(
    pod_spec: Mapping[str, Any], annotations: Mapping[str, str] | None = None
) -> list[str]:
    """Every way `pod_spec` (with its pod template's annotations) breaks "restricted"."""
    found: list[str] = []
    pod = pod_spec.get("securityContext", {}) or {}
    containers = [
        *pod_spec.get("initContainers", []),
        *pod_spec.get("containers", []),
        *pod_spec.get("ephemeralContainers", []),
    ]
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            found.append(f"pod: {field}")
    for key, value in (annotations or {}).items():
        if key.startswith(APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            found.append(f"annotation {key}: {value}")
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']}: {sorted(kinds)}")
    for sysctl in pod.get("sysctls", []):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"pod: sysctl {sysctl.get('name')}")
    found += _selinux_and_apparmor("pod", pod)
    if pod.get("runAsUser") == 0:
        found.append("pod: runAsUser 0")
    if pod.get("seccompProfile", {}).get("type") == "Unconfined":
        found.append("pod: seccompProfile Unconfined")
    for container in containers:
        found += _container(container, pod)
    return found


def _selinux_and_apparmor(where: str, context: Mapping[str, Any]) -> list[str]:
    found = []
    selinux = context.get("seLinuxOptions", {}) or {}
    if selinux.get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t"):
        found.append(f"{where}: seLinuxOptions.type {selinux['type']}")
    if selinux.get("user") or selinux.get("role"):
        found.append(f"{where}: seLinuxOptions user/role")
    if (context.get("appArmorProfile", {}) or {}).get("type") == "Unconfined":
        found.append(f"{where}: appArmorProfile Unconfined")
    return found


def _container(container: Mapping[str, Any], pod: Mapping[str, Any]) -> list[str]:
    where = f"container {container.get('name')}"
    context = container.get("securityContext", {}) or {}
    found = _selinux_and_apparmor(where, context)
    if context.get("privileged"):
        found.append(f"{where}: privileged")
    if context.get("procMount") not in (None, "Default"):
        found.append(f"{where}: procMount {context['procMount']}")
    for port in container.get("ports", []):
        if port.get("hostPort"):
            found.append(f"{where}: hostPort {port['hostPort']}")
    if context.get("allowPrivilegeEscalation") is not False:
        found.append(f"{where}: allowPrivilegeEscalation is not false")
    non_root = context.get("runAsNonRoot", pod.get("runAsNonRoot"))
    if non_root is not True:
        found.append(f"{where}: runAsNonRoot is not true")
    if context.get("runAsUser") == 0:
        found.append(f"{where}: runAsUser 0")
    seccomp = (context.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        found.append(f"{where}: seccompProfile {seccomp}")
    capabilities = context.get("capabilities", {}) or {}
    if "ALL" not in capabilities.get("drop", []):
        found.append(f"{where}: capabilities do not drop ALL")
    added = set(capabilities.get("add", []))
    if not added <= {"NET_BIND_SERVICE"}:
        found.append(f"{where}: adds capabilities {sorted(added - {'NET_BIND_SERVICE'})}")
    if not added <= BASELINE_CAPABILITIES:
        found.append(f"{where}: adds capabilities outside baseline")
    return found


def pods_of(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(name, pod spec, pod annotations) of every workload in `objects`."""
    found = []
    for manifest in objects:
        template = manifest.get("spec", {}).get("template")
        if manifest.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job") and template:
            metadata = template.get("metadata", {})
            found.append(
                (manifest["metadata"]["name"], template["spec"], metadata.get("annotations", {}))
            )
    return found
