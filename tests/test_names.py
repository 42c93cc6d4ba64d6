"""Object names: DNS-1035 labels that are stable, readable when possible, and unique."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compose_operator import names

DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
COMPOSE_KEY = st.from_regex(r"[a-zA-Z0-9._-]{1,80}", fullmatch=True)
APP = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,70}[a-z0-9])?", fullmatch=True)


@pytest.mark.parametrize(
    ("made", "expected"),
    [
        (names.model("chat", "llm"), "chat-llm"),
        (names.model("chat", "embedding-model"), "chat-embedding-model"),
        (names.model_cache("chat", "llm"), "chat-llm-cache"),
        (names.volume("chat", "data"), "chat-data"),
        (names.service("db"), "db"),
        (names.service("web-1"), "web-1"),
        (names.model("chat", "my.model"), f"chat-my-model-{names.short_hash('chat-my.model')}"),
        (names.model("chat", "my_model"), f"chat-my-model-{names.short_hash('chat-my_model')}"),
        (names.service("Web"), f"web-{names.short_hash('Web')}"),
        (names.service("1web"), f"x-1web-{names.short_hash('1web')}"),
        (names.service("web-"), f"web-{names.short_hash('web-')}"),
        (names.service("..."), f"x-{names.short_hash('...')}"),
    ],
)
def test_names_follow_the_design(made: str, expected: str) -> None:
    assert made == expected


def test_long_names_are_cut_to_the_derived_budget_and_hashed() -> None:
    key = "a" * 70
    name = names.model("chat", key)
    assert name == "chat-" + "a" * 49 + "-" + names.short_hash(f"chat-{key}")
    assert len(name) == names.MAX_LABEL == 63
    assert names.READABLE_BUDGET == 54


def test_a_name_of_exactly_63_characters_is_kept() -> None:
    key = "b" * (63 - len("chat-"))
    assert names.model("chat", key) == f"chat-{key}"


@given(app=APP, key=COMPOSE_KEY)
def test_every_name_is_a_dns_1035_label(app: str, key: str) -> None:
    for name in (
        names.model(app, key),
        names.model_cache(app, key),
        names.volume(app, key),
        names.service(key),
    ):
        assert len(name) <= 63
        assert DNS_1035.fullmatch(name), name


@given(app=APP, key=COMPOSE_KEY)
def test_names_are_stable(app: str, key: str) -> None:
    assert names.model(app, key) == names.model(app, key)
    assert names.service(key) == names.service(key)


@given(app=APP, keys=st.lists(COMPOSE_KEY, min_size=2, max_size=6, unique=True))
def test_distinct_keys_get_distinct_names(app: str, keys: list[str]) -> None:
    assert len({names.model(app, key) for key in keys}) == len(keys)
    assert len({names.service(key) for key in keys}) == len(keys)
    assert len({names.label_value(key) for key in keys}) == len(keys)


@given(text=st.text(max_size=300))
def test_any_text_becomes_a_valid_label_value(text: str) -> None:
    value = names.label_value(text)
    assert len(value) <= 63
    assert LABEL_VALUE.fullmatch(value)


@given(text=st.text(min_size=1, max_size=100))
def test_any_text_becomes_a_dns_label(text: str) -> None:
    assert DNS_1035.fullmatch(names.dns_label(text))


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("com.example.description", True),
        ("example.com/team", True),
        ("app", True),
        ("with space", False),
        ("Example.com/team", False),
        ("/name", False),
        ("-leading", False),
        ("a" * 64, False),
    ],
)
def test_annotation_keys_are_qualified_names(key: str, valid: bool) -> None:
    assert names.is_qualified_name(key) is valid
