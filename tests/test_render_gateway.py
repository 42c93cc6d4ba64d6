"""The model gateway as the planner renders it: one URL per app, its routing table, its
objects, and how shared variables are judged under each `modelEndpoint`."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import kubernetes_validate
import pytest

from compose_operator import names
from compose_operator.compose import load_project
from compose_operator.errors import ComposeError, Warning
from compose_operator.plan import Manifest, Plan, PlannedGateway
from compose_operator.render import gateway, plan
from compose_operator.settings import GatewaySettings, Settings, load_settings

GATEWAY_URL = "http://chat-models.team.svc.cluster.local/v1/"
FOUR_ON_ONE_URL = """
services:
  agent:
    image: my-agent
    models:
      chat: {endpoint_var: ENGINE_URL, model_var: CHAT_MODEL}
      coder: {endpoint_var: ENGINE_URL, model_var: CODER_MODEL}
      embed: {endpoint_var: ENGINE_URL, model_var: EMBED_MODEL}
      small: {endpoint_var: ENGINE_URL, model_var: SMALL_MODEL}
models:
  chat: {model: ai/gemma3}
  coder: {model: ai/qwen2.5}
  embed: {model: ai/all-minilm, x-kubernetes: {engine: vllm}}
  small: {model: ai/smollm2}
