"""Whole files: Docker's documented examples, top-level elements, and problem collection."""

from __future__ import annotations

import pytest

from compose_operator.compose import load_project
from compose_operator.errors import ComposeError, Problem, Warning
from compose_operator.project import (
    ComposeProject,
    Model,
    ModelBinding,
    Port,
    Service,
    Volume,
)

LLM = ModelBinding("llm", "LLM_URL", "LLM_MODEL")

BASIC = """
services:
  chat-app:
    image: my-chat-app
    models:
      - llm

models:
  llm:
    model: ai/smollm2
"""

CONFIG_OPTIONS = """
services:
  app:
    image: app
    models:
      - llm
models:
  llm:
    model: ai/smollm2
    context_size: 4096
    runtime_flags:
      - "--a-flag"
      - "--another-flag=42"
"""

LONG_SYNTAX = """
services:
  app:
    image: my-app
    models:
      llm:
        endpoint_var: AI_MODEL_URL
        model_var: AI_MODEL_NAME

models:
  llm:
    model: ai/smollm2
"""

CLOUD = """
services:
  chat-app:
    image: my-chat-app
    models:
      - llm
models:
  llm:
    model: ai/smollm2
    context_size: 4096
    # Cloud-specific configurations
    x-cloud-options:
      - "cloud.instance-type=gpu-small"
      - "cloud.region=us-west-2"
"""

AGENT = """
name: agents
services:
  agent:
    build:
      context: agent
    ports:
      - 8080:8080
    environment:
      - MCPGATEWAY_ENDPOINT=http://mcp-gateway:8811/sse
      - OPENAI_API_KEY
    depends_on:
      - mcp-gateway
    models:
      gemma3:
        endpoint_var: MODEL_RUNNER_URL
        model_var: MODEL_RUNNER_MODEL
  mcp-gateway:
    image: docker/mcp-gateway:latest
    use_api_socket: true
    command:
      - --transport=sse
      - --servers=duckduckgo
      - --tools=search,fetch_content
  agent-ui:
    build: ui
    restart: !reset
    ports: !override
      - "3000:3000"
    models: [embedding-model]
models:
  gemma3:
    model: ai/gemma3:4B-Q4_0
    context_size: 10000
  embedding-model:
    image: ai/mxbai-embed-large
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            BASIC,
            ComposeProject(
                models={"llm": Model("llm", "ai/smollm2")},
                services={"chat-app": Service("chat-app", image="my-chat-app", models=(LLM,))},
            ),
        ),
        (
            CONFIG_OPTIONS,
            ComposeProject(
                models={
                    "llm": Model(
                        "llm",
                        "ai/smollm2",
                        context_size=4096,
                        runtime_flags=("--a-flag", "--another-flag=42"),
                    )
                },
                services={"app": Service("app", image="app", models=(LLM,))},
            ),
        ),
        (
            LONG_SYNTAX,
            ComposeProject(
                models={"llm": Model("llm", "ai/smollm2")},
                services={
                    "app": Service(
                        "app",
                        image="my-app",
                        models=(ModelBinding("llm", "AI_MODEL_URL", "AI_MODEL_NAME"),),
                    )
                },
            ),
        ),
        (
            CLOUD,
            ComposeProject(
                models={
                    "llm": Model(
                        "llm",
                        "ai/smollm2",
                        context_size=4096,
                        labels={"cloud.instance-type": "gpu-small", "cloud.region": "us-west-2"},
                    )
                },
                services={"chat-app": Service("chat-app", image="my-chat-app", models=(LLM,))},
            ),
        ),
        (
            AGENT,
            ComposeProject(
                name="agents",
                models={
                    "gemma3": Model("gemma3", "ai/gemma3:4B-Q4_0", context_size=10000),
                    "embedding-model": Model("embedding-model", "ai/mxbai-embed-large"),
                },
                services={
                    "agent": Service(
                        "agent",
                        environment={"MCPGATEWAY_ENDPOINT": "http://mcp-gateway:8811/sse"},
                        ports=(Port(8080, 8080),),
                        models=(ModelBinding("gemma3", "MODEL_RUNNER_URL", "MODEL_RUNNER_MODEL"),),
                    ),
                    "mcp-gateway": Service(
                        "mcp-gateway",
                        image="docker/mcp-gateway:latest",
                        command=(
                            "--transport=sse",
                            "--servers=duckduckgo",
                            "--tools=search,fetch_content",
                        ),
                    ),
                    "agent-ui": Service(
                        "agent-ui",
                        ports=(Port(3000, 3000),),
                        models=(
                            ModelBinding(
                                "embedding-model", "EMBEDDING_MODEL_URL", "EMBEDDING_MODEL_MODEL"
                            ),
                        ),
                    ),
                },
                warnings=(
                    Warning(
                        "services.agent.environment[1]",
                        "OPENAI_API_KEY has no value and is not in the interpolation environment;"
                        " dropped",
                    ),
                    Warning("services.agent.depends_on", "no meaning on Kubernetes; ignored"),
                    Warning(
                        "services.mcp-gateway.use_api_socket", "no meaning on Kubernetes; ignored"
                    ),
                ),
            ),
        ),
    ],
    ids=["basic", "config options", "long syntax", "cloud options", "agent with build and reset"],
)
def test_docker_documentation_examples(text: str, expected: ComposeProject) -> None:
    assert load_project(text) == expected


def test_loading_is_deterministic() -> None:
    assert load_project(AGENT) == load_project(AGENT)
    assert repr(load_project(AGENT)) == repr(load_project(AGENT))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("services: {}\nvolumes:\n  data:\n", {"data": Volume("data")}),
        (
            "volumes:\n  data:\n    x-kubernetes: {size: 10Gi, storageClass: fast}\n",
            {"data": Volume("data", size="10Gi", storage_class="fast")},
        ),
        ("volumes:\n  a: {}\n  b: {x-note: 1}\n", {"a": Volume("a"), "b": Volume("b")}),
    ],
    ids=["null", "x-kubernetes", "empty"],
)
def test_named_volumes(text: str, expected: dict[str, Volume]) -> None:
    assert load_project(text).volumes == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: '3.8'\nnetworks: {n: {}}\nconfigs: {}\nsecrets: {}\nx-anchors: {a: 1}\n",
            (
                Warning("version", "ignored on Kubernetes"),
                Warning("networks", "ignored on Kubernetes"),
            ),
        ),
        (
            "volumes:\n  data: {driver: local, external: true}\n",
            (
                Warning("volumes.data.driver", "no meaning on Kubernetes; ignored"),
                Warning("volumes.data.external", "no meaning on Kubernetes; ignored"),
            ),
        ),
    ],
    ids=["top level", "volume"],
)
def test_top_level_warnings(text: str, expected: tuple[Warning, ...]) -> None:
    assert load_project(text).warnings == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "include: [other.yaml]\n",
            [
                "compose.yaml: include[0]: other.yaml is not among the project files; carry it "
                "in spec.files (`compose-operator convert` does) (line 1)"
            ],
        ),
        (
            "servces: {}\n",
            ["compose.yaml: servces: unknown key 'servces'; did you mean 'services'? (line 1)"],
        ),
        ("services: [app]\n", ["compose.yaml: services: must be a mapping, got a list (line 1)"]),
        (
            "name: My App\n",
            [
                "compose.yaml: name: a project name holds lowercase letters, digits, '-' and "
                "'_', and starts with a letter or digit (line 1)"
            ],
        ),
        ("name: 5\n", ["compose.yaml: name: must be a string, got 5 (line 1)"]),
        (
            "volumes: {data: {x-kubernetes: {size: big}}}\n",
            [
                "compose.yaml: volumes.data.x-kubernetes.size: must be a Kubernetes quantity "
                "such as \"20Gi\", got 'big' (line 1)"
            ],
        ),
        (
            "volumes: {data: {x-kubernetes: {sise: 1Gi}}}\n",
            [
                "compose.yaml: volumes.data.x-kubernetes.sise: unknown key 'sise'; did you "
                "mean 'size'? (line 1)"
            ],
        ),
        (
            "volumes: {data: {drivers: x}}\n",
            [
                "compose.yaml: volumes.data.drivers: unknown key 'drivers'; did you mean "
                "'driver'? (line 1)"
            ],
        ),
        ("volumes: [data]\n", ["compose.yaml: volumes: must be a mapping, got a list (line 1)"]),
    ],
    ids=lambda value: value.split(":")[0] if isinstance(value, str) else None,
)
def test_top_level_problems(text: str, expected: list[str]) -> None:
    with pytest.raises(ComposeError) as caught:
        load_project(text)
    assert caught.value.messages == expected


def test_every_problem_in_the_file_is_collected_with_its_line() -> None:
    text = """\
