"""Project files, configs and secrets on a service's pods: volumes, mounts, ConfigMaps, digest."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from compose_operator.compose import load_project
from compose_operator.compose.projectfiles import CarriedFiles, project_file
from compose_operator.errors import ComposeError, Warning
from compose_operator.plan import Plan, PlannedSecret
from compose_operator.project import ProjectFile
from compose_operator.render import plan
from compose_operator.render.projectfiles import DIGEST_ANNOTATION, file_key
from compose_operator.settings import Settings

LABELS = {
    "app.kubernetes.io/managed-by": "compose-operator",
    "app.kubernetes.io/part-of": "chat",
    "compose-operator.io/app": "chat",
}


def carried(*files: ProjectFile) -> CarriedFiles:
    return CarriedFiles({f.path: f for f in files})


NO_FILES = CarriedFiles()


def planned(text: str, files: CarriedFiles = NO_FILES, **environment: str) -> Plan:
    project = load_project(text, files=files, environment=environment)
    result = plan(project, app="chat", namespace="team", settings=Settings())
    for manifest in result.objects:
        kubernetes_validate.validate(manifest, "1.36", strict=True)
    return result


def obj(result: Plan, kind: str, name: str) -> dict[str, Any]:
    return next(o for o in result.objects if o["kind"] == kind and o["metadata"]["name"] == name)


def pod(result: Plan, deployment: str) -> dict[str, Any]:
    spec: dict[str, Any] = obj(result, "Deployment", deployment)["spec"]["template"]["spec"]
    return spec


def test_configs_mount_at_compose_targets_from_the_apps_configmap() -> None:
    result = planned(
        """
services:
  gateway:
    image: gw
    configs:
      - mcp_config
      - {source: tuning, target: etc/tuning.yaml, mode: 0440}
      - {source: from_file, target: /srv/app.toml}
      - {source: shared, target: /shared.conf}
configs:
  mcp_config: {content: "resend:\\n  sender: bot\\n"}
  tuning: {environment: TUNING}
  from_file: {file: ./app.toml}
  shared: {external: true, name: platform-shared}
""",
        carried(project_file("app.toml", "port = 80\n")),
        TUNING="level: 3",
    )
    spec = pod(result, "gateway")
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "compose-configs", "mountPath": "/mcp_config", "readOnly": True,
         "subPath": "444/mcp_config"},
        {"name": "compose-configs", "mountPath": "/etc/tuning.yaml", "readOnly": True,
         "subPath": "440/tuning"},
        {"name": "compose-files", "mountPath": "/srv/app.toml", "readOnly": True,
         "subPath": "444/app.toml"},
        {"name": "compose-cm-platform-shared", "mountPath": "/shared.conf", "readOnly": True,
         "subPath": "444/shared"},
    ]  # fmt: skip
    assert spec["volumes"] == [
        {"name": "compose-configs", "configMap": {"name": "chat-configs", "items": [
            {"key": "mcp_config", "path": "444/mcp_config", "mode": 0o444},
            {"key": "tuning", "path": "440/tuning", "mode": 0o440}]}},
        {"name": "compose-files", "configMap": {"name": "chat-files", "items": [
            {"key": "app.toml", "path": "444/app.toml", "mode": 0o444}]}},
        {"name": "compose-cm-platform-shared", "configMap": {"name": "platform-shared", "items": [
            {"key": "shared", "path": "444/shared", "mode": 0o444}]}},
    ]  # fmt: skip
    assert obj(result, "ConfigMap", "chat-configs") == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "chat-configs", "namespace": "team", "labels": LABELS},
        "data": {"mcp_config": "resend:\n  sender: bot\n", "tuning": "level: 3"},
    }
    assert obj(result, "ConfigMap", "chat-files")["data"] == {"app.toml": "port = 80\n"}


def test_secrets_mount_from_secrets_of_their_name_and_are_never_made() -> None:
    result = planned(
        """
services:
  agent:
    image: agent
    secrets:
      - openai-api-key
      - {source: mcp_secret, target: mcp.env, mode: 0400}
      - {source: db, target: /etc/db/url}
secrets:
  openai-api-key: {file: ./secret.openai-api-key}
  mcp_secret: {file: .mcp.env}
  db:
    environment: DATABASE_URL
    x-kubernetes: {secretName: shared-db, key: url}
