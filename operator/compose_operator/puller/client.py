"""A small OCI distribution client on the standard library (`urllib.request`).

It speaks what pulling and pushing a model needs: the anonymous and credentialed bearer-token
flow (401 with `WWW-Authenticate: Bearer realm=...` → token → retry), HTTP Basic, a timeout
on every request, and bounded retries with backoff for 5xx answers and dropped connections.
Plain HTTP is used only for loopback registries or when the caller says the registry is
insecure; everything else is HTTPS with certificate verification.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, cast

from compose_operator.puller.auth import DOCKER_HUB, Credentials, parse_challenge
from compose_operator.puller.errors import (
    NotFound,
    PullError,
    RegistryUnreachable,
    Unauthorized,
)

API_HOSTS: Mapping[str, str] = {DOCKER_HUB: "registry-1.docker.io"}
"""Registries whose API lives on another host than their name."""

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})
_ERROR_BODY_LIMIT = 64 * 1024

Body = bytes | Callable[[], IO[bytes]] | None
"""A request body: bytes, or a callable opening a stream (so large uploads are not in memory)."""


@dataclass(frozen=True)
class Policy:
    """Timeouts and retries for every request."""

    timeout_seconds: float = 60.0
    """Per socket operation (connect, each read): a stalled registry fails, a slow one does not."""
    attempts: int = 4
    """Tries per GET/HEAD for 5xx, 429 and dropped connections; other methods are not retried."""
    backoff_seconds: float = 0.5
    """First wait between tries; doubles each time (0.5, 1, 2 s by default)."""


DEFAULT_POLICY = Policy()


def hostname(registry: str) -> str:
    """The host part of `host[:port]` or `[v6]:port`, without brackets."""
    if registry.startswith("["):
        return registry[1 : registry.index("]")]
    return registry.rsplit(":", 1)[0]


def base_url(registry: str, *, insecure: bool) -> str:
    """The API root for a registry name: HTTPS unless loopback or declared insecure."""
    host = API_HOSTS.get(registry, registry)
    scheme = "http" if insecure or hostname(host) in LOOPBACK_HOSTS else "https"
    return f"{scheme}://{host}"


def _error_detail(error: urllib.error.HTTPError) -> str:
    """`CODE: message` from an OCI error body, else the HTTP reason."""
    try:
        document = json.loads(error.read(_ERROR_BODY_LIMIT) or b"{}")
    except (ValueError, OSError):
        document = {}
    errors = document.get("errors") if isinstance(document, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return f"{first.get('code', 'ERROR')}: {first.get('message', '')}".rstrip(": ")
    return f"HTTP {error.code} {error.reason}"


def _connection_reason(error: BaseException) -> str:
    reason: object = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "host name does not resolve"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, ConnectionResetError | http.client.RemoteDisconnected):
        return "connection reset"
    return str(reason) or type(reason).__name__


class RegistryClient:
    """Requests against one registry, authenticated per repository scope."""

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        policy: Policy = DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.base_url = base_url(registry, insecure=insecure)
        self.credentials = credentials
        self.policy = policy
        self._sleep = sleep
        self._authorization: dict[str, str] = {}
        # One verified TLS context per client (building one costs ~60 ms); none for plain HTTP.
        context = ssl.create_default_context() if self.base_url.startswith("https:") else None
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
    ) -> http.client.HTTPResponse:
        """Send a request, answering one auth challenge; the caller closes the response.

        `scope` is the token scope (`repository:ai/x:pull`); `what` names the thing asked
        for in error messages (`manifest docker.io/ai/x:latest`). Raises NotFound,
        Unauthorized, RegistryUnreachable or PullError.
        """
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        challenged = False
        while True:
            try:
                return self._send_with_retries(method, url, scope, headers or {}, body)
            except urllib.error.HTTPError as error:
                with error:
                    if error.code == 401 and not challenged:
                        challenged = True
                        self._authenticate(error.headers.get("WWW-Authenticate"), scope)
                        continue
                    raise self._http_error(error, method, what, scope) from None

    def _send_with_retries(
        self, method: str, url: str, scope: str, headers: Mapping[str, str], body: Body
    ) -> http.client.HTTPResponse:
        attempts = self.policy.attempts if method in IDEMPOTENT_METHODS else 1
        delay = self.policy.backoff_seconds
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                return self._send(method, url, scope, headers, body)
            except urllib.error.HTTPError as error:
                if error.code not in RETRIED_STATUSES or last:
                    raise
                error.close()
            except ssl.SSLError as error:
                raise self._tls_error(error) from None
            except urllib.error.URLError as error:
                if isinstance(error.reason, ssl.SSLError):
                    raise self._tls_error(error.reason) from None
                if last:
                    raise self._unreachable(error, attempts) from None
            except (OSError, http.client.HTTPException) as error:
                if last:
                    raise self._unreachable(error, attempts) from None
            self._sleep(delay)
            delay *= 2
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send(
        self, method: str, url: str, scope: str, headers: Mapping[str, str], body: Body
    ) -> http.client.HTTPResponse:
        stream = body() if callable(body) else None
        try:
            data: Any = stream if stream is not None else body
            request = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
            authorization = self._authorization.get(scope) or self._authorization.get("*")
            if authorization is not None:
                # Unredirected: a blob redirect to a CDN must not carry our token.
                request.add_unredirected_header("Authorization", authorization)
            return cast(
                http.client.HTTPResponse,
                self._opener.open(request, timeout=self.policy.timeout_seconds),
            )
        finally:
            if stream is not None:
                stream.close()

    def _authenticate(self, header: str | None, scope: str) -> None:
        challenge = parse_challenge(header)
        if challenge is None:
            raise Unauthorized(f"registry {self.registry} answered 401 without an auth challenge")
        if challenge.scheme == "basic":
            if self.credentials is None:
                raise Unauthorized(
                    f"registry {self.registry} requires a login; add credentials for it to the "
                    "docker config (--docker-config or $DOCKER_CONFIG/config.json)"
                )
            self._authorization["*"] = self.credentials.basic()
            return
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise Unauthorized(
                f"registry {self.registry} asks for unsupported auth scheme {challenge.scheme!r}"
            )
        self._authorization[scope] = "Bearer " + self._fetch_token(challenge.params, scope)

    def _fetch_token(self, params: Mapping[str, str], scope: str) -> str:
        query = {"scope": params.get("scope") or scope.removeprefix("*")}
        if "service" in params:
            query["service"] = params["service"]
        realm = params["realm"]
        separator = "&" if "?" in realm else "?"
        request = urllib.request.Request(realm + separator + urllib.parse.urlencode(query))
        if self.credentials is not None:
            request.add_unredirected_header("Authorization", self.credentials.basic())
        try:
            with self._opener.open(request, timeout=self.policy.timeout_seconds) as response:
                document = json.loads(response.read(_ERROR_BODY_LIMIT))
        except urllib.error.HTTPError as error:
            with error:
                who = (
                    f"the credentials of user {self.credentials.username!r}"
                    if self.credentials is not None
                    else "anonymous access"
                )
                raise Unauthorized(
                    f"registry {self.registry} token service refused {who} ({_error_detail(error)})"
                ) from None
        except (OSError, http.client.HTTPException) as error:
            raise RegistryUnreachable(
                f"cannot get a token for registry {self.registry} from {realm}: "
                f"{_connection_reason(error)}"
            ) from None
        except ValueError:
            raise PullError(f"registry {self.registry} token service answered non-JSON") from None
        token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise PullError(f"registry {self.registry} token service answered without a token")
        return token

    def _http_error(
        self, error: urllib.error.HTTPError, method: str, what: str, scope: str
    ) -> PullError:
        detail = _error_detail(error)
        repository = scope.split(":")[1] if scope.count(":") >= 2 else scope
        if error.code == 404:
            return NotFound(f"not found: {what} ({detail})")
        if error.code == 401:
            if self.credentials is None:
                return Unauthorized(
                    f"unauthorized: {what}: registry {self.registry} refused anonymous access "
                    f"to {repository} (it may not exist, or it needs credentials in the docker "
                    f"config) ({detail})"
                )
            return Unauthorized(
                f"unauthorized: {what}: registry {self.registry} refused user "
                f"{self.credentials.username!r} for {repository} ({detail})"
            )
        if error.code == 403:
            return Unauthorized(f"unauthorized: {what}: access denied ({detail})")
        return PullError(f"{method} {what}: registry {self.registry} answered {detail}")

    def _unreachable(self, error: BaseException, attempts: int) -> RegistryUnreachable:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return RegistryUnreachable(
            f"cannot reach registry {self.registry} at {self.base_url}: "
            f"{_connection_reason(error)}{tries}"
        )

    def _tls_error(self, error: ssl.SSLError) -> RegistryUnreachable:
        hint = ""
        if "WRONG_VERSION_NUMBER" in str(error) or "wrong version number" in str(error):
            hint = "; it seems to speak plain HTTP (pass --insecure if that is intended)"
        return RegistryUnreachable(
            f"TLS handshake with registry {self.registry} at {self.base_url} failed: "
            f"{error.reason or error}{hint}"
        )