"""


def planned(text: str, settings: Settings | None = None) -> Plan:
    project = load_project(textwrap.dedent(text))
    result = plan(project, app="chat", namespace="team", settings=settings or Settings())
    for manifest in result.objects:
        kubernetes_validate.validate(manifest, "1.36", strict=True)
    return result


def problems(text: str, settings: Settings | None = None) -> list[str]:
    with pytest.raises(ComposeError) as caught:
        planned(text, settings)
    return caught.value.messages


def find(result: Plan, kind: str, name: str) -> Manifest:
    (found,) = [o for o in result.objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def env(result: Plan, deployment: str) -> dict[str, str]:
    container = find(result, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    return {entry["name"]: entry["value"] for entry in container.get("env", [])}


def routes(result: Plan) -> dict[str, Any]:
    table: dict[str, Any] = json.loads(
        find(result, "ConfigMap", "chat-models")["data"]["routes.json"]
    )
    return table


def test_four_models_behind_one_engine_url_all_reach_the_gateway() -> None:
    result = planned(FOUR_ON_ONE_URL)
    assert env(result, "agent") == {
        "ENGINE_URL": GATEWAY_URL,
        "CHAT_MODEL": "ai/gemma3",
        "CODER_MODEL": "ai/qwen2.5",
        "EMBED_MODEL": "ai/all-minilm",
        "SMALL_MODEL": "ai/smollm2",
    }
    assert result.warnings == ()
    assert result.gateway == PlannedGateway(name="chat-models", url=GATEWAY_URL, replicas=1)
    table = routes(result)
    assert [(m["key"], m["upstream"], m["engine"]) for m in table["models"]] == [
        ("chat", "http://chat-chat.team.svc.cluster.local", "llama.cpp"),
        ("coder", "http://chat-coder.team.svc.cluster.local", "llama.cpp"),
        ("embed", "http://chat-embed.team.svc.cluster.local", "vllm"),
        ("small", "http://chat-small.team.svc.cluster.local", "llama.cpp"),
    ]
    # status keeps each model's own Service
    assert {m.key: m.endpoint for m in result.models}["embed"] == (
        "http://chat-embed.team.svc.cluster.local/v1/"
    )


def test_the_routing_table_knows_every_spelling_and_the_key() -> None:
    table = routes(planned(FOUR_ON_ONE_URL))
    names_of_embed = sorted(name for name, key in table["names"].items() if key == "embed")
    assert names_of_embed == [
        "ai/all-minilm",
        "ai/all-minilm:latest",
        "docker.io/ai/all-minilm",
        "docker.io/ai/all-minilm:latest",
        "embed",
    ]
    assert (table["app"], table["namespace"]) == ("chat", "team")


def test_the_gateway_objects_are_exactly_these() -> None:
    result = planned(FOUR_ON_ONE_URL)
    labels = {
        "app.kubernetes.io/managed-by": "compose-operator",
        "app.kubernetes.io/part-of": "chat",
        "compose-operator.io/app": "chat",
        "compose-operator.io/component": "model-gateway",
    }
    selector = {"compose-operator.io/app": "chat", "compose-operator.io/component": "model-gateway"}
    metadata = {"name": "chat-models", "namespace": "team", "labels": labels}
    assert find(result, "Service", "chat-models") == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    table = find(result, "ConfigMap", "chat-models")["data"]["routes.json"]
    deployment = find(result, "Deployment", "chat-models")
    assert deployment == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "compose-operator.io/routes-hash": gateway._hash(table.removesuffix("\n"))
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "terminationGracePeriodSeconds": 610,
                    "containers": [
                        {
                            "name": "gateway",
                            "image": "ghcr.io/compose-operator/compose-operator:latest",
                            "command": ["compose-operator", "gateway"],
                            "args": [
                                "--routes",
                                "/etc/compose-operator/gateway/routes.json",
                                "--port",
                                "8080",
                                "--max-request-bytes",
                                "16777216",
                                "--upstream-timeout",
                                "600",
                                "--endpoint-delay",
                                "5",
                                "--drain-seconds",
                                "600",
                            ],
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "http"},
                                "periodSeconds": 2,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                                "failureThreshold": 3,
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {
                                    "name": "routes",
                                    "mountPath": "/etc/compose-operator/gateway",
                                    "readOnly": True,
                                }
                            ],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "64Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                        }
                    ],
                    "volumes": [{"name": "routes", "configMap": {"name": "chat-models"}}],
                },
            },
        },
    }


def test_a_routing_change_changes_the_pod_template_so_the_gateway_rolls() -> None:
    before = find(planned(FOUR_ON_ONE_URL), "Deployment", "chat-models")
    after = find(
        planned(FOUR_ON_ONE_URL.replace("ai/qwen2.5", "ai/qwen3")), "Deployment", "chat-models"
    )
    hashes = [
        d["spec"]["template"]["metadata"]["annotations"]["compose-operator.io/routes-hash"]
        for d in (before, after)
    ]
    assert hashes[0] != hashes[1]


def test_settings_place_and_size_the_gateway() -> None:
    settings = Settings(
        gateway=GatewaySettings(
            image="registry.local/compose-operator:1",
            replicas=3,
            node_selector={"pool": "system"},
            tolerations=({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"},),
            resources={},
        )
    )
    deployment = find(planned(FOUR_ON_ONE_URL, settings), "Deployment", "chat-models")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 3
    assert pod["containers"][0]["image"] == "registry.local/compose-operator:1"
    assert "resources" not in pod["containers"][0]
    assert pod["nodeSelector"] == {"pool": "system"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}
    ]


REPLICATED = FOUR_ON_ONE_URL.replace(
    "small: {model: ai/smollm2}", "small: {model: ai/smollm2, x-kubernetes: {replicas: 2}}"
)


def test_two_gateway_replicas_when_a_model_runs_more_than_one() -> None:
    gateway = planned(REPLICATED).gateway
    assert gateway is not None and gateway.replicas == 2


def budgets(result: Plan) -> list[Manifest]:
    return [o for o in result.objects if o["kind"] == "PodDisruptionBudget"]


@pytest.mark.parametrize(
    ("text", "configured", "expected"),
    [
        (FOUR_ON_ONE_URL, None, 1),
        (REPLICATED, None, 2),
        (FOUR_ON_ONE_URL, 3, 3),
        (REPLICATED, 1, 1),
    ],
    ids=["one", "a-replicated-model", "settings-3", "settings-1"],
)
def test_a_disruption_budget_exactly_when_the_gateway_runs_more_than_one_replica(
    text: str, configured: int | None, expected: int
) -> None:
    """One replica gets none: a budget it could never meet would block every drain of its
    node."""
    result = planned(text, Settings(gateway=GatewaySettings(replicas=configured)))
    assert find(result, "Deployment", "chat-models")["spec"]["replicas"] == expected
    assert [b["metadata"]["name"] for b in budgets(result)] == (
        ["chat-models"] if expected > 1 else []
    )


def test_the_disruption_budget_lets_one_gateway_pod_go_at_a_time() -> None:
    result = planned(REPLICATED)  # validated against the 1.36 schema, strict
    (budget,) = budgets(result)
    deployment = find(result, "Deployment", "chat-models")
    assert budget == {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": deployment["metadata"],
        "spec": {
            "maxUnavailable": 1,
            "selector": {
                "matchLabels": {
                    "compose-operator.io/app": "chat",
                    "compose-operator.io/component": "model-gateway",
                }
            },
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
    # Exactly the gateway's pods: its Deployment's selector, which selects no model's pods.
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert (
        budget["spec"]["selector"]["matchLabels"]
        == (find(result, "Service", "chat-models")["spec"]["selector"])
    )
    model_pods = find(result, "Deployment", "chat-small")["spec"]["template"]["metadata"]
    selected = budget["spec"]["selector"]["matchLabels"].items()
    assert not selected <= model_pods["labels"].items()
    assert selected <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_direct_keeps_one_url_per_model_and_no_gateway() -> None:
    result = planned(
        """
        services:
          app: {image: app, models: [llm, embed]}
        models:
          llm: {model: ai/smollm2}
          embed: {model: ai/all-minilm}
        """,
        Settings(model_endpoint="direct"),
    )
    assert env(result, "app")["LLM_URL"] == "http://chat-llm.team.svc.cluster.local/v1/"
    assert env(result, "app")["EMBED_URL"] == "http://chat-embed.team.svc.cluster.local/v1/"
    assert result.gateway is None
    assert not [o for o in result.objects if o["metadata"]["name"] == "chat-models"]


def test_one_model_may_skip_the_hop_and_one_may_take_it() -> None:
    text = """
        services:
          app: {image: app, models: [llm, embed]}
        models:
          llm: {model: ai/smollm2}
          embed: {model: ai/all-minilm, x-kubernetes: {endpoint: %s}}
        """
    behind = planned(text % "direct")
    assert env(behind, "app")["LLM_URL"] == GATEWAY_URL
    assert env(behind, "app")["EMBED_URL"] == "http://chat-embed.team.svc.cluster.local/v1/"
    assert [m["key"] for m in routes(behind)["models"]] == ["embed", "llm"]
    opted_in = planned(text % "gateway", Settings(model_endpoint="direct"))
    assert env(opted_in, "app")["LLM_URL"] == "http://chat-llm.team.svc.cluster.local/v1/"
    assert env(opted_in, "app")["EMBED_URL"] == GATEWAY_URL


def test_an_app_that_binds_no_model_gets_no_gateway() -> None:
    result = planned("models:\n  llm: {model: ai/smollm2}\n")
    assert result.gateway is None
    assert [o["kind"] for o in result.objects] == ["Service", "Deployment"]


M = "compose.yaml: services.app.models"


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (
            "llm: {endpoint_var: URL}\n  embed: {endpoint_var: URL}",
            f"{M}.embed.endpoint_var: URL is already set by the binding of model llm",
        ),
        (
            "llm: {model_var: EMBED_URL}\n  embed:",
            f"{M}.embed: EMBED_URL is already set by the binding of model llm",
        ),
        (
            "llm: {endpoint_var: X, model_var: X}",
            f"{M}.llm.endpoint_var: endpoint_var and model_var are both X",
        ),
    ],
)
def test_direct_refuses_shared_variables_naming_the_setting(models: str, expected: str) -> None:
    text = (
        "services:\n  app:\n    image: app\n    models:\n      "
        + models.replace("\n  ", "\n      ")
        + "\nmodels:\n  llm: {model: ai/smollm2}\n  embed: {model: ai/all-minilm}\n"
    )
    (message,) = problems(text, Settings(model_endpoint="direct"))
    assert message.startswith(expected + "; under modelEndpoint: direct"), message
    assert "modelEndpoint: gateway" in message
    planned(text)  # the default, gateway, accepts each of them


def test_a_model_variable_that_is_another_bindings_url_gets_the_url_with_a_warning() -> None:
    """Compose sets a binding's model variable, then its URL variable: the URL wins."""
    result = planned(
        """
        services:
          app:
            image: app
            models:
              llm: {model_var: EMBED_URL}
              embed:
        models:
          llm: {model: ai/smollm2}
          embed: {model: ai/all-minilm}
        """
    )
    assert env(result, "app") == {
        "EMBED_URL": GATEWAY_URL,
        "EMBED_MODEL": "ai/all-minilm",
        "LLM_URL": GATEWAY_URL,
    }
    assert result.warnings == (
        Warning(
            "services.app.models.llm.model_var",
            "EMBED_URL is the model variable of llm and the URL variable of embed: it gets the "
            "URL, as under docker compose up (a binding's URL is assigned after its model name)",
        ),
    )


