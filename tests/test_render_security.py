"""Every pod the operator renders meets Pod Security "restricted"; relaxations only by policy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compose_operator import templates
from compose_operator.compose import load_project
from compose_operator.errors import ComposeError
from compose_operator.plan import Manifest
from compose_operator.project import (
    CacheSpec,
    ComposeProject,
    Escalations,
    KubernetesOptions,
    Model,
    Service,
    Volume,
    VolumeMount,
)
from compose_operator.render import plan, security
from compose_operator.settings import Policy, Settings, load_settings
from tests import pss

SETTINGS = Settings()
EXAMPLES = Path(__file__).parent.parent / "examples"
COMPOSE_FILES = sorted(
    [
        *(p for p in EXAMPLES.glob("*.yaml") if p.name != "settings.yaml"),
        *(EXAMPLES / "chat-app").glob("compose*.yaml"),
    ]
)


def objects(*services: Service, settings: Settings = SETTINGS, **models: Model) -> list[Manifest]:
    project = ComposeProject(
        models=models,
        services={s.name: s for s in services},
        volumes={"data": Volume(name="data")},
    )
    return list(plan(project, app="chat", namespace="team", settings=settings).objects)


def pod(found: list[Manifest], name: str) -> dict[str, Any]:
    (spec,) = [
        o["spec"]["template"]["spec"]
        for o in found
        if o["kind"] == "Deployment" and o["metadata"]["name"] == name
    ]
    return dict(spec)


def refused(*services: Service, settings: Settings = SETTINGS) -> list[str]:
    with pytest.raises(ComposeError) as raised:
        objects(*services, settings=settings)
    return [problem.message for problem in raised.value.problems]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_pod_of_every_example_meets_the_restricted_profile(path: Path) -> None:
    settings = load_settings((EXAMPLES / "settings.yaml").read_text())
    project = load_project(path.read_text(), file=path.name)
    result = plan(project, app="chat", namespace="team", settings=settings)
    workloads = pss.pods_of(list(result.objects))
    assert workloads
    for name, spec, pod_annotations in workloads:
        assert pss.violations(spec, pod_annotations) == [], name


@given(
    gpus=st.integers(min_value=0, max_value=4),
    engine=st.sampled_from(["llama.cpp", "vllm"]),
    reference=st.sampled_from(["ai/smollm2", "hf.co/org/repo:Q4_K_M", "registry.local/a/b:v1"]),
    cached=st.booleans(),
)
def test_every_model_pod_meets_the_restricted_profile(
    gpus: int, engine: str, reference: str, cached: bool
) -> None:
    options = KubernetesOptions(
        engine=engine, gpus=gpus, cache=CacheSpec(size="10Gi") if cached else None
    )
    spec = pod(objects(llm=Model(key="llm", model=reference, kubernetes=options)), "chat-llm")
    assert pss.violations(spec) == []
    assert spec["securityContext"]["runAsUser"] == security.NON_ROOT_ID
    assert spec["securityContext"]["fsGroup"] == security.NON_ROOT_ID


def test_the_puller_writes_only_to_the_model_volume() -> None:
    spec = pod(objects(llm=Model(key="llm", model="ai/smollm2")), "chat-llm")
    (puller,) = spec["initContainers"]
    assert puller["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "allowPrivilegeEscalation": False,
    }


def test_engines_get_a_writable_home_since_their_user_has_none() -> None:
    spec = pod(objects(llm=Model(key="llm", model="ai/smollm2")), "chat-llm")
    (engine,) = spec["containers"]
    assert {"name": "HOME", "value": "/tmp"} in engine["env"]
    assert {"name": "tmp", "mountPath": "/tmp"} in engine["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in spec["volumes"]
    assert "readOnlyRootFilesystem" not in engine["securityContext"]


def test_a_replacement_template_is_hardened_too() -> None:
    """A platform's template that leaves out the security context (or sets its own user)."""
    text = templates._packaged(templates.MODEL_DEPLOYMENT) or ""
    text = text.replace("      automountServiceAccountToken: false\n", "")
    text = text.replace("      enableServiceLinks: false\n", "")
    text = text.replace(
        "    spec:\n", "    spec:\n      securityContext: {runAsUser: 1000, runAsNonRoot: false}\n"
    )
    settings = replace(SETTINGS, templates={templates.MODEL_DEPLOYMENT: text})
    spec = pod(objects(llm=Model(key="llm", model="ai/smollm2"), settings=settings), "chat-llm")
    assert pss.violations(spec) == []
    assert spec["securityContext"]["runAsUser"] == 1000
    assert (spec["automountServiceAccountToken"], spec["enableServiceLinks"]) == (False, False)


def test_a_service_runs_as_the_images_user_but_never_as_root() -> None:
    spec = pod(objects(Service(name="web", image="web:1")), "web")
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["containers"][0]["securityContext"] == {
        "capabilities": {"drop": ["ALL"]},
        "allowPrivilegeEscalation": False,
    }
    assert spec["enableServiceLinks"] is False
    assert pss.violations(spec) == []


