"""Real Compose projects, packed by `compose-operator convert`, against a real API server.

Three of the fixture projects (tests/fixtures/projects, written like Docker's agent examples)
are converted and applied as a user would (`convert | kubectl apply -f -`). On the kwok nodes
the pods do not run, but their specs are the real thing the API server accepted: the project
files' ConfigMap, the data folder's PVC and the Secrets are mounted at the Compose targets; an
app whose Secret is missing says so, with the command that makes it, until it exists; and
editing a carried file rolls exactly the pods that mount it. The CRD's own rules refuse a
path that would leave the project folder before the operator ever sees it.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.cluster_support import Cluster
from e2e.operator_harness import (
    REPO,
    OperatorProcess,
    condition,
    dumps,
    eventually,
)

PROJECTS = REPO / "tests" / "fixtures" / "projects"
DIGEST = "compose-operator.io/files-digest"


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("projects") / "projects"
    shutil.copytree(PROJECTS, copy)
    (copy / "importer" / "music.db").write_bytes(bytes(range(256)) * 1200)
    return copy


def convert(folder: Path, name: str, namespace: str, *images: str) -> tuple[str, str]:
    """`compose-operator convert` in the project folder: (the YAML stream, what it said)."""
    options = [option for image in images for option in ("--image", image)]
    result = subprocess.run(
        [sys.executable, "-m", "compose_operator.cli", "convert", "-f", "compose.yaml",
         "--name", name, "--namespace", namespace, *options],
        cwd=folder, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO / "operator"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return result.stdout, result.stderr


def app_status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.get_json("-n", namespace, "composeapp", name)
    return found


def pod_of(cluster: Cluster, namespace: str, app: str, service: str) -> dict[str, Any]:
    """The one live pod of a Compose service (waiting out a rollout)."""

    def one() -> dict[str, Any] | None:
        selector = f"compose-operator.io/app={app},compose-operator.io/service={service}"
        items = cluster.get_json("-n", namespace, "pods", "-l", selector)["items"]
        live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        return live[0] if len(live) == 1 else None

    pod: dict[str, Any] = eventually(one, timeout=60, what=f"one pod of {service}")
    return pod


def mounts(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Mount path → the volume mounted there (its source), for the pod's first container."""
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    return {
        m["mountPath"]: {**volumes[m["name"]], "subPath": m.get("subPath")}
        for m in pod["spec"]["containers"][0].get("volumeMounts", [])
    }


@pytest.fixture
def volumes(cluster: Cluster) -> Iterator[list[str]]:
    """PersistentVolumes made for claims (the kwok cluster has no provisioner), removed after."""
    made: list[str] = []
    yield made
    for name in made:
        cluster.kubectl("delete", "pv", name, "--wait=false", check=False)


def bind_claims(cluster: Cluster, namespace: str, app: str, volumes: list[str]) -> list[str]:
    """A PersistentVolume bound to each claim of the app, as a provisioner would make one."""
    claims = cluster.get_json("-n", namespace, "pvc", "-l", f"compose-operator.io/app={app}")
    names = []
    for claim in claims["items"]:
        name = f"{namespace}-{claim['metadata']['name']}"
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": f"/tmp/{name}"},
                "claimRef": {"namespace": namespace, "name": claim["metadata"]["name"]},
            },
        }
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(volume))
        volumes.append(name)
        names.append(claim["metadata"]["name"])
    return sorted(names)


def create_secret(cluster: Cluster, namespace: str, name: str, key: str, value: str) -> None:
    cluster.kubectl(
        "-n", namespace, "create", "secret", "generic", name, f"--from-literal={key}={value}"
    )


