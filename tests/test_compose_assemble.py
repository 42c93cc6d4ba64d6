"""`include`, `extends` and `env_file` from the project's files, with Compose's merge rules."""

from __future__ import annotations

from typing import Any

import pytest

from compose_operator.compose import load_project
from compose_operator.compose.merge import merge, reset, unique
from compose_operator.compose.projectfiles import CarriedFiles, project_file
from compose_operator.errors import ComposeError
from compose_operator.project import ComposeProject, Port, VolumeMount


def files(contents: dict[str, str] | None = None) -> CarriedFiles:
    return CarriedFiles({p: project_file(p, c) for p, c in (contents or {}).items()})


def load(text: str, carried: CarriedFiles, **environment: str) -> ComposeProject:
    return load_project(text, files=carried, environment=environment)


def problems(text: str, carried: CarriedFiles) -> list[str]:
    with pytest.raises(ComposeError) as caught:
        load_project(text, files=carried)
    return caught.value.messages


# --- merge rules (compose-go override/merge.go, uncity.go) ---------------------------------


ENV_MAP = {"environment": {"A": 1, "B": None}}
MODELS_AS_MAP = {"models": {"llm": None, "emb": {"endpoint_var": "E"}}}
HEALTHY = {"depends_on": {"db": {"condition": "service_healthy"}}}


