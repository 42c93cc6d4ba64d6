"""Real Compose projects, written like Docker's agent examples, run unchanged.

Each folder in tests/fixtures/projects is a project of our own exercising what those examples
use: build-only services given an image, renamed model variables shared by two services,
`$(...)` in a command, project files and folders, an empty data folder, configs, secrets,
`env_file`, `extends` and `include` from other files, a large binary file, and the host paths
and privileges policy refuses. `render` reads the folder as docker compose would; `convert`
packs it; the operator, given what `convert` printed, applies what `render` showed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from compose_operator import cli
from compose_operator.settings import Settings
from compose_operator.shell import kube
from tests.packaging_support import kustomize_build
from tests.shell_fakes import FakeApi, WatchedReconciler

PROJECTS = Path(__file__).parent / "fixtures" / "projects"
BINARY_SIZE = 300 << 10
"""music.db in the importer project: binary and over the inline limit, made at test time."""

Documents = dict[tuple[str, str], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    project: str
    images: tuple[str, ...] = ()
    file: str = "compose.yaml"
    code: int = 0
    objects: tuple[str, ...] = ()
    """`Kind/name` of every object render prints, in order (bound patches included)."""
    errors: tuple[str, ...] = ()
    check: Callable[[Documents], None] = field(default=lambda documents: None)


def env(documents: Documents, name: str) -> dict[str, str]:
    container = documents["Deployment", name]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", [])}


def mounts(documents: Documents, name: str) -> dict[str, str]:
    container = documents["Deployment", name]["spec"]["template"]["spec"]["containers"][0]
    return {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}


def check_interceptor(documents: Documents) -> None:
    url = "http://ic-models.default.svc.cluster.local/v1/"  # the app's model gateway
    for agent in ("planner", "reviewer"):
        assert env(documents, agent)["AGENT_LLM_URL"] == url
        assert env(documents, agent)["AGENT_LLM_NAME"] == "ai/qwen3:8B-Q4_K_M"
    assert env(documents, "planner")["REVIEWER_URL"] == "http://reviewer:9000"
    tools = documents["Deployment", "tools"]["spec"]["template"]["spec"]["containers"][0]
    assert tools["args"][-1] == "after:exec:echo OUT=$(cat) >&2"
    assert mounts(documents, "planner") == {
        "/run/secrets/llm-api-key": "compose-secret-llm-api-key"
    }


def check_shop(documents: Documents) -> None:
    assert set(mounts(documents, "catalog-db")) == {
        "/docker-entrypoint-initdb.d",
        "/data/db",
        "/cache",
    }
    seed = documents["ConfigMap", "shop-files"]["data"]
    assert sorted(seed.values())[0].startswith("db = db.getSiblingDB")
    assert documents["ConfigMap", "shop-configs"]["data"] == {
        "tools_config": "mail:\n  sender: shop@example.org\n"
    }
    assert mounts(documents, "assistant") == {
        "/tools_config": "compose-configs",
        "/run/secrets/tool_tokens": "compose-secret-tool-tokens",
    }
    assert env(documents, "assistant")["OPENAI_MODEL"] == "ai/gemma3"


def check_crew(documents: Documents) -> None:
    assert env(documents, "crew") == {
        "CREW_LOG": "json info",
        "CREW_MAX_ROUNDS": "4",
        "MODEL_RUNNER_MODEL": "ai/qwen3:8B-Q4_0",
        "MODEL_RUNNER_MODEL_LARGE": "ai/qwen3:14B-Q6_K",
        "MODEL_RUNNER_URL": "http://crew-models.default.svc.cluster.local/v1/",
    }
    assert env(documents, "crew-ui") == {"CREW_URL": "http://crew:7777", "NODE_ENV": "production"}
    assert documents["ConfigMap", "crew-files"]["data"]["crew.yaml"].startswith("crew:")


def check_offload(documents: Documents) -> None:
    """`models: !override` replaces both bindings with the large model's."""
    assert env(documents, "crew") == {
        "MODEL_RUNNER_MODEL": "ai/qwen3:30B-A3B-Q4_K_M",
        "MODEL_RUNNER_URL": "http://crew-models.default.svc.cluster.local/v1/",
    }


