"""A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on loopback.

`registry` is a session fixture (registered in `tests/conftest.py`); e2e suites can import
`running_registry` and `push_model_artifact` from here to push their own model artifacts.
Tests that need it are marked `@pytest.mark.registry` and skip only when the binary is
missing (`apt-get install -y docker-registry`).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from compose_operator.puller import media, push

BINARY = "docker-registry"
STARTUP_SECONDS = 10.0


@dataclass(frozen=True)
class RunningRegistry:
    host: str
    """`127.0.0.1:PORT`: the registry part of a model reference."""
    root: Path
    """The registry's storage directory."""

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError),
            urllib.request.urlopen(url + "/v2/", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.02)
    raise RuntimeError(f"docker-registry not ready after {STARTUP_SECONDS} s: {log.read_text()}")


@contextlib.contextmanager
def running_registry(workdir: Path) -> Iterator[RunningRegistry]:
    """Start `docker-registry serve` with filesystem storage under `workdir`; stop it after."""
    binary = shutil.which(BINARY)
    if binary is None:
        raise RuntimeError("docker-registry is not installed (apt-get install -y docker-registry)")
    port = _free_port()
    storage = workdir / "storage"
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    log = workdir / "registry.log"
    with log.open("wb") as output:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=output, stderr=output)
    registry = RunningRegistry(f"127.0.0.1:{port}", storage)
    try:
        _wait_ready(registry.url, process, log)
        yield registry
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    if shutil.which(BINARY) is None:
        pytest.skip(
            "Debian's docker-registry is not installed (apt-get install -y docker-registry)"
        )
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


def write_tiny_gguf(path: Path, *, name: str = "tiny", values: int = 64) -> Path:
    """A valid GGUF v3 file (llama architecture, one small tensor) written by `gguf`."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(128)
    writer.add_tensor("token_embd.weight", np.arange(values, dtype=np.float32).reshape(8, -1))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def push_model_artifact(
    registry: RunningRegistry | str,
    repository: str,
    tag: str,
    files: Sequence[tuple[Path, str] | push.PushFile],
    *,
    config: Mapping[str, Any] | None = None,
    config_media_type: str = media.MODEL_CONFIG_V01,
) -> push.PushedArtifact:
    """Push files as a Docker model artifact; `registry` is a RunningRegistry or host:port."""
    host = registry.host if isinstance(registry, RunningRegistry) else registry
    return push.push_model(
        host, repository, tag, files, config=config, config_media_type=config_media_type
    )
