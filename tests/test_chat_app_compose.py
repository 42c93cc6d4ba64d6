"""The chat app's Compose files load and plan as the real-node suite expects them to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compose_operator.compose import load_project
from compose_operator.plan import Plan
from compose_operator.render import plan
from compose_operator.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "chat-app"
PLACEMENT = {
    "node.kubernetes.io/instance-type": "gpu-small",
    "topology.kubernetes.io/region": "us-west-2",
}
VLLM_FLAGS = ["--runner", "pooling", "--enforce-eager", "--gpu-memory-utilization", "0.2"]


def planned(name: str, environment: dict[str, str] | None = None) -> Plan:
    text = (EXAMPLE / name).read_text()
    project = load_project(text, file=name, environment=environment or {})
    return plan(project, app="chat", namespace="demo", settings=Settings(), file=name)


def deployment(result: Plan, name: str) -> dict[str, Any]:
    found = [
        o for o in result.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name
    ]
    assert len(found) == 1, [o["metadata"]["name"] for o in result.objects]
    return found[0]


def container_env(result: Plan) -> dict[str, str]:
    (container,) = deployment(result, "chat")["spec"]["template"]["spec"]["containers"]
    return {entry["name"]: entry["value"] for entry in container["env"]}


def test_short_syntax_binds_both_models_under_compose_names() -> None:
    result = planned("compose.yaml")

    assert container_env(result) == {
        "LLM_URL": "http://chat-models.demo.svc.cluster.local/v1/",
        "LLM_MODEL": "ai/gemma3",
        "EMBEDDING_MODEL_URL": "http://chat-models.demo.svc.cluster.local/v1/",
        "EMBEDDING_MODEL_MODEL": "ai/all-minilm",
    }
    assert [(m.key, m.model, m.engine) for m in result.models] == [
        ("embedding-model", "ai/all-minilm", "vllm"),
        ("llm", "ai/gemma3", "llama.cpp"),
    ]
    assert result.warnings == ()


def test_long_syntax_names_the_variables_the_app_is_told_to_read() -> None:
    env = container_env(planned("compose.long-syntax.yaml"))

    assert {
        name: env[env[pointer]]
        for name, pointer in [
            ("chat url", "CHAT_URL_VAR"),
            ("chat model", "CHAT_MODEL_VAR"),
            ("embedding url", "EMBEDDING_URL_VAR"),
            ("embedding model", "EMBEDDING_MODEL_VAR"),
        ]
    } == {
        "chat url": "http://chat-models.demo.svc.cluster.local/v1/",
        "chat model": "ai/gemma3",
        "embedding url": "http://chat-models.demo.svc.cluster.local/v1/",
        "embedding model": "ai/all-minilm",
    }
    assert sorted(env) == [
        "CHAT_ENDPOINT",
        "CHAT_MODEL_NAME",
        "CHAT_MODEL_VAR",
        "CHAT_URL_VAR",
        "EMBEDDINGS_ENDPOINT",
        "EMBEDDINGS_MODEL_NAME",
        "EMBEDDING_MODEL_VAR",
        "EMBEDDING_URL_VAR",
    ]


@pytest.mark.parametrize(
    "name", ["compose.yaml", "compose.long-syntax.yaml", "compose.one-url.yaml"]
)
def test_models_are_placed_by_cloud_labels_with_cpu_friendly_flags(name: str) -> None:
    result = planned(name)

    for model in ("chat-llm", "chat-embedding-model"):
        pod = deployment(result, model)["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == PLACEMENT
    (vllm,) = deployment(result, "chat-embedding-model")["spec"]["template"]["spec"]["containers"]
    assert vllm["args"] == [
        "serve",
        "/models",
        "--port",
        "8000",
        "--served-model-name",
        "ai/all-minilm",
        "--max-model-len",
        "256",
        *VLLM_FLAGS,
    ]
    (llama,) = deployment(result, "chat-llm")["spec"]["template"]["spec"]["containers"]
    assert llama["args"][-2:] == ["-m", "/models/model.gguf"]
    assert "--ctx-size" in llama["args"]
    assert llama["args"][llama["args"].index("--ctx-size") + 1] == "2048"


def test_one_url_binds_both_models_to_the_gateway_and_tells_the_app() -> None:
    result = planned("compose.one-url.yaml")
    env = container_env(result)
    gateway = "http://chat-models.demo.svc.cluster.local/v1/"
    assert {name: env[env[pointer]] for name, pointer in [
        ("chat url", "CHAT_URL_VAR"), ("chat model", "CHAT_MODEL_VAR"),
        ("embedding url", "EMBEDDING_URL_VAR"), ("embedding model", "EMBEDDING_MODEL_VAR"),
    ]} == {
        "chat url": gateway, "chat model": "ai/gemma3",
        "embedding url": gateway, "embedding model": "ai/all-minilm",
    }  # fmt: skip
    assert result.warnings == ()
    # The models are those of compose.yaml: switching to this variant rolls no model.
    models = {o["metadata"]["name"]: o for o in planned("compose.yaml").objects}
    for name in ("chat-llm", "chat-embedding-model"):
        assert deployment(result, name) == models[name]


def test_the_app_image_can_be_chosen_at_apply_time() -> None:
    default = deployment(planned("compose.yaml"), "chat")
    chosen = deployment(planned("compose.yaml", {"CHAT_APP_IMAGE": "reg:5000/app:1"}), "chat")

    images = [d["spec"]["template"]["spec"]["containers"][0]["image"] for d in (default, chosen)]
    assert images == ["localhost:5000/compose-operator/chat-app:dev", "reg:5000/app:1"]


@pytest.mark.parametrize(
    "name", ["compose.yaml", "compose.long-syntax.yaml", "compose.one-url.yaml"]
)
def test_the_app_tolerates_the_gpu_taint_to_run_beside_its_models(name: str) -> None:
    pod = deployment(planned(name), "chat")["spec"]["template"]["spec"]
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert "nodeSelector" not in pod