@pytest.mark.parametrize(
    ("base", "other", "expected"),
    [
        ({"image": "a", "x": 1}, {"image": "b"}, {"image": "b", "x": 1}),
        ({"command": ["a", "b"]}, {"command": ["c"]}, {"command": ["c"]}),
        ({"entrypoint": "a"}, {"entrypoint": ["b"]}, {"entrypoint": ["b"]}),
        (ENV_MAP, {"environment": ["C=3"]}, {"environment": ["A=1", "B", "C=3"]}),
        ({"environment": ["A=1"]}, {"environment": {"A": "2"}}, {"environment": ["A=1", "A=2"]}),
        ({"labels": {"k": True}}, {"labels": {"j": 1.0}}, {"labels": ["k=true", "j=1"]}),
        ({"ports": ["80"]}, {"ports": ["81"]}, {"ports": ["80", "81"]}),
        ({"models": ["llm"]}, {"models": {"emb": {"endpoint_var": "E"}}}, MODELS_AS_MAP),
        (
            {"depends_on": ["db"]},
            HEALTHY,
            {"depends_on": {"db": {"condition": "service_healthy", "required": True}}},
        ),
        ({"build": "."}, {"build": {"target": "t"}}, {"build": {"context": ".", "target": "t"}}),
        (
            {"healthcheck": {"test": ["CMD", "a"], "retries": 3}},
            {"healthcheck": {"test": ["CMD", "b"]}},
            {"healthcheck": {"test": ["CMD", "b"], "retries": 3}},
        ),
    ],
)
def test_service_merge_rules(
    base: dict[str, Any], other: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert merge(base, other, ("services", "app")) == expected


def test_merge_leaves_its_inputs_alone() -> None:
    base, other = {"environment": {"A": "1"}}, {"environment": {"B": "2"}}
    merge(base, other, ("services", "s"))
    assert (base, other) == ({"environment": {"A": "1"}}, {"environment": {"B": "2"}})


def test_unique_keeps_the_later_entry_at_the_earlier_position() -> None:
    tree = {
        "services": {
            "s": {
                "environment": ["A=1", "B=2", "A=3"],
                "volumes": [
                    "./a:/data",
                    "cache:/cache",
                    {"type": "volume", "source": "d", "target": "/data"},
                ],
                "ports": ["80:80", "80:80", {"target": 81}],
                "secrets": ["key", {"source": "other", "target": "/run/secrets/key"}],
                "command": ["x", "x"],
            }
        }
    }
    assert unique(tree)["services"]["s"] == {
        "environment": ["A=3", "B=2"],
        "volumes": [{"type": "volume", "source": "d", "target": "/data"}, "cache:/cache"],
        "ports": ["80:80", {"target": 81}],
        "secrets": [{"source": "other", "target": "/run/secrets/key"}],
        "command": ["x", "x"],
    }


def test_reset_drops_mapping_entries_by_path() -> None:
    tree = {"services": {"a": {"ports": [1], "image": "x"}, "b": {"ports": [2]}}}
    assert reset(tree, [("services", "*", "ports")]) == {"services": {"a": {"image": "x"}, "b": {}}}


# --- extends ---------------------------------------------------------------------------------


def test_extends_a_service_of_the_same_file() -> None:
    project = load(
        """
services:
  base:
    image: app:1
    environment: {LEVEL: info, MODE: base}
    ports: ["8080"]
    command: [serve, --base]
  web:
    extends: base
    environment: [MODE=web]
    ports: ["9090"]
    command: [serve]
""",
        files(),
    )
    web = project.services["web"]
    assert (web.image, web.environment, web.command) == (
        "app:1",
        {"LEVEL": "info", "MODE": "web"},
        ("serve",),
    )
    assert web.ports == (Port(8080), Port(9090))


def test_extends_a_service_of_another_file_rebases_its_paths() -> None:
    carried = files(
        {
            "common/base.yaml": """
services:
  agent:
    image: agent:${TAG}
    env_file: ./agent.env
    volumes: ["./prompts:/prompts:ro"]
""",
            "common/agent.env": "MODEL_TEMPERATURE=0.2\n",
            "common/prompts/system.txt": "be brief",
        }
    )
    project = load(
        """
services:
  agent:
    extends: {file: common/base.yaml, service: agent}
    environment: {EXTRA: "1"}
""",
        carried,
        TAG="2",
    )
    agent = project.services["agent"]
    assert agent.image == "agent:2"
    assert agent.environment == {"MODEL_TEMPERATURE": "0.2", "EXTRA": "1"}
    assert agent.volumes == (VolumeMount("common/prompts", "/prompts", read_only=True, bind=True),)
    assert list(project.files) == ["common/prompts/system.txt"]


def test_override_tag_replaces_what_extends_would_merge() -> None:
    project = load(
        """
services:
  base: {image: a, ports: ["80", "81"]}
  web:
    extends: base
    ports: !override ["90"]
""",
        files(),
    )
    assert project.services["web"].ports == (Port(90),)


def test_reset_tag_removes_what_extends_would_keep() -> None:
    project = load(
        """
services:
  base: {image: a, environment: {A: "1"}, ports: ["80"]}
  web:
    extends: base
    ports: !reset []
""",
        files(),
    )
    assert (project.services["web"].ports, project.services["web"].environment) == ((), {"A": "1"})


def test_extends_problems_are_named() -> None:
    assert problems(
        """
services:
  a: {extends: b}
  b: {extends: a}
  c: {extends: nowhere}
  d: {extends: {file: gone.yaml, service: x}}
""",
        files(),
    ) == [
        "compose.yaml: services.a.extends: extends cycle: the main file:b -> the main file:a -> b"
        " (line 3)",
        "compose.yaml: services.b.extends: extends cycle: the main file:a -> the main file:b -> a"
        " (line 4)",
        'compose.yaml: services.c.extends: cannot extend service "c": service "nowhere" not '
        "found (line 5)",
        "compose.yaml: services.d.extends.file: gone.yaml is not among the project files; carry "
        "it in spec.files (`compose-operator convert` does) (line 6)",
    ]


# --- include -----------------------------------------------------------------------------------


def test_include_imports_services_and_models_with_their_own_folder() -> None:
    carried = files(
        {
            "db/compose.yaml": """
services:
  db:
    image: postgres:${PG}
    volumes: ["./init:/docker-entrypoint-initdb.d:ro"]
models:
  embed: {model: ai/embeddinggemma}
""",
            "db/init/schema.sql": "create table t();",
            "db/.env": "PG=17\n",
        }
    )
    project = load(
        "include: [db/compose.yaml]\nservices:\n  app: {image: app, models: [embed]}\n", carried
    )
    assert project.services["db"].image == "postgres:17"
    assert project.services["db"].volumes == (
        VolumeMount("db/init", "/docker-entrypoint-initdb.d", read_only=True, bind=True),
    )
    assert list(project.models) == ["embed"]
    assert list(project.files) == ["db/init/schema.sql"]


def test_the_parent_environment_wins_over_an_include_env_file() -> None:
    carried = files(
        {
            "sub/compose.yaml": (
                "services:\n  s: {image: 'x:${TAG}', environment: {R: '${REGION}'}}\n"
            ),
            "sub/values.env": "TAG=from-file\nREGION=eu\n",
        }
    )
    project = load(
        "include:\n  - path: sub/compose.yaml\n    env_file: sub/values.env\n",
        carried,
        TAG="parent",
    )
    assert (project.services["s"].image, project.services["s"].environment) == (
        "x:parent",
        {"R": "eu"},
    )


def test_the_including_file_overrides_an_imported_definition() -> None:
    carried = files(
        {"other.yaml": "services:\n  s: {image: a, environment: {A: '1'}, ports: ['80']}\n"}
    )
    project = load(
        "include: [other.yaml]\nservices:\n  s:\n    environment: {B: '2'}\n    ports: !reset []\n",
        carried,
    )
    service = project.services["s"]
    assert (service.image, service.environment, service.ports) == ("a", {"A": "1", "B": "2"}, ())


def test_several_paths_of_one_include_merge_like_several_files() -> None:
    carried = files(
        {
            "base.yaml": "services:\n  s: {image: a, environment: {A: '1'}}\n",
            "override.yaml": "services:\n  s: {image: b}\n",
        }
    )
    project = load("include:\n  - path: [base.yaml, override.yaml]\n", carried)
    assert (project.services["s"].image, project.services["s"].environment) == ("b", {"A": "1"})


def test_problems_in_an_included_file_name_that_file_and_line() -> None:
    carried = files(
        {
            "inc.yaml": "services:\n  s:\n    image: ${A:?need A}\n",
            "loop.yaml": "include: [loop.yaml]\n",
        }
    )
    assert problems("include: [inc.yaml, loop.yaml, nope.yaml]\n", carried) == [
        "compose.yaml: include[2]: nope.yaml is not among the project files; carry it in "
        "spec.files (`compose-operator convert` does) (line 1)",
        "inc.yaml: services.s.image: required variable A is missing a value: need A (line 3)",
        "loop.yaml: include[0]: include cycle: loop.yaml -> loop.yaml (line 1)",
    ]


def test_a_key_an_included_file_got_wrong_is_located_in_that_file() -> None:
    carried = files({"inc.yaml": "services:\n  s:\n    image: a\n    enviroment: {}\n"})
    assert problems("include: [inc.yaml]\n", carried) == [
        "inc.yaml: services.s.enviroment: unknown key 'enviroment'; did you mean 'environment'? "
        "(line 4)"
    ]


# --- env_file -------------------------------------------------------------------------------------


def test_env_file_values_are_overridden_by_environment() -> None:
    carried = files(
        {
            "app.env": "A=from-file\nB=${HOST}/x\nC='kept'\n",
            "extra.env": "C=later-file\n",
        }
    )
    project = load(
        """
services:
  app:
    image: a
    env_file: [app.env, {path: extra.env}, {path: missing.env, required: false}]
    environment: {A: own, HOST: svc}
""",
        carried,
    )
    assert project.services["app"].environment == {
        "A": "own",
        "B": "svc/x",
        "C": "later-file",
        "HOST": "svc",
    }


def test_env_file_interpolation_prefers_the_project_environment() -> None:
    carried = files({"app.env": "URL=http://${HOST}\n"})
    project = load(
        "services:\n  app: {image: a, env_file: app.env, environment: {HOST: own}}\n",
        carried,
        HOST="project",
    )
    assert project.services["app"].environment["URL"] == "http://project"


def test_a_bare_environment_entry_without_a_value_drops_the_env_file_value() -> None:
    carried = files({"app.env": "TOKEN=from-file\n"})
    project = load(
        "services:\n  app: {image: a, env_file: app.env, environment: [TOKEN]}\n", carried
    )
    assert "TOKEN" not in project.services["app"].environment


def test_label_file_gives_labels() -> None:
    carried = files({"labels.txt": "team=ai\ntier=web\n"})
    project = load(
        "services:\n  app: {image: a, label_file: labels.txt, labels: {tier: api}}\n", carried
    )
    assert project.services["app"].labels == {"team": "ai", "tier": "api"}
