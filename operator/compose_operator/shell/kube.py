"""The few Kubernetes API calls the shell makes, behind one small protocol.

Reconciling needs get, list, server-side apply, delete, patch and create on a handful of
resource kinds; `Api` names exactly those, so handler tests pass a recording fake and the
RBAC the operator needs can be read off one file. `KubeApi` is the real one, on the
`kubernetes` client's generic request path (JSON in, dicts out), counting every request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client as k8s

Manifest = dict[str, Any]
PatchType = Literal["merge", "json", "strategic"]

FIELD_MANAGER = "compose-operator"
REQUEST_TIMEOUT = (5.0, 30.0)
"""Connect and read timeouts (seconds): a hung request never holds a reconcile, or shutdown."""


@dataclass(frozen=True)
class Resource:
    """A resource kind as the API addresses it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str = "", subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{base}/{self.plural}"
        if self.namespaced and namespace:  # no namespace: across all of them (a list)
            path = f"{base}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        if name:
            path += f"/{quote(name, safe='')}"
        if subresource:
            path += f"/{subresource}"
        return path


COMPOSE_APPS = Resource("compose-operator.io", "v1alpha1", "composeapps", "ComposeApp")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
SERVICES = Resource("", "v1", "services", "Service")
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
NETWORK_POLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
DISRUPTION_BUDGETS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
SECRETS = Resource("", "v1", "secrets", "Secret")
PODS = Resource("", "v1", "pods", "Pod")
EVENTS = Resource("", "v1", "events", "Event")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
VALIDATING_WEBHOOKS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    namespaced=False,
)

BY_KIND = {
    resource.kind: resource
    for resource in (DEPLOYMENTS, SERVICES, PVCS, NETWORK_POLICIES, CONFIG_MAPS, DISRUPTION_BUDGETS)
}
"""Every kind the operator creates; each is watched and indexed (`handlers.py`, `index.py`)."""


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status} {reason}: {message}")


class Refused(ApiError):
    """The gate refused the request before it left: the operator is stopping or not leading."""

    def __init__(self) -> None:
        super().__init__(0, "Refused", "not sent: this replica is stopping or not leading")


class Api(Protocol):
    """What reconciling may ask of the API server; nothing else."""

    def get(self, resource: Resource, namespace: str, name: str) -> Manifest | None: ...

    def list(self, resource: Resource, namespace: str, selector: str = "") -> list[Manifest]: ...

    def apply(self, resource: Resource, body: Manifest, *, force: bool = True) -> Manifest:
        """Server-side apply under our field manager; without `force`, a field another
        manager owns with another value is a 409 conflict instead of taken over."""
        ...

    def delete(self, resource: Resource, namespace: str, name: str, uid: str) -> None: ...

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Any,
        *,
        patch_type: PatchType = "merge",
        subresource: str = "",
    ) -> Manifest: ...

    def create(self, resource: Resource, namespace: str, body: Manifest) -> Manifest: ...


_CONTENT_TYPES: dict[PatchType, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


class KubeApi:
    """`Api` over the `kubernetes` client; `on_request(verb, plural)` sees every call, and with
    `allowed`, every request first asks it and is refused (`Refused`) when it says no."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        on_request: Callable[[str, str], None] = lambda verb, plural: None,
        allowed: Callable[[], bool] = lambda: True,
    ) -> None:
        self._client = api_client
        self._on_request = on_request
        self._allowed = allowed

    def gated(self, allowed: Callable[[], bool]) -> KubeApi:
        """This API on the same connections, each request sent only when `allowed()`: only a
        leader that is not stopping talks to the API server, and a stopping one ends its
        reconciles at their next request."""
        return KubeApi(self._client, self._on_request, allowed)

    def _call(
        self,
        verb: str,
        resource: Resource,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Manifest:
        if not self._allowed():
            raise Refused
        self._on_request(verb, resource.plural)
        if query:
            path += "?" + urlencode(query)
        headers = {"Accept": "application/json", "Content-Type": content_type}
        method, url, headers, body, post = self._client.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            response = self._client.call_api(
                method, url, headers, body, post, _request_timeout=REQUEST_TIMEOUT
            )
        except (k8s.ApiException, urllib3.exceptions.HTTPError) as error:
            raise ApiError(0, type(error).__name__, str(error)) from error
        data: bytes = response.read()
        if not 200 <= response.status <= 299:
            detail = json.loads(data) if data else {}
            raise ApiError(
                response.status, str(detail.get("reason", "")), str(detail.get("message", ""))
            )
        result: Manifest = json.loads(data) if data else {}
        return result

    def get(self, resource: Resource, namespace: str, name: str) -> Manifest | None:
        try:
            return self._call("get", resource, "GET", resource.path(namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def list(self, resource: Resource, namespace: str, selector: str = "") -> list[Manifest]:
        query = {"labelSelector": selector} if selector else None
        found = self._call("list", resource, "GET", resource.path(namespace), query=query)
        items: list[Manifest] = found.get("items", [])
        return items

    def apply(self, resource: Resource, body: Manifest, *, force: bool = True) -> Manifest:
        metadata = body["metadata"]
        return self._call(
            "apply",
            resource,
            "PATCH",
            resource.path(metadata["namespace"], metadata["name"]),
            query={"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"},
            body=body,
            content_type="application/apply-patch+yaml",
        )

    def delete(self, resource: Resource, namespace: str, name: str, uid: str) -> None:
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"uid": uid},
            "propagationPolicy": "Background",
        }
        try:
            self._call("delete", resource, "DELETE", resource.path(namespace, name), body=options)
        except ApiError as error:
            if error.status != 404:
                raise

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Any,
        *,
        patch_type: PatchType = "merge",
        subresource: str = "",
    ) -> Manifest:
        return self._call(
            "patch",
            resource,
            "PATCH",
            resource.path(namespace, name, subresource),
            body=patch,
            content_type=_CONTENT_TYPES[patch_type],
        )

    def create(self, resource: Resource, namespace: str, body: Manifest) -> Manifest:
        return self._call("create", resource, "POST", resource.path(namespace), body=body)
