"""A service's `models:`: both syntaxes, Compose's default names, and refused variables."""

from __future__ import annotations

import textwrap

import pytest

from compose_operator.compose import env_prefix, load_project
from compose_operator.errors import ComposeError, Warning
from compose_operator.project import ModelBinding

MODELS = "models:\n  llm: {model: ai/smollm2}\n  embedding-model: {model: ai/mxbai-embed-large}\n"
HEADER = MODELS + "services:\n  app:\n    image: app\n"


def bindings(models: str) -> tuple[ModelBinding, ...]:
    text = HEADER + textwrap.indent(textwrap.dedent(models), "    ")
    return load_project(text).services["app"].models


def messages(models: str) -> list[str]:
    with pytest.raises(ComposeError) as caught:
        load_project(HEADER + textwrap.indent(textwrap.dedent(models), "    "))
    return caught.value.messages


@pytest.mark.parametrize(
    ("key", "prefix"),
    [
        ("llm", "LLM"),
        ("embedding-model", "EMBEDDING_MODEL"),
        ("my.model", "MY.MODEL"),
        ("my_model", "MY_MODEL"),
        ("Mixed-Case.v2", "MIXED_CASE.V2"),
        ("a--b", "A__B"),
    ],
)
def test_env_prefix_is_compose_2_39_2_rule(key: str, prefix: str) -> None:
    assert env_prefix(key) == prefix


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        ("models: [llm]", (ModelBinding("llm", "LLM_URL", "LLM_MODEL"),)),
        (
            "models: [llm, embedding-model]",
            (
                ModelBinding("llm", "LLM_URL", "LLM_MODEL"),
                ModelBinding("embedding-model", "EMBEDDING_MODEL_URL", "EMBEDDING_MODEL_MODEL"),
            ),
        ),
        (
            "models:\n  llm: {endpoint_var: AI_MODEL_URL, model_var: AI_MODEL_NAME}",
            (ModelBinding("llm", "AI_MODEL_URL", "AI_MODEL_NAME"),),
        ),
        ("models:\n  llm: {endpoint_var: AI_URL}", (ModelBinding("llm", "AI_URL", "LLM_MODEL"),)),
        ("models:\n  llm: {model_var: NAME}", (ModelBinding("llm", "LLM_URL", "NAME"),)),
        ("models:\n  llm:", (ModelBinding("llm", "LLM_URL", "LLM_MODEL"),)),
        ("models:\n  llm: {}", (ModelBinding("llm", "LLM_URL", "LLM_MODEL"),)),
        ("models:\n  llm: {x-note: hi}", (ModelBinding("llm", "LLM_URL", "LLM_MODEL"),)),
        ("models: []", ()),
    ],
    ids=lambda value: value.replace("\n", " ") if isinstance(value, str) else None,
)
def test_bindings(models: str, expected: tuple[ModelBinding, ...]) -> None:
    assert bindings(models) == expected


M = "compose.yaml: services.app.models"


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        ("models: [llm, llm]", [f"{M}[1]: model llm is listed twice (line 7)"]),
        ("models: [chat]", [f'{M}[0]: service "app" refers to undefined model chat (line 7)']),
        ("models:\n  chat:", [f'{M}.chat: service "app" refers to undefined model chat (line 8)']),
        ("models: llm", [f"{M}: must be a list of model keys or a mapping, got 'llm' (line 7)"]),
        ("models: [1]", [f"{M}[0]: must be a non-empty string, got 1 (line 7)"]),
        ("models:\n  llm: AI_URL", [f"{M}.llm: must be a mapping, got 'AI_URL' (line 8)"]),
        (
            "models:\n  llm: {url_var: X}",
            [f"{M}.llm.url_var: unknown key 'url_var'; did you mean 'model_var'? (line 8)"],
        ),
        (
            "models:\n  llm: {endpoint: X}",
            [f"{M}.llm.endpoint: unknown key 'endpoint'; did you mean 'endpoint_var'? (line 8)"],
        ),
        (
            "models:\n  llm: {endpoint_var: 5}",
            [f"{M}.llm.endpoint_var: must be a string, got 5 (line 8)"],
        ),
    ],
    ids=lambda value: value.replace("\n", " ") if isinstance(value, str) else None,
)
def test_binding_problems(models: str, expected: list[str]) -> None:
    assert messages(models) == expected


