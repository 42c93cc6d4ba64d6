"""The `compose-operator` command: what a user sees on stdout, stderr and in the exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from compose_operator import cli

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_render_prints_every_planned_object(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "render", "-f", str(EXAMPLES / "basic.yaml"), "--name", "chat", "--namespace", "t"
    )
    assert code == 0, err
    documents = list(yaml.safe_load_all(out))
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("ConfigMap", "chat-models"),
        ("Service", "chat-llm"),
        ("Service", "chat-models"),
        ("Deployment", "chat-app"),
        ("Deployment", "chat-llm"),
        ("Deployment", "chat-models"),
    ]
    assert all(d["metadata"]["namespace"] == "t" for d in documents)
    app = documents[3]["spec"]["template"]["spec"]["containers"][0]
    assert app["env"] == [
        {"name": "LLM_MODEL", "value": "ai/smollm2"},
        {"name": "LLM_URL", "value": "http://chat-models.t.svc.cluster.local/v1/"},
    ]
    routes = json.loads(documents[0]["data"]["routes.json"])
    assert routes["models"] == [
        {
            "key": "llm",
            "model": "ai/smollm2",
            "engine": "llama.cpp",
            "upstream": "http://chat-llm.t.svc.cluster.local",
            "served": "ai/smollm2",
        }
    ]


def test_render_interpolates_env_pairs_and_env_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "services:\n  app: {image: 'app:${TAG}', models: [llm]}\n"
        "models:\n  llm: {model: '${MODEL}', context_size: '${CTX:-2048}'}\n"
    )
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nexport MODEL='ai/gemma3'\nTAG=1.0\n")
    code, out, err = run(
        capsys, "render", "-f", str(compose), "--name", "a",
        "--env-file", str(env_file), "--env", "TAG=2.0",
    )  # fmt: skip
    assert code == 0, err
    documents = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out)}
    assert documents["app"]["spec"]["template"]["spec"]["containers"][0]["image"] == "app:2.0"
    args = documents["a-llm"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--ctx-size") + 1] == "2048"
    assert args[args.index("--alias") + 1] == "ai/gemma3"


def test_invalid_input_exits_2_with_every_located_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "services:\n  app: {image: a, models: [llm, missing]}\n"
        "models:\n  llm:\n    model: ai/x\n    contxt_size: 10\n"
    )
    code, out, err = run(capsys, "render", "-f", str(broken), "--name", "a")
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f'{broken}: services.app.models[1]: service "app" refers to undefined model missing'
        " (line 2)",
        f"{broken}: models.llm.contxt_size: unknown key 'contxt_size'; did you mean "
        "'context_size'? (line 6)",
    ]


def test_planning_problems_exit_2_too(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    compose = tmp_path / "c.yaml"
    compose.write_text("models:\n  llm:\n    model: ai/x\n    runtime_flags: ['--port', '1']\n")
    code, _, err = run(capsys, "render", "-f", str(compose), "--name", "a")
    assert code == 2
    assert "models.llm.runtime_flags[0]: --port is set by the operator; remove it" in err


def test_warnings_go_to_stderr_and_do_not_fail(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    compose = tmp_path / "c.yaml"
    compose.write_text("services:\n  app: {image: a, restart: always}\n")
    code, out, err = run(capsys, "render", "-f", str(compose), "--name", "a")
    assert code == 0
    assert "services.app.restart" in err
    assert "warning" in err
    assert next(iter(yaml.safe_load_all(out)))["kind"] == "Deployment"


def test_settings_file_problems_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text("defaultGpu: 2\n")
    code, _, err = run(
        capsys, "render", "-f", str(EXAMPLES / "basic.yaml"), "--name", "a",
        "--config", str(settings),
    )  # fmt: skip
    assert code == 2
    assert "defaultGpu" in err
    assert "defaultGpus" in err


def test_convert_prints_a_composeapp_carrying_the_file_verbatim(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = (EXAMPLES / "long-syntax.yaml").read_text()
    code, out, _ = run(
        capsys, "convert", "-f", str(EXAMPLES / "long-syntax.yaml"), "--name", "chat",
        "--namespace", "team", "--env", "TAG=1",
    )  # fmt: skip
    assert code == 0
    (app,) = yaml.safe_load_all(out)
    assert app == {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": {"name": "chat", "namespace": "team"},
        "spec": {"compose": text, "environment": {"TAG": "1"}},
    }
    assert "compose: |" in out


def test_convert_refuses_invalid_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "b.yaml"
    broken.write_text("models: [ai/x]\n")
    code, out, err = run(capsys, "convert", "-f", str(broken), "--name", "a")
    assert (code, out) == (2, "")
    assert err.startswith(f"{broken}: models:")


def test_crd_prints_the_committed_crd(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "crd")
    assert code == 0
    assert out == (REPO / "crds" / "composeapp.yaml").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["render", "-f", "no-such-file.yaml", "--name", "a"], "no-such-file.yaml: no such file"),
        (["render", "-f", "-", "--name", "a", "--env", "NOEQUALS"], "expected KEY=VALUE"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err


def test_render_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("services:\n  web: {image: nginx}\n"))
    code, out, _ = run(capsys, "render", "-f", "-", "--name", "a")
    assert code == 0
    assert next(iter(yaml.safe_load_all(out)))["metadata"]["name"] == "web"


def test_offline_commands_never_import_the_cluster_clients() -> None:
    """`render` and `convert` stay fast: kopf and the Kubernetes client cost half a second."""
    probe = (
        "import sys\n"
        "from compose_operator import cli\n"
        f"cli.main(['render', '-f', {str(EXAMPLES / 'basic.yaml')!r}, '--name', 'a'])\n"
        f"cli.main(['convert', '-f', {str(EXAMPLES / 'basic.yaml')!r}, '--name', 'a'])\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('kopf', 'kubernetes', 'aiohttp', 'prometheus_client'))\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert "LOADED []" in result.stderr


def test_a_file_that_is_not_utf8_is_a_clean_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Issue 12: invalid UTF-8 gave a UnicodeDecodeError traceback and exit 1."""
    compose = tmp_path / "compose.yaml"
    compose.write_bytes(b"services:\n  app: {image: \xff\xfe}\n")
    code, out, err = run(capsys, "render", "-f", str(compose), "--name", "a")
    assert (code, out) == (2, "")
    assert err == f"compose-operator: {compose}: not valid UTF-8 (byte 25: invalid start byte)\n"


