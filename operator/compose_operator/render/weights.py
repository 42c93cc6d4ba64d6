"""How a model's weights reach the engine.

OCI references (`ai/smollm2`, `registry.local/team/model:v2`): an init container runs the
operator image's `compose-operator pull-model`, which writes the artifact into the model
volume (`/models/model.gguf` for GGUF; safetensors and config files under their own names
for vLLM). `hf.co/org/repo[:quant]`: the engine downloads the repository itself, with its
cache on the model volume. The volume is an emptyDir, or with `x-kubernetes.cache` a
PersistentVolumeClaim that survives restarts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from compose_operator import names, references
from compose_operator.engines.base import MODELS_DIR, Weights
from compose_operator.errors import Problem
from compose_operator.project import Model
from compose_operator.settings import Settings

VOLUME = "models"
PULLER_CONTAINER = "pull-model"
HF_HOME = f"{MODELS_DIR}/huggingface"
_HF_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+)?")


@dataclass(frozen=True)
class WeightsPlan:
    weights: Weights
    volume: dict[str, Any]
    mount: dict[str, Any]
    init_containers: list[dict[str, Any]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cache_claim: str | None = None


def plan_weights(
    model: Model, *, app: str, settings: Settings, path: str
) -> tuple[WeightsPlan | None, list[Problem]]:
    cache = model.kubernetes.cache
    claim = names.model_cache(app, model.key) if cache is not None else None
    volume: dict[str, Any] = (
        {"name": VOLUME, "persistentVolumeClaim": {"claimName": claim}}
        if claim is not None
        else {"name": VOLUME, "emptyDir": {"sizeLimit": settings.model_volume_size}}
    )
    if references.is_huggingface(model.model):
        repo = model.model.split("/", 1)[1] if "/" in model.model else ""
        if not _HF_REPO.fullmatch(repo):
            message = f"{model.model!r} is not a Hugging Face reference like hf.co/org/repo:Q4_K_M"
            return None, [Problem(f"{path}.model", message)]
        return WeightsPlan(
            weights=Weights(huggingface=repo),
            volume=volume,
            mount={"name": VOLUME, "mountPath": MODELS_DIR},
            env={"HF_HOME": HF_HOME},
            cache_claim=claim,
        ), []
    try:
        reference = references.parse_reference(model.model)
    except ValueError as error:
        return None, [Problem(f"{path}.model", str(error))]
    pulled_from = references.apply_mirrors(reference, settings.registry_mirrors)
    args = ["pull-model", str(pulled_from), "--dest", MODELS_DIR]
    if pulled_from.registry in settings.insecure_registries:
        args.append("--insecure")
    puller = {
        "name": PULLER_CONTAINER,
        "image": settings.puller_image,
        "command": ["compose-operator"],
        "args": args,
        "volumeMounts": [{"name": VOLUME, "mountPath": MODELS_DIR}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # The puller writes only to the model volume.
        "securityContext": {"readOnlyRootFilesystem": True},
    }
    return WeightsPlan(
        weights=Weights(),
        volume=volume,
        mount={"name": VOLUME, "mountPath": MODELS_DIR, "readOnly": True},
        init_containers=[puller],
        cache_claim=claim,
    ), []
