"""The model workload: the whole Deployment and Service, placement, weights and templates."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from compose_operator import templates
from compose_operator.errors import ComposeError, Problem, Warning
from compose_operator.plan import Manifest, PlannedModel
from compose_operator.project import CacheSpec, ComposeProject, KubernetesOptions, Model
from compose_operator.render import plan
from compose_operator.settings import GpuProfile, Settings

SETTINGS = Settings()
LABELS = {
    "app.kubernetes.io/managed-by": "compose-operator",
    "app.kubernetes.io/part-of": "chat",
    "compose-operator.io/app": "chat",
    "compose-operator.io/model": "llm",
}
SELECTOR = {"compose-operator.io/app": "chat", "compose-operator.io/model": "llm"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
PROBES = {
    "startupProbe": {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 180,
    },
    "readinessProbe": {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    },
    "livenessProbe": {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": 30,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    },
}

MODEL_POD_SECURITY = {
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "fsGroup": 65532,
    "fsGroupChangePolicy": "OnRootMismatch",
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False}
SCRATCH_MOUNT = {"name": "tmp", "mountPath": "/tmp"}
SCRATCH_VOLUME = {"name": "tmp", "emptyDir": {}}


def words(text: str) -> list[str]:
    return text.split(" ")


def render(*models: Model, settings: Settings = SETTINGS, validate: bool = True) -> list[Manifest]:
    project = ComposeProject(models={model.key: model for model in models})
    objects = list(plan(project, app="chat", namespace="team", settings=settings).objects)
    for manifest in objects if validate else ():
        kubernetes_validate.validate(manifest, "1.36", strict=True)
    return objects


def deployment(objects: list[Manifest], name: str = "chat-llm") -> Manifest:
    (found,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name]
    return found


def pod(objects: list[Manifest], name: str = "chat-llm") -> dict[str, Any]:
    spec: dict[str, Any] = deployment(objects, name)["spec"]["template"]["spec"]
    return spec


def engine(objects: list[Manifest], name: str = "chat-llm") -> dict[str, Any]:
    container: dict[str, Any] = pod(objects, name)["containers"][0]
    return container


def test_a_default_model_renders_exactly_these_objects() -> None:
    objects = render(Model(key="llm", model="ai/smollm2", context_size=4096))
    assert objects == [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "chat-llm", "namespace": "team", "labels": LABELS},
            "spec": {
                "selector": SELECTOR,
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "chat-llm", "namespace": "team", "labels": LABELS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": SELECTOR},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
                },
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": MODEL_POD_SECURITY,
                        "tolerations": [GPU_TOLERATION],
                        "initContainers": [
                            {
                                "name": "pull-model",
                                "image": "ghcr.io/compose-operator/compose-operator:latest",
                                "command": ["compose-operator"],
                                "args": [
                                    "pull-model",
                                    "docker.io/ai/smollm2:latest",
                                    "--dest",
                                    "/models",
                                ],
                                "volumeMounts": [{"name": "models", "mountPath": "/models"}],
                                "terminationMessagePolicy": "FallbackToLogsOnError",
                                "securityContext": {
                                    "readOnlyRootFilesystem": True,
                                    **CONTAINER_SECURITY,
                                },
                            }
                        ],
                        "containers": [
                            {
                                "name": "llama-server",
                                "image": "ghcr.io/ggml-org/llama.cpp:server-cuda",
                                "command": ["/app/llama-server"],
                                "args": words(
                                    "--host 0.0.0.0 --port 8080 -ngl 999 --metrics --embeddings "
                                    "--ctx-size 4096 --alias ai/smollm2 -m /models/model.gguf"
                                ),
                                "ports": [
                                    {"name": "http", "containerPort": 8080, "protocol": "TCP"}
                                ],
                                "env": [
                                    {"name": "DO_NOT_TRACK", "value": "1"},
                                    {"name": "HF_HUB_OFFLINE", "value": "1"},
                                    {"name": "HOME", "value": "/tmp"},
                                ],
                                "resources": {"limits": {"nvidia.com/gpu": "1"}},
                                **PROBES,
                                "volumeMounts": [
                                    {"name": "models", "mountPath": "/models", "readOnly": True},
                                    SCRATCH_MOUNT,
                                ],
                                "terminationMessagePolicy": "FallbackToLogsOnError",
                                "securityContext": CONTAINER_SECURITY,
                            }
                        ],
                        "volumes": [
                            {"name": "models", "emptyDir": {"sizeLimit": "20Gi"}},
                            SCRATCH_VOLUME,
                        ],
                    },
                },
            },
        },
    ]


def test_status_describes_the_model() -> None:
    project = ComposeProject(models={"llm": Model(key="llm", model="ai/smollm2")})
    assert plan(project, app="chat", namespace="team", settings=SETTINGS).models == (
        PlannedModel(
            key="llm",
            model="ai/smollm2",
            engine="llama.cpp",
            endpoint="http://chat-llm.team.svc.cluster.local/v1/",
            deployment="chat-llm",
            service="chat-llm",
            replicas=1,
        ),
    )


def test_a_cpu_model_gets_the_cpu_image_no_gpu_and_no_gpu_toleration() -> None:
    objects = render(
        Model(key="llm", model="ai/smollm2", kubernetes=KubernetesOptions(gpus=0, replicas=2))
    )
    container = engine(objects)
    assert container["image"] == "ghcr.io/ggml-org/llama.cpp:server"
    assert "resources" not in container
    assert "tolerations" not in pod(objects)
    assert "strategy" not in deployment(objects)["spec"]
    assert deployment(objects)["spec"]["replicas"] == 2


def test_vllm_with_four_gpus_a_cache_and_its_own_image() -> None:
    model = Model(
        key="llm",
        model="registry.local:5000/team/qwen3:v2",
        context_size=8192,
        kubernetes=KubernetesOptions(
            engine="vllm",
            gpus=4,
            image="vllm/vllm-openai:v0.11.0",
            cache=CacheSpec(size="40Gi", storage_class="fast"),
            resources={"requests": {"memory": "32Gi"}, "limits": {"memory": "64Gi"}},
        ),
    )
    objects = render(model)
    assert objects[0] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "chat-llm-cache", "namespace": "team", "labels": LABELS},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "40Gi"}},
            "storageClassName": "fast",
        },
    }
    container = engine(objects)
    assert container["name"] == "vllm"
    assert container["image"] == "vllm/vllm-openai:v0.11.0"
    assert container["command"] == ["vllm"]
    assert container["args"] == [
        "serve", "/models", "--port", "8000", "--served-model-name",
        "registry.local:5000/team/qwen3:v2", "--max-model-len", "8192",
        "--tensor-parallel-size", "4",
    ]  # fmt: skip
    assert container["resources"] == {
        "limits": {"memory": "64Gi", "nvidia.com/gpu": "4"},
        "requests": {"memory": "32Gi"},
    }
    assert container["env"] == [
        {"name": "DO_NOT_TRACK", "value": "1"},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
    ]
    assert container["volumeMounts"] == [
        {"name": "models", "mountPath": "/models", "readOnly": True},
        SCRATCH_MOUNT,
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    assert pod(objects)["volumes"] == [
        {"name": "models", "persistentVolumeClaim": {"claimName": "chat-llm-cache"}},
        SCRATCH_VOLUME,
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
    ]
    assert pod(objects)["initContainers"][0]["args"] == [
        "pull-model", "registry.local:5000/team/qwen3:v2", "--dest", "/models",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("mirrors", "insecure", "expected"),
    [
        ({}, (), ["pull-model", "docker.io/ai/smollm2:latest", "--dest", "/models"]),
        (
            {"docker.io": "registry.local:5000"},
            ("registry.local:5000",),
            [
                "pull-model",
                "registry.local:5000/ai/smollm2:latest",
                "--dest",
                "/models",
                "--insecure",
            ],
        ),
        (
            {"docker.io": "mirror.example.com"},
            ("docker.io",),
            ["pull-model", "mirror.example.com/ai/smollm2:latest", "--dest", "/models"],
        ),
    ],
)
def test_the_puller_pulls_through_mirrors(
    mirrors: dict[str, str], insecure: tuple[str, ...], expected: list[str]
) -> None:
    settings = replace(SETTINGS, registry_mirrors=mirrors, insecure_registries=insecure)
    objects = render(Model(key="llm", model="ai/smollm2"), settings=settings)
    assert pod(objects)["initContainers"][0]["args"] == expected


def test_a_hugging_face_model_is_downloaded_by_the_engine_into_the_model_volume() -> None:
    objects = render(Model(key="llm", model="hf.co/bartowski/SmolLM2-GGUF:Q4_K_M"))
    assert "initContainers" not in pod(objects)
    container = engine(objects)
    assert container["args"][-4:] == [
        "--alias", "hf.co/bartowski/SmolLM2-GGUF:Q4_K_M", "-hf", "bartowski/SmolLM2-GGUF:Q4_K_M",
    ]  # fmt: skip
    assert container["env"] == [
        {"name": "DO_NOT_TRACK", "value": "1"},
        {"name": "HF_HOME", "value": "/models/huggingface"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "LLAMA_CACHE", "value": "/models/llama.cpp"},
    ]
    assert container["volumeMounts"] == [{"name": "models", "mountPath": "/models"}, SCRATCH_MOUNT]


def test_vllm_serves_a_hugging_face_repository_and_says_the_tag_is_ignored() -> None:
    model = Model(
        key="llm", model="hf.co/org/repo:Q4_K_M", kubernetes=KubernetesOptions(engine="vllm")
    )
    result = plan(
        ComposeProject(models={"llm": model}), app="chat", namespace="team", settings=SETTINGS
    )
    assert engine(list(result.objects))["args"][:2] == ["serve", "org/repo"]
    assert result.warnings == (
        Warning("models.llm.model", "vLLM serves the whole repository; the :tag is ignored"),
    )


PROFILES = {
    "gpu-small": GpuProfile(
        node_selector={"nvidia.com/gpu.product": "NVIDIA-L4"},
        tolerations=({"key": "pool", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},),
        gpus=2,
    )
}


@pytest.mark.parametrize(
    ("labels", "options", "gpus", "node_selector", "tolerations"),
    [
        pytest.param(
            {"cloud.instance-type": "gpu-small"},
            KubernetesOptions(),
            "2",
            {"nvidia.com/gpu.product": "NVIDIA-L4"},
            [
                GPU_TOLERATION,
                {"key": "pool", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
            ],
            id="profile",
        ),
        pytest.param(
            {"cloud.instance-type": "g5.xlarge", "cloud.region": "us-west-2", "cloud.zone": "b"},
            KubernetesOptions(),
            "1",
            {
                "node.kubernetes.io/instance-type": "g5.xlarge",
                "topology.kubernetes.io/region": "us-west-2",
                "topology.kubernetes.io/zone": "b",
            },
            [GPU_TOLERATION],
            id="no such profile: the instance-type label",
        ),
        pytest.param(
            {"cloud.instance-type": "gpu-small"},
            KubernetesOptions(
                gpus=8,
                node_selector={"nvidia.com/gpu.product": "H100"},
                tolerations=(GPU_TOLERATION, {"key": "spot", "operator": "Exists"}),
            ),
            "8",
            {"nvidia.com/gpu.product": "H100"},
            [
                GPU_TOLERATION,
                {"key": "pool", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
                {"key": "spot", "operator": "Exists"},
            ],
            id="x-kubernetes wins over the profile; tolerations once each",
        ),
    ],
)
def test_gpu_placement(
    labels: dict[str, str],
    options: KubernetesOptions,
    gpus: str,
    node_selector: dict[str, str],
    tolerations: list[dict[str, str]],
) -> None:
    settings = replace(SETTINGS, profiles=PROFILES)
    objects = render(
        Model(key="llm", model="ai/smollm2", labels=labels, kubernetes=options), settings=settings
    )
    assert engine(objects)["resources"] == {"limits": {"nvidia.com/gpu": gpus}}
    assert pod(objects)["nodeSelector"] == node_selector
    assert pod(objects)["tolerations"] == tolerations


def test_other_model_labels_become_pod_annotations() -> None:
    model = Model(
        key="llm",
        model="ai/smollm2",
        labels={"com.example.team": "search", "cloud.region": "eu-west-1", "bad key": "x"},
    )
    result = plan(
        ComposeProject(models={"llm": model}), app="chat", namespace="team", settings=SETTINGS
    )
    template = deployment(list(result.objects))["spec"]["template"]
    assert template["metadata"]["annotations"] == {"com.example.team": "search"}
    assert result.warnings == (
        Warning("models.llm.labels.bad key", "not a valid Kubernetes annotation key; ignored"),
    )


def test_model_problems_are_collected_into_one_error() -> None:
    models = {
        "a": Model(key="a", model="ai/x", runtime_flags=("--port", "1", "--alias=y")),
        "b": Model(key="b", model="Not A Ref"),
        "c": Model(key="c", model="ai/x", kubernetes=KubernetesOptions(engine="ollama")),
        "d": Model(key="d", model="ai/x", labels={"cloud.instance-type": "a b"}),
        "e": Model(key="e", model="hf.co/just-a-name"),
    }
    with pytest.raises(ComposeError) as raised:
        plan(ComposeProject(models=models), app="chat", namespace="team", settings=SETTINGS)
    assert raised.value.problems == (
        Problem("models.a.runtime_flags[0]", "--port is set by the operator; remove it"),
        Problem("models.a.runtime_flags[2]", "--alias is set by the operator; remove it"),
        Problem(
            "models.b.model",
            "'Not A Ref': repository 'library/Not A Ref' must be lowercase letters, digits and "
            "separators (., _, -) between /-separated components",
        ),
        Problem("models.c.x-kubernetes.engine", "unknown engine 'ollama'; known: llama.cpp, vllm"),
        Problem("models.d.labels.cloud.instance-type", "'a b' is not a valid node label value"),
        Problem(
            "models.e.model",
            "'hf.co/just-a-name' is not a Hugging Face reference like hf.co/org/repo:Q4_K_M",
        ),
    )


def test_a_platform_template_replaces_the_packaged_one() -> None:
    template = """apiVersion: v1
