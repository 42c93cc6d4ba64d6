"""The packaging against the real API server: helm lint/template/install, kustomize dry-run."""

from __future__ import annotations

import subprocess

import yaml

from e2e.cluster_support import Cluster
from e2e.operator_harness import REPO, eventually

CHART = REPO / "charts" / "compose-operator"


def helm(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.helm_path), *args],
        capture_output=True,
        text=True,
        check=True,
        env=cluster.env(),
        timeout=300,
    )


def test_helm_lint_is_clean(cluster: Cluster) -> None:
    result = helm(cluster, "lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout, result.stdout


def test_helm_template_renders_the_operator(cluster: Cluster) -> None:
    rendered = helm(cluster, "template", "co", str(CHART), "--namespace", "ops").stdout
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(rendered) if d}
    assert ("Deployment", "co-compose-operator") in kinds or ("Deployment", "co") in kinds, kinds
    assert any(kind == "ClusterRole" for kind, _ in kinds)
    assert any(kind == "ConfigMap" for kind, _ in kinds)


def test_helm_install_creates_a_working_release(cluster: Cluster, namespace: str) -> None:
    helm(
        cluster,
        "install",
        "compose-operator",
        str(CHART),
        "--namespace",
        namespace,
        "--skip-crds",
        "--set",
        "webhook.enabled=false",
        "--set",
        "rbac.create=false",
        "--wait=false",
    )
    deployment = eventually(
        lambda: cluster.get_json("-n", namespace, "deployment", "compose-operator"),
        what="the operator Deployment",
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "--settings" in " ".join(container.get("args", []) + container.get("command", []))
    status = helm(cluster, "status", "compose-operator", "--namespace", namespace).stdout
    assert "STATUS: deployed" in status
    # --no-hooks: the uninstall hook's Job never completes on kwok nodes (pods only pretend);
    # e2e/test_release.py runs what it runs, as its ServiceAccount.
    helm(cluster, "uninstall", "compose-operator", "--namespace", namespace, "--no-hooks")


def test_kustomize_base_is_accepted_by_the_api_server(cluster: Cluster) -> None:
    # A server-side dry run persists nothing, so the base's own Namespace does not exist for
    # the namespaced objects that follow it; create it as a first apply would have.
    cluster.kubectl("create", "namespace", "compose-operator", check=False)
    result = cluster.kubectl("apply", "-k", str(REPO / "manifests"), "--dry-run=server")
    assert "deployment.apps/compose-operator" in result.stdout, result.stdout
    assert "customresourcedefinition.apiextensions.k8s.io/composeapps.compose-operator.io" in (
        result.stdout
    )
