"""llama.cpp's `llama-server`: the default engine, serving GGUF files, on CPU or GPU.

Arguments follow Docker Model Runner (`-ngl 999 --metrics`, `--ctx-size`), plus
`--embeddings` so an embedding model answers `/v1/embeddings` without extra flags, and
`--alias <model ref>` so requests naming the Compose model are served under that name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compose_operator.engines import base
from compose_operator.errors import Problem, Warning
from compose_operator.project import Model

if TYPE_CHECKING:
    from compose_operator.settings import Settings

MODEL_FILE = f"{base.MODELS_DIR}/model.gguf"
"""The puller writes a GGUF artifact's weights here."""
CACHE_DIR = f"{base.MODELS_DIR}/llama.cpp"

RULES = base.FlagRules(
    refused=frozenset(
        {
            "--host",
            "--port",
            "-m",
            "--model",
            "-mu",
            "--model-url",
            "-a",
            "--alias",
            "-hf",
            "-hfr",
            "--hf-repo",
            "--api-prefix",
        }
    ),
    # common/arg.cpp: flags that name a file to read or write, or a host or URL to reach.
    external=frozenset(
        {
            "-f",
            "--file",
            "-bf",
            "--binary-file",
            "-mm",
            "--mmproj",
            "-mmu",
            "--mmproj-url",
            "--lora",
            "--lora-scaled",
            "--control-vector",
            "--control-vector-scaled",
            "--grammar-file",
            "-jf",
            "--json-schema-file",
            "--chat-template-file",
            "--path",
            "--ssl-key-file",
            "--ssl-cert-file",
            "--api-key-file",
            "-lcs",
            "--lookup-cache-static",
            "-lcd",
            "--lookup-cache-dynamic",
            "--prompt-cache",
            "--slot-save-path",
            "--log-file",
            "-md",
            "--model-draft",
            "-mv",
            "--model-vocoder",
            "-hfd",
            "-hfrd",
            "--hf-repo-draft",
            "-hff",
            "--hf-file",
            "-hfv",
            "-hfrv",
            "--hf-repo-v",
            "-hffv",
            "--hf-file-v",
            "-hft",
            "--hf-token",
            "--rpc",
            "--models-dir",
            "--models-preset",
            "--media-path",
            "--webui-config-file",
        }
    ),
    overrides={
        "-c": "context_size",
        "--ctx-size": "context_size",
        "-ngl": "GPU layer count (999)",
        "--gpu-layers": "GPU layer count (999)",
        "--n-gpu-layers": "GPU layer count (999)",
    },
)


class LlamaCpp:
    name = "llama.cpp"
    port = 8080
    container = "llama-server"

    def image(self, settings: Settings, gpu: bool) -> str:
        return base.image(self.name, settings, gpu)

    def command(self, settings: Settings) -> list[str]:
        return base.command(self.name, settings)

    def args(self, model: Model, weights: base.Weights, gpus: int) -> list[str]:
        args = ["--host", "0.0.0.0", "--port", str(self.port), "-ngl", "999", "--metrics"]
        args.append("--embeddings")
        if model.context_size is not None:
            args += ["--ctx-size", str(model.context_size)]
        args += ["--alias", model.model]
        args += ["-m", MODEL_FILE] if weights.huggingface is None else ["-hf", weights.huggingface]
        return args + list(model.runtime_flags)

    def check(
        self, model: Model, weights: base.Weights, gpus: int, path: str, *, external: bool = False
    ) -> tuple[list[Problem], list[Warning]]:
        active = {"context_size": model.context_size is not None, "GPU layer count (999)": True}
        return base.check_flags(model.runtime_flags, RULES, active, path, external=external)

    def env(self, weights: base.Weights) -> dict[str, str]:
        env = base.telemetry_env(weights)
        if not weights.pulled:
            env["LLAMA_CACHE"] = CACHE_DIR
        return env

    def volumes(self) -> list[dict[str, Any]]:
        return []

    def volume_mounts(self) -> list[dict[str, Any]]:
        return []
