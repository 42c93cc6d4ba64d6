"""A Compose service with an `image` as a Deployment, plus a Service when it listens.

The Service is named after the Compose service and listens on the container's own ports,
so `http://web:8080` reaches it as it would on a Compose network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compose_operator import names
from compose_operator.errors import Warning
from compose_operator.plan import Manifest
from compose_operator.project import HealthCheck, Resources, Service
from compose_operator.render import labels, security
from compose_operator.render.placement import gpu_resources, gpu_tolerations
from compose_operator.render.projectfiles import DIGEST_ANNOTATION, ServiceMounts
from compose_operator.settings import Settings


@dataclass
class ServiceWorkload:
    objects: list[Manifest] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)


def build_service_workload(
    service: Service,
    *,
    app: str,
    namespace: str,
    env: Mapping[str, str],
    settings: Settings,
    mounts: ServiceMounts | None = None,
) -> ServiceWorkload:
    """Build the objects; the caller has checked `service` against policy already. `mounts`
    are its project files, configs and secrets (render/projectfiles.py)."""
    mounts = mounts or ServiceMounts()
    path = f"services.{service.name}"
    result = ServiceWorkload()
    name = names.service(service.name)
    container: dict[str, Any] = {"name": name, "image": service.image}
    if service.entrypoint is not None:
        container["command"] = list(service.entrypoint)
    if service.command is not None:
        container["args"] = list(service.command)
    if service.working_dir:
        container["workingDir"] = service.working_dir
    if env:
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
    ports = _ports(service)
    if ports:
        container["ports"] = [
            {"containerPort": port, "protocol": protocol} for port, protocol in ports
        ]
    resources = _resources(service.resources, settings)
    if resources:
        container["resources"] = resources
    if service.healthcheck is not None and service.healthcheck.test:
        container["readinessProbe"] = _probe(service.healthcheck)
        container["livenessProbe"] = _probe(service.healthcheck)
    security_context = security.container_security(service)
    user, warning = _user(service.user, path)
    security_context.update(user)
    result.warnings += warning
    if security_context:
        container["securityContext"] = security_context
    volumes, volume_mounts = _volumes(service, app)
    volumes += mounts.volumes
    volume_mounts += mounts.mounts
    if volume_mounts:
        container["volumeMounts"] = volume_mounts

    pod: dict[str, Any] = {**security.pod_fields(service), "containers": [container]}
    if service.node_selector:
        pod["nodeSelector"] = dict(sorted(service.node_selector.items()))
    tolerations = _tolerations(gpu_tolerations(service.resources.gpus, settings), service)
    if tolerations:
        pod["tolerations"] = tolerations
    if volumes:
        pod["volumes"] = volumes
    if mounts.fs_group is not None:
        pod.setdefault("securityContext", {})["fsGroup"] = mounts.fs_group
    pod = security.harden(pod, _identity(security_context, volumes))
    template_metadata: dict[str, Any] = {"labels": labels.for_service(app, service.name)}
    annotations = _annotations(service.labels, path, result.warnings)
    if mounts.digest is not None:
        annotations[DIGEST_ANNOTATION] = mounts.digest
    if annotations:
        template_metadata["annotations"] = annotations
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels.service_selector(app, service.name)},
        "template": {"metadata": template_metadata, "spec": pod},
    }
    if service.replicas is not None:
        spec = {"replicas": service.replicas, **spec}
    result.objects.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(name, namespace, app, service.name),
            "spec": spec,
        }
    )
    if ports:
        result.objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _metadata(name, namespace, app, service.name),
                "spec": {
                    "selector": labels.service_selector(app, service.name),
                    "ports": [
                        {
                            "name": f"{protocol.lower()}-{port}",
                            "port": port,
                            "targetPort": port,
                            "protocol": protocol,
                        }
                        for port, protocol in ports
                    ],
                },
            }
        )
    return result


def _tolerations(gpu: list[dict[str, Any]], service: Service) -> list[dict[str, Any]]:
    """The GPU tolerations, then the service's own, each once."""
    unique: dict[str, dict[str, Any]] = {}
    for toleration in (*gpu, *service.tolerations):
        unique.setdefault(json.dumps(toleration, sort_keys=True), dict(toleration))
    return list(unique.values())


