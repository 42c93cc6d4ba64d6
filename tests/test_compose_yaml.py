"""Reading YAML: bounded, YAML 1.2 scalars like compose-go, Compose's tags, located errors."""

from __future__ import annotations

import math
from typing import Any

import pytest

from compose_operator.compose import load_project, yamlload
from compose_operator.compose.report import Report
from compose_operator.errors import ComposeError, Problem


def read(text: str) -> tuple[Any, list[Problem]]:
    report = Report()
    return yamlload.read(text, report), report.problems


def problems(text: str) -> tuple[Problem, ...]:
    with pytest.raises(ComposeError) as caught:
        load_project(text)
    return caught.value.problems


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("ports: [80:80]", {"ports": ["80:80"]}),
        ("a: yes\nb: on\nc: No", {"a": "yes", "b": "on", "c": "No"}),
        ("a: true\nb: False\nc: TRUE", {"a": True, "b": False, "c": True}),
        ("a: ~\nb: null\nc:\nd: Null", {"a": None, "b": None, "c": None, "d": None}),
        # A leading zero is octal, as go-yaml reads it (file modes are written `0440`).
        ("a: 42\nb: -7\nc: 0x1F\nd: 0o17\ne: 012", {"a": 42, "b": -7, "c": 31, "d": 15, "e": 10}),
        ("a: 1.5\nb: 1e3\nc: .5", {"a": 1.5, "b": 1000.0, "c": 0.5}),
        ("a: 2024-01-01\nb: 12:30:00", {"a": "2024-01-01", "b": "12:30:00"}),
        ("a: '42'\nb: \"true\"", {"a": "42", "b": "true"}),
        ("a: !!str 42\nb: !!int '7'\nc: !!float '2'", {"a": "42", "b": 7, "c": 2.0}),
        ("a: !reset\nb: !reset [1]\nc: 1", {"c": 1}),
        ("a: [1, !reset 2, 3]", {"a": [1, 3]}),
        (
            "a: !override [1]\nb: !override {c: 2}\nd: !override 5",
            {"a": [1], "b": {"c": 2}, "d": 5},
        ),
        ("a: !override '5'", {"a": "5"}),
        (
            "base: &b {p: 1, q: 2}\nm:\n  <<: *b\n  q: 3",
            {"base": {"p": 1, "q": 2}, "m": {"p": 1, "q": 3}},
        ),
        (
            "x: &x {a: 1}\ny: &y {a: 2, b: 2}\nm: {<<: [*x, *y], c: 3}",
            {"x": {"a": 1}, "y": {"a": 2, "b": 2}, "m": {"a": 1, "b": 2, "c": 3}},
        ),
        ("a: &a [1, 2]\nb: *a", {"a": [1, 2], "b": [1, 2]}),
        ("1: one\ntrue: t", {"1": "one", "true": "t"}),
        ("a: -.inf\nb: .Inf\nc: !!float '-1.5'", {"a": -math.inf, "b": math.inf, "c": -1.5}),
        ("a: !!null ''\nb: !!bool 'false'", {"a": None, "b": False}),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_scalars_resolve_as_yaml_1_2(text: str, value: dict[str, Any]) -> None:
    assert read(text) == (value, [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\na: 2\n", [Problem("a", 'mapping key "a" already defined at line 1', 2)]),
        (
            "s:\n  app:\n    image: x\n    image: y\n",
            [Problem("s.app.image", 'mapping key "image" already defined at line 3', 4)],
        ),
        ("a: !!int x\n", [Problem("a", "'x' is not a valid !!int value", 1)]),
        ("a: !custom 1\n", [Problem("a", "unsupported YAML tag !custom", 1)]),
        ("a: !!null x\n", [Problem("a", "'x' is not a valid !!null value", 1)]),
        ("a: !!bool yes\n", [Problem("a", "'yes' is not a valid !!bool value", 1)]),
        ("a: !!float abc\n", [Problem("a", "'abc' is not a valid !!float value", 1)]),
        ("a: !!str {b: 1}\n", [Problem("a", "unsupported YAML tag !!str", 1)]),
        ("a: !!map [1]\n", [Problem("a", "unsupported YAML tag !!map", 1)]),
        ("a: !!binary aGk=\n", [Problem("a", "unsupported YAML tag !!binary", 1)]),
        ("a: !!set {x}\n", [Problem("a", "unsupported YAML tag !!set", 1)]),
        ("a: 1\n---\nb: 2\n", [Problem("", "the file holds several YAML documents; give one")]),
        (
            "a: &a [1, *a]\n",
            [Problem("a[1]", "a YAML alias refers to the node that contains it", 1)],
        ),
        ("m: &m {<<: *m}\n", [Problem("m", "a YAML alias refers to the node that contains it", 1)]),
        (
            "m: {<<: 5}\n",
            [Problem("m", "a merge key (<<) takes a mapping or a list of mappings", 1)],
        ),
        ("? [a]\n: 1\n", [Problem("", "a mapping key must be a plain value (line 1)")]),
        ("a: \ud800\n", [Problem("", "the text is not valid UTF-8")]),
        ("[" * 70 + "]" * 70, [Problem("", "nesting deeper than 64 levels is refused")]),
    ],
    ids=lambda value: value[:25] if isinstance(value, str) else None,
)
def test_reading_problems(text: str, expected: list[Problem]) -> None:
    assert read(text)[1] == expected


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [("a: [1\n", 2, 1), ("a: *nothing\n", 1, 4), ("a: 'x\n", 2, 1), ("a:\tb: c\n", 1, 5)],
    ids=["unclosed flow", "undefined alias", "unclosed quote", "tab"],
)
def test_syntax_errors_are_located(text: str, line: int, column: int) -> None:
    (problem,) = read(text)[1]
    assert (problem.path, problem.line, problem.message.startswith("invalid YAML: ")) == (
        "",
        line,
        True,
    )
    assert problem.message.endswith(f"(column {column})")


