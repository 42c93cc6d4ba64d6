"""The model gateway: one OpenAI-compatible endpoint per app, as Docker Model Runner gives. Pure.

Docker Compose sets every `*_URL` to Docker Model Runner's one endpoint, which picks the model
by the request's `model` field. Here that endpoint is a small router per app (`compose-operator
gateway`, in the operator's image) behind the Service `<app>-models`: a ConfigMap of the same
name carries its routing table, and the Deployment's pod template carries the table's hash, so
a routing change rolls the pods, and old pods finish what they are serving before they stop.

The routing table maps every name a client may send to a model: the reference as written
(what `*_MODEL` carries), the model's key, and every spelling of the reference (`ai/x`,
`ai/x:latest`, `docker.io/ai/x`, `docker.io/ai/x:latest`); the gateway also normalises an
unknown name before it gives up. When two models share a reference, the first by key keeps it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from compose_operator import names, references
from compose_operator.errors import Warning
from compose_operator.plan import Manifest
from compose_operator.render import env, labels, security
from compose_operator.settings import Settings

PORT = 8080
ROUTES_KEY = "routes.json"
ROUTES_DIR = "/etc/compose-operator/gateway"
ROUTES_HASH_ANNOTATION = "compose-operator.io/routes-hash"
CONTAINER = "gateway"
ENDPOINT_DELAY_SECONDS = 5
"""After SIGTERM a pod keeps accepting requests this long, failing /readyz, so Services stop
sending it new ones before it closes its listener (endpoint removal is asynchronous)."""
ROLL_WITHOUT_GAPS = {
    "type": "RollingUpdate",
    "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
}
"""A routing change starts a new pod before an old one stops: the app never lacks a gateway."""

GATEWAY_USER = security.Identity(user=security.NON_ROOT_ID, group=security.NON_ROOT_ID)
"""The operator image's user; the pod meets Pod Security "restricted" (`security.harden`)."""


@dataclass(frozen=True)
class Route:
    """Where the gateway sends requests for one model."""

    key: str
    model: str
    """The reference as the app wrote it: what `*_MODEL` carries and `/v1/models` lists."""
    engine: str
    upstream: str
    """The model Service's base URL without `/v1/`: `http://<svc>.<ns>.svc.<domain>`."""
    served: str
    """The name the engine serves (vLLM checks it): requests naming the model otherwise are
    rewritten to it."""
    replicas: int = 1


def url(app: str, namespace: str, settings: Settings) -> str:
    """The gateway's OpenAI base URL: every `*_URL` of the app behind it."""
    return env.model_url(
        names.gateway(app), namespace=namespace, cluster_domain=settings.cluster_domain
    )


def upstream(endpoint: str) -> str:
    """`http://svc.ns.svc.domain/v1/` → `http://svc.ns.svc.domain`."""
    return endpoint.removesuffix("/").removesuffix("/v1")


def route_names(routes: Sequence[Route]) -> tuple[dict[str, str], list[Warning]]:
    """Name → model key. First the names each model was given (its reference as written,
    its key), then the derived spellings; within each, models in key order."""
    table: dict[str, str] = {}
    warnings: list[Warning] = []
    ordered = sorted(routes, key=lambda route: route.key)
    for route in ordered:
        for name in (route.model, route.key):
            table.setdefault(name, route.key)
    for route in ordered:
        for name in _spellings(route.model):
            table.setdefault(name, route.key)
    for route in ordered:
        owner = table[route.model]
        if owner != route.key:
            warnings.append(
                Warning(
                    f"models.{route.key}",
                    f"serves the same model as models.{owner} ({route.model}); through the "
                    f"model gateway that name reaches {owner}, this one only by its key "
                    f"{route.key!r}",
                )
            )
    return table, warnings


def _spellings(reference: str) -> Iterable[str]:
    yield from references.spellings(reference)
    try:
        yield references.normalise(reference)
    except ValueError:
        return