kind: Service
metadata:
  name: {{ name | tojson }}
  namespace: {{ namespace | tojson }}
  labels: {{ labels | tojson }}
  annotations: {"platform.example.com/engine": {{ model.engine | tojson }}}
spec:
  type: ClusterIP
  selector: {{ selector | tojson }}
  ports: [{"name": "http", "port": 80, "targetPort": {{ port | tojson }}}]
"""
    settings = replace(SETTINGS, templates={"model-service.yaml.j2": template})
    service = render(Model(key="llm", model="ai/smollm2"), settings=settings)[0]
    assert service == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "chat-llm",
            "namespace": "team",
            "labels": LABELS,
            "annotations": {"platform.example.com/engine": "llama.cpp"},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": SELECTOR,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "name: {{ name }}",
            "models.llm: template model-service.yaml.j2: template printed 'chat-llm' without "
            "`| tojson`; every value must pass through it",
        ),
        (
            "name: {{ nmae | tojson }}",
            "models.llm: template model-service.yaml.j2: 'nmae' is undefined",
        ),
        ("- a\n- b", "models.llm: template model-service.yaml.j2 must render one mapping"),
        (
            "name: chat-{{ name | tojson }}",
            "models.llm: template model-service.yaml.j2: a `tojson` value must be a whole YAML "
            "value, not part of 'chat-\"__tojson_0__\"'",
        ),
    ],
)
def test_a_broken_platform_template_is_a_located_problem(template: str, message: str) -> None:
    settings = replace(SETTINGS, templates={"model-service.yaml.j2": template})
    project = ComposeProject(models={"llm": Model(key="llm", model="ai/smollm2")})
    with pytest.raises(ComposeError) as raised:
        plan(project, app="chat", namespace="team", settings=settings)
    assert raised.value.messages == [f"compose.yaml: {message}"]


def test_a_template_may_print_mapping_keys_and_values_never_raw_text() -> None:
    text = "a:\n  {{ key | tojson }}: {{ value | tojson }}\n  fixed: {{ none | tojson }}\n"
    overrides = {templates.MODEL_SERVICE: text}
    context = {"key": "x: y\nb: c", "value": {"k": [1, "2"]}, "none": None}
    assert templates.render(templates.MODEL_SERVICE, context, overrides) == {
        "a": {"x: y\nb: c": {"k": [1, "2"]}, "fixed": None}
    }
    with pytest.raises(templates.TemplateValueError, match="a mapping key must be a string"):
        templates.render(templates.MODEL_SERVICE, {**context, "key": 5}, overrides)


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1, max_size=40).filter(lambda text: not text.startswith("-")))
def test_no_value_can_change_the_yaml_structure(text: str) -> None:
    """Runtime flags and labels are user text printed into YAML: they must come back as is."""
    model = Model(
        key="llm",
        model="ai/smollm2",
        runtime_flags=("--system-prompt", text),
        labels={"com.example/note": text},
    )
    objects = render(model, validate=False)
    assert engine(objects)["args"][-1] == text
    template = deployment(objects)["spec"]["template"]
    assert template["metadata"]["annotations"] == {"com.example/note": text}


def test_rendering_twice_gives_identical_yaml() -> None:
    model = Model(
        key="llm",
        model="ai/smollm2",
        labels={"z": "1", "a": "2", "cloud.zone": "b"},
        kubernetes=KubernetesOptions(node_selector={"z": "1", "a": "2"}),
    )
    first = yaml.safe_dump_all(render(model))
    assert yaml.safe_dump_all(render(model)) == first
