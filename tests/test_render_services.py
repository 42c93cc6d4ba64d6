"""Compose services: their Deployments and Services, env bindings, policy and patches."""

from __future__ import annotations

from dataclasses import replace

import kubernetes_validate
import pytest

from compose_operator.errors import ComposeError, Warning
from compose_operator.plan import EnvBinding, Manifest, Plan, PlannedService
from compose_operator.project import (
    ComposeProject,
    Escalations,
    HealthCheck,
    Model,
    ModelBinding,
    Port,
    Resources,
    Service,
    Volume,
    VolumeMount,
)
from compose_operator.render import build_env_patch, plan
from compose_operator.settings import Policy, Settings

SETTINGS = Settings(model_endpoint="direct")  # per-model URLs; the gateway: test_render_gateway.py
LLM = Model(key="llm", model="ai/smollm2")
LLM_BINDING = ModelBinding(model="llm", endpoint_var="LLM_URL", model_var="LLM_MODEL")
LLM_URL = "http://chat-llm.team.svc.cluster.local/v1/"


def labels(service: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": "compose-operator",
        "app.kubernetes.io/part-of": "chat",
        "compose-operator.io/app": "chat",
        "compose-operator.io/service": service,
    }


def selector(service: str) -> dict[str, str]:
    return {"compose-operator.io/app": "chat", "compose-operator.io/service": service}


def planned(
    *services: Service, settings: Settings = SETTINGS, volumes: dict[str, Volume] | None = None
) -> Plan:
    compose = ComposeProject(
        models={"llm": LLM}, services={s.name: s for s in services}, volumes=volumes or {}
    )
    result = plan(compose, app="chat", namespace="team", settings=settings)
    for manifest in result.objects:
        kubernetes_validate.validate(manifest, "1.36", strict=True)
    return result


def service_objects(result: Plan) -> list[Manifest]:
    return [o for o in result.objects if "compose-operator.io/model" not in o["metadata"]["labels"]]


def test_a_web_service_renders_exactly_these_objects() -> None:
    web = Service(
        name="web",
        image="chat-app:latest",
        entrypoint=("/bin/server",),
        command=("--listen", ":8080"),
        environment={"LOG_LEVEL": "info", "A_FIRST": "1"},
        ports=(Port(target=8080, published=80), Port(target=9090, protocol="UDP")),
        expose=(8080, 7000),
        replicas=2,
        resources=Resources(cpu_limit="500m", memory_limit="1Gi", memory_request="512Mi"),
        healthcheck=HealthCheck(
            test=("curl", "-f", "http://localhost:8080/healthz"),
            interval_seconds=10,
            timeout_seconds=2,
            retries=5,
            start_period_seconds=15,
        ),
        labels={"com.example.team": "search"},
        working_dir="/srv",
        user="1000:2000",
        models=(LLM_BINDING,),
    )
    probe = {
        "exec": {"command": ["curl", "-f", "http://localhost:8080/healthz"]},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 5,
        "initialDelaySeconds": 15,
    }
    assert service_objects(planned(web)) == [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "team", "labels": labels("web")},
            "spec": {
                "selector": selector("web"),
                "ports": [
                    {"name": "tcp-8080", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
                    {"name": "udp-9090", "port": 9090, "targetPort": 9090, "protocol": "UDP"},
                    {"name": "tcp-7000", "port": 7000, "targetPort": 7000, "protocol": "TCP"},
                ],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "team", "labels": labels("web")},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": selector("web")},
                "template": {
                    "metadata": {
                        "labels": labels("web"),
                        "annotations": {"com.example.team": "search"},
                    },
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "web",
                                "image": "chat-app:latest",
                                "command": ["/bin/server"],
                                "args": ["--listen", ":8080"],
                                "workingDir": "/srv",
                                "env": [
                                    {"name": "A_FIRST", "value": "1"},
                                    {"name": "LLM_MODEL", "value": "ai/smollm2"},
                                    {"name": "LLM_URL", "value": LLM_URL},
                                    {"name": "LOG_LEVEL", "value": "info"},
                                ],
                                "ports": [
                                    {"containerPort": 8080, "protocol": "TCP"},
                                    {"containerPort": 9090, "protocol": "UDP"},
                                    {"containerPort": 7000, "protocol": "TCP"},
                                ],
                                "resources": {
                                    "limits": {"cpu": "500m", "memory": "1Gi"},
                                    "requests": {"memory": "512Mi"},
                                },
                                "readinessProbe": probe,
                                "livenessProbe": probe,
                                "securityContext": {
                                    "runAsUser": 1000,
                                    "runAsGroup": 2000,
                                    "capabilities": {"drop": ["ALL"]},
                                    "allowPrivilegeEscalation": False,
                                },
                            }
                        ],
                    },
                },
            },
        },
    ]


