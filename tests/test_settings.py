"""Operator settings: pinned defaults, the camelCase file, and located problems."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from compose_operator.errors import ComposeError
from compose_operator.settings import (
    EngineImages,
    GpuProfile,
    Policy,
    Settings,
    Sharing,
    load_settings,
)

EXAMPLE = Path(__file__).parent.parent / "examples" / "settings.yaml"


def test_every_default_is_pinned() -> None:
    """Changing a default changes every cluster's behaviour: it must be deliberate."""
    assert Settings() == Settings(
        engines={
            "llama.cpp": EngineImages(
                gpu="ghcr.io/ggml-org/llama.cpp:server-cuda",
                cpu="ghcr.io/ggml-org/llama.cpp:server",
                command=("/app/llama-server",),
            ),
            "vllm": EngineImages(
                gpu="vllm/vllm-openai:latest",
                cpu="vllm/vllm-openai-cpu:latest",
                command=("vllm",),
            ),
        },
        default_engine="llama.cpp",
        puller_image="ghcr.io/compose-operator/compose-operator:latest",
        gpu_resource_name="nvidia.com/gpu",
        default_gpus=1,
        gpu_tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
        instance_type_label="node.kubernetes.io/instance-type",
        profiles={},
        cluster_domain="cluster.local",
        registry_mirrors={},
        insecure_registries=(),
        model_volume_size="20Gi",
        policy=Policy(
            allow_privileged=False,
            allow_host_namespaces=False,
            allow_bind_mounts=False,
            allow_devices=False,
            allow_capabilities=False,
            allow_root=False,
        ),
        templates={},
        sharing=Sharing(policy="prefer", offer_namespaces=(), offer_namespace_selector=None),
        network_policies=False,
        stall_after_crashes=5,
    )


@pytest.mark.parametrize("text", ["", "{}", "# nothing set\n"])
def test_an_empty_file_means_the_defaults(text: str) -> None:
    assert load_settings(text) == Settings()


def test_the_documented_example_is_the_defaults_plus_one_profile() -> None:
    """The Helm chart copies examples/settings.yaml; it must state the real defaults."""
    assert load_settings(EXAMPLE.read_text()) == replace(
        Settings(),
        profiles={
            "gpu-small": GpuProfile(
                node_selector={"nvidia.com/gpu.product": "NVIDIA-L4"},
                tolerations=({"key": "gpu-small", "operator": "Exists", "effect": "NoSchedule"},),
                gpus=1,
            )
        },
    )