"""
    )
    spec = pod(result, "agent")
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "compose-secret-openai-api-key", "mountPath": "/run/secrets/openai-api-key",
         "readOnly": True, "subPath": "444/openai-api-key"},
        {"name": "compose-secret-mcp-secret", "mountPath": "/run/secrets/mcp.env",
         "readOnly": True, "subPath": "400/mcp_secret"},
        {"name": "compose-secret-shared-db", "mountPath": "/etc/db/url", "readOnly": True,
         "subPath": "444/url"},
    ]  # fmt: skip
    assert spec["volumes"][0] == {
        "name": "compose-secret-openai-api-key",
        "secret": {
            "secretName": "openai-api-key",
            "items": [{"key": "openai-api-key", "path": "444/openai-api-key", "mode": 0o444}],
        },
    }
    assert [o["kind"] for o in result.objects] == ["Deployment"]
    assert result.secrets == (
        PlannedSecret(
            "shared-db",
            "url",
            'kubectl -n team create secret generic shared-db --from-literal=url="$DATABASE_URL"',
            ("agent",),
        ),
        PlannedSecret(
            "mcp-secret",
            "mcp_secret",
            "kubectl -n team create secret generic mcp-secret --from-file=mcp_secret=.mcp.env",
            ("agent",),
        ),
        PlannedSecret(
            "openai-api-key",
            "openai-api-key",
            "kubectl -n team create secret generic openai-api-key "
            "--from-file=openai-api-key=secret.openai-api-key",
            ("agent",),
        ),
    )
    assert (
        Warning(
            "secrets.mcp_secret",
            "its Kubernetes Secret is mcp-secret (Secret names hold no '_' or upper case); "
            "x-kubernetes.secretName chooses another",
        )
        in result.warnings
    )


def test_bind_mounts_of_project_files_and_folders() -> None:
    files = carried(
        project_file("agents.yaml", "agents: []\n"),
        project_file("init/01.js", "db.x.insert({})"),
        project_file("init/scripts/run.sh", "#!/bin/sh\n", mode=0o755),
        project_file("Chinook.db", b"\x00sqlite", config_map=("chat-chinook-db", "Chinook.db")),
    )
    result = planned(
        """
services:
  agents:
    image: agents
    volumes:
      - ./agents.yaml:/agents.yaml
      - ./init:/docker-entrypoint-initdb.d:ro
      - {type: bind, source: Chinook.db, target: /app/Chinook.db, read_only: true}
""",
        files,
    )
    spec = pod(result, "agents")
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "compose-files", "mountPath": "/agents.yaml", "readOnly": True,
         "subPath": "agents.yaml"},
        {"name": "compose-dir-init", "mountPath": "/docker-entrypoint-initdb.d",
         "readOnly": True},
        {"name": "compose-cm-chat-chinook-db", "mountPath": "/app/Chinook.db", "readOnly": True,
         "subPath": "Chinook.db"},
    ]  # fmt: skip
    assert spec["volumes"] == [
        {"name": "compose-files", "configMap": {"name": "chat-files", "items": [
            {"key": "agents.yaml", "path": "agents.yaml"}]}},
        {"name": "compose-dir-init", "projected": {"sources": [{"configMap": {
            "name": "chat-files", "items": [
                {"key": file_key("init/01.js"), "path": "01.js"},
                {"key": file_key("init/scripts/run.sh"), "path": "scripts/run.sh",
                 "mode": 0o755}]}}]}},
        {"name": "compose-cm-chat-chinook-db", "configMap": {"name": "chat-chinook-db",
            "items": [{"key": "Chinook.db", "path": "Chinook.db"}]}},
    ]  # fmt: skip
    assert obj(result, "ConfigMap", "chat-files")["data"] == {
        "agents.yaml": "agents: []\n",
        file_key("init/01.js"): "db.x.insert({})",
        file_key("init/scripts/run.sh"): "#!/bin/sh\n",
    }
    assert (
        Warning(
            "services.agents.volumes[0]", "project files are mounted read-only (from a ConfigMap)"
        )
        in result.warnings
    )


def test_a_project_folder_without_files_becomes_a_claim_like_a_named_volume() -> None:
    result = planned(
        "services:\n  db:\n    image: mongo\n    volumes: ['./data/mongodb:/data/db']\n"
    )
    claim = next(o for o in result.objects if o["kind"] == "PersistentVolumeClaim")
    name = claim["metadata"]["name"]
    assert name.startswith("chat-data-mongodb-")
    (volume,) = pod(result, "db")["volumes"]
    assert volume["name"].startswith("data-mongodb-")
    assert volume["persistentVolumeClaim"] == {"claimName": name}
    assert (
        Warning(
            "services.db.volumes[0]",
            f"./data/mongodb has no project files; it becomes the PersistentVolumeClaim {name}, "
            "an empty volume like a named one",
        )
        in result.warnings
    )


def test_a_missing_project_file_is_an_error_naming_it() -> None:
    with pytest.raises(ComposeError) as caught:
        planned("services:\n  db:\n    image: x\n    volumes: ['./Chinook.db:/app/Chinook.db']\n")
    assert caught.value.messages == [
        "compose.yaml: services.db.volumes[0]: bind mount of Chinook.db is not among the project "
        "files; carry it in spec.files (`compose-operator convert` does); a missing folder would "
        "become an empty volume, a missing file cannot (line 4)"
    ]


def test_a_changed_file_changes_only_the_digest_of_the_pods_that_mount_it() -> None:
    text = """
services:
  a: {image: a, volumes: ["./a.yaml:/a.yaml"]}
  b: {image: b, volumes: ["./b.yaml:/b.yaml"]}
