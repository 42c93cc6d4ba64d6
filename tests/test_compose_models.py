"""The top-level `models:` element: spec fields, our aliases and `x-kubernetes`."""

from __future__ import annotations

import textwrap

import pytest

from compose_operator.compose import load_project
from compose_operator.errors import ComposeError
from compose_operator.project import CacheSpec, KubernetesOptions, Model, OfferSpec


def model(body: str, environment: dict[str, str] | None = None) -> Model:
    text = "models:\n  llm:\n" + textwrap.indent(textwrap.dedent(body), "    ")
    return load_project(text, environment=environment or {}).models["llm"]


def messages(text: str) -> list[str]:
    with pytest.raises(ComposeError) as caught:
        load_project(textwrap.dedent(text))
    return caught.value.messages


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("model: ai/smollm2", Model(key="llm", model="ai/smollm2")),
        ("image: ai/smollm2", Model(key="llm", model="ai/smollm2")),
        ("model: ai/smollm2\nimage: ai/smollm2", Model(key="llm", model="ai/smollm2")),
        ("model: ai/smollm2\nname: chat", Model(key="llm", model="ai/smollm2", name="chat")),
        (
            "model: ai/smollm2\ncontext_size: 4096",
            Model(key="llm", model="ai/smollm2", context_size=4096),
        ),
        (
            "model: ai/smollm2\ncontext_size: '8192'",
            Model(key="llm", model="ai/smollm2", context_size=8192),
        ),
        (
            "model: ai/smollm2\ncontext_size: ${CTX}",
            Model(key="llm", model="ai/smollm2", context_size=2048),
        ),
        (
            "model: ai/smollm2\nruntime_flags: [--temp, '0.7', --top-p=0.9]",
            Model(key="llm", model="ai/smollm2", runtime_flags=("--temp", "0.7", "--top-p=0.9")),
        ),
        (
            "model: ai/smollm2\nlabels: [team=ml, bare]",
            Model(key="llm", model="ai/smollm2", labels={"team": "ml", "bare": ""}),
        ),
        (
            "model: ai/smollm2\nlabels: {team: ml, tier: 2}",
            Model(key="llm", model="ai/smollm2", labels={"team": "ml", "tier": "2"}),
        ),
        (
            "model: ai/smollm2\nx-cloud-options: [cloud.instance-type=gpu-small, "
            "cloud.region=us-west-2]",
            Model(
                key="llm",
                model="ai/smollm2",
                labels={"cloud.instance-type": "gpu-small", "cloud.region": "us-west-2"},
            ),
        ),
        (
            "model: ai/smollm2\nlabels: [a=1, cloud.zone=z]\nx-cloud-options: [cloud.zone=z]",
            Model(key="llm", model="ai/smollm2", labels={"a": "1", "cloud.zone": "z"}),
        ),
        ("model: ai/smollm2\nx-other: {anything: [1]}", Model(key="llm", model="ai/smollm2")),
        (
            """\
            model: ai/qwen3
            x-kubernetes:
              engine: vllm
              gpus: 2
              replicas: 3
              image: vllm/vllm-openai:v0.10.0
              resources: {requests: {cpu: 4, memory: 16Gi}, limits: {memory: 32Gi}}
              cache: {size: 40Gi, storageClass: fast}
              nodeSelector: {gpu: true, pool: a100}
              tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
              offer: {namespaces: [team-a, team-b]}
              shared: false
            """,
            Model(
                key="llm",
                model="ai/qwen3",
                kubernetes=KubernetesOptions(
                    engine="vllm",
                    gpus=2,
                    replicas=3,
                    image="vllm/vllm-openai:v0.10.0",
                    resources={
                        "requests": {"cpu": "4", "memory": "16Gi"},
                        "limits": {"memory": "32Gi"},
                    },
                    cache=CacheSpec(size="40Gi", storage_class="fast"),
                    node_selector={"gpu": "true", "pool": "a100"},
                    tolerations=(
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                    ),
                    offer=OfferSpec(namespaces=("team-a", "team-b")),
                    shared=False,
                ),
            ),
        ),
        (
            "model: ai/x\nx-kubernetes: {engine: llama.cpp, gpus: 0, replicas: 0, cache: "
            "{size: 1.5Gi}}",
            Model(
                key="llm",
                model="ai/x",
                kubernetes=KubernetesOptions(
                    engine="llama.cpp", gpus=0, replicas=0, cache=CacheSpec(size="1.5Gi")
                ),
            ),
        ),
        (
            "model: ai/x\nx-kubernetes:\n  offer: {namespaceSelector: {matchLabels: {team: ml}}}",
            Model(
                key="llm",
                model="ai/x",
                kubernetes=KubernetesOptions(
                    offer=OfferSpec(namespace_selector={"matchLabels": {"team": "ml"}})
                ),
            ),
        ),
    ],
    ids=lambda value: value.split("\n")[0][:40] if isinstance(value, str) else None,
)
def test_model(body: str, expected: Model) -> None:
    assert model(body, {"CTX": "2048"}) == expected


