"""OCI and Hugging Face model references, parsed the way Docker normalises them.

`ai/smollm2` and `docker.io/ai/smollm2:latest` name the same artifact; both the planner
(mirror rewrites, sharing matches) and the puller (where to fetch from) need that one rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
HUGGINGFACE_HOSTS = ("hf.co", "huggingface.co")

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:]+\])(?::(?P<port>[0-9]{{1,5}}))?$")
"""A DNS name (no label starts or ends with `-`: a reference must never read as a flag in the
puller's or an engine's arguments) or an IPv6 literal, with a port of 1-65535."""


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def version(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest when pinned."""
        return self.digest or self.tag or DEFAULT_TAG


def is_huggingface(text: str) -> bool:
    """True for `hf.co/org/repo[:quant]`, which the engines download themselves."""
    return text.split("/", 1)[0].lower() in HUGGINGFACE_HOSTS


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def parse_reference(text: str) -> Reference:
    """Parse an OCI reference with Docker's defaults; ValueError says what is wrong."""
    if not text or text != text.strip() or text.startswith("-"):
        raise ValueError(f"{text!r} is not a model reference")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST.match(digest):
            raise ValueError(f"{text!r}: digest must be sha256: followed by 64 hex digits")
    registry = DEFAULT_REGISTRY
    first, _, rest = remainder.partition("/")
    if rest and _looks_like_host(first):
        host = _HOST.match(first)
        if not host or not 1 <= int(host["port"] or 443) <= 65535:
            raise ValueError(f"{text!r}: {first!r} is not a registry host[:port]")
        registry, remainder = first, rest
    tag: str | None = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.match(tag):
            raise ValueError(f"{text!r}: {tag!r} is not a valid tag")
    if registry in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        registry = DEFAULT_REGISTRY
        if "/" not in remainder:
            remainder = f"library/{remainder}"
    if not _REPOSITORY.match(remainder):
        raise ValueError(
            f"{text!r}: repository {remainder!r} must be lowercase letters, digits and "
            "separators (., _, -) between /-separated components"
        )
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry=registry, repository=remainder, tag=tag, digest=digest)


def normalise(text: str) -> str:
    """The canonical text of a reference (`ai/x` → `docker.io/ai/x:latest`); HF refs as given."""
    return text if is_huggingface(text) else str(parse_reference(text))


def spellings(text: str) -> tuple[str, ...]:
    """Every usual way to write the same reference, `text` first: `ai/x`, `ai/x:latest`,
    `docker.io/ai/x`, `docker.io/ai/x:latest`. An engine that checks the requested model name
    (vLLM) serves an offered model under all of them, so every app that binds can keep its
    own spelling in `*_MODEL`."""
    if is_huggingface(text):
        return (text,)
    try:
        reference = parse_reference(text)
    except ValueError:
        return (text,)
    if reference.digest is not None:
        return (text,)
    repositories = [f"{reference.registry}/{reference.repository}"]
    if reference.registry == DEFAULT_REGISTRY:
        short = reference.repository.removeprefix("library/")
        repositories = [short, f"{DEFAULT_REGISTRY}/{short}", *repositories]
    tags = [f":{reference.tag}"] if reference.tag != DEFAULT_TAG else ["", f":{DEFAULT_TAG}"]
    found = [text] + [repository + tag for repository in repositories for tag in tags]
    return tuple(dict.fromkeys(found))


def apply_mirrors(reference: Reference, mirrors: Mapping[str, str]) -> Reference:
    """Rewrite the registry host, e.g. {"docker.io": "registry.local:5000"} for an air gap."""
    mirror = mirrors.get(reference.registry)
    return replace(reference, registry=mirror) if mirror else reference
