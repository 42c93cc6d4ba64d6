"""Engine arguments, refused and overriding runtime flags, probes and volumes, per engine."""

from __future__ import annotations

import pytest

from compose_operator.engines import ENGINES, base, llamacpp, vllm
from compose_operator.errors import Problem, Warning
from compose_operator.project import Model
from compose_operator.settings import Settings

LLAMA = llamacpp.LlamaCpp()
VLLM = vllm.Vllm()
PULLED = base.Weights()
PATH = "models.llm.runtime_flags"
MODEL_PATH = "models.llm"


def test_the_registry_names_each_engine_once() -> None:
    assert {name: type(engine) for name, engine in ENGINES.items()} == {
        "llama.cpp": llamacpp.LlamaCpp,
        "vllm": vllm.Vllm,
    }


@pytest.mark.parametrize(
    ("model", "weights", "gpus", "expected"),
    [
        pytest.param(
            Model(key="llm", model="ai/smollm2"),
            PULLED,
            1,
            "--host 0.0.0.0 --port 8080 -ngl 999 --metrics --embeddings "
            "--alias ai/smollm2 -m /models/model.gguf",
            id="no context size: no --ctx-size",
        ),
        pytest.param(
            Model(
                key="llm", model="ai/smollm2", context_size=4096, runtime_flags=("--temp", "0.7")
            ),
            PULLED,
            0,
            "--host 0.0.0.0 --port 8080 -ngl 999 --metrics --embeddings --ctx-size 4096 "
            "--alias ai/smollm2 -m /models/model.gguf --temp 0.7",
            id="context size, runtime flags appended verbatim",
        ),
        pytest.param(
            Model(key="llm", model="hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"),
            base.Weights(huggingface="bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"),
            1,
            "--host 0.0.0.0 --port 8080 -ngl 999 --metrics --embeddings "
            "--alias hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M "
            "-hf bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
            id="Hugging Face: -hf instead of -m",
        ),
    ],
)
def test_llamacpp_args(model: Model, weights: base.Weights, gpus: int, expected: str) -> None:
    assert LLAMA.args(model, weights, gpus) == expected.split(" ")


@pytest.mark.parametrize(
    ("model", "weights", "gpus", "expected"),
    [
        pytest.param(
            Model(key="e", model="ai/all-minilm"),
            PULLED,
            1,
            "serve /models --port 8000 --served-model-name ai/all-minilm",
            id="one GPU: no tensor parallelism",
        ),
        pytest.param(
            Model(
                key="e",
                model="ai/qwen3",
                context_size=8192,
                runtime_flags=("--gpu-memory-utilization", "0.8"),
            ),
            PULLED,
            4,
            "serve /models --port 8000 --served-model-name ai/qwen3 --max-model-len 8192 "
            "--tensor-parallel-size 4 --gpu-memory-utilization 0.8",
            id="model first, tensor parallel before the user's flags",
        ),
        pytest.param(
            Model(key="e", model="hf.co/Qwen/Qwen3-0.6B"),
            base.Weights(huggingface="Qwen/Qwen3-0.6B"),
            0,
            "serve Qwen/Qwen3-0.6B --port 8000 --served-model-name hf.co/Qwen/Qwen3-0.6B",
            id="Hugging Face repository",
        ),
        pytest.param(
            Model(key="e", model="hf.co/org/repo:Q4_K_M"),
            base.Weights(huggingface="org/repo:Q4_K_M"),
            0,
            "serve org/repo --port 8000 --served-model-name hf.co/org/repo:Q4_K_M",
            id="a GGUF quantisation tag is not a vLLM model",
        ),
    ],
)
def test_vllm_args(model: Model, weights: base.Weights, gpus: int, expected: str) -> None:
    assert VLLM.args(model, weights, gpus) == expected.split(" ")