def routes_document(app: str, namespace: str, routes: Sequence[Route]) -> dict[str, Any]:
    """What the gateway reads: its app, each model's upstream, and the name table."""
    table, _ = route_names(routes)
    return {
        "app": app,
        "namespace": namespace,
        "models": [
            {
                "key": route.key,
                "model": route.model,
                "engine": route.engine,
                "upstream": route.upstream,
                "served": route.served,
            }
            for route in sorted(routes, key=lambda route: route.key)
        ],
        "names": dict(sorted(table.items())),
    }


def replicas(routes: Sequence[Route], settings: Settings) -> int:
    if settings.gateway.replicas is not None:
        return settings.gateway.replicas
    return 2 if any(route.replicas > 1 for route in routes) else 1


def build_gateway(
    app: str, namespace: str, routes: Sequence[Route], settings: Settings
) -> list[Manifest]:
    """The ConfigMap (routing table), Service (port 80) and Deployment of the app's gateway,
    and with more than one replica a PodDisruptionBudget."""
    name = names.gateway(app)
    count = replicas(routes, settings)
    routes_json = json.dumps(routes_document(app, namespace, routes), indent=1, sort_keys=True)
    metadata = {"name": name, "namespace": namespace, "labels": labels.for_gateway(app)}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {ROUTES_KEY: routes_json + "\n"},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "selector": labels.gateway_selector(app),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": count,
            "selector": {"matchLabels": labels.gateway_selector(app)},
            "strategy": ROLL_WITHOUT_GAPS,
            "template": {
                "metadata": {
                    "labels": labels.for_gateway(app),
                    "annotations": {ROUTES_HASH_ANNOTATION: _hash(routes_json)},
                },
                "spec": _pod(name, settings),
            },
        },
    }
    if count == 1:
        return [config_map, service, deployment]
    return [config_map, service, deployment, _disruption_budget(app, metadata)]


def _disruption_budget(app: str, metadata: Manifest) -> Manifest:
    """A node drain (or any eviction) takes one gateway pod at a time, so the app's one URL
    keeps an answer; an unready pod may always go (`AlwaysAllow`), so a broken gateway never
    blocks a drain. A single replica gets none: a budget it could never meet would block
    every drain of its node."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata,
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": labels.gateway_selector(app)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def _pod(name: str, settings: Settings) -> dict[str, Any]:
    gateway = settings.gateway
    probe = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 2}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": gateway.image,
        "command": ["compose-operator", "gateway"],
        "args": [
            "--routes",
            f"{ROUTES_DIR}/{ROUTES_KEY}",
            "--port",
            str(PORT),
            "--max-request-bytes",
            str(gateway.max_request_bytes),
            "--upstream-timeout",
            str(gateway.upstream_timeout_seconds),
            "--endpoint-delay",
            str(ENDPOINT_DELAY_SECONDS),
            "--drain-seconds",
            str(gateway.drain_seconds),
        ],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "securityContext": {"readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "routes", "mountPath": ROUTES_DIR, "readOnly": True}],
    }
    if gateway.resources:
        container["resources"] = _plain(gateway.resources)
    pod: dict[str, Any] = {
        # The endpoint delay, then in-flight requests get drainSeconds; a little margin on top.
        "terminationGracePeriodSeconds": ENDPOINT_DELAY_SECONDS + gateway.drain_seconds + 5,
        "containers": [container],
        "volumes": [{"name": "routes", "configMap": {"name": name}}],
    }
    if gateway.node_selector:
        pod["nodeSelector"] = dict(sorted(gateway.node_selector.items()))
    if gateway.tolerations:
        pod["tolerations"] = [dict(toleration) for toleration in gateway.tolerations]
    return security.harden(pod, GATEWAY_USER)


def _plain(value: Any) -> Any:
    """Settings mappings (read-only views) as plain dicts, for YAML and JSON alike."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
