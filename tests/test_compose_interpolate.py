"""Interpolation follows compose-go's `template` package, form by form."""

from __future__ import annotations

import pytest

from compose_operator.compose import load_project
from compose_operator.compose.interpolate import InterpolationError, interpolate
from compose_operator.errors import ComposeError, Problem, Warning

ENV = {"SET": "value", "EMPTY": "", "B": "bee", "NESTED": "${SET}"}


@pytest.mark.parametrize(
    ("template", "expected", "unset"),
    [
        ("plain text", "plain text", ()),
        ("$SET", "value", ()),
        ("${SET}", "value", ()),
        ("a${SET}b$SET.c", "avaluebvalue.c", ()),
        ("$set", "", ("set",)),
        ("$$", "$", ()),
        ("$${SET}", "${SET}", ()),
        ("echo $$1 $$HOME", "echo $1 $HOME", ()),
        ("$UNSET", "", ("UNSET",)),
        ("${UNSET}x${UNSET}", "x", ("UNSET",)),
        ("${SET:-default}", "value", ()),
        ("${EMPTY:-default}", "default", ()),
        ("${UNSET:-default}", "default", ()),
        ("${SET-default}", "value", ()),
        ("${EMPTY-default}", "", ()),
        ("${UNSET-default}", "default", ()),
        ("${UNSET:-}", "", ()),
        ("${UNSET:-a:b-c}", "a:b-c", ()),
        ("${SET:+replacement}", "replacement", ()),
        ("${EMPTY:+replacement}", "", ()),
        ("${UNSET:+replacement}", "", ()),
        ("${SET+replacement}", "replacement", ()),
        ("${EMPTY+replacement}", "replacement", ()),
        ("${UNSET+replacement}", "", ()),
        ("${SET:?must be set}", "value", ()),
        ("${EMPTY?may be empty}", "", ()),
        ("${UNSET:-${B}}", "bee", ()),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep", ()),
        ("${UNSET:-${ALSO_UNSET}}", "", ("ALSO_UNSET",)),
        ("${SET:-${NEVER_USED}}", "value", ()),
        ("${UNSET:-{braces}}", "{braces}", ()),
        ("${UNSET:-x}}", "x}", ()),
        ("${NESTED}", "${SET}", ()),
        ("${_under_score9}", "", ("_under_score9",)),
        ("${UNSET:-$$}", "$", ()),
        # A `$` that starts no variable stays as written (compose-go's pattern does not match).
        ("$", "$", ()),
        ("echo $1 $-", "echo $1 $-", ()),
        ("after:exec:echo RESPONSE=$(cat) >&2", "after:exec:echo RESPONSE=$(cat) >&2", ()),
        ("cost: 5$", "cost: 5$", ()),
        ("$(echo $SET)", "$(echo value)", ()),
        ("${UNSET:-$(date)}", "$(date)", ()),
        ("$ {SET}", "$ {SET}", ()),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_interpolate(template: str, expected: str, unset: tuple[str, ...]) -> None:
    result = interpolate(template, ENV)
    assert (result.value, result.unset) == (expected, unset)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${}", "invalid interpolation format in '${}'; write $${ for a literal ${"),
        ("${SET", "invalid interpolation format in '${SET'; write $${ for a literal ${"),
        ("${SET!}", "invalid interpolation format in '${SET!}'; write $${ for a literal ${"),
        ("${1X}", "invalid interpolation format in '${1X}'; write $${ for a literal ${"),
        (
            "${UNSET:-${}}",
            "invalid interpolation format in '${UNSET:-${}}'; write $${ for a literal ${",
        ),
        ("${UNSET:?}", "required variable UNSET is missing a value"),
        ("${UNSET:?set it}", "required variable UNSET is missing a value: set it"),
        ("${EMPTY:?not empty}", "required variable EMPTY is missing a value: not empty"),
        ("${UNSET?set it}", "required variable UNSET is missing a value: set it"),
        ("${UNSET:?need ${B}}", "required variable UNSET is missing a value: need bee"),
        (
            "${A:-" * 40 + "x" + "}" * 40,
            "interpolation nested deeper than 32 levels in '" + "${A:-" * 40 + "x" + "}" * 40 + "'",
        ),
    ],
    ids=lambda value: value[:30],
)
def test_interpolation_errors(template: str, message: str) -> None:
    with pytest.raises(InterpolationError) as caught:
        interpolate(template, ENV)
    assert str(caught.value) == message


def test_values_come_only_from_the_mapping_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_PROCESS", "leaked")
    assert interpolate("${FROM_PROCESS:-safe}", {}).value == "safe"


def test_every_string_scalar_is_interpolated_and_keys_are_not() -> None:
    project = load_project(
        """
services:
  app:
    image: "repo/app:${TAG}"
    environment:
      KEEP: "$TAG"
      LIST: ${TAG:-x}
    labels: {"${KEY}": "tag=$TAG"}
""",
        environment={"TAG": "1.2", "KEY": "nope"},
    )
    service = project.services["app"]
    assert (service.image, service.environment, service.labels) == (
        "repo/app:1.2",
        {"KEEP": "1.2", "LIST": "1.2"},
        {"${KEY}": "tag=1.2"},
    )


def test_unset_variable_is_a_warning_at_its_path() -> None:
    project = load_project("services:\n  app:\n    image: app:$TAG\n")
    assert project.services["app"].image == "app:"
    assert project.warnings == (
        Warning("services.app.image", 'the "TAG" variable is not set; using an empty string'),
    )


def test_required_variable_is_a_problem_at_the_key_path() -> None:
    text = "services:\n  app:\n    image: app\n    user: ${USER_ID:?give a user id}\n"
    with pytest.raises(ComposeError) as caught:
        load_project(text)
    assert caught.value.problems == (
        Problem(
            "services.app.user", "required variable USER_ID is missing a value: give a user id", 4
        ),
    )


def test_all_interpolation_problems_are_collected() -> None:
    text = "services:\n  app:\n    image: ${1}\n    user: ${U:?}\n"
    with pytest.raises(ComposeError) as caught:
        load_project(text)
    assert caught.value.messages == [
        "compose.yaml: services.app.image: invalid interpolation format in '${1}'; "
        "write $${ for a literal ${ (line 3)",
        "compose.yaml: services.app.user: required variable U is missing a value (line 4)",
    ]


def test_a_dollar_that_starts_no_variable_reaches_the_container_as_written() -> None:
    """Docker's agent examples pass `$(cat)` to a shell inside the container (an MCP
    interceptor); Compose leaves it alone, so a refusal here broke a working file."""
    project = load_project(
        """
services:
  gateway:
    image: gw
    command: ["--interceptor", "after:exec:echo RESPONSE=$(cat) >&2", "price=$5"]
"""
    )
    assert project.services["gateway"].command == (
        "--interceptor",
        "after:exec:echo RESPONSE=$(cat) >&2",
        "price=$5",
    )
    assert project.warnings == ()
