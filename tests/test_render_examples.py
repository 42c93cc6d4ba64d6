"""Every documented example, loaded and planned as the operator would, checked end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from compose_operator.compose import load_project
from compose_operator.plan import Manifest, Plan
from compose_operator.render import plan
from compose_operator.settings import load_settings

EXAMPLES = Path(__file__).parent.parent / "examples"
SETTINGS = load_settings((EXAMPLES / "settings.yaml").read_text())
COMPOSE_FILES = sorted(
    path.name for path in EXAMPLES.glob("*.yaml") if path.name != "settings.yaml"
)
GPU = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def render(name: str) -> Plan:
    project = load_project((EXAMPLES / name).read_text(), file=name)
    return plan(project, app="chat", namespace="team", settings=SETTINGS, file=name)


def find(result: Plan, kind: str, name: str) -> Manifest:
    (found,) = [o for o in result.objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod(result: Plan, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(result, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def env(result: Plan, service: str) -> dict[str, str]:
    container = pod(result, service)["containers"][0]
    return {entry["name"]: entry["value"] for entry in container.get("env", [])}


def url(model: str) -> str:
    """Every `*_URL` under the default `modelEndpoint: gateway`: the app's model gateway."""
    return "http://chat-models.team.svc.cluster.local/v1/"


def test_every_example_is_covered() -> None:
    assert COMPOSE_FILES == [
        "basic.yaml",
        "chat-app.yaml",
        "cloud-labels.yaml",
        "config-options.yaml",
        "long-syntax.yaml",
        "one-url.yaml",
        "short-syntax.yaml",
    ]


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_object_is_valid_kubernetes_and_rendering_is_deterministic(name: str) -> None:
    result = render(name)
    for manifest in result.objects:
        kubernetes_validate.validate(manifest, "1.36", strict=True)
    assert yaml.safe_dump_all(render(name).objects) == yaml.safe_dump_all(result.objects)
    assert result.warnings == ()


def test_basic() -> None:
    result = render("basic.yaml")
    assert [(o["kind"], o["metadata"]["name"]) for o in result.objects] == [
        ("ConfigMap", "chat-models"),
        ("Service", "chat-llm"),
        ("Service", "chat-models"),
        ("Deployment", "chat-app"),
        ("Deployment", "chat-llm"),
        ("Deployment", "chat-models"),
    ]
    assert env(result, "chat-app") == {"LLM_URL": url("llm"), "LLM_MODEL": "ai/smollm2"}
    assert pod(result, "chat-llm")["containers"][0]["args"] == [
        "--host", "0.0.0.0", "--port", "8080", "-ngl", "999", "--metrics", "--embeddings",
        "--alias", "ai/smollm2", "-m", "/models/model.gguf",
    ]  # fmt: skip


def test_config_options() -> None:
    result = render("config-options.yaml")
    assert pod(result, "chat-llm")["containers"][0]["args"][8:] == [
        "--ctx-size", "4096", "--alias", "ai/smollm2", "-m", "/models/model.gguf",
        "--temp", "0.1", "--top-k", "1", "--reasoning-budget=0",
    ]  # fmt: skip


def test_short_syntax() -> None:
    result = render("short-syntax.yaml")
    assert env(result, "app") == {
        "LLM_URL": url("llm"),
        "LLM_MODEL": "ai/smollm2",
        "EMBEDDING_MODEL_URL": url("embedding-model"),
        "EMBEDDING_MODEL_MODEL": "ai/all-minilm",
    }


def test_long_syntax() -> None:
    result = render("long-syntax.yaml")
    assert env(result, "app") == {
        "AI_MODEL_URL": url("llm"),
        "AI_MODEL_NAME": "ai/smollm2",
        "EMBEDDING_URL": url("embedding-model"),
        "EMBEDDING_NAME": "ai/all-minilm",
    }


def test_cloud_labels_select_the_profile_and_the_region() -> None:
    result = render("cloud-labels.yaml")
    spec = pod(result, "chat-llm")
    assert spec["nodeSelector"] == {
        "nvidia.com/gpu.product": "NVIDIA-L4",
        "topology.kubernetes.io/region": "us-west-2",
    }
    assert spec["tolerations"] == [
        GPU,
        {"key": "gpu-small", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert spec["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert spec["containers"][0]["args"][-5:] == [
        "--alias", "ai/smollm2", "-m", "/models/model.gguf", "--no-prefill-assistant",
    ]  # fmt: skip


def test_chat_app() -> None:
    result = render("chat-app.yaml")
    assert [(o["kind"], o["metadata"]["name"]) for o in result.objects] == [
        ("ConfigMap", "chat-models"),
        ("Service", "chat-chat-model"),
        ("Service", "chat-embeddings"),
        ("Service", "chat-models"),
        ("Service", "web"),
        ("Deployment", "chat-chat-model"),
        ("Deployment", "chat-embeddings"),
        ("Deployment", "chat-models"),
        ("Deployment", "web"),
    ]
    assert env(result, "web") == {
        "CHAT_MODEL_URL": url("chat-model"),
        "CHAT_MODEL_MODEL": "ai/gemma3",
        "EMBEDDINGS_URL": url("embeddings"),
        "EMBEDDINGS_MODEL": "ai/all-minilm",
        "LOG_LEVEL": "info",
    }
    chat = pod(result, "chat-chat-model")
    assert chat["containers"][0]["args"] == [
        "--host", "0.0.0.0", "--port", "8080", "-ngl", "999", "--metrics", "--embeddings",
        "--ctx-size", "8192", "--alias", "ai/gemma3", "-m", "/models/model.gguf",
    ]  # fmt: skip
    assert chat["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert chat["tolerations"] == [GPU]
    assert "nodeSelector" not in chat

    embeddings = pod(result, "chat-embeddings")
    assert embeddings["containers"][0]["image"] == "vllm/vllm-openai:latest"
    assert embeddings["containers"][0]["args"] == [
        "serve", "/models", "--port", "8000", "--served-model-name", "ai/all-minilm",
    ]  # fmt: skip
    assert embeddings["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert embeddings["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    assert embeddings["tolerations"] == [
        GPU,
        {"key": "gpu-small", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert embeddings["volumes"][0] == {"name": "models", "emptyDir": {"sizeLimit": "20Gi"}}

    web = pod(result, "web")["containers"][0]
    assert (web["image"], web["ports"]) == (
        "chat-app:latest",
        [{"containerPort": 8080, "protocol": "TCP"}],
    )
    assert web["readinessProbe"] == {
        "exec": {"command": ["curl", "-f", "http://localhost:8080/healthz"]},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }
    assert find(result, "Service", "web")["spec"]["ports"] == [
        {"name": "tcp-8080", "port": 8080, "targetPort": 8080, "protocol": "TCP"}
    ]


def test_one_url() -> None:
    result = render("one-url.yaml")
    assert env(result, "agent") == {
        "ENGINE_URL": url("any"),
        "CHAT_MODEL": "ai/gemma3",
        "CODER_MODEL": "ai/qwen2.5",
        "EMBEDDINGS_MODEL": "ai/all-minilm",
        "SMALL_MODEL": "ai/smollm2",
    }
    routes = find(result, "ConfigMap", "chat-models")["data"]["routes.json"]
    assert '"embeddings": "embeddings"' in routes
    assert [m.key for m in result.models] == ["chat", "coder", "embeddings", "small"]