def test_a_worker_without_ports_gets_no_service() -> None:
    worker = Service(name="worker", image="worker:1")
    assert [o["kind"] for o in service_objects(planned(worker))] == ["Deployment"]


def test_status_lists_created_and_patched_services() -> None:
    result = planned(
        Service(name="web", image="web:1", models=(LLM_BINDING,)),
        Service(name="agent", models=(LLM_BINDING,)),
    )
    assert result.services == (
        PlannedService(name="agent", mode="patched", deployment="agent", models=("llm",)),
        PlannedService(name="web", mode="created", deployment="web", models=("llm",)),
    )


def test_the_model_variables_win_over_the_services_own_with_a_warning() -> None:
    web = Service(
        name="web",
        image="web:1",
        environment={"LLM_URL": "http://localhost:12434/v1/", "OTHER": "x"},
        models=(LLM_BINDING,),
    )
    result = planned(web)
    env = service_objects(result)[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [
        {"name": "LLM_MODEL", "value": "ai/smollm2"},
        {"name": "LLM_URL", "value": LLM_URL},
        {"name": "OTHER", "value": "x"},
    ]
    assert result.warnings == (
        Warning(
            "services.web.environment.LLM_URL",
            "replaced by the model variable LLM_URL (as under docker compose up)",
        ),
    )


def test_a_service_without_image_gets_an_env_binding_and_no_objects() -> None:
    binding = ModelBinding(model="llm", endpoint_var="AI_URL", model_var="AI_NAME")
    result = planned(Service(name="agent", models=(binding,)))
    assert service_objects(result) == []
    assert result.bindings == (
        EnvBinding(
            deployment="agent",
            service="agent",
            env=(("AI_NAME", "ai/smollm2"), ("AI_URL", LLM_URL)),
        ),
    )


def test_a_patched_service_gets_only_the_model_variables_and_an_image_less_one_nothing() -> None:
    agent = Service(name="agent", environment={"MODE": "chat"}, models=(LLM_BINDING,))
    result = planned(agent, Service(name="builder"))
    assert [binding.deployment for binding in result.bindings] == ["agent"]
    assert [service.name for service in result.services] == ["agent"]
    assert result.warnings == (
        Warning(
            "services.agent.environment",
            "not applied: without an image the service runs as an existing Deployment, "
            "which gets only the model variables; give it an image (spec.images, or --image) "
            "to run it as written",
        ),
        Warning(
            "services.builder",
            "no image and no models: nothing to run or to patch on Kubernetes; ignored",
        ),
    )


def test_the_env_patch_sets_only_env_entries_in_every_container() -> None:
    binding = EnvBinding(
        deployment="agent", service="agent", env=(("AI_NAME", "ai/smollm2"), ("AI_URL", LLM_URL))
    )
    env = [{"name": "AI_NAME", "value": "ai/smollm2"}, {"name": "AI_URL", "value": LLM_URL}]
    patch = build_env_patch(binding, namespace="team", containers=["agent", "sidecar"])
    assert patch == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "agent", "namespace": "team"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "agent", "env": env}, {"name": "sidecar", "env": env}]
                }
            }
        },
    }
    containers = patch["spec"]["template"]["spec"]["containers"]
    assert containers[0]["env"] is not containers[1]["env"], "YAML would print an alias"


def test_named_volumes_become_claims_shared_by_the_services_that_mount_them() -> None:
    db = Service(
        name="db",
        image="postgres:17",
        volumes=(VolumeMount(source="data", target="/var/lib/postgresql/data"),),
    )
    backup = Service(
        name="backup",
        image="backup:1",
        volumes=(
            VolumeMount(source="data", target="/data", read_only=True),
            VolumeMount(source="scratch", target="/var/scratch"),
        ),
    )
    result = planned(db, backup, volumes={"data": Volume(name="data", size="10Gi")})
    claims = [o for o in result.objects if o["kind"] == "PersistentVolumeClaim"]
    common = {key: value for key, value in labels("x").items() if "service" not in key}
    assert claims == [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": f"chat-{name}", "namespace": "team", "labels": common},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
            },
        }
        for name, size in (("data", "10Gi"), ("scratch", "1Gi"))
    ]
    (backup_deployment,) = [
        o for o in result.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "backup"
    ]
    pod = backup_deployment["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "chat-data"}},
        {"name": "scratch", "persistentVolumeClaim": {"claimName": "chat-scratch"}},
    ]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "data", "mountPath": "/data", "readOnly": True},
        {"name": "scratch", "mountPath": "/var/scratch"},
    ]