def test_nan_reads_as_nan() -> None:
    value, problems = read("a: .NaN\n")
    assert (math.isnan(value["a"]), problems) == (True, [])


def test_lines_are_kept_for_every_path() -> None:
    report = Report()
    yamlload.read("a:\n  b: [x,\n    y]\n  c: {d: 1}\n", report)
    assert report.lines == {"": 1, "a": 1, "a.b": 2, "a.b[0]": 2, "a.b[1]": 3, "a.c": 4, "a.c.d": 4}


def test_an_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    assert read("\n".join(lines)) == (
        None,
        [
            Problem(
                "",
                "the document expands to more than 100000 YAML nodes (aliases included); "
                "refusing it",
            )
        ],
    )


def test_nesting_through_aliases_is_bounded() -> None:
    text = "a: &a " + "[" * 40 + "]" * 40 + "\nb: &b " + "[" * 30 + "*a" + "]" * 30 + "\n"
    assert read(text) == (
        None,
        [Problem("b" + "[0]" * 64, "nesting deeper than 64 levels (aliases included)", 1)],
    )


def test_input_over_one_mebibyte_is_refused() -> None:
    text = "x-pad: '" + "a" * (1 << 20) + "'\n"
    assert problems(text) == (
        Problem("", f"the file is {len(text)} bytes; at most 1048576 (1 MiB) is accepted"),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty; a Compose file is a mapping with `services:`"),
        ("# only a comment\n", "the file is empty; a Compose file is a mapping with `services:`"),
        ("- a\n- b\n", "a Compose file is a mapping with `services:`, got a list"),
        ("just text", "a Compose file is a mapping with `services:`, got 'just text'"),
    ],
    ids=["empty", "comment", "list", "scalar"],
)
def test_the_document_must_be_a_mapping(text: str, message: str) -> None:
    assert problems(text) == (Problem("", message),)


def test_reset_and_override_load_in_a_compose_file() -> None:
    project = load_project(
        """
services:
  app:
    image: app
    ports: !reset []
    environment: !override
      A: "1"
    restart: !reset
"""
    )
    service = project.services["app"]
    assert (service.ports, service.environment, project.warnings) == ((), {"A": "1"}, ())
