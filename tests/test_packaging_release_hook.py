"""The chart's uninstall hook: `compose-operator release-all` once the operator is gone, so no
app, namespace or CRD deletion waits on a finalizer nobody will remove (issue 12)."""

from __future__ import annotations

from typing import Any

from tests import pss
from tests.packaging_support import grants_of, helm_template, one_object


def hook_objects(*args: str) -> list[dict[str, Any]]:
    return helm_template(*args, hooks=True)


def test_the_hook_runs_after_helm_removed_the_operator() -> None:
    objects = hook_objects()
    assert sorted(o["kind"] for o in objects) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Job",
        "ServiceAccount",
    ]
    for obj in objects:
        annotations = obj["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "post-delete"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    job = one_object(objects, "Job")
    assert int(job["metadata"]["annotations"]["helm.sh/hook-weight"]) > max(
        int(o["metadata"]["annotations"]["helm.sh/hook-weight"])
        for o in objects
        if o["kind"] != "Job"
    ), "its ServiceAccount and RBAC exist before the Job starts"


def test_the_job_waits_for_the_operators_pods_then_releases_every_app() -> None:
    pod = one_object(hook_objects(), "Job")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == [
        "release-all",
        "--operator=operators/compose-operator",
        "--operator-selector=app.kubernetes.io/name=compose-operator,"
        "app.kubernetes.io/instance=compose-operator,app.kubernetes.io/component=operator",
    ]
    assert pss.violations(pod) == []
    assert pod["serviceAccountName"] == "compose-operator-release"
    operator = one_object(helm_template(), "Deployment")["spec"]["selector"]["matchLabels"]
    assert container["args"][2].removeprefix("--operator-selector=") == ",".join(
        f"{key}={value}" for key, value in operator.items()
    )


def test_with_watched_namespaces_only_those_are_released() -> None:
    job = one_object(hook_objects("--set", "watchNamespaces={team-a,team-b}"), "Job")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-2:] == ["--namespace=team-a", "--namespace=team-b"]


def test_the_hooks_rbac_is_what_release_all_calls() -> None:
    assert grants_of(one_object(hook_objects(), "ClusterRole")) == {
        ("compose-operator.io", "composeapps", "list"),
        ("compose-operator.io", "composeapps", "patch"),
        ("apps", "deployments", "get"),
        ("apps", "deployments", "list"),
        ("apps", "deployments", "patch"),
        ("", "pods", "list"),
    }


def test_the_hook_can_be_turned_off() -> None:
    assert hook_objects("--set", "releaseOnUninstall=false") == []
