"""Nothing but ComposeError escapes `load_project`, whatever the text (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compose_operator.compose import load_project, models, servicefields, services
from compose_operator.errors import ComposeError
from compose_operator.project import ComposeProject

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TRICKY_STRINGS = st.sampled_from(
    [
        "",
        "$",
        "$$",
        "${X}",
        "${X:-1}",
        "${X:?no}",
        "${",
        "80:80",
        "127.0.0.1:80:8080/udp",
        "8000-8100",
        "data:/data:ro",
        "./src:/src",
        "/anon",
        "0.5",
        "1.5GB",
        "1m30s",
        "CMD",
        "CMD-SHELL",
        "NONE",
        "gpu",
        "all",
        "host",
        "llm",
        "vllm",
        "k=v",
        "=",
        "ai/smollm2",
        "20Gi",
        "'",
        '"unclosed',
        "-1",
        "true",
        "9" * 5000,
        "1e999999999",
        "999999999999h",
        "0x" + "f" * 5000,
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31, 10**4000, -(10**4000)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    TRICKY_STRINGS,
)
KEYS = st.one_of(st.text(max_size=10), TRICKY_STRINGS)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=20,
)


def loads_or_refuses(text: str, environment: dict[str, str] | None = None) -> None:
    try:
        result = load_project(text, environment=environment or {})
    except ComposeError as error:
        assert error.problems
        assert all(isinstance(message, str) for message in error.messages)
        return
    assert isinstance(result, ComposeProject)


def dump(document: Any) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def fields(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), VALUES, max_size=6)


MODEL = st.one_of(
    fields(list(models.MODEL_KEYS)),
    st.fixed_dictionaries(
        {"model": TRICKY_STRINGS},
        optional={"x-kubernetes": fields(list(models.KUBERNETES_KEYS))},
    ),
)
SERVICE_KEYS = sorted(services.SERVICE_KEYS)
SERVICE = st.one_of(
    fields(SERVICE_KEYS),
    st.fixed_dictionaries(
        {"image": st.just("app")},
        optional={
            "models": st.one_of(
                st.lists(st.sampled_from(["llm", "other"]), max_size=3),
                st.dictionaries(
                    st.sampled_from(["llm", "other"]),
                    st.one_of(st.none(), fields(["endpoint_var", "model_var", "x-a"])),
                ),
            ),
            "ports": st.lists(st.one_of(TRICKY_STRINGS, fields(list(servicefields.PORT_KEYS)))),
            "volumes": st.lists(st.one_of(TRICKY_STRINGS, fields(list(servicefields.VOLUME_KEYS)))),
            "healthcheck": fields(list(servicefields.HEALTHCHECK_KEYS)),
            "deploy": st.fixed_dictionaries(
                {},
                optional={
                    "replicas": VALUES,
                    "resources": st.fixed_dictionaries(
                        {},
                        optional={
                            "limits": fields(list(servicefields.LIMITS_KEYS)),
                            "reservations": fields(list(servicefields.RESERVATIONS_KEYS)),
                        },
                    ),
                },
            ),
        },
    ),
)
COMPOSE = st.fixed_dictionaries(
    {},
    optional={
        "models": st.dictionaries(st.sampled_from(["llm", "other", "bad key"]), MODEL, max_size=2),
        "services": st.dictionaries(st.sampled_from(["app", "web"]), SERVICE, max_size=2),
        "volumes": st.dictionaries(st.sampled_from(["data", "cache"]), VALUES, max_size=2),
        "name": VALUES,
        "version": VALUES,
    },
)


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    loads_or_refuses(text)


@FUZZ
@given(VALUES)
def test_random_yaml_structures(document: Any) -> None:
    loads_or_refuses(dump(document))


@FUZZ
@given(COMPOSE, st.dictionaries(st.sampled_from(["X", "Y"]), st.text(max_size=5)))
def test_compose_shaped_documents(document: dict[str, Any], environment: dict[str, str]) -> None:
    loads_or_refuses(dump(document), environment)


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            [
                "a: ",
                "&x ",
                "*x ",
                "[",
                "]",
                "{",
                "}",
                ", ",
                "\n",
                "  ",
                "- ",
                "<<: ",
                "!reset ",
                "!override ",
                "!!int ",
                "? ",
                ": ",
                "'",
                '"',
                "#",
                "---\n",
                "${X}",
                "key",
            ]
        ),
        max_size=40,
    )
)
def test_yaml_syntax_fragments(fragments: list[str]) -> None:
    loads_or_refuses("".join(fragments))


BIG = "9" * 5000
SHOWN = repr(BIG[:57] + "...")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f"models:\n  llm: {{model: x, context_size: '{BIG}'}}\n",
            f"models.llm.context_size: must be a positive integer, got {SHOWN}",
        ),
        (
            f"models:\n  llm: {{model: x, context_size: {BIG}}}\n",
            f"models.llm.context_size: {SHOWN} is not a valid !!int value",
        ),
        (
            "models:\n  llm: {model: x, context_size: 2147483648}\n",
            "models.llm.context_size: must be at most 2147483647, got 2147483648",
        ),
        (
            f"services:\n  app: {{image: a, expose: ['{BIG}']}}\n",
            f'services.app.expose[0]: must be a port such as "8080" or "8080/tcp", got {SHOWN}',
        ),
        (
            f"services:\n  app: {{image: a, mem_limit: '{BIG}'}}\n",
            f'services.app.mem_limit: must be a memory size such as "512m" or "1g", got {SHOWN}',
        ),
        (
            "services:\n  app: {image: a, cpus: '1e999999999'}\n",
            'services.app.cpus: must be a positive number of CPUs such as "0.5", '
            "got '1e999999999'",
        ),
        (
            "services:\n  app:\n    {image: a, "
            "healthcheck: {test: [CMD, x], interval: 999999999999h}}\n",
            'services.app.healthcheck.interval: must be a duration such as "10s", "1m30s" or '
            "\"500ms\", got '999999999999h'",
        ),
    ],
    ids=["string", "int", "int32", "expose", "memory", "cpus", "duration"],
)
def test_huge_numbers_are_refused_not_computed(text: str, message: str) -> None:
    with pytest.raises(ComposeError) as caught:
        load_project(text)
    (problem,) = caught.value.problems
    assert f"{problem.path}: {problem.message}" == message
