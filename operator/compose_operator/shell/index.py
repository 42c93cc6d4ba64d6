"""The live state of every app, fed by the watches kopf runs: reconciles read here, not from LIST.

kopf streams every object the operator watches (server-side filtered on the app label, see
`handlers.py`); each event lands here, so a reconcile reads its app's ComposeApp, Deployments,
Services, PVCs, NetworkPolicies and pods in O(objects of the app), with no request. The API is
read only for what no watch delivers: a `composeFrom` ConfigMap without the app label, a
Deployment that opted in by annotation but is not bound yet, a Namespace's labels when
Namespaces are not watched.

Objects are stored as compact JSON without `managedFields` (a third of their size as dicts, and
the largest part of a Deployment), and parsed again only when their app reconciles. Pods are
reduced to what status quotes (`pod_facts`).

`observe` answers whether an event changed anything a reconcile reads: a pod event that only
moves a heartbeat, or a ComposeApp event for our own status patch, costs nothing further.

kopf calls the watch handlers on the event loop and reconciles run in worker threads, so every
access holds one lock; a snapshot is a copy, never a view.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compose_operator import names
from compose_operator.shell import kube
from compose_operator.shell.kube import Manifest

Key = tuple[str, str]
ObjectKey = tuple[str, str]
"""(kind, name) within one app."""

APP_LABEL = "compose-operator.io/app"
OWNED_KINDS = frozenset(kube.BY_KIND)
"""Kinds whose write responses are stored at once: every kind the operator creates."""


def _compact(obj: Mapping[str, Any]) -> bytes:
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    return json.dumps({**obj, "metadata": metadata}, separators=(",", ":")).encode()


def pod_facts(pod: Mapping[str, Any]) -> Manifest:
    """What status reads of a pod (`status.pod_problem`); the rest of its changes are noise."""
    metadata = pod.get("metadata", {})
    status = pod.get("status", {}) or {}
    facts: Manifest = {
        "metadata": {
            "name": metadata.get("name", ""),
            "labels": dict(metadata.get("labels", {}) or {}),
            "creationTimestamp": metadata.get("creationTimestamp", ""),
        },
        "status": {},
    }
    if metadata.get("deletionTimestamp"):
        facts["metadata"]["deletionTimestamp"] = metadata["deletionTimestamp"]
    # Memory limits name what an OOM kill ran into.
    for key in ("initContainers", "containers"):
        limits = [
            {"name": c.get("name", ""), "resources": {"limits": {"memory": memory}}}
            for c in (pod.get("spec", {}) or {}).get(key, []) or []
            if (memory := ((c.get("resources", {}) or {}).get("limits", {}) or {}).get("memory"))
        ]
        if limits:
            facts.setdefault("spec", {})[key] = limits
    scheduled = [
        {k: c.get(k) for k in ("type", "status", "reason", "message") if c.get(k) is not None}
        for c in status.get("conditions", []) or []
        if c.get("type") == "PodScheduled"
    ]
    if scheduled:
        facts["status"]["conditions"] = scheduled
    for key in ("initContainerStatuses", "containerStatuses"):
        containers = [
            {k: c[k] for k in ("name", "state", "lastState", "restartCount", "ready") if k in c}
            for c in status.get(key, []) or []
        ]
        if containers:
            facts["status"][key] = containers
    return facts


def _app_facts(app: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes a reconcile of the app necessary; status is ours, and changes of it are not."""
    metadata = app.get("metadata", {})
    return (
        metadata.get("uid"),
        metadata.get("generation"),
        metadata.get("deletionTimestamp"),
        tuple(metadata.get("finalizers", []) or []),
        json.dumps(app.get("spec", {}), sort_keys=True),
    )


def _version(obj: Mapping[str, Any]) -> int | None:
    try:
        return int(obj.get("metadata", {}).get("resourceVersion", ""))
    except ValueError:
        return None


@dataclass
class _Entry:
    data: bytes
    version: int | None


def _older(body: Mapping[str, Any], entry: _Entry | None) -> bool:
    """Whether `body` predates what the index holds (resourceVersions are etcd revisions)."""
    version = _version(body)
    if entry is None or entry.version is None or version is None:
        return False
    return version < entry.version


@dataclass(frozen=True)
class AppState:
    """One app's live state, parsed: what a reconcile reads."""

    app: Manifest
    objects: dict[ObjectKey, Manifest] = field(default_factory=dict)
    """Objects labelled with the app (ours, and Deployments bound to it), by (kind, name)."""
    pods: tuple[Manifest, ...] = ()


class LiveIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._apps: dict[Key, _Entry] = {}
        self._app_facts: dict[Key, tuple[Any, ...]] = {}
        self._objects: dict[Key, dict[ObjectKey, _Entry]] = {}
        """(namespace, app label value) → labelled objects."""
        self._pods: dict[Key, dict[str, Manifest]] = {}
        self._config_maps: dict[Key, tuple[Manifest, bool]] = {}
        """(namespace, name) → (the ConfigMap, whether a watch keeps it current)."""
        self._namespaces: dict[str, dict[str, str]] = {}
        self._names: dict[Key, str] = {}
        """(namespace, app label value) → app name, for apps whose name is no label value."""

    # fed by the watches

    def observe(self, kind: str, body: Mapping[str, Any], *, deleted: bool = False) -> Key | None:
        """One watch event; the app whose reconcile it calls for, None when nothing changed."""
        metadata = body.get("metadata", {})
        namespace, name = metadata.get("namespace") or "", metadata.get("name", "")
        with self._lock:
            if kind == "ComposeApp":
                return self._observe_app((namespace, name), body, deleted)
            if kind == "ConfigMap":
                # Delivered only when labelled: a composeFrom source, or one an app owns.
                if deleted:
                    self._config_maps.pop((namespace, name), None)
                else:
                    self._config_maps[namespace, name] = (dict(body), True)
            if kind == "Namespace":
                if deleted:
                    self._namespaces.pop(name, None)
                else:
                    self._namespaces[name] = dict(metadata.get("labels", {}) or {})
                return None
            value = (metadata.get("labels", {}) or {}).get(APP_LABEL)
            if not value:
                return None
            group = (namespace, value)
            app = (namespace, self._names.get(group, value))
            if kind == "Pod":
                return app if self._observe_pod(group, name, body, deleted) else None
            return app if self._store(group, (kind, name), body, deleted) else None

    def _observe_app(self, key: Key, body: Mapping[str, Any], deleted: bool) -> Key | None:
        if deleted:
            self._apps.pop(key, None)
            self._app_facts.pop(key, None)
            return key
        self._names[key[0], names.label_value(key[1])] = key[1]
        if _older(body, self._apps.get(key)):
            return None  # older than a write response stored already
        self._apps[key] = _Entry(_compact(body), _version(body))
        facts = _app_facts(body)
        if self._app_facts.get(key) == facts:
            return None
        self._app_facts[key] = facts
        return key

    def _observe_pod(self, group: Key, name: str, body: Mapping[str, Any], deleted: bool) -> bool:
        pods = self._pods.setdefault(group, {})
        if deleted:
            return pods.pop(name, None) is not None
        facts = pod_facts(body)
        if pods.get(name) == facts:
            return False
        pods[name] = facts
        return True

    def _store(self, group: Key, key: ObjectKey, body: Mapping[str, Any], deleted: bool) -> bool:
        objects = self._objects.setdefault(group, {})
        if deleted:
            return objects.pop(key, None) is not None
        entry = objects.get(key)
        if _older(body, entry) or (entry is not None and entry.version == _version(body)):
            return False  # older than, or the watch event of, a write response stored already
        objects[key] = _Entry(_compact(body), _version(body))
        return True

    # written by reconciles: what a write answered is newer than what the watch said so far

    def written(self, body: Mapping[str, Any]) -> None:
        """A write's response (apply, patch): stored unless the watch already has newer."""
        kind = body.get("kind", "")
        if kind in OWNED_KINDS or kind == "ComposeApp":
            self.observe(kind, body)

    def removed(self, kind: str, namespace: str, name: str, app: str) -> None:
        with self._lock:
            group = (namespace, names.label_value(app))
            self._objects.get(group, {}).pop((kind, name), None)

    def remember_config_map(self, namespace: str, name: str, config_map: Manifest | None) -> None:
        """A ConfigMap read from the API (no watch delivers it): kept until the next resync."""
        with self._lock:
            if config_map is None:
                self._config_maps.pop((namespace, name), None)
            elif not self._config_maps.get((namespace, name), ({}, False))[1]:
                self._config_maps[namespace, name] = (config_map, False)

    # read by reconciles

    def state(self, namespace: str, name: str) -> AppState | None:
        """A parsed copy of the app's live state; None when the app does not exist."""
        group = (namespace, names.label_value(name))
        with self._lock:
            entry = self._apps.get((namespace, name))
            if entry is None:
                return None
            objects = dict(self._objects.get(group, {}))
            pods = tuple(self._pods.get(group, {}).values())
        return AppState(
            app=json.loads(entry.data),
            objects={key: json.loads(obj.data) for key, obj in sorted(objects.items())},
            pods=tuple(json.loads(json.dumps(pod)) for pod in pods),
        )

    def config_map(self, namespace: str, name: str, *, fresh: bool = False) -> Manifest | None:
        """A ConfigMap the index holds; with `fresh`, only one a watch keeps current."""
        with self._lock:
            found = self._config_maps.get((namespace, name))
        if found is None or (fresh and not found[1]):
            return None
        return found[0]

    def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        with self._lock:
            labels = self._namespaces.get(namespace)
        return None if labels is None else dict(labels)

    def keys(self) -> list[Key]:
        with self._lock:
            return sorted(self._apps)

    def sizes(self) -> dict[str, int]:
        """Objects held, by kind (metrics and the benchmark)."""
        with self._lock:
            counts: dict[str, int] = {"ComposeApp": len(self._apps)}
            for objects in self._objects.values():
                for kind, _ in objects:
                    counts[kind] = counts.get(kind, 0) + 1
            counts["Pod"] = sum(len(pods) for pods in self._pods.values())
            counts["ConfigMap"] = len(self._config_maps)
            return counts
