"""pull_model and push_model against a real registry (Debian's docker-registry 2.8)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from compose_operator.puller import media, push
from compose_operator.puller.errors import NotAModel, NotFound
from compose_operator.puller.pull import PullResult, pull_model
from tests.registry_fixtures import RunningRegistry, push_model_artifact, write_tiny_gguf

pytestmark = pytest.mark.registry


def sha256_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def quiet_pull(reference: str, dest: Path) -> PullResult:
    return pull_model(reference, dest, progress=io.StringIO(), environ={})


def test_push_then_pull_a_gguf_model(registry: RunningRegistry, tmp_path: Path) -> None:
    weights = write_tiny_gguf(tmp_path / "smol.gguf")
    license_file = tmp_path / "LICENSE.txt"
    license_file.write_text("Apache-2.0\n")
    pushed = push_model_artifact(
        registry,
        "ai/tiny",
        "v1",
        [(weights, media.GGUF), (license_file, media.LICENSE)],
    )
    dest = tmp_path / "models"

    result = pull_model(pushed.reference, dest, progress=io.StringIO(), environ={})

    assert pushed.reference == f"{registry.host}/ai/tiny:v1"
    assert result.manifest_digest == pushed.manifest_digest
    assert (dest / "smol.gguf").read_bytes() == weights.read_bytes()
    assert (dest / "LICENSE.txt").read_text() == "Apache-2.0\n"
    assert (dest / "model.gguf").readlink() == Path("smol.gguf")
    assert [(f.path, f.digest, f.size, f.downloaded) for f in result.files] == [
        ("smol.gguf", sha256_of(weights), weights.stat().st_size, True),
        ("LICENSE.txt", sha256_of(license_file), 11, True),
    ]
    assert result.bytes_downloaded == weights.stat().st_size + 11


def test_a_second_pull_downloads_zero_bytes(registry: RunningRegistry, tmp_path: Path) -> None:
    weights = write_tiny_gguf(tmp_path / "w.gguf", name="second")
    pushed = push_model_artifact(registry, "ai/again", "latest", [(weights, media.GGUF)])
    dest = tmp_path / "models"
    quiet_pull(pushed.reference, dest)
    mtime = (dest / "w.gguf").stat().st_mtime_ns
    stream = io.StringIO()

    again = pull_model(pushed.reference, dest, progress=stream, environ={})

    assert again.bytes_downloaded == 0
    assert [f.downloaded for f in again.files] == [False]
    assert (dest / "w.gguf").stat().st_mtime_ns == mtime
    assert "downloaded 0 B (0 bytes)" in stream.getvalue().splitlines()[-1]


def test_pull_by_digest(registry: RunningRegistry, tmp_path: Path) -> None:
    weights = write_tiny_gguf(tmp_path / "model.gguf", name="pinned")
    pushed = push_model_artifact(registry, "ai/pinned", "latest", [(weights, media.GGUF)])

    result = quiet_pull(f"{registry.host}/ai/pinned@{pushed.manifest_digest}", tmp_path / "m")

    assert (tmp_path / "m" / "model.gguf").read_bytes() == weights.read_bytes()
    assert result.manifest_digest == pushed.manifest_digest


def test_not_found_messages_from_the_real_registry(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    weights = write_tiny_gguf(tmp_path / "model.gguf")
    push_model_artifact(registry, "ai/known", "latest", [(weights, media.GGUF)])

    with pytest.raises(NotFound) as missing_tag:
        quiet_pull(f"{registry.host}/ai/known:nope", tmp_path / "a")
    with pytest.raises(NotFound) as missing_repo:
        quiet_pull(f"{registry.host}/ai/never-pushed", tmp_path / "b")

    assert str(missing_tag.value) == (
        f"not found: manifest {registry.host}/ai/known:nope (MANIFEST_UNKNOWN: manifest unknown)"
    )
    assert str(missing_repo.value) == (
        f"not found: manifest {registry.host}/ai/never-pushed:latest "
        "(MANIFEST_UNKNOWN: manifest unknown)"
    )


def test_an_image_index_resolves_to_the_model(registry: RunningRegistry, tmp_path: Path) -> None:
    weights = write_tiny_gguf(tmp_path / "model.gguf", name="indexed")
    pushed = push_model_artifact(registry, "ai/indexed", "model-only", [(weights, media.GGUF)])
    client = push.connect(registry.host)
    body_size = len(json.dumps(pushed.manifest, separators=(",", ":")))
    push.push_manifest(
        client,
        "ai/indexed",
        "latest",
        {
            "schemaVersion": 2,
            "mediaType": media.OCI_INDEX,
            "manifests": [push.descriptor(media.OCI_MANIFEST, pushed.manifest_digest, body_size)],
        },
        media.OCI_INDEX,
    )

    result = quiet_pull(f"{registry.host}/ai/indexed", tmp_path / "m")

    assert result.manifest_digest == pushed.manifest_digest
    assert (tmp_path / "m" / "model.gguf").read_bytes() == weights.read_bytes()


def test_a_plain_oci_artifact_is_not_a_model(registry: RunningRegistry, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    push_model_artifact(
        registry,
        "tools/notes",
        "latest",
        [(notes, "text/plain")],
        config_media_type="application/vnd.oci.empty.v1+json",
        config={},
    )

    with pytest.raises(NotAModel) as caught:
        quiet_pull(f"{registry.host}/tools/notes", tmp_path / "m")

    assert str(caught.value) == (
        f"not a model artifact: {registry.host}/tools/notes:latest has config "
        "application/vnd.oci.empty.v1+json and layers text/plain; expected a weights layer "
        "such as application/vnd.docker.ai.gguf.v3 or application/vnd.docker.ai.safetensors"
    )


def test_a_safetensors_model_gets_the_vllm_layout(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    source = tmp_path / "minilm"
    source.mkdir()
    (source / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (source / "config.json").write_text('{"architectures": ["BertModel"]}')
    (source / "tokenizer.json").write_text("{}")
    config_tar = push.build_config_tar(source, tmp_path / "config.tar")
    pushed = push_model_artifact(
        registry,
        "ai/minilm",
        "latest",
        [(source / "model.safetensors", media.SAFETENSORS), (config_tar, media.VLLM_CONFIG_TAR)],
    )
    dest = tmp_path / "models"

    result = quiet_pull(pushed.reference, dest)

    assert result.format == "safetensors"
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert (dest / "config.json").read_text() == '{"architectures": ["BertModel"]}'


def test_a_large_blob_streams_in_bounded_memory(registry: RunningRegistry, tmp_path: Path) -> None:
    """A multi-gigabyte model must not be held in memory: peak allocation stays near a chunk."""
    weights = tmp_path / "big.gguf"
    with weights.open("wb") as handle:
        handle.write(b"GGUF")
        for _ in range(48):
            handle.write(os.urandom(1024 * 1024))
    pushed = push_model_artifact(registry, "ai/big", "latest", [(weights, media.GGUF)])
    dest = tmp_path / "models"

    tracemalloc.start()
    try:
        quiet_pull(pushed.reference, dest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert sha256_of(dest / "big.gguf") == sha256_of(weights)
    assert peak < 8 * 1024 * 1024


def test_the_cli_pulls_and_exits_zero(registry: RunningRegistry, tmp_path: Path) -> None:
    weights = write_tiny_gguf(tmp_path / "model.gguf", name="cli")
    pushed = push_model_artifact(registry, "ai/cli", "latest", [(weights, media.GGUF)])
    dest = tmp_path / "models"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "operator")}

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "compose_operator.cli",
            "pull-model",
            pushed.reference,
            "--dest",
            str(dest),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == ""
    assert completed.stderr.splitlines()[-1].startswith(
        f"pulled {pushed.reference} ({pushed.manifest_digest}) into {dest}: 1 files"
    )
    assert (dest / "model.gguf").read_bytes() == weights.read_bytes()

    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "compose_operator.cli",
            "pull-model",
            f"{registry.host}/ai/none",
            "--dest",
            str(dest),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr == (
        f"compose-operator pull-model: error: not found: manifest {registry.host}/ai/none:latest "
        "(MANIFEST_UNKNOWN: manifest unknown)\n"
    )
