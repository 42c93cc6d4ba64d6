"""The Dockerfile and the versions the image, chart and manifests must agree on.

Building the image needs a container engine and is done by e2e/images/build.sh; these checks
pin what the manifests rely on: a numeric non-root user, the single entry point, a base image
that can be swapped, and one version everywhere.
"""

from __future__ import annotations

import tomllib

import yaml

from tests.packaging_support import CHART, MANIFESTS, REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each Dockerfile line, continuations joined."""
    joined = DOCKERFILE.replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines)
        if word and not word.startswith("#")
    ]


def test_base_images_are_arguments_declared_before_any_stage() -> None:
    steps = instructions()
    first_from = next(i for i, (word, _) in enumerate(steps) if word == "FROM")
    assert ("ARG", "BASE_IMAGE=python:3.11-slim") in steps[:first_from]
    assert [args for word, args in steps if word == "FROM"][1:] == [
        "${BASE_IMAGE} AS build",
        "${BASE_IMAGE}",
    ]


def test_the_image_runs_compose_operator_as_a_numeric_non_root_user() -> None:
    final_stage = instructions()[
        max(i for i, (word, _) in enumerate(instructions()) if word == "FROM") :
    ]
    assert ("USER", "65532:65532") in final_stage
    assert ("ENTRYPOINT", '["compose-operator"]') in final_stage
    assert ("CMD", '["run"]') in final_stage


def test_the_image_installs_exactly_the_locked_runtime_dependencies() -> None:
    runs = [args for word, args in instructions() if word == "RUN"]
    assert runs == [
        "uv sync --frozen --no-dev --no-install-project",
        "uv sync --frozen --no-dev --no-editable",
    ]


def test_the_build_context_admits_what_the_dockerfile_copies() -> None:
    admitted = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {
        source.rstrip("/")
        for word, args in instructions()
        if word == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert copied == admitted == {"pyproject.toml", "uv.lock", "README.md", "operator"}


def test_one_version_for_project_chart_and_manifests() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    settings = yaml.safe_load((MANIFESTS / "settings.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == project
    assert kustomization["images"] == [
        {"name": "ghcr.io/compose-operator/compose-operator", "newTag": project}
    ]
    assert settings["pullerImage"] == f"ghcr.io/compose-operator/compose-operator:{project}"


def test_pods_run_as_the_image_user() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    deployment = yaml.safe_load((MANIFESTS / "deployment.yaml").read_text())
    pod_context = deployment["spec"]["template"]["spec"]["securityContext"]
    assert values["podSecurityContext"]["runAsUser"] == pod_context["runAsUser"] == 65532
    assert values["podSecurityContext"]["runAsGroup"] == pod_context["runAsGroup"] == 65532
