import pytest

from compose_operator.references import (
    Reference,
    apply_mirrors,
    is_huggingface,
    normalise,
    parse_reference,
)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ai/smollm2", Reference("docker.io", "ai/smollm2", "latest")),
        ("smollm2", Reference("docker.io", "library/smollm2", "latest")),
        ("docker.io/ai/smollm2:360M-Q4_K_M", Reference("docker.io", "ai/smollm2", "360M-Q4_K_M")),
        ("index.docker.io/ai/smollm2", Reference("docker.io", "ai/smollm2", "latest")),
        ("registry:5000/org/m:tag", Reference("registry:5000", "org/m", "tag")),
        ("localhost/m", Reference("localhost", "m", "latest")),
        ("127.0.0.1:5000/ai/gemma3", Reference("127.0.0.1:5000", "ai/gemma3", "latest")),
        (f"ai/smollm2@{DIGEST}", Reference("docker.io", "ai/smollm2", None, DIGEST)),
        (f"ai/smollm2:1b@{DIGEST}", Reference("docker.io", "ai/smollm2", "1b", DIGEST)),
    ],
)
def test_parse_reference_applies_docker_defaults(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ai/x",
        "AI/Smollm2",
        "ai/x:",
        "ai/x@sha256:short",
        "ai//x",
        "ai/x:-bad",
        # Issue 12: these rendered, and broke the puller's and engines' arguments.
        "-x.io/a/b",
        "--insecure",
        "x-.io/a/b",
        "registry.local:70000/a/b",
        "registry.local:0/a/b",
        "registry.local:123456/a/b",
    ],
)
def test_parse_reference_refuses_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_reference(text)


def test_normalise_makes_equivalent_references_equal() -> None:
    assert normalise("ai/x") == normalise("docker.io/ai/x:latest") == "docker.io/ai/x:latest"
    assert normalise("hf.co/bartowski/Llama:Q4_K_M") == "hf.co/bartowski/Llama:Q4_K_M"


def test_is_huggingface_only_for_hub_hosts() -> None:
    assert is_huggingface("hf.co/org/repo")
    assert is_huggingface("huggingface.co/org/repo:Q8_0")
    assert not is_huggingface("ai/smollm2")


def test_apply_mirrors_rewrites_only_the_named_registry() -> None:
    mirrors = {"docker.io": "registry.local:5000"}
    assert str(apply_mirrors(parse_reference("ai/x"), mirrors)) == "registry.local:5000/ai/x:latest"
    assert apply_mirrors(parse_reference("quay.io/a/b"), mirrors).registry == "quay.io"