def test_a_shared_model_variable_takes_the_last_binding_with_a_warning() -> None:
    result = planned(
        """
        services:
          app:
            image: app
            models:
              llm: {endpoint_var: ENGINE_URL, model_var: MODEL}
              embed: {endpoint_var: ENGINE_URL, model_var: MODEL}
        models:
          llm: {model: ai/smollm2}
          embed: {model: ai/all-minilm}
        """
    )
    assert env(result, "app") == {"ENGINE_URL": GATEWAY_URL, "MODEL": "ai/all-minilm"}
    (warning,) = result.warnings
    assert warning.path == "services.app.models.embed.model_var"
    assert "last one's name, ai/all-minilm" in warning.message


def test_a_direct_model_cannot_share_a_url_with_the_gateway() -> None:
    (message,) = problems(
        """
        services:
          app:
            image: app
            models:
              llm: {endpoint_var: ENGINE_URL}
              embed: {endpoint_var: ENGINE_URL}
        models:
          llm: {model: ai/smollm2}
          embed: {model: ai/all-minilm, x-kubernetes: {endpoint: direct}}
        """
    )
    assert message.startswith(f"{M}.embed.endpoint_var: ENGINE_URL would need two URLs")
    assert "x-kubernetes.endpoint: direct" in message


def test_two_models_of_one_reference_keep_their_keys_and_the_first_keeps_the_name() -> None:
    result = planned(
        """
        services:
          app: {image: app, models: [big, small]}
        models:
          big: {model: ai/smollm2, context_size: 8192}
          small: {model: ai/smollm2}
        """
    )
    table = routes(result)
    assert table["names"]["ai/smollm2"] == "big"
    assert table["names"]["small"] == "small"
    (warning,) = result.warnings
    assert warning.path == "models.small"
    assert "only by its key 'small'" in warning.message