models:
  llm:
    model: ai/smollm2
    contxt_size: 4096
    runtime_flags: --verbose
services:
  app:
    image: app
    models: [llm, chat]
    env_file: .env
  web:
    command: run
"""
    with pytest.raises(ComposeError) as caught:
        load_project(text, file="chat/compose.yaml")
    assert caught.value.problems == (
        Problem(
            "models.llm.contxt_size", "unknown key 'contxt_size'; did you mean 'context_size'?", 4
        ),
        Problem("models.llm.runtime_flags", "must be a list, got '--verbose'", 5),
        Problem("services.app.models[1]", 'service "app" refers to undefined model chat', 9),
        Problem(
            "services.app.env_file",
            ".env is not among the project files; carry it in spec.files "
            "(`compose-operator convert` does)",
            10,
        ),
        Problem(
            "services.web", 'service "web" has neither an image nor a build context specified', 11
        ),
    )
    assert str(caught.value).splitlines()[0] == (
        "chat/compose.yaml: models.llm.contxt_size: unknown key 'contxt_size'; "
        "did you mean 'context_size'? (line 4)"
    )


def test_a_volume_with_problems_does_not_also_read_as_undefined() -> None:
    text = (
        "volumes:\n  data: {x-kubernetes: {size: big}}\n"
        "services:\n  app: {image: a, volumes: ['data:/d']}\n"
    )
    with pytest.raises(ComposeError) as caught:
        load_project(text)
    assert caught.value.messages == [
        "compose.yaml: volumes.data.x-kubernetes.size: must be a Kubernetes quantity such as "
        "\"20Gi\", got 'big' (line 2)"
    ]
