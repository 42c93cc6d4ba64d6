"""The llama.cpp image runs on any x86-64 CPU (issue 10): llama-server from the image the real-node
suite deploys answers a chat completion on this machine's CPU and under Debian's qemu-user
emulating older ones, each time with the CPU module ggml should pick for that CPU.

The image's files are taken from its cached OCI archive (the bytes the kubelet pulls) and run
with the image's own dynamic loader and libraries (`qemu-x86_64 -L <rootfs>`), on the real
gemma3 GGUF the suite pushes. qemu's TCG emulates up to AVX2 (no AVX-512, no AMX), so the
AVX-512 modules are exercised only natively, on a CPU that has them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import pytest

from e2e import realchat
from e2e.realchat import Images, Say
from e2e.test_realnode_chat import images, say

pytestmark = pytest.mark.realnode
__all__ = ["images", "say"]

IMAGE_CACHE = (
    Path(
        os.environ.get("COMPOSE_OPERATOR_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "compose-operator"
    )
    / "images"
)
GGUF = IMAGE_CACHE / "models" / "gemma3-270m-q4_k_m.gguf"
VARIANT_FEATURES = {
    "x64": set(),
    "sse42": {"sse4_2"},
    "haswell": {"sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"},
    "icelake": {"sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512vl",
                "avx512dq", "avx512cd", "avx512vbmi", "avx512_vnni"},
}  # fmt: skip
"""/proc/cpuinfo flags each CPU module of the image needs (LLAMA_CPU_VARIANTS in build.sh)."""
EMULATED = {"Haswell": "haswell", "Nehalem": "sse42", "qemu64": "x64"}
"""qemu CPU models, and the module ggml must pick on each."""
LOADED = re.compile(r"loaded CPU backend from \S*/libggml-cpu-(\w+)\.so")


def best_native_variant(variants: list[str]) -> str:
    flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags")).split(":", 1)[1].split())  # fmt: skip
    fitting = [v for v in variants if VARIANT_FEATURES[v] <= flags]
    return max(fitting, key=lambda v: len(VARIANT_FEATURES[v]))


@pytest.fixture(scope="module")
def rootfs(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The llama.cpp image's file system, unpacked from the OCI archive push.sh names."""
    listing = subprocess.run(
        [str(realchat.IMAGES_DIR / "push.sh"), "--archives", "llamacpp"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    archive = Path(listing[2])
    root = tmp_path_factory.mktemp("llamacpp-rootfs")
    with tarfile.open(archive) as oci:
        index = json.load(_member(oci, "index.json"))
        manifest = _blob(oci, index["manifests"][0]["digest"])
        for layer in manifest["layers"]:
            blob = _member(oci, "blobs/sha256/" + layer["digest"].split(":")[1])
            with tarfile.open(fileobj=blob, mode="r|*") as files:
                files.extractall(root, filter="tar")
    return root


def _member(oci: tarfile.TarFile, name: str) -> IO[bytes]:
    """A regular file of the OCI archive, which every name in an index or manifest is."""
    file = oci.extractfile(name)
    assert file is not None, f"{name} is not a regular file in the OCI archive"
    return file


def _blob(oci: tarfile.TarFile, digest: str) -> dict[str, Any]:
    document: dict[str, Any] = json.load(_member(oci, "blobs/sha256/" + digest.split(":")[1]))
    return document


def image_variants(root: Path) -> list[str]:
    return sorted(
        p.name[len("libggml-cpu-") : -len(".so")] for p in (root / "app").glob("libggml-cpu-*.so")
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_and_ask(
    command: list[str], model: Path, log: Path, timeout: float
) -> tuple[dict[str, Any], str]:
    """Starts llama-server, waits for /health, asks one chat completion; its answer and log."""
    port = free_port()
    # Verbosity 4 logs which CPU module ggml loaded.
    args = ["--host", "127.0.0.1", "--port", str(port), "-m", str(model), "--ctx-size", "512",
            "--threads", "2", "--alias", "ai/gemma3", "--no-warmup", "-lv", "4"]  # fmt: skip
    with log.open("w") as output:
        # A session of its own: stopping it stops every process it started (unshare --fork
        # does not pass SIGTERM on to its child).
        server = subprocess.Popen(
            [*command, *args], stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + timeout
            while True:
                assert server.poll() is None, (
                    f"llama-server exited {server.returncode}:\n{log.read_text()[-3000:]}"
                )
                try:
                    with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, (
                    f"no /health in {timeout} s:\n{log.read_text()[-3000:]}"
                )
                time.sleep(1)
            body = {"model": "ai/gemma3", "max_tokens": 4,
                    "messages": [{"role": "user", "content": "Say hello."}]}  # fmt: skip
            request = urllib.request.Request(
                f"{base}/v1/chat/completions", data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer: dict[str, Any] = {"status": response.status, **json.load(response)}
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    return answer, log.read_text()


@pytest.fixture(scope="module")
def qemu() -> str:
    path = shutil.which("qemu-x86_64")
    if path is None:
        pytest.fail("qemu-x86_64 is missing: make images-deps installs Debian's qemu-user")
    return path


def test_the_image_carries_one_cpu_module_per_level(rootfs: Path) -> None:
    assert image_variants(rootfs) == sorted(VARIANT_FEATURES)
    assert "CPU variants: " in (rootfs / "app" / "build-info.txt").read_text()


def test_natively_the_best_module_for_this_cpu_serves(
    rootfs: Path, tmp_path: Path, say: Say
) -> None:
    """In the image's root (chroot, with its own /proc as in a container), on this CPU."""
    expected = best_native_variant(image_variants(rootfs))
    model = rootfs / "model.gguf"
    try:
        os.link(GGUF, model)
    except OSError:
        shutil.copyfile(GGUF, model)
    (rootfs / "proc").mkdir(exist_ok=True)
    contained = (
        f'mount -t proc proc {rootfs / "proc"} && exec chroot {rootfs} /app/llama-server "$@"'
    )
    command = ["env", "LD_LIBRARY_PATH=/app", "unshare", "--mount", "--fork"]
    answer, log = serve_and_ask(
        [*command, "sh", "-c", contained, "sh"], Path("/model.gguf"), tmp_path / "native.log", 60
    )
    say(f"native CPU: libggml-cpu-{LOADED.findall(log)}, {answer['usage']}")
    assert answer["status"] == 200 and answer["usage"]["completion_tokens"] > 0
    assert LOADED.findall(log) == [expected], log[-3000:]


@pytest.mark.parametrize(("cpu", "variant"), sorted(EMULATED.items()))
def test_under_an_emulated_older_cpu_the_fitting_module_serves(
    rootfs: Path, qemu: str, cpu: str, variant: str, tmp_path: Path, say: Say
) -> None:
    started = time.monotonic()
    answer, log = serve_and_ask(
        [qemu, "-cpu", cpu, "-L", str(rootfs), "-E", f"LD_LIBRARY_PATH={rootfs / 'app'}",
         str(rootfs / "app" / "llama-server")],
        GGUF, tmp_path / f"{cpu}.log", timeout=600,
    )  # fmt: skip
    say(f"qemu -cpu {cpu}: libggml-cpu-{LOADED.findall(log)}, {answer['usage']}, "
        f"{time.monotonic() - started:.0f} s")  # fmt: skip
    assert answer["status"] == 200
    assert answer["model"] == "ai/gemma3"
    assert answer["usage"]["completion_tokens"] > 0
    assert LOADED.findall(log) == [variant], log[-3000:]
