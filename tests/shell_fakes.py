"""A recording stand-in for the Kubernetes API, for reconciler tests without a cluster.

Server-side apply is modelled per object as "what others wrote" plus "what our field manager
applied last": the live object is the two merged (lists of named items merged by name), so
applying an empty body gives back exactly what others wrote, as the real API server does
for fields only we own.

It also plays the watches: `deliver()` hands every object that changed since the last call to
the index (`LiveIndex`), as kopf's watch handlers do; every write bumps the object's
resourceVersion, as the API server does. Reads the reconciler makes are recorded like writes,
so tests can prove a warm index leaves the API unread.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

from compose_operator.shell import kube
from compose_operator.shell.index import APP_LABEL, LiveIndex
from compose_operator.shell.kube import ApiError, Manifest, PatchType, Resource
from compose_operator.shell.reconcile import Reconciler

WRITE_VERBS = frozenset({"apply", "delete", "patch", "create"})
READ_VERBS = frozenset({"get", "list"})
KINDS = {r.plural: r.kind for r in (*kube.BY_KIND.values(), kube.COMPOSE_APPS, kube.PODS)}

Key = tuple[str, str, str]


def merge(base: Any, ours: Any) -> Any:
    if isinstance(base, dict) and isinstance(ours, dict):
        merged = dict(base)
        for key, value in ours.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if (
        isinstance(base, list)
        and isinstance(ours, list)
        and all(isinstance(i, dict) and "name" in i for i in [*base, *ours])
    ):
        by_name = {item["name"]: item for item in base}
        merged_list = [merge(item, _named(ours, item["name"])) for item in base]
        merged_list += [copy.deepcopy(i) for i in ours if i["name"] not in by_name]
        return merged_list
    return copy.deepcopy(ours)


OTHER_MANAGER = "helm"
"""The field manager of everything `seed` wrote, as a conflict message names it."""


def conflicts(base: Any, ours: Any, path: str) -> list[str]:
    """Fields both set with different values: what server-side apply calls a conflict."""
    if isinstance(base, dict) and isinstance(ours, dict):
        return [
            clash
            for key, value in ours.items()
            if key in base
            for clash in conflicts(base[key], value, f"{path}.{key}")
        ]
    if (
        isinstance(base, list)
        and isinstance(ours, list)
        and all(isinstance(i, dict) and "name" in i for i in [*base, *ours])
    ):
        return [
            clash
            for item in ours
            for other in base
            if other["name"] == item["name"]
            for clash in conflicts(other, item, f'{path}[name="{item["name"]}"]')
        ]
    return [] if base == ours else [path]


def _named(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next((i for i in items if i["name"] == name), {})


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class Request:
    verb: str
    resource: str
    name: str
    body: Any = None
    subresource: str = ""


@dataclass
class FakeApi:
    others: dict[Key, Manifest] = field(default_factory=dict)
    ours: dict[Key, Manifest] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    events: list[Manifest] = field(default_factory=list)
    _uids: itertools.count[int] = field(default_factory=itertools.count)
    index: LiveIndex = field(default_factory=LiveIndex)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(2))
    _delivered: dict[Key, str] = field(default_factory=dict)
    _gone: dict[Key, Manifest] = field(default_factory=dict)

    def deliver(self) -> None:
        """What the watches would deliver now: changed, new and deleted objects."""
        import json

        for key, last in sorted(self._gone.items()):
            # Like the API server, the DELETED event carries the object as it was last.
            self._delivered.pop(key, None)
            if key[0] in KINDS:
                self.index.observe(KINDS[key[0]], last, deleted=True)
        self._gone.clear()
        for key in sorted(self.others):
            plural = key[0]
            if plural not in KINDS:
                continue
            labels = self.others[key].get("metadata", {}).get("labels", {}) or {}
            ours = self.ours.get(key, {}).get("metadata", {}).get("labels", {}) or {}
            if plural != "composeapps" and APP_LABEL not in {**labels, **ours}:
                continue  # the server-side label selector of every other watch
            live = self.live(Resource("", "", plural, KINDS[plural]), key[1], key[2])
            assert live is not None
            text = json.dumps(live, sort_keys=True)
            if self._delivered.get(key) == text:
                continue
            self._bump(key)
            live = self.live(Resource("", "", plural, KINDS[plural]), key[1], key[2])
            assert live is not None
            text = json.dumps(live, sort_keys=True)
            self._delivered[key] = text
            self.index.observe(KINDS[plural], {"kind": KINDS[plural], **live})

    def _bump(self, key: Key) -> None:
        self.others[key]["metadata"]["resourceVersion"] = str(next(self._versions))

    def reads(self) -> list[Request]:
        return [r for r in self.requests if r.verb in READ_VERBS]

    def seed(self, resource: Resource, obj: Manifest) -> Manifest:
        """An object someone else wrote (a user's Deployment, a ComposeApp)."""
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("uid", f"uid-{next(self._uids)}")
        metadata.setdefault("generation", 1)
        metadata.setdefault("resourceVersion", "1")
        self.others[resource.plural, metadata["namespace"], metadata["name"]] = obj
        return obj

    def live(self, resource: Resource, namespace: str, name: str) -> Manifest | None:
        key = (resource.plural, namespace, name)
        if key not in self.others:
            return None
        merged: Manifest = merge(self.others[key], self.ours.get(key, {}))
        return merged

    def set_status(self, resource: Resource, namespace: str, name: str, status: Any) -> None:
        self.others[resource.plural, namespace, name]["status"] = status

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.verb in WRITE_VERBS]

    def clear(self) -> None:
        self.requests.clear()

    # the Api protocol

    def get(self, resource: Resource, namespace: str, name: str) -> Manifest | None:
        self.requests.append(Request("get", resource.plural, name))
        return self.live(resource, namespace, name)

    def list(self, resource: Resource, namespace: str, selector: str = "") -> list[Manifest]:
        self.requests.append(Request("list", resource.plural, "", selector))
        wanted = dict(pair.split("=", 1) for pair in selector.split(",") if pair)
        found = []
        for plural, ns, name in sorted(self.others):
            obj = self.live(resource, ns, name)
            if plural != resource.plural or ns != (namespace or ns) or obj is None:
                continue
            labels = obj.get("metadata", {}).get("labels", {})
            if all(labels.get(k) == v for k, v in wanted.items()):
                # Like the API server: list items carry no apiVersion or kind.
                found.append({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
        return found

    def apply(self, resource: Resource, body: Manifest, *, force: bool = True) -> Manifest:
        metadata = body["metadata"]
        key = (resource.plural, metadata["namespace"], metadata["name"])
        self.requests.append(Request("apply", resource.plural, metadata["name"], body))
        clashes = conflicts(self.others.get(key, {}), body, "")
        if clashes and not force:
            raise ApiError(
                409,
                "Conflict",
                f"Apply failed with {len(clashes)} conflict: "
                + "; ".join(f'conflict with "{OTHER_MANAGER}": {path}' for path in clashes),
            )
        if key not in self.others:
            self.seed(resource, {"metadata": {"name": key[2], "namespace": key[1]}})
        self.ours[key] = copy.deepcopy(body)
        self._bump(key)
        live = self.live(resource, key[1], key[2])
        assert live is not None
        return live

    def delete(self, resource: Resource, namespace: str, name: str, uid: str) -> None:
        self.requests.append(Request("delete", resource.plural, name, uid))
        key = (resource.plural, namespace, name)
        assert self.others[key]["metadata"]["uid"] == uid
        self._gone[key] = {
            "kind": KINDS.get(resource.plural, ""),
            **(self.live(resource, namespace, name) or {}),
        }
        del self.others[key]
        self.ours.pop(key, None)

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
        self.requests.append(Request("patch", resource.plural, name, patch, subresource))
        key = (resource.plural, namespace, name)
        obj = self.others[key]
        if patch_type == "json":
            for op in patch:
                parts = op["path"].strip("/").split("/")
                parent: Any = obj
                for part in parts[:-1]:
                    parent = parent[part]
                if op["op"] == "test":
                    assert parent[int(parts[-1])] == op["value"]
                elif op["op"] == "remove":
                    del parent[int(parts[-1])]
        else:
            patch = copy.deepcopy(patch)
            version = patch.get("metadata", {}).pop("resourceVersion", None)
            assert version in (None, obj["metadata"]["resourceVersion"])
            self.others[key] = merge_patch(obj, patch)
        self._bump(key)
        live = self.live(resource, namespace, name)
        assert live is not None
        return live

    def create(self, resource: Resource, namespace: str, body: Manifest) -> Manifest:
        self.requests.append(Request("create", resource.plural, body.get("reason", ""), body))
        self.events.append(copy.deepcopy(body))
        return body


class UnexpectedApi:
    """An `Api` whose every request fails the test: a fake that should see only a few kinds
    of request subclasses it and answers those, so any other request is an error."""

    def get(self, resource: Resource, namespace: str, name: str) -> Manifest | None:
        raise AssertionError(f"unexpected get of {resource.plural} {namespace}/{name}")

    def list(self, resource: Resource, namespace: str, selector: str = "") -> list[Manifest]:
        raise AssertionError(f"unexpected list of {resource.plural} in {namespace}")

    def apply(self, resource: Resource, body: Manifest, *, force: bool = True) -> Manifest:
        raise AssertionError(f"unexpected apply of {resource.plural}")

    def delete(self, resource: Resource, namespace: str, name: str, uid: str) -> None:
        raise AssertionError(f"unexpected delete of {resource.plural} {namespace}/{name}")

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
        raise AssertionError(f"unexpected patch of {resource.plural} {namespace}/{name}")

    def create(self, resource: Resource, namespace: str, body: Manifest) -> Manifest:
        raise AssertionError(f"unexpected create of {resource.plural} in {namespace}")


class WatchedReconciler:
    """A Reconciler whose index is caught up with the fake API before each reconcile."""

    def __init__(self, api: FakeApi, settings: Any = None, **kwargs: Any) -> None:
        from compose_operator.settings import Settings
        from compose_operator.shell.reconcile import Reconciler, real_core

        self.api = api
        self.inner = Reconciler(
            api,
            settings if settings is not None else Settings(),
            core=kwargs.pop("core", None) or real_core(),
            now=kwargs.pop("now", lambda: "2026-11-29T10:00:00Z"),
            index=api.index,
        )

    def reconcile(self, namespace: str, name: str, **kwargs: Any) -> Any:
        self.api.deliver()
        return self.inner.reconcile(namespace, name, **kwargs)


def unused_reconciler() -> Reconciler:
    """A real Reconciler, against an empty fake API, for a Controller whose test never lets it
    reconcile (its queue records, or its handlers are recorded)."""
    return WatchedReconciler(FakeApi()).inner