def test_a_model_keyed_models_never_takes_the_gateways_name() -> None:
    result = planned(
        "services:\n  app: {image: app, models: [models]}\nmodels:\n  models: {model: ai/x}\n"
    )
    own = names.model("chat", "models")
    assert own == f"chat-models-{names.short_hash('chat-models/model')}"
    assert find(result, "Deployment", own)
    assert (
        find(result, "Deployment", "chat-models")["metadata"]["labels"][
            "compose-operator.io/component"
        ]
        == "model-gateway"
    )
    assert routes(result)["models"][0]["upstream"] == f"http://{own}.team.svc.cluster.local"


def test_a_service_that_takes_the_gateways_name_is_a_clash_naming_both() -> None:
    (message,) = problems(
        "services:\n  chat-models: {image: app, models: [llm]}\nmodels:\n  llm: {model: ai/x}\n"
    )
    assert message == (
        "compose.yaml: services.chat-models: its Deployment would be named 'chat-models', like "
        "the one of the model gateway; rename one"
    )


def test_settings_for_the_gateway_load_and_are_checked() -> None:
    settings = load_settings(
        "modelEndpoint: direct\ngateway: {replicas: 2, maxRequestBytes: 1024, "
        "tolerations: [{key: a, operator: Exists}]}\n"
    )
    assert settings.model_endpoint == "direct"
    assert settings.gateway.replicas == 2
    assert settings.gateway.max_request_bytes == 1024
    with pytest.raises(ComposeError) as caught:
        load_settings(
            "modelEndpoint: both\ngateway: {replicas: 0, drainSeconds: 0, tolerations: [{kye: a}]}"
        )
    assert caught.value.messages == [
        "settings.yaml: modelEndpoint: must be 'gateway' or 'direct', not 'both'",
    ]
    with pytest.raises(ComposeError) as caught:
        load_settings("gateway: {replicas: 0, drainSeconds: 0, tolerations: [{kye: a}]}")
    assert caught.value.messages == [
        "settings.yaml: gateway.tolerations[0].kye: unknown toleration field; did you mean 'key'?",
        "settings.yaml: gateway.replicas: must be 1 or more, not 0",
        "settings.yaml: gateway.drainSeconds: must be 1 or more, not 0",
    ]


def test_x_kubernetes_endpoint_is_checked() -> None:
    with pytest.raises(ComposeError) as caught:
        load_project("models:\n  llm: {model: ai/x, x-kubernetes: {endpoint: sideways}}\n")
    assert caught.value.messages == [
        "compose.yaml: models.llm.x-kubernetes.endpoint: must be one of gateway, direct, got "
        "'sideways' (line 2)"
    ]