@pytest.mark.parametrize(
    ("engine", "flags", "context_size", "gpus", "problems", "warnings"),
    [
        pytest.param(
            LLAMA,
            ("--port", "9000", "--threads", "4"),
            None,
            1,
            [Problem(f"{PATH}[0]", "--port is set by the operator; remove it")],
            [],
            id="llama.cpp --port",
        ),
        pytest.param(
            LLAMA,
            ("--host=127.0.0.1", "-m", "x.gguf", "-hf", "a/b", "--alias", "x", "--hf-repo=a/b"),
            None,
            1,
            [
                Problem(f"{PATH}[0]", "--host is set by the operator; remove it"),
                Problem(f"{PATH}[1]", "-m is set by the operator; remove it"),
                Problem(f"{PATH}[3]", "-hf is set by the operator; remove it"),
                Problem(f"{PATH}[5]", "--alias is set by the operator; remove it"),
                Problem(f"{PATH}[7]", "--hf-repo is set by the operator; remove it"),
            ],
            [],
            id="llama.cpp: every contract flag, with =value forms",
        ),
        pytest.param(
            LLAMA,
            ("--ctx-size", "2048", "-c", "1024", "-ngl", "20"),
            4096,
            1,
            [],
            [
                Warning(
                    f"{PATH}[0]",
                    "--ctx-size overrides the context_size the operator sets (the last flag wins)",
                ),
                Warning(
                    f"{PATH}[2]",
                    "-c overrides the context_size the operator sets (the last flag wins)",
                ),
                Warning(
                    f"{PATH}[4]",
                    "-ngl overrides the GPU layer count (999) the operator sets "
                    "(the last flag wins)",
                ),
            ],
            id="llama.cpp overrides warn",
        ),
        pytest.param(
            LLAMA, ("--ctx-size", "2048"), None, 1, [], [], id="--ctx-size alone overrides nothing"
        ),
        pytest.param(
            VLLM,
            ("--model", "x", "--served-model-name=y", "--port=1", "--host", "h"),
            None,
            1,
            [
                Problem(f"{PATH}[0]", "--model is set by the operator; remove it"),
                Problem(f"{PATH}[2]", "--served-model-name is set by the operator; remove it"),
                Problem(f"{PATH}[3]", "--port is set by the operator; remove it"),
                Problem(f"{PATH}[4]", "--host is set by the operator; remove it"),
            ],
            [],
            id="vLLM contract flags",
        ),
        pytest.param(
            VLLM,
            ("-hf", "x", "--max-model-len=1024", "--tensor-parallel-size", "2"),
            2048,
            2,
            [],
            [
                Warning(
                    f"{PATH}[2]",
                    "--max-model-len overrides the context_size the operator sets "
                    "(the last flag wins)",
                ),
                Warning(
                    f"{PATH}[3]",
                    "--tensor-parallel-size overrides the tensor parallel size (one per GPU) "
                    "the operator sets (the last flag wins)",
                ),
            ],
            id="vLLM overrides warn; -hf is not a vLLM contract flag",
        ),
        pytest.param(
            VLLM,
            ("--tensor-parallel-size", "2"),
            None,
            1,
            [],
            [],
            id="one GPU: the operator sets no tensor parallel size",
        ),
    ],
)
def test_runtime_flags(
    engine: base.Engine,
    flags: tuple[str, ...],
    context_size: int | None,
    gpus: int,
    problems: list[Problem],
    warnings: list[Warning],
) -> None:
    model = Model(key="llm", model="ai/x", context_size=context_size, runtime_flags=flags)
    assert engine.check(model, PULLED, gpus, MODEL_PATH) == (problems, warnings)


def test_vllm_says_a_hugging_face_tag_is_ignored() -> None:
    model = Model(key="llm", model="hf.co/org/repo:Q4_K_M")
    weights = base.Weights(huggingface="org/repo:Q4_K_M")
    assert VLLM.check(model, weights, 1, MODEL_PATH) == (
        [],
        [Warning("models.llm.model", "vLLM serves the whole repository; the :tag is ignored")],
    )
    assert LLAMA.check(model, weights, 1, MODEL_PATH) == ([], [])


def test_probes_give_a_model_thirty_minutes_to_load_then_check_health() -> None:
    def probe(period: int, failures: int) -> dict[str, object]:
        return {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": failures,
        }

    assert base.health_probes() == {
        "startup": probe(10, 180),
        "readiness": probe(10, 3),
        "liveness": probe(30, 3),
    }


def test_images_and_commands_come_from_settings() -> None:
    settings = Settings()
    assert (LLAMA.image(settings, True), LLAMA.image(settings, False)) == (
        "ghcr.io/ggml-org/llama.cpp:server-cuda",
        "ghcr.io/ggml-org/llama.cpp:server",
    )
    assert (VLLM.image(settings, True), VLLM.image(settings, False)) == (
        "vllm/vllm-openai:latest",
        "vllm/vllm-openai-cpu:latest",
    )
    assert LLAMA.command(settings) == ["/app/llama-server"]
    assert VLLM.command(settings) == ["vllm"]