def test_every_key_is_read() -> None:
    text = """
engines:
  vllm: {gpu: registry.local/vllm:gpu}
defaultEngine: vllm
pullerImage: registry.local/compose-operator:1.0
gpuResourceName: amd.com/gpu
defaultGpus: 0
gpuTolerations: []
instanceTypeLabel: karpenter.k8s.aws/instance-gpu-name
profiles:
  l4: {nodeSelector: {cloud.google.com/gke-accelerator: nvidia-l4}, gpus: 2}
clusterDomain: example.internal
registryMirrors: {docker.io: registry.local:5000}
insecureRegistries: [registry.local:5000]
modelVolumeSize: 50Gi
policy: {allowPrivileged: true, allowHostNamespaces: true, allowBindMounts: true,
         allowDevices: true, allowCapabilities: true}
templates: {model-service.yaml.j2: "{{ name | tojson }}"}
sharing: {policy: require, offerNamespaces: [platform],
          offerNamespaceSelector: {matchLabels: {offers: "yes"}}}
networkPolicies: true
stallAfterCrashes: 0
"""
    defaults = Settings()
    assert load_settings(text) == Settings(
        engines={
            "llama.cpp": defaults.engines["llama.cpp"],
            "vllm": EngineImages(
                gpu="registry.local/vllm:gpu", cpu="vllm/vllm-openai-cpu:latest", command=("vllm",)
            ),
        },
        default_engine="vllm",
        puller_image="registry.local/compose-operator:1.0",
        gpu_resource_name="amd.com/gpu",
        default_gpus=0,
        gpu_tolerations=(),
        instance_type_label="karpenter.k8s.aws/instance-gpu-name",
        profiles={
            "l4": GpuProfile(
                node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"}, gpus=2
            )
        },
        cluster_domain="example.internal",
        registry_mirrors={"docker.io": "registry.local:5000"},
        insecure_registries=("registry.local:5000",),
        model_volume_size="50Gi",
        policy=Policy(True, True, True, True, True),
        templates={"model-service.yaml.j2": "{{ name | tojson }}"},
        sharing=Sharing(
            policy="require",
            offer_namespaces=("platform",),
            offer_namespace_selector={"matchLabels": {"offers": "yes"}},
        ),
        network_policies=True,
        stall_after_crashes=0,
    )


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        (
            "defaultGpu: 2",
            ["settings.yaml: defaultGpu: unknown setting; did you mean 'defaultGpus'?"],
        ),
        (
            "policy: {allowPrivilged: true}",
            [
                "settings.yaml: policy.allowPrivilged: unknown setting; "
                "did you mean 'allowPrivileged'?"
            ],
        ),
        (
            "default_engine: vllm",
            ["settings.yaml: default_engine: unknown setting; did you mean 'defaultEngine'?"],
        ),
        ("defaultGpus: two", ["settings.yaml: defaultGpus: must be an integer, not 'two'"]),
        ("defaultGpus: true", ["settings.yaml: defaultGpus: must be an integer, not true"]),
        ("defaultGpus: -1", ["settings.yaml: defaultGpus: must be 0 or more, not -1"]),
        (
            "stallAfterCrashes: -1",
            ["settings.yaml: stallAfterCrashes: must be 0 (never) or more, not -1"],
        ),
        (
            "networkPolicies: 'yes'",
            ["settings.yaml: networkPolicies: must be true or false, not 'yes'"],
        ),
        (
            "sharing: maybe",
            [
                "settings.yaml: sharing.policy: must be 'prefer' or 'require' or 'never', "
                "not 'maybe'"
            ],
        ),
        (
            "insecureRegistries: registry.local",
            ["settings.yaml: insecureRegistries: must be a list, not 'registry.local'"],
        ),
        (
            "profiles: {small: {nodeSelector: {gpu: 1}, gpus: null}}",
            ["settings.yaml: profiles.small.nodeSelector.gpu: must be a string, not 1"],
        ),
        (
            "engines: {sglang: {gpu: x}, vllm: {gpus: y}}",
            [
                "settings.yaml: engines.sglang: no engine named 'sglang'; known: llama.cpp, vllm",
                "settings.yaml: engines.vllm.gpus: unknown setting; did you mean 'gpu'?",
            ],
        ),
        (
            "engines: {vllm: {command: []}}",
            ["settings.yaml: engines.vllm.command: must name the server's executable"],
        ),
        (
            "defaultEngine: vlm",
            ["settings.yaml: defaultEngine: no engine named 'vlm'; known: llama.cpp, vllm"],
        ),
        (
            "modelVolumeSize: 20GB",
            ["settings.yaml: modelVolumeSize: '20GB' is not a Kubernetes quantity such as 20Gi"],
        ),
        (
            "gpuTolerations: [{key: a, effct: NoSchedule}]",
            [
                "settings.yaml: gpuTolerations[0].effct: unknown toleration field; "
                "did you mean 'effect'?"
            ],
        ),
        (
            "templates: {deployment.j2: x, model-cache.yaml.j2: '{% if %}'}",
            [
                "settings.yaml: templates.deployment.j2: no template named 'deployment.j2'; known: "
                "model-deployment.yaml.j2, model-service.yaml.j2, model-cache.yaml.j2",
                "settings.yaml: templates.model-cache.yaml.j2: line 1: Expected an expression, "
                "got 'end of statement block'",
            ],
        ),
        ("- a list", ["settings.yaml: (top level): must be a mapping, not a list"]),
        (
            "a: [",
            [
                "settings.yaml: not valid YAML: expected the node content, "
                "but found '<stream end>' (line 1)"
            ],
        ),
    ],
)
def test_problems_are_located(text: str, messages: list[str]) -> None:
    with pytest.raises(ComposeError) as raised:
        load_settings(text)
    assert raised.value.messages == messages
