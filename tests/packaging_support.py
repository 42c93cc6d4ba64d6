"""Shared pieces of the packaging tests: the RBAC contract, and running helm and kustomize.

helm and kubectl are the ones e2e/cluster/build.sh builds (found through COMPOSE_E2E_BIN or
its cache directory), else the ones on PATH; a test that needs a missing tool is skipped and
says which tool and how to get it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from compose_operator.settings import Settings
from tests import pss

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "compose-operator"
MANIFESTS = REPO / "manifests"

Grant = tuple[str, str, str]
"""(API group, resource, verb): one permission, the unit RBAC rules are compared in."""


def _grants(groups: Iterable[str], resources: Iterable[str], verbs: Iterable[str]) -> set[Grant]:
    return {(g, r, v) for g in groups for r in resources for v in verbs}


# The operator-side contract, word for word: what the operator may do, nothing more.
CONTRACT_NAMESPACED: frozenset[Grant] = frozenset(
    _grants(["compose-operator.io"], ["composeapps"], ["get", "list", "watch", "patch"])
    | _grants(["compose-operator.io"], ["composeapps/status"], ["patch"])
    # get: the watches carry only labelled objects, so a name the index cannot answer (is a
    # new object's name free, a Deployment that opted in but is not bound yet) is read.
    | _grants(["apps"], ["deployments"], ["get", "list", "watch", "create", "patch", "delete"])
    | _grants(
        [""],
        ["services", "persistentvolumeclaims"],
        ["get", "list", "watch", "create", "patch", "delete"],
    )
    | _grants([""], ["configmaps"], ["get", "list", "watch", "create", "patch", "delete"])
    | _grants(
        ["policy"],
        ["poddisruptionbudgets"],
        ["get", "list", "watch", "create", "patch", "delete"],
    )
    | _grants([""], ["secrets"], ["get"])
    | _grants([""], ["pods"], ["list", "watch"])
    | _grants([""], ["events"], ["create"])
)
CONTRACT_DISCOVERY: frozenset[Grant] = frozenset(
    _grants(["apiextensions.k8s.io"], ["customresourcedefinitions"], ["list", "watch"])
)
CONTRACT_WEBHOOK: frozenset[Grant] = frozenset(
    {("admissionregistration.k8s.io", "validatingwebhookconfigurations/compose-operator", "patch")}
)
"""Only its CA bundle, into the one configuration the chart or manifests made: no `create`,
no other configuration, no mutating one (a grant to register webhooks is cluster-admin)."""
WEBHOOK = CONTRACT_WEBHOOK
CONTRACT = CONTRACT_NAMESPACED | CONTRACT_DISCOVERY | CONTRACT_WEBHOOK
OPERATOR_GRANTS = CONTRACT
"""Everything the operator with its default webhook needs."""
NETWORK_POLICY_GRANTS: frozenset[Grant] = frozenset(
    _grants(
        ["networking.k8s.io"],
        ["networkpolicies"],
        ["get", "list", "watch", "create", "patch", "delete"],
    )
)
"""Beyond the contract, only when the settings turn `networkPolicies` on."""


SHARING_GRANTS: frozenset[Grant] = frozenset(
    ("", "namespaces", verb) for verb in ("get", "list", "watch")
)
"""What shared models add (settings `sharing` prefer, the default, or require): an offer's
namespaceSelector is matched against the app namespace's labels, which are watched for changes.
NetworkPolicies (settings `networkPolicies`) are pinned in the chart and manifests tests."""
SHARING_READ_ONLY: frozenset[Grant] = frozenset({("", "namespaces", "get")})
"""With rbac.scope=namespace the operator watches named namespaces and only reads labels."""


def grants_of(role: Mapping[str, Any]) -> set[Grant]:
    """Every permission a Role or ClusterRole grants; a wildcard stays a literal "*"."""
    found: set[Grant] = set()
    for rule in role.get("rules", []):
        assert "nonResourceURLs" not in rule, rule
        resources = rule["resources"]
        if "resourceNames" in rule:  # one object: `resource/name`
            resources = [f"{r}/{name}" for r in resources for name in rule["resourceNames"]]
        found |= _grants(rule["apiGroups"], resources, rule["verbs"])
    return found


def objects_of_kind(objects: Iterable[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one_object(objects: Iterable[Mapping[str, Any]], kind: str) -> Mapping[str, Any]:
    matches = objects_of_kind(objects, kind)
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def _built_bin_dirs() -> list[Path]:
    if os.environ.get("COMPOSE_E2E_BIN"):
        return [Path(os.environ["COMPOSE_E2E_BIN"])]
    cache = os.environ.get("COMPOSE_OPERATOR_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "compose-operator"
    )
    return sorted(p.parent for p in Path(cache).glob("bin/*/.complete"))


def find_tool(name: str) -> str | None:
    """The e2e build's binary if there is one (the machine's kubectl may be an old build)."""
    override = os.environ.get(name.upper())
    if override:
        return override
    for bin_dir in _built_bin_dirs():
        if (bin_dir / name).is_file():
            return str(bin_dir / name)
    return shutil.which(name)


def require_tool(name: str) -> str:
    tool = find_tool(name)
    if tool is None:
        pytest.skip(
            f"{name} not found: run e2e/cluster/build.sh, set {name.upper()}, or put it on PATH"
        )
    return tool


def run(command: Sequence[str]) -> str:
    """Run a tool; on failure the assertion shows its stderr."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr}"
    return result.stdout


def load_documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


HOOK = "helm.sh/hook"


def helm_template(*args: str, hooks: bool = False) -> list[dict[str, Any]]:
    """`helm template` of the chart as release `compose-operator` in namespace `operators`;
    the objects Helm installs, and with `hooks` only its hooks' (the uninstall Job's)."""
    helm = require_tool("helm")
    command = [helm, "template", "compose-operator", str(CHART), "--namespace", "operators"]
    documents = load_documents(run([*command, *args]))
    return [
        doc for doc in documents if (HOOK in (doc["metadata"].get("annotations") or {})) == hooks
    ]


def kustomize_build(directory: Path = MANIFESTS) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR`: what `kubectl apply -k DIR` sends (default: manifests/)."""
    kubectl = find_tool("kubectl")
    if kubectl is not None:
        return load_documents(run([kubectl, "kustomize", str(directory)]))
    kustomize = require_tool("kustomize")
    return load_documents(run([kustomize, "build", str(directory)]))


def restricted_violations(pod_spec: Mapping[str, Any]) -> list[str]:
    """Where the operator's own pod falls short of the restricted Pod Security Standard, a
    read-only root filesystem and a numeric non-root user; empty when it meets all three."""
    problems = pss.violations(pod_spec)
    pod_context = pod_spec.get("securityContext", {})
    for container in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
        context = container.get("securityContext", {})
        where = f"container {container['name']}"
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        if context.get("runAsUser", pod_context.get("runAsUser")) in (None, 0):
            problems.append(f"{where}: no numeric non-root runAsUser")
    return problems


def with_built_in_images(settings: Settings) -> Settings:
    """`settings` with the built-in puller and gateway images: what a package changes
    besides pointing both at the operator's own image."""
    built_in = Settings()
    return dataclasses.replace(
        settings,
        puller_image=built_in.puller_image,
        gateway=dataclasses.replace(settings.gateway, image=built_in.gateway.image),
    )