def test_render_prints_the_env_patch_a_bound_service_gets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "services:\n  agent:\n    build: .\n    models: [llm]\nmodels:\n  llm: {model: ai/x}\n"
    )
    code, out, err = run(capsys, "render", "-f", str(compose), "--name", "a", "--namespace", "t")
    assert code == 0, err
    assert (
        "# services.agent: no image, so it binds to the existing Deployment agent,\n"
        "# which must carry the annotation compose-operator.io/app: a." in out
    )
    patch = list(yaml.safe_load_all(out))[-1]
    assert patch == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "agent", "namespace": "t"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "agent",
                            "env": [
                                {"name": "LLM_MODEL", "value": "ai/x"},
                                {
                                    "name": "LLM_URL",
                                    "value": "http://a-models.t.svc.cluster.local/v1/",
                                },
                            ],
                        }
                    ]
                }
            }
        },
    }


def test_render_with_an_image_runs_the_service_as_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  agent:\n    build: .\n    environment: {A: '1'}\n")
    code, out, err = run(
        capsys, "render", "-f", str(compose), "--name", "a", "--image", "agent=r/agent:1"
    )
    assert code == 0, err
    (deployment,) = yaml.safe_load_all(out)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["env"]) == ("r/agent:1", [{"name": "A", "value": "1"}])
    assert run(capsys, "render", "-f", str(compose), "--name", "a", "--image", "agent")[:2] == (
        2,
        "",
    )
    code, _, err = run(capsys, "render", "-f", str(compose), "--name", "a", "--image", "x=y")
    assert (code, err) == (
        2,
        "--image: x: an image is given for it, but the project has no such service\n",
    )


def test_render_names_a_missing_project_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  a:\n    image: a\n    env_file: app.env\n")
    code, _, err = run(capsys, "render", "-f", str(compose), "--name", "a")
    assert (code, err) == (
        2,
        f"{compose}: services.a.env_file: app.env is not among the project files; carry it in "
        "spec.files (`compose-operator convert` does) (line 4)\n",
    )


def test_render_says_which_url_the_model_gateway_gives(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        "render",
        "-f",
        str(EXAMPLES / "one-url.yaml"),
        "--name",
        "agent",
        "--namespace",
        "t",
    )
    assert code == 0, err
    assert err.splitlines()[-1] == (
        f"{EXAMPLES / 'one-url.yaml'}: every *_URL through the model gateway is "
        "http://agent-models.t.svc.cluster.local/v1/ (agent-models: routes by the request's "
        "model to 4 models)"
    )
