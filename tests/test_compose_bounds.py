"""Input a tenant controls is bounded: size after aliases and interpolation, entries, problems.

The operator parses every ComposeApp in one process for every team (webhook, sharing index,
reconciles), so one small hostile file must not cost it more than a large honest one.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compose_operator.compose import load_project
from compose_operator.compose.interpolate import interpolate_tree
from compose_operator.compose.report import MAX_LISTED, Report
from compose_operator.compose.toplevel import MAX_ENTRIES
from compose_operator.compose.yamlload import MAX_BYTES, MAX_EXPANDED
from compose_operator.crd import build_crd
from compose_operator.errors import ComposeError
from tests import hostile


def problems(text: str, environment: dict[str, str] | None = None) -> list[str]:
    try:
        load_project(text, environment=environment or {})
    except ComposeError as error:
        return [problem.message for problem in error.problems]
    return []


EXPANDED = f"the document expands to more than {MAX_EXPANDED} characters"


@settings(max_examples=25, deadline=None)
@given(
    scalar=st.integers(min_value=1_000, max_value=100_000),
    aliases=st.integers(min_value=1, max_value=2_000),
)
def test_the_expanded_size_is_capped_whatever_the_alias_count(scalar: int, aliases: int) -> None:
    """Issue 12: an 85 KB scalar aliased 12,000 times passed (12,000 nodes) and took 1 GB."""
    found = problems(hostile.alias_bomb(scalar, aliases))
    expanded = scalar * (aliases + 1)
    if expanded > MAX_EXPANDED:
        assert [m for m in found if m.startswith(EXPANDED)], found
    elif expanded < MAX_EXPANDED - 200_000:  # paths and keys count too
        assert found == []


@settings(max_examples=25, deadline=None)
@given(
    value=st.integers(min_value=1, max_value=32 * 1024),
    uses=st.integers(min_value=1, max_value=3_000),
    aliased=st.booleans(),
)
def test_the_interpolated_size_is_capped(value: int, uses: int, aliased: bool) -> None:
    """`${X}` with a large X, used many times: inline in one scalar, or aliased."""
    environment = {"X": "v" * value}
    if aliased:
        refs = ", ".join(["*x"] * uses)
        text = f"x-a: &x '${{X}}'\nx-b: [{refs}]\nservices: {{}}\n"
        total = value * (uses + 1)
    else:
        text = f"x-a: '{'${X}' * uses}'\nservices: {{}}\n"
        total = value * uses
    found = problems(text, environment)
    if total > MAX_EXPANDED:
        assert any("too many characters" in m or "after interpolation" in m for m in found), found
    else:
        assert found == []


def test_an_aliased_scalar_is_interpolated_once_and_shared() -> None:
    """Memoised per node: twelve thousand aliases of one `${X}` hold one expanded string."""
    template = "${X}"
    document = {"a": [template] * 12_000}
    expanded = interpolate_tree(document, "", {"X": "v" * 100}, Report())
    values = expanded["a"]
    assert values[0] == "v" * 100
    assert len({id(value) for value in values}) == 1


def test_sixty_five_thousand_unknown_keys_list_a_hundred_problems_and_count_the_rest() -> None:
    """Issue 12: 65k unknown keys cost 9 s of CPU and a 4.6 MB status message."""
    keys = ", ".join(f"k{n}: 1" for n in range(65_000))
    with pytest.raises(ComposeError) as raised:
        load_project(f"services:\n  app: {{image: x, {keys}}}\n")
    messages = raised.value.messages
    assert len(messages) == MAX_LISTED + 1
    assert messages[-1] == f"compose.yaml: and {65_000 - MAX_LISTED} more problems"
    assert sum(len(m) for m in messages) < 20_000


def test_a_long_key_is_clipped_in_messages() -> None:
    key = "k" * 200_000
    (message,) = problems(f"services:\n  app:\n    image: x\n    {key}: 1\n")
    assert len(message) < 200


@pytest.mark.parametrize("element", sorted(MAX_ENTRIES))
def test_entries_per_element_are_capped(element: str) -> None:
    limit = MAX_ENTRIES[element]
    entries = "\n".join(f"  e{n}: {{model: ai/x, image: x}}" for n in range(limit + 1))
    found = problems(f"{element}:\n{entries}\n")
    assert f"{limit + 1} entries; at most {limit} are accepted" in found


def test_the_crd_bounds_what_the_api_server_accepts() -> None:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["compose"]["maxLength"] == MAX_BYTES
    environment = spec["properties"]["environment"]
    assert environment["maxProperties"] == 512
    assert environment["additionalProperties"]["maxLength"] == 32 * 1024


@pytest.mark.parametrize("case", sorted(hostile.CASES))
def test_any_file_within_the_limits_renders_within_256_mib(case: str) -> None:
    """Peak memory of a fresh interpreter loading and planning the file (its time: see
    benchmarks/input_bench.py)."""
    text = hostile.CASES[case]
    assert len(text.encode()) <= MAX_BYTES
    measured = hostile.cost(text)
    assert measured.peak_mib <= 256, measured