def check_layered(documents: Documents) -> None:
    """compose.k8s.yaml includes [compose.yaml, compose.offload.yaml]: the override file's
    `models: !override` replaces the crew's bindings, everything else of the base stays."""
    assert env(documents, "crew") == {
        "CREW_LOG": "json info",
        "CREW_MAX_ROUNDS": "4",
        "MODEL_RUNNER_MODEL": "ai/qwen3:30B-A3B-Q4_K_M",
        "MODEL_RUNNER_URL": "http://crew-models.default.svc.cluster.local/v1/",
    }
    assert mounts(documents, "crew") == {"/crew.yaml": "compose-files"}


def check_assistant(documents: Documents) -> None:
    assert mounts(documents, "assistant") == {
        "/opt/assistant": "compose-dir-assistant",
        "/run/secrets/assistant-token": "compose-secret-assistant-token",
        "/etc/assistant/persona.toml": "compose-files",
    }
    data = documents["ConfigMap", "assistant-files"]["data"]
    assert data["persona.toml"] == 'name = "Pip"\nmax_tokens = 16\n'
    assert any(v.startswith('"""Ask the model') for v in data.values())


def check_importer(documents: Documents) -> None:
    pod = documents["Deployment", "loader"]["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {
            "name": "compose-cm-imp-file-music-db-0dab16c8",
            "configMap": {
                "name": "imp-file-music-db-0dab16c8",
                "items": [{"key": "music.db", "path": "music.db"}],
            },
        }
    ]
    database = documents["Deployment", "database"]["spec"]["template"]["spec"]["containers"][0]
    assert database["image"] == "postgres:17"