@pytest.mark.parametrize("name", ["", "1URL", "A B", "A=B", "llm_url", "Llm_URL", "A-B"])
def test_a_binding_sets_only_variable_names_in_capitals(name: str) -> None:
    (message,) = messages(f"models:\n  llm: {{endpoint_var: '{name}'}}")
    assert message == (
        f"{M}.llm.endpoint_var: {name!r} is not a variable name a binding may set: capital "
        "letters, digits, '_' and '.', not starting with a digit (line 8)"
    )


@pytest.mark.parametrize("name", ["OPENAI_BASE_URL", "AI_MODEL.URL", "_X", "LLM_URL"])
def test_names_such_as_openai_base_url_load(name: str) -> None:
    (binding,) = bindings(f"models:\n  llm: {{endpoint_var: {name}}}")
    assert binding.endpoint_var == name


def test_a_derived_name_that_is_refused_says_how_to_rename_it() -> None:
    text = "models:\n  1st: {model: ai/y}\nservices:\n  app:\n    image: a\n    models: [1st]\n"
    with pytest.raises(ComposeError) as caught:
        load_project(text)
    derived = "(derived from the model key; choose a name with"
    refused = (
        "is not a variable name a binding may set: capital letters, digits, '_' and '.', not "
        "starting with a digit"
    )
    assert caught.value.messages == [
        f"compose.yaml: services.app.models[0]: '1ST_URL' {refused} {derived} endpoint_var) "
        "(line 6)",
        f"compose.yaml: services.app.models[0]: '1ST_MODEL' {refused} {derived} model_var) "
        "(line 6)",
    ]


def test_a_binding_replaces_a_same_named_environment_entry_with_a_warning() -> None:
    text = HEADER + "    environment: {LLM_URL: http://elsewhere}\n    models: [llm]\n"
    project = load_project(text)
    assert (project.services["app"].environment, project.warnings) == (
        {"LLM_URL": "http://elsewhere"},
        (
            Warning(
                "services.app.environment.LLM_URL",
                "replaced by the binding of model llm, as Compose does",
            ),
        ),
    )


def test_a_model_with_problems_does_not_also_read_as_undefined() -> None:
    text = (
        "models:\n  llm: {model: ai/x, context_size: 0}\n"
        "services:\n  app: {image: a, models: [llm]}\n"
    )
    with pytest.raises(ComposeError) as caught:
        load_project(text)
    assert caught.value.messages == [
        "compose.yaml: models.llm.context_size: must be a positive integer, got 0 (line 2)"
    ]


def test_bindings_that_share_a_variable_load_as_compose_loads_them() -> None:
    """Whether they can be served is the planner's call, by `modelEndpoint` (one gateway URL
    serves them all); the loader keeps where each variable was written, for its messages."""
    loaded = bindings(
        "models:\n  llm: {endpoint_var: URL, model_var: EMBEDDING_MODEL_URL}\n"
        "  embedding-model: {endpoint_var: URL}"
    )
    assert loaded == (
        ModelBinding(model="llm", endpoint_var="URL", model_var="EMBEDDING_MODEL_URL"),
        ModelBinding(
            model="embedding-model", endpoint_var="URL", model_var="EMBEDDING_MODEL_MODEL"
        ),
    )
    assert [(b.endpoint_at, b.model_at) for b in loaded] == [
        ("services.app.models.llm.endpoint_var", "services.app.models.llm.model_var"),
        ("services.app.models.embedding-model.endpoint_var", "services.app.models.embedding-model"),
    ]
