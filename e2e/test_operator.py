"""The operator against a real API server, scheduler and controller-manager (kwok nodes).

One operator process serves this module, running as the Helm chart's ServiceAccount with the
chart's RBAC, so every test also proves the RBAC is enough.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import pytest
import yaml

from e2e.cluster_support import Cluster
from e2e.operator_harness import (
    REPO,
    OperatorProcess,
    compose_app,
    condition,
    dumps,
    env_of,
    eventually,
)

EXAMPLES = REPO / "examples"
APP = "demo"


def apply_app(cluster: Cluster, namespace: str, text: str, name: str = APP, **spec: Any) -> None:
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=compose_app(name, text, **spec))


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    return cluster.get_json("-n", namespace, kind, name, "--show-managed-fields")


def exists(cluster: Cluster, namespace: str, kind: str, name: str) -> bool:
    result = cluster.kubectl("-n", namespace, "get", kind, name, "-o", "name", check=False)
    return result.returncode == 0


def wait_ready(
    cluster: Cluster, namespace: str, name: str = APP, timeout: float = 90
) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        app = get(cluster, namespace, "composeapp", name)
        generation = app["metadata"]["generation"]
        status = app.get("status", {})
        if (
            condition(app, "Ready").get("status") == "True"
            and status.get("observedGeneration") == generation
        ):
            return app
        return None

    try:
        return eventually(ready, timeout=timeout, what=f"ComposeApp {name} Ready")
    except AssertionError:
        app = get(cluster, namespace, "composeapp", name)
        raise AssertionError(f"not Ready; status: {dumps(app.get('status'))}") from None


def pods_of(cluster: Cluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get_json("-n", namespace, "pods", "-l", selector)["items"]
    return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]


def node_labels(cluster: Cluster, node: str) -> dict[str, str]:
    return dict(cluster.get_json("node", node)["metadata"]["labels"])


class SeedExpectation(TypedDict):
    """What one seed example must give: each model's reference, each service's variables
    (a *_URL given as a model key means the app's gateway), and engine args to look for
    (`<model>` somewhere in the args, `<model>-tail` at their end)."""

    models: dict[str, str]
    services: dict[str, dict[str, str]]
    args: NotRequired[dict[str, list[str]]]


SEED_EXPECTATIONS: dict[str, SeedExpectation] = {
    "basic.yaml": {
        "models": {"llm": "ai/smollm2"},
        "services": {"chat-app": {"LLM_URL": "llm", "LLM_MODEL": "ai/smollm2"}},
    },
    "config-options.yaml": {
        "models": {"llm": "ai/smollm2"},
        "services": {"app": {"LLM_URL": "llm", "LLM_MODEL": "ai/smollm2"}},
        "args": {
            "llm": ["--ctx-size", "4096", "--alias", "ai/smollm2"],
            "llm-tail": ["--temp", "0.1", "--top-k", "1", "--reasoning-budget=0"],
        },
    },
    "short-syntax.yaml": {
        "models": {"llm": "ai/smollm2", "embedding-model": "ai/all-minilm"},
        "services": {
            "app": {
                "LLM_URL": "llm",
                "LLM_MODEL": "ai/smollm2",
                "EMBEDDING_MODEL_URL": "embedding-model",
                "EMBEDDING_MODEL_MODEL": "ai/all-minilm",
            }
        },
    },
    "long-syntax.yaml": {
        "models": {"llm": "ai/smollm2", "embedding-model": "ai/all-minilm"},
        "services": {
            "app": {
                "AI_MODEL_URL": "llm",
                "AI_MODEL_NAME": "ai/smollm2",
                "EMBEDDING_URL": "embedding-model",
                "EMBEDDING_NAME": "ai/all-minilm",
            }
        },
    },
    "cloud-labels.yaml": {
        "models": {"llm": "ai/smollm2"},
        "services": {"chat-app": {"LLM_URL": "llm", "LLM_MODEL": "ai/smollm2"}},
    },
}


@pytest.mark.parametrize("example", sorted(SEED_EXPECTATIONS))
def test_seed_example_runs_models_on_gpu_nodes_and_wires_services(
    cluster: Cluster, operator: OperatorProcess, namespace: str, example: str
) -> None:
    expected = SEED_EXPECTATIONS[example]
    apply_app(cluster, namespace, (EXAMPLES / example).read_text())
    app = wait_ready(cluster, namespace)

    for key, reference in expected["models"].items():
        name = f"{APP}-{key}"
        service = get(cluster, namespace, "service", name)
        assert service["spec"]["ports"][0]["port"] == 80
        deployment = get(cluster, namespace, "deployment", name)
        owners = deployment["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o.get("controller")) for o in owners] == [
            ("ComposeApp", APP, True)
        ]
        pods = pods_of(cluster, namespace, f"compose-operator.io/model={key}")
        assert len(pods) == 1, dumps([p["metadata"]["name"] for p in pods])
        pod = pods[0]
        engine = pod["spec"]["containers"][0]
        assert engine["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert reference in engine["args"]
        args = engine["args"]
        if key in expected.get("args", {}):
            wanted = expected["args"][key]
            assert any(args[i : i + len(wanted)] == wanted for i in range(len(args))), args
        if f"{key}-tail" in expected.get("args", {}):
            assert args[-len(expected["args"][f"{key}-tail"]) :] == expected["args"][f"{key}-tail"]
        node = cluster.get_json("node", pod["spec"]["nodeName"])
        assert node["status"]["capacity"].get("nvidia.com/gpu") == "8"

    gateway_url = f"http://{APP}-models.{namespace}.svc.cluster.local/v1/"
    for service_name, variables in expected["services"].items():
        pods = eventually(
            functools.partial(
                pods_of, cluster, namespace, f"compose-operator.io/service={service_name}"
            ),
            what=f"pods of {service_name}",
        )
        env = env_of(pods[0])
        for variable, value in variables.items():
            if variable.endswith(("_URL",)) and "/" not in value:
                value = gateway_url  # every *_URL: the app's model gateway, as Compose gives
            assert env[variable] == value, dumps(env)
    assert app["status"]["gateway"]["url"] == gateway_url
    assert app["status"]["gateway"]["ready"] is True
    routes = json.loads(
        get(cluster, namespace, "configmap", f"{APP}-models")["data"]["routes.json"]
    )
    assert sorted(m["key"] for m in routes["models"]) == sorted(expected["models"])

    models = {m["name"]: m for m in app["status"]["models"]}
    assert set(models) == set(expected["models"])
    for key, reference in expected["models"].items():
        assert models[key]["model"] == reference
        assert models[key]["readyReplicas"] == models[key]["replicas"] == 1
        assert models[key]["endpoint"] == f"http://{APP}-{key}.{namespace}.svc.cluster.local/v1/"


def test_cloud_labels_steer_model_pods_to_matching_nodes_only(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    text = (EXAMPLES / "cloud-labels.yaml").read_text()
    apply_app(cluster, namespace, text)
    wait_ready(cluster, namespace)
    cluster.kubectl("-n", namespace, "scale", "deployment", f"{APP}-llm", "--replicas=4")
    pods = eventually(
        lambda: (
            [
                p
                for p in pods_of(cluster, namespace, "compose-operator.io/model=llm")
                if p["spec"].get("nodeName")
            ]
            if len(pods_of(cluster, namespace, "compose-operator.io/model=llm")) >= 4
            else None
        ),
        what="four scheduled model pods",
    )
    for pod in pods:
        labels = node_labels(cluster, pod["spec"]["nodeName"])
        assert labels["node.kubernetes.io/instance-type"] == "gpu-small"
        assert labels["topology.kubernetes.io/region"] == "us-west-2"


def test_unknown_instance_type_leaves_pod_pending_and_status_says_why(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    text = """
services:
  app: {image: my-app, models: [llm]}
models:
  llm:
    model: ai/smollm2
    x-cloud-options: ["cloud.instance-type=gpu-huge"]
"""
    apply_app(cluster, namespace, text)

    def explained() -> dict[str, Any] | None:
        app = get(cluster, namespace, "composeapp", APP)
        models = app.get("status", {}).get("models", [])
        if models and "node" in (models[0].get("message") or ""):
            return app
        return None

    app = eventually(explained, timeout=60, what="a status message about nodes")
    assert condition(app, "Ready")["status"] == "False"
    assert condition(app, "Reconciling")["status"] == "True"
    message = app["status"]["models"][0]["message"]
    assert "didn't match" in message or "affinity/selector" in message, message
    (pod,) = pods_of(cluster, namespace, "compose-operator.io/model=llm")
    assert pod["status"]["phase"] == "Pending"


def test_context_size_update_rolls_the_model_deployment(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    base = (
        "services:\n  app: {image: my-app, models: [llm]}\n"
        "models:\n  llm:\n    model: ai/smollm2\n    context_size: %d\n"
    )
    apply_app(cluster, namespace, base % 2048)
    wait_ready(cluster, namespace)
    before = get(cluster, namespace, "deployment", f"{APP}-llm")
    args = before["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--ctx-size") + 1] == "2048"

    apply_app(cluster, namespace, base % 4096)
    wait_ready(cluster, namespace)
    after = get(cluster, namespace, "deployment", f"{APP}-llm")
    args = after["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--ctx-size") + 1] == "4096"
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    pods = eventually(
        lambda: [
            p
            for p in pods_of(cluster, namespace, "compose-operator.io/model=llm")
            if "4096" in p["spec"]["containers"][0]["args"]
        ],
        what="a model pod with the new context size",
    )
    assert pods


def test_removing_a_model_prunes_its_objects_and_env(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    two = (EXAMPLES / "short-syntax.yaml").read_text()
    apply_app(cluster, namespace, two)
    wait_ready(cluster, namespace)
    assert exists(cluster, namespace, "deployment", f"{APP}-embedding-model")

    one = yaml.safe_load(two)
    del one["models"]["embedding-model"]
    one["services"]["app"]["models"] = ["llm"]
    apply_app(cluster, namespace, yaml.safe_dump(one))
    wait_ready(cluster, namespace)
    eventually(
        lambda: (
            not exists(cluster, namespace, "deployment", f"{APP}-embedding-model")
            and not exists(cluster, namespace, "service", f"{APP}-embedding-model")
        ),
        what="the embedding model's objects to be pruned",
    )
    env = env_of(get(cluster, namespace, "deployment", "app"))
    assert "LLM_URL" in env
    assert not {"EMBEDDING_MODEL_URL", "EMBEDDING_MODEL_MODEL"} & set(env)


BOUND_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
  annotations: {%s}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: web
        image: registry.example/web:1.0
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        env:
        - {name: LOG_LEVEL, value: debug}
"""

BINDING_APP = """
services:
  web:
    build: .
    models: [llm]
models:
  llm: {model: ai/smollm2}
"""


def managed_view(deployment: dict[str, Any]) -> dict[str, Any]:
    """What another manager owns: the spec and our-irrelevant metadata, without server noise."""
    return {
        "labels": deployment["metadata"].get("labels"),
        "annotations": {
            k: v
            for k, v in deployment["metadata"].get("annotations", {}).items()
            if k != "deployment.kubernetes.io/revision"
        },
        "spec": deployment["spec"],
    }


def apply_as_helm(cluster: Cluster, namespace: str, *, opted_in: bool) -> None:
    """Create the `web` Deployment the way Helm would: server-side, under another manager."""
    annotation = f"compose-operator.io/app: {APP}" if opted_in else ""
    cluster.kubectl(
        "-n", namespace, "apply", "--server-side", "--field-manager=helm", "-f", "-",
        input=BOUND_DEPLOYMENT % annotation,
    )  # fmt: skip


def test_bind_mode_patches_only_env_and_restores_the_deployment_exactly(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply_as_helm(cluster, namespace, opted_in=True)
    original = managed_view(get(cluster, namespace, "deployment", "web"))

    apply_app(cluster, namespace, BINDING_APP)
    app = wait_ready(cluster, namespace)
    assert {s["name"]: s["mode"] for s in app["status"]["services"]} == {"web": "patched"}
    bound = get(cluster, namespace, "deployment", "web")
    env = env_of(bound)
    assert env == {
        "LOG_LEVEL": "debug",
        "LLM_URL": f"http://{APP}-models.{namespace}.svc.cluster.local/v1/",
        "LLM_MODEL": "ai/smollm2",
    }
    container = bound["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/web:1.0"
    managers = {m["manager"] for m in bound["metadata"]["managedFields"]}
    assert {"helm", "compose-operator"} <= managers
    assert "ownerReferences" not in bound["metadata"]

    cluster.kubectl("-n", namespace, "delete", "composeapp", APP, "--wait=true", "--timeout=60s")
    eventually(
        lambda: managed_view(get(cluster, namespace, "deployment", "web")) == original,
        what="the bound Deployment restored: labels, annotations and spec as helm left them",
    )
    restored = get(cluster, namespace, "deployment", "web")
    assert "compose-operator" not in {m["manager"] for m in restored["metadata"]["managedFields"]}


def test_removing_a_binding_restores_the_deployment(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply_as_helm(cluster, namespace, opted_in=True)
    original = get(cluster, namespace, "deployment", "web")["spec"]["template"]
    apply_app(cluster, namespace, BINDING_APP)
    wait_ready(cluster, namespace)
    assert "LLM_URL" in env_of(get(cluster, namespace, "deployment", "web"))

    unbound = yaml.safe_load(BINDING_APP)
    del unbound["services"]["web"]["models"]
    apply_app(cluster, namespace, yaml.safe_dump(unbound))
    eventually(
        lambda: get(cluster, namespace, "deployment", "web")["spec"]["template"] == original,
        what="the template as helm left it",
    )
    # The same reconcile then prunes what is no longer planned (the gateway: no service binds a
    # model now) and drops the finalizer: a moment after the template.
    eventually(
        lambda: (
            "compose-operator.io/bindings"
            not in get(cluster, namespace, "composeapp", APP)["metadata"].get("finalizers", [])
        ),
        what="the bindings finalizer removed",
    )


def refused_service(cluster: Cluster, namespace: str, what: str) -> dict[str, Any]:
    """The app's one service once its status reports it refused (waited for)."""

    def refused() -> dict[str, Any] | None:
        app = get(cluster, namespace, "composeapp", APP)
        services = app.get("status", {}).get("services", [])
        return services[0] if services and services[0].get("mode") == "refused" else None

    return eventually(refused, what=what)


def test_deployment_that_did_not_opt_in_is_untouched_and_status_says_so(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply_as_helm(cluster, namespace, opted_in=False)
    # Settled first: the controller-manager's status updates also bump the resourceVersion.
    cluster.kubectl("-n", namespace, "rollout", "status", "deployment/web", "--timeout=120s")
    before = get(cluster, namespace, "deployment", "web")
    apply_app(cluster, namespace, BINDING_APP)

    service = refused_service(cluster, namespace, "the service reported as refused")
    assert "compose-operator.io/app" in service["message"]
    after = get(cluster, namespace, "deployment", "web")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert condition(get(cluster, namespace, "composeapp", APP), "Ready")["status"] == "False"


def test_bind_mode_reports_a_helm_owned_value_as_a_conflict_and_takes_nothing(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    """Issue 12: a forced apply took over a same-named value Helm set (and releasing the
    binding then deleted it). Now the apply is not forced: the API server's conflict is
    quoted in status and Helm's value stays Helm's."""
    annotation = f"compose-operator.io/app: {APP}"
    helm_owned = (BOUND_DEPLOYMENT % annotation).replace(
        "- {name: LOG_LEVEL, value: debug}",
        "- {name: LOG_LEVEL, value: debug}\n        - {name: LLM_URL, value: 'http://helm-set/v1/'}",
    )
    cluster.kubectl(
        "-n", namespace, "apply", "--server-side", "--field-manager=helm", "-f", "-",
        input=helm_owned,
    )  # fmt: skip
    before = managed_view(get(cluster, namespace, "deployment", "web"))
    apply_app(cluster, namespace, BINDING_APP)

    service = refused_service(cluster, namespace, "the conflict reported in status")
    assert "another field manager already sets these fields" in service["message"]
    assert 'conflict with "helm"' in service["message"], service["message"]
    assert condition(get(cluster, namespace, "composeapp", APP), "Stalled")["status"] == "True"
    after = get(cluster, namespace, "deployment", "web")
    assert env_of(after)["LLM_URL"] == "http://helm-set/v1/"
    assert managed_view(after)["spec"]["template"] == before["spec"]["template"]
    assert "compose-operator" not in {m["manager"] for m in after["metadata"]["managedFields"]}


EVERY_EXAMPLE = sorted(
    [p for p in EXAMPLES.glob("*.yaml") if p.name != "settings.yaml"]
    + list((EXAMPLES / "chat-app").glob("compose*.yaml"))
)


@pytest.mark.parametrize("example", EVERY_EXAMPLE, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_every_example_apps_pods_are_admitted_in_a_restricted_namespace(
    cluster: Cluster, operator: OperatorProcess, namespace: str, example: Path
) -> None:
    """The namespace enforces Pod Security "restricted": every Deployment of the example
    (models with their pullers, services, the gateway) gets its pods created, none refused."""
    labels = cluster.get_json("namespace", namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    apply_app(cluster, namespace, example.read_text())

    def admitted() -> list[str] | None:
        app = get(cluster, namespace, "composeapp", APP)
        if app.get("status", {}).get("observedGeneration") != app["metadata"]["generation"]:
            return None
        deployments = cluster.get_json("-n", namespace, "deployments")["items"]
        pods = cluster.get_json("-n", namespace, "pods")["items"]
        created = [
            d["metadata"]["name"]
            for d in deployments
            if any(
                p["metadata"]["labels"].items() >= d["spec"]["selector"]["matchLabels"].items()
                for p in pods
            )
        ]
        return created if deployments and len(created) == len(deployments) else None

    created = eventually(admitted, timeout=90, what="a pod for every Deployment")
    assert len(created) >= 2, created  # a model and a service at least
    failures = [
        (d["metadata"]["name"], c.get("message"))
        for d in cluster.get_json("-n", namespace, "deployments")["items"]
        for c in d.get("status", {}).get("conditions", [])
        if c["type"] == "ReplicaFailure"
    ]
    assert failures == []


def test_pods_the_api_server_refuses_are_quoted_from_the_replicasets_failure(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    """With no pod to read, "0/1 replicas" said nothing: the ReplicaSet's FailedCreate message
    (here a ResourceQuota; a Pod Security refusal reads the same way) is in the status."""
    cluster.kubectl(
        "-n", namespace, "create", "quota", "no-pods", "--hard=pods=0"
    )  # fmt: skip
    apply_app(cluster, namespace, (EXAMPLES / "basic.yaml").read_text())

    def quoted() -> str | None:
        app = get(cluster, namespace, "composeapp", APP)
        for model in app.get("status", {}).get("models", []):
            if "FailedCreate" in model.get("message", ""):
                return str(model["message"])
        return None

    message = eventually(quoted, timeout=90, what="the FailedCreate message in status")
    assert message.startswith(f"Deployment {APP}-llm: FailedCreate: "), message
    assert "exceeded quota: no-pods" in message, message


def test_compose_from_configmap_reconciles_when_the_configmap_changes(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    text = (EXAMPLES / "basic.yaml").read_text()
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "configmap",
        "chat-compose",
        f"--from-literal=compose.yaml={text}",
    )
    body = {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": {"name": APP},
        "spec": {
            "composeFrom": {"configMapKeyRef": {"name": "chat-compose", "key": "compose.yaml"}}
        },
    }
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))
    wait_ready(cluster, namespace)
    assert exists(cluster, namespace, "deployment", f"{APP}-llm")

    changed = text.replace("ai/smollm2", "ai/gemma3")
    patch = {"data": {"compose.yaml": changed}}
    cluster.kubectl(
        "-n",
        namespace,
        "patch",
        "configmap",
        "chat-compose",
        "--type=merge",
        "-p",
        yaml.safe_dump(patch),
    )
    eventually(
        lambda: (
            env_of(get(cluster, namespace, "deployment", "chat-app")).get("LLM_MODEL")
            == "ai/gemma3"
        ),
        what="LLM_MODEL to follow the ConfigMap",
    )


def test_invalid_compose_without_webhook_sets_status_and_applies_nothing(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    text = """
services:
  app: {image: my-app, models: [llm, missing]}
models:
  llm:
    model: ai/smollm2
    contxt_size: 10
"""
    apply_app(cluster, namespace, text)

    def stalled() -> dict[str, Any] | None:
        app = get(cluster, namespace, "composeapp", APP)
        return app if condition(app, "Stalled").get("status") == "True" else None

    app = eventually(stalled, what="Stalled=True")
    ready = condition(app, "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "InvalidCompose"
    assert "context_size" in ready["message"]
    assert "missing" in ready["message"]
    assert cluster.get_json("-n", namespace, "deployments")["items"] == []
    assert cluster.get_json("-n", namespace, "services")["items"] == []
    events = cluster.get_json("-n", namespace, "events")["items"]
    assert any(e["reason"] == "InvalidCompose" and e["type"] == "Warning" for e in events)


def test_deleting_the_app_removes_everything_it_created(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply_app(cluster, namespace, (EXAMPLES / "short-syntax.yaml").read_text())
    wait_ready(cluster, namespace)
    selector = f"compose-operator.io/app={APP}"
    assert cluster.get_json("-n", namespace, "deployments,services", "-l", selector)["items"]
    cluster.kubectl("-n", namespace, "delete", "composeapp", APP, "--timeout=60s")
    kinds = "deployments,services,pvc,configmaps"
    eventually(
        lambda: not cluster.get_json("-n", namespace, kinds, "-l", selector)["items"],
        what="the garbage collector to remove the owned objects",
    )


def test_steady_state_sends_no_request_at_all(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    """Two resync periods (5 s each here) of a Ready app that nobody touches: no write, and no
    read either (the audit log records the operator's reads): a resync compares the plan with
    the watch-fed index."""
    created = cluster.audit_mark()
    apply_app(cluster, namespace, (EXAMPLES / "short-syntax.yaml").read_text())
    wait_ready(cluster, namespace)
    # Let the status settle (the last pod readiness), then watch two resync periods.
    eventually(
        lambda: (
            condition(get(cluster, namespace, "composeapp", APP), "Reconciling").get("status")
            == "False"
        ),
        what="Reconciling=False",
    )
    import time

    time.sleep(3)
    mark = cluster.audit_mark()
    creation_reads = [
        (e["verb"], e["objectRef"].get("resource"))
        for e in cluster.audit_requests(operator.user, since=created)
        if e.get("objectRef", {}).get("namespace") == namespace and e["verb"] in ("get", "list")
    ]
    # The audit log does record the operator's reads: creating read each new name once.
    assert creation_reads and all(verb == "get" for verb, _ in creation_reads), creation_reads
    assert len(creation_reads) <= len(
        cluster.get_json("-n", namespace, "deployments,services,configmaps")["items"]
    )
    time.sleep(12)
    requests = [
        e
        for e in cluster.audit_requests(operator.user, since=mark)
        if e.get("objectRef", {}).get("namespace") == namespace and e.get("verb") != "watch"
    ]
    assert requests == [], dumps(
        [(e["verb"], e["objectRef"].get("resource"), e["objectRef"].get("name")) for e in requests]
    )


def test_kubectl_get_capp_shows_the_printer_columns(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply_app(cluster, namespace, (EXAMPLES / "short-syntax.yaml").read_text())
    wait_ready(cluster, namespace)
    table = cluster.kubectl("-n", namespace, "get", "capp").stdout.splitlines()
    header = table[0].split()
    assert header[:4] == ["NAME", "READY", "MODELS", "SERVICES"], table
    assert header[-1] == "AGE"
    row = table[1].split()
    assert row[0] == APP
    assert row[1] == "True"
    assert row[2] == "2/2"
    assert row[3] == "1/1"


def test_operator_metrics_count_reconciles(operator: OperatorProcess) -> None:
    metrics = operator.metrics()
    assert "compose_operator_reconciles_total" in metrics


FOUR_ON_ONE_URL = """
services:
  agent:
    image: my-agent
    models:
      chat: {endpoint_var: ENGINE_URL, model_var: CHAT_MODEL}
      coder: {endpoint_var: ENGINE_URL, model_var: CODER_MODEL}
      embed: {endpoint_var: ENGINE_URL, model_var: EMBED_MODEL}
      small: {endpoint_var: ENGINE_URL, model_var: SMALL_MODEL}
  web:
    image: my-web
    models: [chat, embed]
models:
  chat: {model: ai/gemma3}
  coder: {model: ai/qwen2.5}
  embed: {model: ai/all-minilm, x-kubernetes: {engine: vllm}}
  small: {model: ai/smollm2}
"""


def test_four_models_behind_one_engine_url_reach_the_gateway(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply_app(cluster, namespace, FOUR_ON_ONE_URL)
    app = wait_ready(cluster, namespace)
    gateway_url = f"http://{APP}-models.{namespace}.svc.cluster.local/v1/"
    agent = env_of(get(cluster, namespace, "deployment", "agent"))
    web = env_of(get(cluster, namespace, "deployment", "web"))
    urls = {
        name: value for env in (agent, web) for name, value in env.items() if name.endswith("_URL")
    }
    assert urls == {"ENGINE_URL": gateway_url, "CHAT_URL": gateway_url, "EMBED_URL": gateway_url}
    assert (agent["CHAT_MODEL"], agent["EMBED_MODEL"]) == ("ai/gemma3", "ai/all-minilm")
    routes = json.loads(
        get(cluster, namespace, "configmap", f"{APP}-models")["data"]["routes.json"]
    )
    assert {m["key"]: m["upstream"] for m in routes["models"]} == {
        key: f"http://{APP}-{key}.{namespace}.svc.cluster.local"
        for key in ("chat", "coder", "embed", "small")
    }
    assert app["status"]["gateway"] == {
        "url": gateway_url,
        "name": f"{APP}-models",
        "ready": True,
        "replicas": 1,
        "readyReplicas": 1,
    }
    assert {m["name"]: m["endpoint"] for m in app["status"]["models"]}["embed"] == (
        f"http://{APP}-embed.{namespace}.svc.cluster.local/v1/"
    )
    (pod,) = pods_of(cluster, namespace, "compose-operator.io/component=model-gateway")
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["containers"][0]["command"] == ["compose-operator", "gateway"]


TWO_MODELS_ONE_REPLICATED = """
services:
  app:
    image: my-app
    models: [llm, embed]
models:
  llm: {model: ai/smollm2, x-kubernetes: {replicas: 2}}
  embed: {model: ai/all-minilm}
"""


def test_two_gateway_pods_get_a_disruption_budget_pruned_at_one_replica(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    """The real disruption controller counts exactly the two gateway pods (not the model's
    two) and allows one of them to go; with every model back at one replica, one gateway
    pod is left and its budget is pruned."""
    apply_app(cluster, namespace, TWO_MODELS_ONE_REPLICATED)
    app = wait_ready(cluster, namespace)
    assert app["status"]["gateway"]["replicas"] == 2
    name = f"{APP}-models"
    budget = get(cluster, namespace, "poddisruptionbudget", name)
    gateway = get(cluster, namespace, "deployment", name)
    assert budget["spec"]["selector"] == gateway["spec"]["selector"]
    assert budget["spec"]["maxUnavailable"] == 1
    owners = budget["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"]) for o in owners] == [("ComposeApp", APP)]

    def counted_by_the_controller() -> dict[str, Any] | None:
        status: dict[str, Any] = get(cluster, namespace, "poddisruptionbudget", name).get(
            "status", {}
        )
        return status if status.get("currentHealthy") == 2 else None

    counted = eventually(
        counted_by_the_controller, what="the disruption controller counting two healthy pods"
    )
    assert (counted["expectedPods"], counted["disruptionsAllowed"]) == (2, 1)

    apply_app(
        cluster, namespace, TWO_MODELS_ONE_REPLICATED.replace(", x-kubernetes: {replicas: 2}", "")
    )
    app = wait_ready(cluster, namespace)
    assert app["status"]["gateway"]["replicas"] == 1
    eventually(
        lambda: not exists(cluster, namespace, "poddisruptionbudget", name),
        what=f"PodDisruptionBudget {name} pruned",
    )
    assert exists(cluster, namespace, "deployment", name)


@pytest.mark.parametrize("kind", ["configmap", "service", "deployment"])
def test_the_gateways_objects_are_restored_when_deleted(
    cluster: Cluster, operator: OperatorProcess, namespace: str, kind: str
) -> None:
    apply_app(cluster, namespace, (EXAMPLES / "basic.yaml").read_text())
    wait_ready(cluster, namespace)
    name = f"{APP}-models"
    before = get(cluster, namespace, kind, name)["metadata"]["uid"]
    cluster.kubectl("-n", namespace, "delete", kind, name, "--wait=true")
    restored = eventually(
        lambda: (
            exists(cluster, namespace, kind, name)
            and get(cluster, namespace, kind, name)["metadata"]["uid"] != before
        ),
        what=f"{kind} {name} applied again",
    )
    assert restored
    owners = get(cluster, namespace, kind, name)["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"]) for o in owners] == [("ComposeApp", APP)]


def test_switching_a_model_to_direct_and_unbinding_prunes_the_gateway(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    text = (EXAMPLES / "basic.yaml").read_text()
    apply_app(cluster, namespace, text)
    wait_ready(cluster, namespace)
    direct = yaml.safe_load(text)
    direct["models"]["llm"]["x-kubernetes"] = {"endpoint": "direct"}
    apply_app(cluster, namespace, yaml.safe_dump(direct))
    app = wait_ready(cluster, namespace)
    eventually(
        lambda: (
            not any(
                exists(cluster, namespace, kind, f"{APP}-models")
                for kind in ("configmap", "service", "deployment")
            )
        ),
        what="the gateway's ConfigMap, Service and Deployment pruned",
    )
    assert "gateway" not in app["status"]
    env = env_of(get(cluster, namespace, "deployment", "chat-app"))
    assert env["LLM_URL"] == f"http://{APP}-llm.{namespace}.svc.cluster.local/v1/"