def _metadata(name: str, namespace: str, app: str, service: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels.for_service(app, service)}


def _ports(service: Service) -> list[tuple[int, str]]:
    """Target ports and `expose` ports, each once, in the order written."""
    found = [(port.target, port.protocol) for port in service.ports]
    found += [(port, "TCP") for port in service.expose]
    return list(dict.fromkeys(found))


def _resources(resources: Resources, settings: Settings) -> dict[str, Any]:
    requested: dict[str, dict[str, str]] = {}
    for section, cpu, memory in (
        ("limits", resources.cpu_limit, resources.memory_limit),
        ("requests", resources.cpu_request, resources.memory_request),
    ):
        values = {key: value for key, value in (("cpu", cpu), ("memory", memory)) if value}
        if values:
            requested[section] = values
    return gpu_resources(resources.gpus, settings, requested)


def _probe(check: HealthCheck) -> dict[str, Any]:
    """A Compose healthcheck as an exec probe; Kubernetes needs each period ≥ 1 s."""
    probe: dict[str, Any] = {
        "exec": {"command": list(check.test)},
        "periodSeconds": max(1, check.interval_seconds),
        "timeoutSeconds": max(1, check.timeout_seconds),
        "failureThreshold": max(1, check.retries),
    }
    if check.start_period_seconds > 0:
        probe["initialDelaySeconds"] = check.start_period_seconds
    return probe


def _user(user: str | None, path: str) -> tuple[dict[str, int], list[Warning]]:
    """`1000` or `1000:1000` as runAsUser/runAsGroup (`root` is uid 0, which only the policy's
    allowRoot lets through); other user names cannot be resolved without the image."""
    if user is None:
        return {}, []
    uid, gid = ("0" if part == "root" else part for part in security.parse_user(user))
    if uid.isdigit() and (not gid or gid.isdigit()):
        context = {"runAsUser": int(uid)}
        if gid:
            context["runAsGroup"] = int(gid)
        return context, []
    message = f"user {user!r} is not a numeric uid[:gid]; Kubernetes cannot resolve names; ignored"
    return {}, [Warning(f"{path}.user", message)]


def _identity(context: dict[str, Any], volumes: list[dict[str, Any]]) -> security.Identity:
    """Volumes the service writes to belong to its group (or the non-root default), so a
    non-root process can write to a fresh PersistentVolumeClaim."""
    writable = any("persistentVolumeClaim" in volume for volume in volumes)
    if not writable:
        return security.Identity()
    return security.Identity(fs_group=context.get("runAsGroup", security.NON_ROOT_ID))


def _volumes(service: Service, app: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: dict[str, dict[str, Any]] = {}
    mounts = []
    for mount in service.volumes:
        if mount.project:
            continue
        if mount.bind:
            name = names.dns_label("host", mount.source)
            volumes[name] = {"name": name, "hostPath": {"path": mount.source}}
        else:
            name = names.dns_label(mount.source)
            claim = names.volume(app, mount.source)
            volumes[name] = {"name": name, "persistentVolumeClaim": {"claimName": claim}}
        entry: dict[str, Any] = {"name": name, "mountPath": mount.target}
        if mount.read_only:
            entry["readOnly"] = True
        mounts.append(entry)
    for index, device in enumerate(service.escalations.devices):
        host, _, rest = device.partition(":")
        name = names.dns_label("device", str(index), host)
        volumes[name] = {"name": name, "hostPath": {"path": host}}
        mounts.append({"name": name, "mountPath": rest.partition(":")[0] or host})
    return list(volumes.values()), mounts


def _annotations(
    service_labels: Mapping[str, str], path: str, warnings: list[Warning]
) -> dict[str, str]:
    """Compose labels become pod annotations: metadata, never selectors."""
    annotations = {}
    for key, value in sorted(service_labels.items()):
        if names.is_qualified_name(key):
            annotations[key] = value
        else:
            warnings.append(
                Warning(f"{path}.labels.{key}", "not a valid Kubernetes annotation key; ignored")
            )
    return annotations