"""

    def digests(a: str, b: str) -> tuple[str, str]:
        result = planned(text, carried(project_file("a.yaml", a), project_file("b.yaml", b)))
        annotations = {
            name: obj(result, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
            for name in ("a", "b")
        }
        return annotations["a"][DIGEST_ANNOTATION], annotations["b"][DIGEST_ANNOTATION]

    first = digests("one", "two")
    second = digests("one!", "two")
    assert second[0] != first[0]
    assert second[1] == first[1]


def test_a_config_at_a_target_a_volume_holds_is_left_out_as_docker_does() -> None:
    result = planned(
        """
services:
  s:
    image: s
    volumes: ["data:/conf"]
    configs: [{source: c, target: /conf}]
    secrets: [{source: k, uid: "1000", gid: "2000"}]
volumes: {data: {}}
configs: {c: {content: x}}
secrets: {k: {file: k.txt}}
"""
    )
    assert [m["mountPath"] for m in pod(result, "s")["containers"][0]["volumeMounts"]] == [
        "/conf",
        "/run/secrets/k",
    ]
    assert pod(result, "s")["securityContext"]["fsGroup"] == 2000
    assert {
        Warning(
            "services.s.configs[0]", "ignored: /conf is already mounted by services.s.volumes[0]"
        ),
        Warning("services.s.secrets[0].uid", "Kubernetes cannot set a file's owner; ignored"),
    } <= set(result.warnings)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "services:\n  s: {image: a, configs: [nope]}\n",
            'compose.yaml: services.s.configs[0]: service "s" refers to undefined config nope '
            "(line 2)",
        ),
        (
            "configs:\n  c: {file: missing.conf}\n",
            "compose.yaml: configs.c.file: missing.conf is not among the project files; carry it "
            "in spec.files (`compose-operator convert` does) (line 2)",
        ),
        (
            "configs:\n  c: {environment: UNSET_VAR}\n",
            'compose.yaml: configs.c.environment: environment variable "UNSET_VAR" required by '
            'config "c" is not set (line 2)',
        ),
        (
            "configs:\n  c: {content: x, file: y}\n",
            "compose.yaml: configs.c: give one of file, environment, content or external: "
            "['file', 'content'] (line 2)",
        ),
        (
            "secrets:\n  s: {content: hunter2}\n",
            "compose.yaml: secrets.s.content: a secret's value never travels in the Compose file "
            "on Kubernetes; put it in a Secret (kubectl create secret generic s ...) (line 2)",
        ),
        (
            "services:\n  s: {image: a, secrets: [{source: k, mode: 999}]}\nsecrets: {k: {}}\n",
            "compose.yaml: services.s.secrets[0].mode: must be a file mode such as 0440 or "
            '"0440", got 999 (line 2)',
        ),
    ],
)
def test_configs_and_secrets_problems(text: str, message: str) -> None:
    with pytest.raises(ComposeError) as caught:
        planned(text)
    assert caught.value.messages == [message]


def test_an_image_from_spec_images_makes_a_build_only_service_run_as_written() -> None:
    text = """
services:
  agent:
    build: .
    environment: {MODE: chat}
    ports: ["8000"]
    models: [llm]
models:
  llm: {model: ai/smollm2}
"""
    project = load_project(text, images={"agent": "registry.local/agent:abc123"})
    result = plan(project, app="chat", namespace="team", settings=Settings())
    container = pod(result, "agent")["containers"][0]
    assert container["image"] == "registry.local/agent:abc123"
    assert {e["name"] for e in container["env"]} == {"MODE", "LLM_URL", "LLM_MODEL"}
    assert [s.mode for s in result.services] == ["created"]
    assert result.bindings == ()


def test_an_image_for_a_service_the_file_does_not_define_is_an_error() -> None:
    with pytest.raises(ComposeError) as caught:
        load_project("services:\n  a: {image: x}\n", images={"ghost": "g:1"})
    assert caught.value.messages == [
        "spec.images: ghost: an image is given for it, but the project has no such service"
    ]


def test_a_bound_service_is_told_what_it_loses() -> None:
    result = planned(
        """
services:
  agent:
    build: .
    volumes: ["./a.yaml:/a.yaml"]
    secrets: [k]
    models: [llm]
models: {llm: {model: ai/smollm2}}
secrets: {k: {file: k.txt}}
""",
        carried(project_file("a.yaml", "x")),
    )
    assert [w.path for w in result.warnings if w.message.startswith("not applied")] == [
        "services.agent.volumes",
        "services.agent.secrets",
    ]
    assert result.secrets == ()
    assert {o["metadata"]["name"] for o in result.objects} == {"chat-llm", "chat-models"}


def test_a_named_volume_that_would_take_the_name_of_the_files_volume_is_an_error() -> None:
    with pytest.raises(ComposeError) as caught:
        planned(
            """
services:
  s:
    image: s
    volumes: ["compose-files:/data", "./a.yaml:/a.yaml"]
volumes: {compose-files: {}}
""",
            carried(project_file("a.yaml", "x")),
        )
    assert caught.value.messages == [
        "compose.yaml: services.s.volumes[0]: volume 'compose-files' would be the pod volume "
        "compose-files, which holds the service's project files, configs or secrets; rename it"
    ]
