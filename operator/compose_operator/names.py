"""Kubernetes object names and label values derived from Compose keys.

Compose keys allow `.`, `_` and upper case; Kubernetes Service names are DNS-1035 labels
(lower-case letters, digits and `-`, starting with a letter, at most 63 characters). A name
that is already valid is used as written, so `db` stays `db` and Compose hostnames keep
working. Any other name is folded and gets a short hash of the original text, so two keys
that fold alike (`my.model`, `my_model`) still get different names, and the same key always
gets the same name.
"""

from __future__ import annotations

import hashlib
import re

MAX_LABEL = 63
"""DNS-1035 label length limit (Service names; also label values)."""
HASH_LENGTH = 8
"""Hex digits of SHA-256 kept: 32 bits, so a collision between two keys of one app is
about a one-in-four-billion event."""
READABLE_BUDGET = MAX_LABEL - len("-") - HASH_LENGTH
"""Characters of the folded name kept before `-<hash>`: 63 - 1 - 8 = 54."""

_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NOT_DNS = re.compile(r"[^a-z0-9]+")
_NOT_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_SUBDOMAIN = 253


def short_hash(text: str) -> str:
    """A stable hash of `text`; `surrogatepass` keeps any Python string hashable."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]


def dns_label(*parts: str) -> str:
    """`parts` joined with `-` as a DNS-1035 label; folded and hashed only when needed."""
    original = "-".join(parts)
    if len(original) <= MAX_LABEL and _DNS_1035.fullmatch(original):
        return original
    readable = _NOT_DNS.sub("-", original.lower()).strip("-")
    if not readable[:1].isalpha():
        readable = f"x-{readable}".rstrip("-")
    readable = readable[:READABLE_BUDGET].rstrip("-")
    return f"{readable}-{short_hash(original)}"


def label_value(text: str) -> str:
    """`text` as a Kubernetes label value (≤63 of `[A-Za-z0-9_.-]`, alphanumeric ends)."""
    if len(text) <= MAX_LABEL and _LABEL_VALUE.fullmatch(text):
        return text
    readable = _NOT_LABEL_VALUE.sub("-", text)
    readable = readable[:READABLE_BUDGET].strip("-_.")
    return f"{readable}-{short_hash(text)}" if readable else short_hash(text)


def is_qualified_name(key: str) -> bool:
    """True when `key` is valid as a label or annotation key (`[prefix/]name`)."""
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > MAX_SUBDOMAIN or not _DNS_1123_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= MAX_LABEL and _QUALIFIED_NAME.fullmatch(name) is not None


GATEWAY_SUFFIX = "models"
"""The model gateway's objects are `<app>-models`: one endpoint for all of the app's models."""


def gateway(app: str) -> str:
    """The model gateway's Deployment, Service and ConfigMap: `<app>-models`."""
    return dns_label(app, GATEWAY_SUFFIX)


def model(app: str, key: str) -> str:
    """The Deployment and Service that serve model `key`: `<app>-<key>`.

    The one key that would take the gateway's name (`models`) gets `<app>-models-<hash>`
    instead, whatever the settings, so the two can never collide and a model's name does not
    change with `modelEndpoint`.
    """
    name = dns_label(app, key)
    if name != gateway(app):
        return name
    return f"{name[:READABLE_BUDGET].rstrip('-')}-{short_hash(f'{app}-{key}/model')}"


def model_cache(app: str, key: str) -> str:
    """The PersistentVolumeClaim that keeps model `key`'s weights: `<app>-<key>-cache`."""
    return dns_label(app, key, "cache")


def service(name: str) -> str:
    """A Compose service's Deployment and Service: its own name, so hostnames still work."""
    return dns_label(name)


def volume(app: str, name: str) -> str:
    """The PersistentVolumeClaim for top-level named volume `name`: `<app>-<name>`."""
    return dns_label(app, name)
