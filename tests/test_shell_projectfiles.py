"""The reconciler with project files, configs, secrets and images (fake API, real core)."""

from __future__ import annotations

import base64
from typing import Any

import kopf
import pytest

from compose_operator.render.projectfiles import DIGEST_ANNOTATION
from compose_operator.settings import Settings
from compose_operator.shell import kube
from tests.shell_fakes import FakeApi, WatchedReconciler
from tests.test_shell_reconcile import APP, NOW, NS, available, compose_app, conditions, verbs

AGENT = """\
services:
  agent:
    build: .
    volumes: ["./agents.yaml:/agents.yaml:ro", "./prompts:/prompts:ro"]
    configs: [settings]
    secrets: [openai-api-key]
configs:
  settings: {content: "level: 1\\n"}
secrets:
  openai-api-key: {file: ./secret.openai-api-key}
"""
FILES = [
    {"path": "agents.yaml", "content": "agents: [triage]\n"},
    {"path": "prompts/system.md", "content": "Be brief."},
]
IMAGES = {"agent": "registry.local/agent:1"}
API_KEY = {
    "metadata": {"name": "openai-api-key", "namespace": NS},
    "data": {"openai-api-key": base64.b64encode(b"sk-test").decode()},
}


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def reconciler(api: FakeApi) -> WatchedReconciler:
    return WatchedReconciler(api, Settings(), now=lambda: NOW)


def app_status(api: FakeApi) -> dict[str, Any]:
    live = api.live(kube.COMPOSE_APPS, NS, APP)
    assert live is not None
    status: dict[str, Any] = live["status"]
    return status


def template(api: FakeApi, name: str) -> dict[str, Any]:
    deployment = api.live(kube.DEPLOYMENTS, NS, name)
    assert deployment is not None
    spec: dict[str, Any] = deployment["spec"]["template"]
    return spec


def test_project_files_and_configs_are_owned_configmaps_applied_before_the_pods(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.SECRETS, API_KEY)
    api.seed(kube.COMPOSE_APPS, compose_app(AGENT, files=FILES, images=IMAGES))

    reconciler.reconcile(NS, APP)

    assert verbs(api.writes())[:3] == [
        ("apply", "configmaps", "chat-configs"),
        ("apply", "configmaps", "chat-files"),
        ("apply", "deployments", "agent"),
    ]
    files = api.live(kube.CONFIG_MAPS, NS, "chat-files")
    assert files is not None
    assert files["metadata"]["ownerReferences"][0]["uid"] == "app-uid"
    assert sorted(files["data"].values()) == ["Be brief.", "agents: [triage]\n"]
    pod = template(api, "agent")
    assert pod["spec"]["containers"][0]["image"] == "registry.local/agent:1"
    assert [m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]] == [
        "/agents.yaml",
        "/prompts",
        "/run/secrets/openai-api-key",
        "/settings",
    ]


def test_an_edited_file_rolls_the_pods_and_a_dropped_config_is_pruned(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.SECRETS, API_KEY)
    api.seed(kube.COMPOSE_APPS, compose_app(AGENT, files=FILES, images=IMAGES))
    reconciler.reconcile(NS, APP)
    before = template(api, "agent")["metadata"]["annotations"][DIGEST_ANNOTATION]

    app = api.others["composeapps", NS, APP]
    app["spec"]["files"] = [{**FILES[0], "content": "agents: [triage, coder]\n"}, FILES[1]]
    app["spec"]["compose"] = AGENT.replace("    configs: [settings]\n", "")
    api.clear()
    reconciler.reconcile(NS, APP)

    after = template(api, "agent")["metadata"]["annotations"][DIGEST_ANNOTATION]
    assert after != before
    assert ("delete", "configmaps", "chat-configs") in verbs(api.writes())
    assert ("apply", "configmaps", "chat-files") in verbs(api.writes())


def test_a_file_kept_in_its_own_configmap_is_read_and_mounted_from_there(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    compose = (
        "services:\n  db:\n    image: sqlite\n    volumes: ['./Chinook.db:/data/Chinook.db']\n"
    )
    ref = {"path": "Chinook.db", "configMapKeyRef": {"name": "chinook", "key": "db"}}
    api.seed(kube.COMPOSE_APPS, compose_app(compose, files=[ref]))

    with pytest.raises(kopf.TemporaryError):
        reconciler.reconcile(NS, APP)
    assert conditions(api)["Ready"] == ("False", "ComposeSourceMissing")
    assert app_status(api)["conditions"][0]["message"] == (
        "spec.files: ConfigMap chinook not found in team"
    )

    api.seed(
        kube.CONFIG_MAPS,
        {
            "metadata": {"name": "chinook", "namespace": NS},
            "binaryData": {"db": base64.b64encode(b"SQLite format 3\x00").decode()},
        },
    )
    reconciler.reconcile(NS, APP)
    pod = template(api, "db")
    assert pod["spec"]["volumes"] == [
        {
            "name": "compose-cm-chinook",
            "configMap": {"name": "chinook", "items": [{"key": "db", "path": "db"}]},
        }
    ]
    assert DIGEST_ANNOTATION in pod["metadata"]["annotations"]


def test_a_missing_secret_is_named_with_how_to_make_it_until_it_exists(
    api: FakeApi, reconciler: WatchedReconciler
) -> None:
    api.seed(kube.COMPOSE_APPS, compose_app(AGENT, files=FILES, images=IMAGES))

    assert reconciler.reconcile(NS, APP).recheck_after == 15

    create = (
        "kubectl -n team create secret generic openai-api-key "
        "--from-file=openai-api-key=secret.openai-api-key"
    )
    assert app_status(api)["services"] == [
        {
            "name": "agent",
            "mode": "created",
            "models": [],
            "message": f"Secret openai-api-key missing; {create}",
        }
    ]
    assert conditions(api)["Ready"] == ("False", "SecretMissing")
    assert [e["reason"] for e in api.events] == ["SecretMissing"]
    assert ("apply", "deployments", "agent") in verbs(api.writes())

    api.seed(kube.SECRETS, {**API_KEY, "data": {"wrong-key": "eA=="}})
    assert reconciler.reconcile(NS, APP).recheck_after == 15
    assert app_status(api)["services"][0]["message"] == (
        f"Secret openai-api-key has no key openai-api-key; {create}"
    )

    api.seed(kube.SECRETS, API_KEY)
    api.set_status(kube.DEPLOYMENTS, NS, "agent", available())
    assert reconciler.reconcile(NS, APP).recheck_after is None
    assert conditions(api)["Ready"] == ("True", "Ready")
    assert "message" not in app_status(api)["services"][0]


def test_invalid_spec_files_are_an_invalid_app(api: FakeApi, reconciler: WatchedReconciler) -> None:
    api.seed(
        kube.COMPOSE_APPS,
        compose_app(AGENT, files=[{"path": "../etc/passwd", "content": "x"}], images=IMAGES),
    )
    reconciler.reconcile(NS, APP)
    assert conditions(api)["Stalled"] == ("True", "InvalidCompose")
    assert app_status(api)["conditions"][0]["message"] == (
        "spec.files: ../etc/passwd: a path has no empty, '.' or '..' segments "
        "(write it as `dir/file`)"
    )
    assert [w for w in api.writes() if w.verb == "apply"] == []