def test_a_gpu_service_gets_the_gpu_limit_and_toleration() -> None:
    trainer = Service(name="trainer", image="trainer:1", resources=Resources(gpus=2))
    pod = service_objects(planned(trainer))[0]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_a_user_name_cannot_be_resolved_and_is_ignored_with_a_warning() -> None:
    result = planned(Service(name="web", image="web:1", user="nobody"))
    container = service_objects(result)[0]["spec"]["template"]["spec"]["containers"][0]
    assert "runAsUser" not in container["securityContext"]
    assert result.warnings == (
        Warning(
            "services.web.user",
            "user 'nobody' is not a numeric uid[:gid]; Kubernetes cannot resolve names; ignored",
        ),
    )


RISKY = Service(
    name="tool",
    image="tool:1",
    escalations=Escalations(
        privileged=True,
        host_network=True,
        host_pid=True,
        host_ipc=True,
        cap_add=("NET_ADMIN",),
        devices=("/dev/fuse:/dev/fuse",),
    ),
    volumes=(VolumeMount(source="/var/run/docker.sock", target="/var/run/docker.sock", bind=True),),
)


def test_escalations_are_refused_by_default_each_at_its_key() -> None:
    with pytest.raises(ComposeError) as raised:
        planned(RISKY)
    assert raised.value.messages == [
        "compose.yaml: services.tool.privileged: a privileged container is not allowed by the "
        "operator's policy (allowPrivileged)",
        "compose.yaml: services.tool.network_mode: the host's network namespace is not allowed "
        "by the operator's policy (allowHostNamespaces)",
        "compose.yaml: services.tool.pid: the host's PID namespace is not allowed by the "
        "operator's policy (allowHostNamespaces)",
        "compose.yaml: services.tool.ipc: the host's IPC namespace is not allowed by the "
        "operator's policy (allowHostNamespaces)",
        "compose.yaml: services.tool.cap_add: adding Linux capabilities other than "
        "NET_BIND_SERVICE (NET_ADMIN) is not allowed by the operator's policy "
        "(allowCapabilities)",
        "compose.yaml: services.tool.devices: host devices is not allowed by the operator's "
        "policy (allowDevices)",
        "compose.yaml: services.tool.volumes[0]: bind mount of host path '/var/run/docker.sock' "
        "is not allowed by the operator's policy (allowBindMounts); use a named volume, or a "
        "path inside the project; the Docker socket would not help anyway: Kubernetes nodes "
        "run containerd, with no Docker API",
    ]


def test_escalations_the_policy_allows_are_rendered() -> None:
    allow_all = replace(SETTINGS, policy=Policy(True, True, True, True, True, True))
    pod = service_objects(planned(RISKY, settings=allow_all))[0]["spec"]["template"]["spec"]
    socket = "host-var-run-docker-sock-" + pod["volumes"][0]["name"].rsplit("-", 1)[1]
    assert (pod["hostNetwork"], pod["hostPID"], pod["hostIPC"]) == (True, True, True)
    assert pod["containers"][0]["securityContext"] == {
        "privileged": True,
        "capabilities": {"add": ["NET_ADMIN"]},
    }
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["volumes"][0] == {"name": socket, "hostPath": {"path": "/var/run/docker.sock"}}
    assert pod["containers"][0]["volumeMounts"][0] == {
        "name": socket,
        "mountPath": "/var/run/docker.sock",
    }
    assert pod["volumes"][1]["hostPath"] == {"path": "/dev/fuse"}


def test_objects_whose_names_clash_are_refused() -> None:
    """Service `chat-llm` would overwrite model `llm`'s Service and Deployment in app `chat`."""
    with pytest.raises(ComposeError) as raised:
        planned(Service(name="chat-llm", image="web:1", ports=(Port(target=80),)))
    assert raised.value.messages == [
        "compose.yaml: services.chat-llm: its Deployment would be named 'chat-llm', like the "
        "one of models.llm; rename one",
        "compose.yaml: services.chat-llm: its Service would be named 'chat-llm', like the one "
        "of models.llm; rename one",
    ]


def test_a_patched_deployment_may_not_be_one_of_ours() -> None:
    with pytest.raises(ComposeError) as raised:
        planned(Service(name="chat-llm", models=(LLM_BINDING,)))
    assert raised.value.messages == [
        "compose.yaml: services.chat-llm: its Deployment would be named 'chat-llm', like the "
        "one of models.llm; rename one",
    ]


def test_x_kubernetes_node_selector_and_tolerations_reach_the_pod() -> None:
    real = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    app = Service(
        name="app",
        image="app:1",
        resources=Resources(gpus=1),
        node_selector={"zone": "b", "type": "real"},
        tolerations=(gpu, real),
    )
    pod = service_objects(planned(app))[0]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"type": "real", "zone": "b"}
    assert pod["tolerations"] == [gpu, real]


def test_a_service_without_placement_has_no_node_selector_or_tolerations() -> None:
    pod = service_objects(planned(Service(name="web", image="web:1")))[0]["spec"]["template"][
        "spec"
    ]
    assert "nodeSelector" not in pod
    assert "tolerations" not in pod
