"""Registry credentials from a Docker `config.json`, and `WWW-Authenticate` challenges.

A pod gets a pull secret of type `kubernetes.io/dockerconfigjson` mounted as a file; the same
file on a laptop is `~/.docker/config.json`. Credential helpers (`credsStore`) are a desktop
feature and are not consulted. Credentials never reach a log or an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from compose_operator.puller.errors import PullError

DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Credentials:
    """A username and password (or token) for one registry."""

    username: str
    password: str = field(repr=False)

    def basic(self) -> str:
        """The `Authorization` header value for HTTP Basic."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True)
class Challenge:
    """A parsed `WWW-Authenticate` header: `Bearer realm=...,service=...,scope=...`."""

    scheme: str
    params: Mapping[str, str]


def registry_key(text: str) -> str:
    """The host[:port] a `config.json` key or a reference registry stands for."""
    host = text.strip()
    for scheme in ("https://", "http://"):
        host = host.removeprefix(scheme)
    host = host.split("/", 1)[0].lower()
    return DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


def config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """`--docker-config` (a file or a directory), else `$DOCKER_CONFIG`, else `~/.docker`.

    In a directory, `config.json` wins; a mounted `kubernetes.io/dockerconfigjson` Secret's
    `.dockerconfigjson` key (same format) is used when there is no `config.json`.
    """
    if explicit is not None and not explicit.is_dir():
        return explicit
    directory = explicit or (
        Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else None
    )
    if directory is None:
        home = environ.get("HOME")
        return Path(home) / ".docker" / "config.json" if home else None
    secret = directory / ".dockerconfigjson"
    config = directory / "config.json"
    return secret if secret.exists() and not config.exists() else config


def load_credentials(path: Path | None, registry: str) -> Credentials | None:
    """The credentials `config.json` holds for `registry`, or None.

    A missing file is not an error (anonymous pulls are the common case); an unreadable
    or malformed one is, because silently pulling anonymously would hide the real problem.
    """
    if path is None or not path.exists():
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PullError(f"docker config {path}: cannot read it ({error})") from None
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        return None
    wanted = registry_key(registry)
    for key, entry in auths.items():
        if registry_key(key) == wanted and isinstance(entry, dict):
            return _entry_credentials(entry, path, key)
    return None


def _entry_credentials(entry: Mapping[str, object], path: Path, key: str) -> Credentials | None:
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username, password)
    encoded = entry.get("auth")
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    user, sep, secret = decoded.partition(":")
    if not sep or not user:
        raise PullError(
            f"docker config {path}: auths.{key}.auth is not base64 of username:password"
        )
    return Credentials(user, secret)


def parse_challenge(header: str | None) -> Challenge | None:
    """The first challenge of a `WWW-Authenticate` header, or None when absent."""
    if not header or not header.strip():
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {
        match.group(1).lower(): (
            match.group(2).replace('\\"', '"') if match.group(2) is not None else match.group(3)
        )
        for match in _CHALLENGE_PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)
