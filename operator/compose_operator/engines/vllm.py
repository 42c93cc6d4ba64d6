"""vLLM: safetensors models on GPUs, with tensor parallelism across a pod's GPUs.

`serve <model>` must come first: vLLM refuses a model given after other flags
(research/engines.md). `--served-model-name` makes requests naming the Compose model work;
another name gets 404, so an offered model is served under every spelling of its
reference. Worker processes share tensors through `/dev/shm`, which a container gets only
64 MiB of unless a memory-backed volume is mounted there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compose_operator import references
from compose_operator.engines import base
from compose_operator.errors import Problem, Warning
from compose_operator.project import Model

if TYPE_CHECKING:
    from compose_operator.settings import Settings

RULES = base.FlagRules(
    refused=frozenset({"--host", "--port", "--model", "--served-model-name", "--uds"}),
    overrides={
        "--max-model-len": "context_size",
        "--tensor-parallel-size": "tensor parallel size (one per GPU)",
        "-tp": "tensor parallel size (one per GPU)",
    },
    # Files to read (any flag of them: `--config`), code to import, hosts to reach.
    external=frozenset(
        {
            "--config",
            "--tokenizer",
            "--download-dir",
            "--lora-modules",
            "--ssl-keyfile",
            "--ssl-certfile",
            "--ssl-ca-certs",
            "--allowed-local-media-path",
            "--tool-parser-plugin",
            "--middleware",
            "--logits-processors",
            "--worker-cls",
            "--worker-extension-cls",
            "--hf-config-path",
            "--speculative-config",
            "--kv-transfer-config",
            "--kv-events-config",
            "--otlp-traces-endpoint",
            "--trust-remote-code",
            "--model-loader-extra-config",
            "--generation-config",
            "--revision",
            "--code-revision",
            "--tokenizer-revision",
            "--data-parallel-address",
            "--distributed-executor-backend",
        }
    ),
    external_unless_inline=frozenset({"--chat-template"}),
    abbreviations=True,
)
SHM_VOLUME = "dshm"


class Vllm:
    name = "vllm"
    port = 8000
    container = "vllm"

    def image(self, settings: Settings, gpu: bool) -> str:
        return base.image(self.name, settings, gpu)

    def command(self, settings: Settings) -> list[str]:
        return base.command(self.name, settings)

    def args(self, model: Model, weights: base.Weights, gpus: int) -> list[str]:
        source = base.MODELS_DIR if weights.huggingface is None else _repo(weights.huggingface)
        # An offered model answers to every spelling of its reference: apps that bind keep
        # their own in `*_MODEL`, and vLLM refuses names it does not serve.
        served = references.spellings(model.model) if model.kubernetes.offer else (model.model,)
        args = ["serve", source, "--port", str(self.port), "--served-model-name", *served]
        if model.context_size is not None:
            args += ["--max-model-len", str(model.context_size)]
        if gpus > 1:
            args += ["--tensor-parallel-size", str(gpus)]
        return args + list(model.runtime_flags)

    def check(
        self, model: Model, weights: base.Weights, gpus: int, path: str, *, external: bool = False
    ) -> tuple[list[Problem], list[Warning]]:
        active = {
            "context_size": model.context_size is not None,
            "tensor parallel size (one per GPU)": gpus > 1,
        }
        problems, warnings = base.check_flags(
            model.runtime_flags, RULES, active, path, external=external
        )
        if weights.huggingface is not None and ":" in weights.huggingface:
            message = "vLLM serves the whole repository; the :tag is ignored"
            warnings.append(Warning(f"{path}.model", message))
        return problems, warnings

    def env(self, weights: base.Weights) -> dict[str, str]:
        return {**base.telemetry_env(weights), "VLLM_NO_USAGE_STATS": "1"}

    def volumes(self) -> list[dict[str, Any]]:
        return [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}}]

    def volume_mounts(self) -> list[dict[str, Any]]:
        return [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}]


def _repo(huggingface: str) -> str:
    """`org/repo:Q4_K_M` → `org/repo`: the tag picks a GGUF file, which vLLM does not read."""
    return huggingface.split(":", 1)[0]