def test_model_keys_keep_their_order_and_every_valid_pattern() -> None:
    project = load_project(
        "models:\n  z.b: {model: a}\n  A_1: {model: b}\n  my-model: {model: c}\n"
    )
    assert list(project.models) == ["z.b", "A_1", "my-model"]


def test_no_models_element_gives_no_models() -> None:
    assert load_project("services: {}\n").models == {}


M = "compose.yaml: models.llm"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "context_size: 10",
            [f"{M}: 'model' is required: the model's OCI reference, e.g. ai/smollm2 (line 2)"],
        ),
        ("model: ''", [f"{M}.model: must be a non-empty string, got '' (line 3)"]),
        ("model: 42", [f"{M}.model: must be a non-empty string, got 42 (line 3)"]),
        (
            "model: ai/a\nimage: ai/b",
            [
                f"{M}.image: 'image' is an alias of 'model'; they differ ('ai/a' and 'ai/b'): "
                f"keep 'model' (line 4)"
            ],
        ),
        (
            "model: x\ncontext_size: 0",
            [f"{M}.context_size: must be a positive integer, got 0 (line 4)"],
        ),
        (
            "model: x\ncontext_size: -5",
            [f"{M}.context_size: must be a positive integer, got -5 (line 4)"],
        ),
        (
            "model: x\ncontext_size: 4096.5",
            [f"{M}.context_size: must be a positive integer, got 4096.5 (line 4)"],
        ),
        (
            "model: x\ncontext_size: '4k'",
            [f"{M}.context_size: must be a positive integer, got '4k' (line 4)"],
        ),
        (
            "model: x\ncontext_size: true",
            [f"{M}.context_size: must be a positive integer, got true (line 4)"],
        ),
        (
            "model: x\nruntime_flags: --verbose",
            [f"{M}.runtime_flags: must be a list, got '--verbose' (line 4)"],
        ),
        (
            "model: x\nruntime_flags:\n  - --threads\n  - 8",
            [f"{M}.runtime_flags[1]: must be a string, got 8 (line 6)"],
        ),
        (
            "model: x\ncontxt_size: 4096",
            [f"{M}.contxt_size: unknown key 'contxt_size'; did you mean 'context_size'? (line 4)"],
        ),
        (
            "model: x\nruntime_flag: []",
            [
                f"{M}.runtime_flag: unknown key 'runtime_flag'; did you mean 'runtime_flags'? "
                f"(line 4)"
            ],
        ),
        ("model: x\nendpoint: http://x", [f"{M}.endpoint: unknown key 'endpoint' (line 4)"]),
        (
            "model: x\nlabels: 5",
            [f"{M}.labels: must be a list of key=value strings or a mapping, got 5 (line 4)"],
        ),
        (
            "model: x\nx-cloud-options: [cloud.region]",
            [f"{M}.x-cloud-options[0]: must be key=value, got 'cloud.region' (line 4)"],
        ),
        (
            "model: x\nlabels: {cloud.zone: a}\nx-cloud-options: [cloud.zone=b]",
            [f"{M}.x-cloud-options: cloud.zone=b contradicts labels (cloud.zone=a) (line 5)"],
        ),
        (
            "model: x\nx-kubernetes: [vllm]",
            [f"{M}.x-kubernetes: must be a mapping, got a list (line 4)"],
        ),
        (
            "model: x\nx-kubernetes: {engin: vllm}",
            [f"{M}.x-kubernetes.engin: unknown key 'engin'; did you mean 'engine'? (line 4)"],
        ),
        (
            "model: x\nx-kubernetes: {gpu: 1}",
            [f"{M}.x-kubernetes.gpu: unknown key 'gpu'; did you mean 'gpus'? (line 4)"],
        ),
        (
            "model: x\nx-kubernetes: {engine: ollama}",
            [f"{M}.x-kubernetes.engine: must be one of llama.cpp, vllm, got 'ollama' (line 4)"],
        ),
        (
            "model: x\nx-kubernetes: {gpus: -1}",
            [f"{M}.x-kubernetes.gpus: must be an integer of at least 0, got -1 (line 4)"],
        ),
        (
            "model: x\nx-kubernetes: {replicas: two}",
            [f"{M}.x-kubernetes.replicas: must be an integer of at least 0, got 'two' (line 4)"],
        ),
        (
            "model: x\nx-kubernetes: {image: 5}",
            [f"{M}.x-kubernetes.image: must be a non-empty string, got 5 (line 4)"],
        ),
        (
            "model: x\nx-kubernetes: {resources: {request: {}}}",
            [
                f"{M}.x-kubernetes.resources.request: unknown key 'request'; did you mean "
                f"'requests'? (line 4)"
            ],
        ),
        (
            "model: x\nx-kubernetes: {cache: {storageClass: x}}",
            [
                f"{M}.x-kubernetes.cache: 'size' is required: a Kubernetes quantity such as "
                f'"20Gi" (line 4)'
            ],
        ),
        (
            "model: x\nx-kubernetes: {cache: {size: 20}}",
            [
                f'{M}.x-kubernetes.cache.size: must be a Kubernetes quantity such as "20Gi", '
                f"got 20 (line 4)"
            ],
        ),
        (
            "model: x\nx-kubernetes: {cache: {size: 20GB}}",
            [
                f'{M}.x-kubernetes.cache.size: must be a Kubernetes quantity such as "20Gi", '
                f"got '20GB' (line 4)"
            ],
        ),
        (
            "model: x\nx-kubernetes: {cache: {size: 1Gi, storage: x}}",
            [
                f"{M}.x-kubernetes.cache.storage: unknown key 'storage'; did you mean "
                f"'storageClass'? (line 4)"
            ],
        ),
        (
            "model: x\nx-kubernetes: {nodeSelector: [a]}",
            [f"{M}.x-kubernetes.nodeSelector: must be a mapping, got a list (line 4)"],
        ),
        (
            "model: x\nx-kubernetes: {tolerations: {key: a}}",
            [f"{M}.x-kubernetes.tolerations: must be a list, got a mapping (line 4)"],
        ),
        (
            "model: x\nx-kubernetes: {tolerations: [{keys: a}]}",
            [
                f"{M}.x-kubernetes.tolerations[0].keys: unknown key 'keys'; did you mean "
                f"'key'? (line 4)"
            ],
        ),
        (
            "model: x\nx-kubernetes: {offer: {}}",
            [
                f"{M}.x-kubernetes.offer: give exactly one of 'namespaces' (a list) or "
                f"'namespaceSelector' (line 4)"
            ],
        ),
        (
            "model: x\nx-kubernetes: {offer: {namespaces: team-a}}",
            [f"{M}.x-kubernetes.offer.namespaces: must be a list, got 'team-a' (line 4)"],
        ),
        (
            "model: x\nx-kubernetes: {offer: {namespaceSelector: {matchLabel: {}}}}",
            [
                f"{M}.x-kubernetes.offer.namespaceSelector.matchLabel: unknown key "
                f"'matchLabel'; did you mean 'matchLabels'? (line 4)"
            ],
        ),
        (
            "model: x\nx-kubernetes: {shared: maybe}",
            [f"{M}.x-kubernetes.shared: must be true or false, got 'maybe' (line 4)"],
        ),
    ],
    ids=lambda value: value.replace("\n", " ")[:50] if isinstance(value, str) else None,
)
def test_model_problems(body: str, expected: list[str]) -> None:
    assert messages("models:\n  llm:\n" + textwrap.indent(body, "    ")) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models: [ai/smollm2]", ["compose.yaml: models: must be a mapping, got a list (line 1)"]),
        ("models:\n  llm:\n", ["compose.yaml: models.llm: must be a mapping, got null (line 2)"]),
        (
            "models:\n  llm: ai/smollm2\n",
            ["compose.yaml: models.llm: must be a mapping, got 'ai/smollm2' (line 2)"],
        ),
        (
            "models:\n  'my model': {model: x}\n",
            [
                "compose.yaml: models.my model: a model key may hold only letters, digits, "
                "'.', '_' and '-' (line 2)"
            ],
        ),
    ],
    ids=["list", "null", "string", "bad key"],
)
def test_models_element_problems(text: str, expected: list[str]) -> None:
    assert messages(text) == expected


def test_every_problem_of_every_model_is_reported() -> None:
    assert messages(
        """\
        models:
          a: {context_size: 0}
          b: {model: x, runtime_flags: -v, x-kubernetes: {engine: tgi}}
        """
    ) == [
        "compose.yaml: models.a: 'model' is required: the model's OCI reference, e.g. "
        "ai/smollm2 (line 2)",
        "compose.yaml: models.a.context_size: must be a positive integer, got 0 (line 2)",
        "compose.yaml: models.b.runtime_flags: must be a list, got '-v' (line 3)",
        "compose.yaml: models.b.x-kubernetes.engine: must be one of llama.cpp, vllm, got 'tgi' "
        "(line 3)",
    ]