def test_env_turns_telemetry_off_and_the_hub_off_when_we_pulled() -> None:
    hub = base.Weights(huggingface="org/repo")
    assert LLAMA.env(PULLED) == {"DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}
    assert LLAMA.env(hub) == {"DO_NOT_TRACK": "1", "LLAMA_CACHE": "/models/llama.cpp"}
    assert VLLM.env(PULLED) == {
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
    }
    assert VLLM.env(hub) == {"DO_NOT_TRACK": "1", "VLLM_NO_USAGE_STATS": "1"}


def test_only_vllm_needs_a_memory_backed_dev_shm() -> None:
    assert (LLAMA.volumes(), LLAMA.volume_mounts()) == ([], [])
    assert VLLM.volumes() == [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    assert VLLM.volume_mounts() == [{"name": "dshm", "mountPath": "/dev/shm"}]


EXTERNAL = (
    "makes the engine read local files, load code or reach other hosts, which the operator's "
    "policy does not allow (allowFileAndNetworkFlags)"
)


@pytest.mark.parametrize(
    ("engine", "flags", "problems"),
    [
        pytest.param(
            VLLM,
            ("--served_model_name", "x", "--served", "y", "--max_model_len=8"),
            [
                Problem(
                    f"{PATH}[0]",
                    "--served_model_name is --served-model-name: --served-model-name is set by "
                    "the operator; remove it",
                ),
                Problem(
                    f"{PATH}[2]",
                    "--served is --served-model-name: --served-model-name is set by the "
                    "operator; remove it",
                ),
            ],
            id="vLLM: underscores and argparse abbreviations are the flags they stand for",
        ),
        pytest.param(
            LLAMA,
            ("--chat-template-file", "/etc/shadow", "--mmproj-url=http://169.254.169.254/x"),
            [
                Problem(f"{PATH}[0]", f"--chat-template-file {EXTERNAL}"),
                Problem(f"{PATH}[2]", f"--mmproj-url {EXTERNAL}"),
            ],
            id="llama.cpp: a local file, a metadata URL",
        ),
        pytest.param(
            LLAMA,
            ("--rpc", "10.0.0.5:50052", "--chat_template_file", "/x"),
            [
                Problem(f"{PATH}[0]", f"--rpc {EXTERNAL}"),
                Problem(
                    f"{PATH}[2]",
                    f"--chat_template_file is --chat-template-file: "
                    f"--chat-template-file {EXTERNAL}",
                ),
            ],
            id="llama.cpp: another host, and an underscore spelling",
        ),
        pytest.param(
            LLAMA,
            ("--chat-template", "chatml", "--temp", "0.7"),
            [],
            id="llama.cpp: an inline template and sampling flags pass (no abbreviations)",
        ),
        pytest.param(
            VLLM,
            ("--config", "/etc/vllm.yaml", "--trust-remote-code", "--chat-template", "/etc/t"),
            [
                Problem(f"{PATH}[0]", f"--config {EXTERNAL}"),
                Problem(f"{PATH}[2]", f"--trust-remote-code {EXTERNAL}"),
                Problem(f"{PATH}[3]", f"--chat-template {EXTERNAL}"),
            ],
            id="vLLM: a config file (any flag), remote code, a template file",
        ),
        pytest.param(
            VLLM,
            (
                "--chat-template={% for m in messages %}{{m.content}}{% endfor %}",
                "--config-format",
                "auto",
                "--tokenizer-mode",
                "auto",
            ),
            [],
            id="vLLM: an inline template; flags that merely start like an external one",
        ),
        pytest.param(
            VLLM,
            ("--allowed_local_media", "/"),
            [
                Problem(
                    f"{PATH}[0]",
                    f"--allowed_local_media is --allowed-local-media-path: "
                    f"--allowed-local-media-path {EXTERNAL}",
                )
            ],
            id="vLLM: an abbreviation of an external flag",
        ),
    ],
)
def test_spellings_and_flags_that_reach_outside_the_pod(
    engine: base.Engine, flags: tuple[str, ...], problems: list[Problem]
) -> None:
    """Issue 12: `--served_model_name`, abbreviations, `--chat-template-file /etc/shadow`,
    `--mmproj-url http://169.254.169.254/...` and `--rpc` all passed the flag check."""
    model = Model(key="llm", model="ai/x", runtime_flags=flags)
    assert engine.check(model, PULLED, 1, MODEL_PATH) == (problems, [])
    allowed, _ = engine.check(model, PULLED, 1, MODEL_PATH, external=True)
    assert allowed == [p for p in problems if "is set by the operator" in p.message]