def wait_for(
    cluster: Cluster, namespace: str, name: str, what: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        app = app_status(cluster, namespace, name)
        return app if check(app) else None

    try:
        return eventually(probe, timeout=90, what=what)
    except AssertionError:
        raise AssertionError(
            f"{what}; status: {dumps(app_status(cluster, namespace, name).get('status'))}"
        ) from None


def ready(app: dict[str, Any]) -> bool:
    return bool(
        condition(app, "Ready").get("status") == "True"
        and app.get("status", {}).get("observedGeneration") == app["metadata"]["generation"]
    )


def test_a_converted_project_mounts_its_files_claim_and_secret_and_names_a_missing_secret(
    cluster: Cluster, operator: OperatorProcess, namespace: str, projects: Path, volumes: list[str]
) -> None:
    stream, said = convert(projects / "shop", "shop", namespace, "assistant=registry.local/a:1")
    assert "make it with: kubectl -n " + namespace + " create secret generic tool-tokens" in said
    cluster.kubectl("apply", "--server-side", "-f", "-", input=stream)

    app = wait_for(
        cluster, namespace, "shop", "the missing Secret named in status",
        lambda a: condition(a, "Ready").get("reason") == "SecretMissing",
    )  # fmt: skip
    (assistant,) = [s for s in app["status"]["services"] if s["name"] == "assistant"]
    assert assistant["message"] == (
        f"Secret tool-tokens missing; kubectl -n {namespace} create secret generic tool-tokens "
        "--from-file=tool_tokens=.tools.env"
    )

    db = mounts(pod_of(cluster, namespace, "shop", "catalog-db"))
    seed = db["/docker-entrypoint-initdb.d"]["projected"]["sources"][0]["configMap"]
    assert seed["name"] == "shop-files"
    assert sorted(i["path"] for i in seed["items"]) == ["01-products.js", "lib/helpers.js"]
    claim = db["/data/db"]["persistentVolumeClaim"]["claimName"]
    assert claim.startswith("shop-data-catalog-")
    assert cluster.get_json("-n", namespace, "pvc", claim)["metadata"]["ownerReferences"]
    assert db["/cache"]["persistentVolumeClaim"]["claimName"] == "shop-cache"
    files = cluster.get_json("-n", namespace, "configmap", "shop-files")["data"]
    assert any(v.startswith("db = db.getSiblingDB") for v in files.values())

    assistant_pod = mounts(pod_of(cluster, namespace, "shop", "assistant"))
    assert assistant_pod["/run/secrets/tool_tokens"]["secret"]["secretName"] == "tool-tokens"
    assert assistant_pod["/tools_config"]["configMap"]["name"] == "shop-configs"

    assert bind_claims(cluster, namespace, "shop", volumes) == ["shop-cache", claim]
    create_secret(cluster, namespace, "tool-tokens", "tool_tokens", "GITHUB_TOKEN=x")
    wait_for(cluster, namespace, "shop", "Ready once the Secret exists", ready)


def test_editing_a_carried_file_rolls_only_the_pods_that_mount_it(
    cluster: Cluster, operator: OperatorProcess, namespace: str, projects: Path
) -> None:
    stream, _ = convert(projects / "crew", "crew", namespace)
    cluster.kubectl("apply", "--server-side", "-f", "-", input=stream)
    wait_for(cluster, namespace, "crew", "Ready", ready)
    crew = pod_of(cluster, namespace, "crew", "crew")
    ui = pod_of(cluster, namespace, "crew", "crew-ui")
    assert mounts(crew)["/crew.yaml"]["subPath"] == "crew.yaml"
    env = {e["name"]: e["value"] for e in crew["spec"]["containers"][0]["env"]}
    assert (env["CREW_MAX_ROUNDS"], env["CREW_LOG"]) == ("4", "json info")

    app = yaml.safe_load(stream)
    (entry,) = [f for f in app["spec"]["files"] if f["path"] == "crew.yaml"]
    entry["content"] += "  - name: editor\n    goal: check facts\n"
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(app))

    def rolled() -> dict[str, Any] | None:
        pod = pod_of(cluster, namespace, "crew", "crew")
        return pod if pod["metadata"]["uid"] != crew["metadata"]["uid"] else None

    new = eventually(rolled, timeout=60, what="a new crew pod")
    assert new["metadata"]["annotations"][DIGEST] != crew["metadata"]["annotations"][DIGEST]
    files = cluster.get_json("-n", namespace, "configmap", "crew-files")["data"]
    assert "editor" in files["crew.yaml"]
    wait_for(cluster, namespace, "crew", "Ready after the rollout", ready)
    assert pod_of(cluster, namespace, "crew", "crew-ui")["metadata"]["uid"] == ui["metadata"]["uid"]


def test_a_large_binary_file_travels_in_its_own_configmap(
    cluster: Cluster, operator: OperatorProcess, namespace: str, projects: Path
) -> None:
    stream, said = convert(
        projects / "importer", "imp", namespace,
        "loader=registry.local/loader:1", "agent=registry.local/agent:1",
    )  # fmt: skip
    assert "packed music.db (300.0 KiB, ConfigMap imp-file-music-db-" in said
    cluster.kubectl("apply", "--server-side", "-f", "-", input=stream)
    create_secret(cluster, namespace, "database-url", "database-url", "postgres://u:p@db/m")
    wait_for(cluster, namespace, "imp", "Ready", ready)

    loader = mounts(pod_of(cluster, namespace, "imp", "loader"))
    music = loader["/app/music.db"]
    stored = cluster.get_json("-n", namespace, "configmap", music["configMap"]["name"])
    assert (
        base64.b64decode(stored["binaryData"]["music.db"])
        == (projects / "importer" / "music.db").read_bytes()
    )
    tools = mounts(pod_of(cluster, namespace, "imp", "sql-tools"))
    assert tools["/run/secrets/database-url"]["secret"]["secretName"] == "database-url"
    database = pod_of(cluster, namespace, "imp", "database")
    assert database["spec"]["containers"][0]["image"] == "postgres:17"


def test_the_api_server_refuses_a_path_out_of_the_project(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    app = {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": {"name": "escape", "namespace": namespace},
        "spec": {
            "compose": "services:\n  a: {image: a}\n",
            "files": [{"path": "conf/../../etc/shadow", "content": "x"}],
        },
    }
    result = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(app), check=False)
    assert result.returncode != 0
    assert "path is relative to the project folder, with no empty, '.' or '..' segments" in (
        result.stderr
    )