CASES = [
    Case(
        "interceptor",
        images=("planner=registry.local/planner:1", "reviewer=registry.local/reviewer:1"),
        objects=(
            "ConfigMap/ic-models", "Service/ic-brain", "Service/ic-models", "Service/planner",
            "Service/reviewer", "Deployment/ic-brain", "Deployment/ic-models",
            "Deployment/planner", "Deployment/reviewer", "Deployment/tools",
        ),
        check=check_interceptor,
    ),
    Case(
        "shop",
        images=("assistant=registry.local/assistant:1",),
        objects=(
            "ConfigMap/shop-configs", "ConfigMap/shop-files", "ConfigMap/shop-models",
            "PersistentVolumeClaim/shop-cache", "PersistentVolumeClaim/shop-data-catalog-d2404620",
            "Service/assistant", "Service/shop-chat", "Service/shop-models",
            "Deployment/assistant", "Deployment/catalog-db", "Deployment/shop-chat",
            "Deployment/shop-models",
        ),
        check=check_shop,
    ),
    Case(
        "crew",
        objects=(
            "ConfigMap/crew-files", "ConfigMap/crew-models", "Service/crew-medium",
            "Service/crew-models", "Service/crew-small", "Service/crew-ui", "Deployment/crew",
            "Deployment/crew-medium", "Deployment/crew-models", "Deployment/crew-small",
            "Deployment/crew-ui",
        ),
        check=check_crew,
    ),
    Case(
        "crew",
        file="compose.offload.yaml",
        images=("crew=demo/crew",),
        objects=(
            "ConfigMap/crew-models", "Service/crew-large", "Service/crew-models",
            "Deployment/crew", "Deployment/crew-large", "Deployment/crew-models",
        ),
        check=check_offload,
    ),
    Case(
        "crew",
        file="compose.k8s.yaml",
        objects=(
            "ConfigMap/crew-files", "ConfigMap/crew-models", "Service/crew-large",
            "Service/crew-medium", "Service/crew-models", "Service/crew-small", "Service/crew-ui",
            "Deployment/crew", "Deployment/crew-large", "Deployment/crew-medium",
            "Deployment/crew-models", "Deployment/crew-small", "Deployment/crew-ui",
        ),
        check=check_layered,
    ),
    Case(
        "importer",
        images=("loader=registry.local/loader:1", "agent=registry.local/agent:1"),
        objects=(
            "ConfigMap/imp-models", "Service/imp-models", "Service/imp-sql-llm",
            "Deployment/agent", "Deployment/database", "Deployment/imp-models",
            "Deployment/imp-sql-llm", "Deployment/loader", "Deployment/sql-tools",
        ),
        check=check_importer,
    ),
    Case(
        "assistant",
        images=("assistant=registry.local/assistant:1",),
        objects=(
            "ConfigMap/assistant-files", "ConfigMap/assistant-models", "Service/assistant-brain",
            "Service/assistant-models", "Deployment/assistant", "Deployment/assistant-brain",
            "Deployment/assistant-models",
        ),
        check=check_assistant,
    ),
    Case(
        "socket",
        code=2,
        errors=(
            "compose.yaml: services.runner.volumes[0]: bind mount of host path "
            "'/var/run/docker.sock' is not allowed by the operator's policy (allowBindMounts); "
            "use a named volume, or a path inside the project; the Docker socket would not help "
            "anyway: Kubernetes nodes run containerd, with no Docker API",
            "compose.yaml: services.sandbox.privileged: a privileged container is not allowed by "
            "the operator's policy (allowPrivileged)",
        ),
    ),
]  # fmt: skip


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    """The fixture projects, copied, with the importer's binary database made."""
    copy = tmp_path / "projects"
    shutil.copytree(PROJECTS, copy)
    (copy / "importer" / "music.db").write_bytes(bytes(range(256)) * (BINARY_SIZE // 256))
    return copy


def run(capsys: pytest.CaptureFixture[str], folder: Path, *argv: str) -> tuple[int, str, str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def image_options(case: Case) -> list[str]:
    return [option for image in case.images for option in ("--image", image)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.project}/{c.file}")
def test_render(case: Case, projects: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = {"interceptor": "ic", "importer": "imp"}.get(case.project, case.project)
    code, out, err = run(
        capsys, projects / case.project, "render", "-f", case.file, "--name", name,
        *image_options(case),
    )  # fmt: skip
    assert code == case.code, err
    problems = [line for line in err.splitlines() if ": warning: " not in line]
    if case.code:
        assert problems == list(case.errors)
        return
    documents = [d for d in yaml.safe_load_all(out) if d]
    assert tuple(f"{d['kind']}/{d['metadata']['name']}" for d in documents) == case.objects
    case.check({(d["kind"], d["metadata"]["name"]): d for d in documents})


def test_convert_packs_what_the_compose_file_uses_and_never_a_secret(
    projects: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, projects / "shop", "convert", "-f", "compose.yaml", "--name", "shop",
        "--namespace", "team", "--image", "assistant=registry.local/assistant:1",
    )  # fmt: skip
    assert code == 0, err
    (app,) = yaml.safe_load_all(out)
    assert app["metadata"] == {"name": "shop", "namespace": "team"}
    assert app["spec"]["images"] == {"assistant": "registry.local/assistant:1"}
    assert [f["path"] for f in app["spec"]["files"]] == [
        "seed/catalog/01-products.js",
        "seed/catalog/lib/helpers.js",
    ]
    assert err.splitlines()[-3:] == [
        "compose.yaml: packed seed/catalog/01-products.js (102 B, inline)",
        "compose.yaml: packed seed/catalog/lib/helpers.js (72 B, inline)",
        "compose.yaml: secrets.tool_tokens is not packed (secrets never travel in a ComposeApp);"
        " make it with: kubectl -n team create secret generic tool-tokens "
        "--from-file=tool_tokens=.tools.env",
    ]


def test_convert_never_reads_a_secrets_file(
    projects: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, projects / "interceptor", "convert", "-f", "compose.yaml", "--name", "ic",
    )  # fmt: skip
    assert code == 0
    assert "sk-fixture-never-read" not in out
    assert "files" not in yaml.safe_load(out)["spec"]


def test_convert_puts_a_large_binary_file_in_a_configmap_of_its_own(
    projects: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    kustomize = tmp_path / "deploy"
    code, out, err = run(
        capsys, projects / "importer", "convert", "-f", "compose.yaml", "--name", "imp",
        "--kustomize", str(kustomize),
    )  # fmt: skip
    assert code == 0, err
    assert (
        "compose.yaml: apply it with `kubectl apply --server-side`: client-side apply keeps a "
        "copy of each object in an annotation of at most 256 KiB" in err.splitlines()
    )
    app, music = yaml.safe_load_all(out)
    included = (projects / "importer/db/compose.yaml").read_text()
    music_ref = {"name": "imp-file-music-db-0dab16c8", "key": "music.db"}
    assert app["spec"]["files"] == [
        {"path": "db/.env", "content": "PG_VERSION=17\n"},
        {"path": "db/compose.yaml", "content": included},
        {"path": "music.db", "configMapKeyRef": music_ref},
    ]
    assert music["kind"] == "ConfigMap"
    assert list(music["binaryData"]) == ["music.db"]
    assert yaml.safe_load((kustomize / "kustomization.yaml").read_text()) == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["composeapp.yaml"],
        "configMapGenerator": [
            {"name": "imp-file-music-db-0dab16c8", "files": ["music.db=files/music.db"]}
        ],
        "configurations": ["kustomizeconfig.yaml"],
    }
    built_map, built_app = kustomize_build(kustomize)
    hashed = built_map["metadata"]["name"]
    assert hashed.startswith("imp-file-music-db-0dab16c8-")
    assert built_app["spec"]["files"][2]["configMapKeyRef"] == {"name": hashed, "key": "music.db"}
    assert (kustomize / "files" / "music.db").read_bytes() == (
        projects / "importer" / "music.db"
    ).read_bytes()
    assert yaml.safe_load((kustomize / "composeapp.yaml").read_text()) == app


@pytest.mark.parametrize("case", [c for c in CASES if c.code == 0], ids=lambda c: c.project)
def test_the_operator_applies_what_render_showed(
    case: Case, projects: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """convert → the API server (a fake) → one reconcile: the objects the operator applies
    are those render printed, field for field (bar the operator's bookkeeping)."""
    name = {"interceptor": "ic", "importer": "imp"}.get(case.project, case.project)
    folder = projects / case.project
    options = ["-f", case.file, "--name", name, "--namespace", "team", *image_options(case)]
    _, rendered, _ = run(capsys, folder, "render", *options)
    _, converted, err = run(capsys, folder, "convert", *options)
    app, *config_maps = yaml.safe_load_all(converted)
    api = FakeApi()
    for config_map in config_maps:
        api.seed(kube.CONFIG_MAPS, config_map)
    api.seed(kube.COMPOSE_APPS, {**app, "metadata": {**app["metadata"], "uid": "u"}})
    for line in err.splitlines():
        if "create secret generic" in line:
            secret = line.split("generic ")[1].split()[0]
            key = line.split("--from-file=")[1].split("=")[0]
            api.seed(kube.SECRETS, {"metadata": {"name": secret, "namespace": "team"},
                                    "data": {key: "eA=="}})  # fmt: skip
    WatchedReconciler(api, Settings(), now=lambda: "now").reconcile("team", name)
    for expected in yaml.safe_load_all(rendered):
        if not expected:
            continue
        resource = kube.BY_KIND[expected["kind"]]
        live = api.live(resource, "team", expected["metadata"]["name"])
        assert live is not None, expected["metadata"]["name"]
        live["metadata"] = {k: live["metadata"][k] for k in expected["metadata"]}
        assert {k: live[k] for k in expected} == expected


def test_a_secrets_file_below_a_mounted_folder_never_travels(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Docker would show the whole folder to the container; a ComposeApp never carries a
    secret, so the secret's file is left out of the folder (it is at /run/secrets anyway)."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.toml").write_text("level = 1\n")
    (tmp_path / "conf" / "token.txt").write_text("hunter2")
    (tmp_path / "compose.yaml").write_text(
        "services:\n  app:\n    image: a\n    volumes: ['./conf:/conf']\n    secrets: [token]\n"
        "secrets:\n  token: {file: ./conf/token.txt}\n"
    )
    code, out, err = run(capsys, tmp_path, "convert", "-f", "compose.yaml", "--name", "a")
    assert code == 0, err
    assert "hunter2" not in out
    assert [f["path"] for f in yaml.safe_load(out)["spec"]["files"]] == ["conf/app.toml"]