@pytest.mark.parametrize("cap", ["NET_BIND_SERVICE", "CAP_NET_BIND_SERVICE", "net_bind_service"])
def test_net_bind_service_is_allowed_by_default_as_restricted_allows_it(cap: str) -> None:
    web = Service(name="web", image="nginx:1", escalations=Escalations(cap_add=(cap,)))
    spec = pod(objects(web), "web")
    assert spec["containers"][0]["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["NET_BIND_SERVICE"],
    }
    assert pss.violations(spec) == []


def test_other_capabilities_need_allow_capabilities() -> None:
    web = Service(
        name="web", image="web:1", escalations=Escalations(cap_add=("NET_BIND_SERVICE", "SYS_TIME"))
    )
    assert refused(web) == [
        "adding Linux capabilities other than NET_BIND_SERVICE (SYS_TIME) is not allowed by "
        "the operator's policy (allowCapabilities)"
    ]
    allowed = replace(SETTINGS, policy=Policy(allow_capabilities=True))
    context = pod(objects(web, settings=allowed), "web")["containers"][0]["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "SYS_TIME"]}
    assert context["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("cap", ["SYS_ADMIN", "ALL"])
def test_sys_admin_and_all_come_without_the_no_escalation_flag_the_api_refuses_beside_them(
    cap: str,
) -> None:
    web = Service(name="web", image="web:1", escalations=Escalations(cap_add=(cap,)))
    allowed = replace(SETTINGS, policy=Policy(allow_capabilities=True))
    found = objects(web, settings=allowed)
    context = pod(found, "web")["containers"][0]["securityContext"]
    assert "allowPrivilegeEscalation" not in context
    kubernetes_validate.validate(found[0], "1.36", strict=True)


def test_a_privileged_container_the_policy_allows_is_not_contradicted() -> None:
    tool = Service(name="tool", image="tool:1", escalations=Escalations(privileged=True))
    allowed = replace(SETTINGS, policy=Policy(allow_privileged=True))
    context = pod(objects(tool, settings=allowed), "tool")["containers"][0]["securityContext"]
    assert context == {"privileged": True}


def test_read_only_is_a_read_only_root_filesystem() -> None:
    compose = "services:\n  web:\n    image: web:1\n    read_only: true\n    cap_drop: [ALL]\n"
    project = load_project(compose)
    assert project.warnings == ()
    result = plan(project, app="chat", namespace="team", settings=SETTINGS)
    context = pod(list(result.objects), "web")["containers"][0]["securityContext"]
    assert context["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("user", ["0", "0:0", "root", "root:root", "0:1000"])
def test_root_is_refused_unless_the_policy_allows_it(user: str) -> None:
    web = Service(name="web", image="web:1", user=user)
    assert refused(web) == [
        "running as root (user 0) is not allowed by the operator's policy (allowRoot)"
    ]
    allowed = replace(SETTINGS, policy=Policy(allow_root=True))
    spec = pod(objects(web, settings=allowed), "web")
    assert spec["containers"][0]["securityContext"]["runAsUser"] == 0
    assert "runAsNonRoot" not in spec["securityContext"]
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec},
        "1.36",
        strict=True,
    )


def test_a_non_root_user_and_group_are_kept() -> None:
    spec = pod(objects(Service(name="web", image="web:1", user="1000:0")), "web")
    assert spec["containers"][0]["securityContext"]["runAsUser"] == 1000
    assert spec["containers"][0]["securityContext"]["runAsGroup"] == 0
    assert pss.violations(spec) == []


def test_a_service_volume_belongs_to_its_group_so_a_non_root_user_can_write() -> None:
    data = VolumeMount(source="data", target="/data")
    plain = pod(objects(Service(name="db", image="db:1", volumes=(data,))), "db")
    assert plain["securityContext"]["fsGroup"] == security.NON_ROOT_ID
    own = pod(objects(Service(name="db", image="db:1", user="999:999", volumes=(data,))), "db")
    assert own["securityContext"]["fsGroup"] == 999
    assert pss.violations(own) == []


def test_harden_keeps_a_localhost_seccomp_profile_and_drops_unconfined() -> None:
    localhost = {"type": "Localhost", "localhostProfile": "x.json"}
    spec = security.harden(
        {
            "securityContext": {"seccompProfile": localhost},
            "containers": [
                {"name": "a", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}
            ],
        }
    )
    assert spec["securityContext"]["seccompProfile"] == localhost
    assert "seccompProfile" not in spec["containers"][0]["securityContext"]
    assert pss.violations(spec) == []


def load_and_plan(text: str, settings: Settings = SETTINGS) -> list[str]:
    """Every problem of loading and planning `text`; [] when it plans."""
    try:
        plan(load_project(text), app="chat", namespace="team", settings=settings)
    except ComposeError as error:
        return [problem.message for problem in error.problems]
    return []


@pytest.mark.parametrize("name", ["", "A=B", "LLM URL", "1X"])
def test_environment_names_kubernetes_refuses_are_refused_before_anything_is_applied(
    name: str,
) -> None:
    """Issue 12: env names "", "A=B" and "LLM URL" rendered (the API server refuses them)."""
    for environment in (f"{{'{name}': v}}", f"['{name}=v']"):
        if "=" in name and environment.startswith("["):
            continue  # in list form `A=B=v` is A with the value B=v, as in Compose
        found = load_and_plan(f"services:\n  web:\n    image: x\n    environment: {environment}\n")
        assert found == [
            f"{name!r} is not a valid environment variable name: letters, digits, '_', '-' and "
            "'.', not starting with a digit"
        ]


BINDING = (
    "models:\n  llm: {{model: ai/x}}\n"
    "services:\n  app:\n    {kind}\n    models:\n      llm: {{endpoint_var: {name}}}\n"
)


@pytest.mark.parametrize(
    "name",
    ["PATH", "LD_PRELOAD", "PYTHONHOME", "GLIBC_TUNABLES", "HTTPS_PROXY", "AWS_ENDPOINT_URL"],
)
@pytest.mark.parametrize("kind", ["image: app:1", "build: ."])
def test_variables_that_change_program_behaviour_are_refused_in_either_mode(
    name: str, kind: str
) -> None:
    """Issue 12: bind mode accepted GLIBC_TUNABLES, PYTHONHOME, AWS_ENDPOINT_URL, ..."""
    (message,) = load_and_plan(BINDING.format(kind=kind, name=name))
    assert message.startswith(f"{name} may not be set by a model binding: it changes what")
    assert message.endswith("; choose another name with endpoint_var")


def test_the_variable_denylist_is_the_platforms_to_change() -> None:
    text = BINDING.format(kind="image: app:1", name="OPENAI_BASE_URL")
    assert load_and_plan(text) == [], "the OpenAI SDK's base URL is what a binding is for"
    strict = replace(SETTINGS, policy=Policy(denied_env_names=("OPENAI_*",)))
    assert load_and_plan(text, strict) != []
    relaxed = replace(SETTINGS, policy=Policy(denied_env_names=()))
    assert load_and_plan(BINDING.format(kind="image: app:1", name="PATH"), relaxed) == []


@pytest.mark.parametrize(
    "key",
    [
        "container.apparmor.security.beta.kubernetes.io/web",
        "seccomp.security.alpha.kubernetes.io/pod",
        "sidecar.istio.io/inject",
        "linkerd.io/inject",
        "vault.hashicorp.com/agent-inject",
        "iam.amazonaws.com/role",
        "io.kubernetes.cri-o.Devices",
        "compose-operator.io/app",
    ],
)
def test_security_relevant_annotations_from_compose_labels_are_refused(key: str) -> None:
    """Issue 12: AppArmor `unconfined`, seccomp and `sidecar.istio.io/inject: "false"` passed."""
    service = load_and_plan(f"services:\n  web:\n    image: x\n    labels: {{'{key}': v}}\n")
    model = load_and_plan(f"models:\n  llm:\n    model: ai/x\n    labels: {{'{key}': v}}\n")
    for found in (service, model):
        (message,) = found
        assert message.startswith(f"{key} may not be set from a Compose file")


def test_ordinary_labels_still_become_annotations_and_the_denylist_can_change() -> None:
    labels = "{com.example.team: a, sidecar.istio.io/inject: 'false'}"
    text = f"services:\n  web:\n    image: x\n    labels: {labels}\n"
    assert load_and_plan(text) != []
    relaxed = replace(SETTINGS, policy=Policy(denied_annotations=("*.apparmor.*",)))
    assert load_and_plan(text, relaxed) == []


@pytest.mark.parametrize(
    "placement",
    [
        "tolerations: [{operator: Exists}]",
        "tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists}]",
        "nodeSelector: {node-role.kubernetes.io/control-plane: ''}",
        "nodeSelector: {node-role.kubernetes.io/master: ''}",
    ],
)
def test_control_plane_nodes_and_every_taint_need_allow_any_node(placement: str) -> None:
    """Issue 12: tolerate-everything and control-plane selectors passed without policy."""
    for text in (
        f"services:\n  web:\n    image: x\n    x-kubernetes: {{{placement}}}\n",
        f"models:\n  llm:\n    model: ai/x\n    x-kubernetes: {{{placement}}}\n",
    ):
        (message,) = load_and_plan(text)
        assert message.endswith("is not allowed by the operator's policy (allowAnyNode)")
        assert load_and_plan(text, replace(SETTINGS, policy=Policy(allow_any_node=True))) == []
    tolerant = "tolerations: [{key: nvidia.com/gpu, operator: Exists}]"
    assert (
        load_and_plan(f"services:\n  web:\n    image: x\n    x-kubernetes: {{{tolerant}}}\n") == []
    )
