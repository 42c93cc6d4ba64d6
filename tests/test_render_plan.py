"""Whole plans over generated projects: only ComposeError escapes, names stay valid, and the
same input always gives the same output."""

from __future__ import annotations

import re

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from compose_operator.compose import env_prefix
from compose_operator.errors import ComposeError
from compose_operator.plan import Plan
from compose_operator.project import (
    ComposeProject,
    KubernetesOptions,
    Model,
    ModelBinding,
    Port,
    Service,
    Volume,
    VolumeMount,
)
from compose_operator.render import plan
from compose_operator.settings import Settings

DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
KEY = st.from_regex(r"[a-zA-Z0-9._-]{1,40}", fullmatch=True)
REFERENCES = st.sampled_from(
    ["ai/smollm2", "ai/gemma3:4B-Q4_K_M", "registry.local:5000/team/m@sha256:" + "a" * 64,
     "hf.co/org/repo:Q4_K_M", "hf.co/Qwen/Qwen3-0.6B"]
)  # fmt: skip
VALUE_TEXT = st.text(max_size=20).filter(lambda text: not text.startswith("-"))


@st.composite
def models(draw: st.DrawFn, key: str) -> Model:
    return Model(
        key=key,
        model=draw(REFERENCES),
        context_size=draw(st.none() | st.integers(1, 1 << 20)),
        runtime_flags=tuple(draw(st.lists(VALUE_TEXT, max_size=3))),
        labels=draw(
            st.dictionaries(
                st.sampled_from(["com.example/a", "cloud.instance-type", "cloud.zone"]),
                st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True),
            )
        ),
        kubernetes=KubernetesOptions(
            engine=draw(st.sampled_from([None, "llama.cpp", "vllm"])),
            gpus=draw(st.none() | st.integers(0, 8)),
            replicas=draw(st.integers(1, 3)),
        ),
    )


@st.composite
def projects(draw: st.DrawFn) -> ComposeProject:
    keys = draw(st.lists(KEY, min_size=1, max_size=4, unique=True))
    service_names = draw(st.lists(KEY, max_size=4, unique=True))
    services = {}
    for name in service_names:
        used = draw(st.lists(st.sampled_from(keys), max_size=len(keys), unique=True))
        env_names = st.from_regex(r"[A-Z_]{1,8}", fullmatch=True)
        ports = draw(st.lists(st.integers(1, 65535), max_size=2))
        mounts = draw(st.lists(KEY, max_size=2, unique=True))
        services[name] = Service(
            name=name,
            image=draw(st.none() | st.just(f"{name.lower()}:1")),
            environment=draw(st.dictionaries(env_names, VALUE_TEXT)),
            ports=tuple(Port(target=port) for port in ports),
            volumes=tuple(VolumeMount(source, f"/{i}") for i, source in enumerate(mounts)),
            models=tuple(
                ModelBinding(key, f"{env_prefix(key)}_URL", f"{env_prefix(key)}_MODEL")
                for key in used
            ),
        )
    return ComposeProject(
        models={key: draw(models(key)) for key in keys},
        services=services,
        volumes={"data": Volume(name="data", size="2Gi")},
    )


def planned_or_refused(project: ComposeProject, app: str) -> Plan | None:
    try:
        return plan(project, app=app, namespace="team", settings=Settings())
    except ComposeError as error:
        assert error.problems, "a ComposeError always says what is wrong"
        return None


@settings(max_examples=60, deadline=None)
@given(
    project=projects(), app=st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,60}[a-z0-9])?", fullmatch=True)
)
def test_any_project_plans_to_valid_names_or_one_compose_error(
    project: ComposeProject, app: str
) -> None:
    result = planned_or_refused(project, app)
    if result is None:
        return
    for manifest in result.objects:
        metadata = manifest["metadata"]
        assert len(metadata["name"]) <= 63 and DNS_1035.fullmatch(metadata["name"])
        assert all(LABEL_VALUE.fullmatch(value) for value in metadata["labels"].values())
    names = [(o["kind"], o["metadata"]["name"]) for o in result.objects]
    assert len(set(names)) == len(names), "no two objects share a kind and name"
    kinds = [kind for kind, _ in names]
    assert kinds == sorted(
        kinds,
        key=[
            "ConfigMap", "PersistentVolumeClaim", "Service", "Deployment", "PodDisruptionBudget"
        ].index,
    )  # fmt: skip
    again = plan(project, app=app, namespace="team", settings=Settings())
    assert again == result
    assert yaml.safe_dump_all(again.objects) == yaml.safe_dump_all(result.objects)
