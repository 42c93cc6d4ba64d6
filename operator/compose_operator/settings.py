"""Operator settings: engine images, GPU profiles, policy. One frozen object, passed in.

Loaded from the YAML file the Helm chart and kustomize write into a ConfigMap, validated
once at start-up (`load_settings`), and handed to the core as an argument: nothing in the
core reads a global or the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SharingPolicy = Literal["prefer", "require", "never"]


@dataclass(frozen=True)
class EngineImages:
    gpu: str
    """Image for pods that get GPUs."""
    cpu: str
    """Image for `gpus: 0` pods."""


@dataclass(frozen=True)
class GpuProfile:
    """What `cloud.instance-type=<name>` means on this cluster."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    gpus: int | None = None
    """GPUs per replica; a model's `x-kubernetes.gpus` overrides it. None: the default."""


@dataclass(frozen=True)
class Policy:
    """What a Compose file may ask for. Everything that could escape a pod is off by default."""

    allow_privileged: bool = False
    allow_host_namespaces: bool = False
    allow_bind_mounts: bool = False
    allow_devices: bool = False
    allow_capabilities: bool = False


@dataclass(frozen=True)
class Settings:
    engines: Mapping[str, EngineImages] = field(
        default_factory=lambda: {
            "llama.cpp": EngineImages(
                gpu="ghcr.io/ggml-org/llama.cpp:server-cuda",
                cpu="ghcr.io/ggml-org/llama.cpp:server",
            ),
            "vllm": EngineImages(
                gpu="vllm/vllm-openai:latest",
                cpu="vllm/vllm-openai-cpu:latest",
            ),
        }
    )
    default_engine: str = "llama.cpp"
    puller_image: str = "ghcr.io/compose-operator/compose-operator:latest"
    """The operator's own image; its `pull-model` command fetches OCI model artifacts."""
    gpu_resource_name: str = "nvidia.com/gpu"
    default_gpus: int = 1
    gpu_tolerations: tuple[Mapping[str, Any], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    )
    instance_type_label: str = "node.kubernetes.io/instance-type"
    profiles: Mapping[str, GpuProfile] = field(default_factory=dict)
    cluster_domain: str = "cluster.local"
    registry_mirrors: Mapping[str, str] = field(default_factory=dict)
    """Registry host rewrites for model pulls, e.g. {"docker.io": "registry.local:5000"}."""
    insecure_registries: tuple[str, ...] = ()
    """Registries the puller may reach over plain HTTP (localhost always may)."""
    model_volume_size: str = "20Gi"
    """emptyDir size limit for model weights when a model sets no `x-kubernetes.cache`."""
    policy: Policy = field(default_factory=Policy)
    templates: Mapping[str, str] = field(default_factory=dict)
    """Replacement Jinja2 templates for the model workload, by template file name."""
    sharing: SharingPolicy = "prefer"
    network_policies: bool = False
