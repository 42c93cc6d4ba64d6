"""A tiny in-process OCI registry on 127.0.0.1 for puller unit tests.

It serves manifests (404 unless the Accept header allows the type, like the real registry),
blobs with Range support, and a token endpoint; it can demand bearer or basic auth, inject
5xx answers, cut a blob transfer halfway, serve corrupt bytes, and redirect blobs to a "CDN"
path. Every request is recorded so tests can count what a pull asked for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MODEL_CONFIG = "application/vnd.docker.ai.model.config.v0.1+json"
GGUF = "application/vnd.docker.ai.gguf.v3"

_MANIFEST = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Recorded:
    method: str
    path: str
    headers: Mapping[str, str]


@dataclass
class FakeRegistry:
    auth: str | None = None
    """None, "bearer" or "basic"."""
    users: dict[str, str] = field(default_factory=dict)
    """Accepted username → password; with bearer auth, empty means anonymous tokens."""
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    failures: dict[str, list[int]] = field(default_factory=dict)
    """Path → statuses to answer (in order) before answering normally."""
    cut_once: set[str] = field(default_factory=set)
    """Blob digests whose next transfer stops halfway through."""
    reset_once: set[str] = field(default_factory=set)
    """Blob digests whose next transfer is reset (TCP RST) halfway through."""
    corrupt: set[str] = field(default_factory=set)
    """Blob digests served with one byte flipped."""
    redirect_blobs: bool = False
    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_blob(self, data: bytes) -> str:
        digest = sha256(data)
        self.blobs[digest] = data
        return digest

    def add_manifest(
        self, repository: str, tag: str | None, document: Mapping[str, Any], media_type: str
    ) -> str:
        body = json.dumps(document).encode()
        digest = sha256(body)
        self.manifests[(repository, digest)] = (body, media_type)
        if tag is not None:
            self.manifests[(repository, tag)] = (body, media_type)
        return digest

    def add_model(
        self,
        repository: str,
        tag: str | None,
        layers: Sequence[tuple[bytes, str, Mapping[str, str] | None]],
        *,
        config_media_type: str = MODEL_CONFIG,
    ) -> str:
        """Store blobs and an OCI manifest; returns the manifest digest."""
        config = json.dumps({"config": {"format": "gguf"}}).encode()
        descriptors = []
        for data, media_type, layer_annotations in layers:
            descriptor: dict[str, Any] = {
                "mediaType": media_type,
                "digest": self.add_blob(data),
                "size": len(data),
            }
            if layer_annotations:
                descriptor["annotations"] = dict(layer_annotations)
            descriptors.append(descriptor)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": config_media_type,
                "digest": self.add_blob(config),
                "size": len(config),
            },
            "layers": descriptors,
        }
        return self.add_manifest(repository, tag, manifest, OCI_MANIFEST)

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for r in self.requests if r.method == method and re.search(pattern, r.path))

    def token_for(self, scope: str) -> str:
        return "token-" + base64.urlsafe_b64encode(scope.encode()).decode()

    # --- serving -------------------------------------------------------------------------

    def authorized(self, handler: BaseHTTPRequestHandler, repository: str) -> bool:
        header = handler.headers.get("Authorization", "")
        if self.auth == "bearer":
            return header == f"Bearer {self.token_for(f'repository:{repository}:pull')}"
        if self.auth == "basic":
            return self.basic_user(header) is not None
        return True

    def basic_user(self, header: str) -> str | None:
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password else None

    def challenge(self, repository: str) -> str:
        if self.auth == "bearer":
            return (
                f'Bearer realm="http://{self.host}/token",service="fake",'
                f'scope="repository:{repository}:pull"'
            )
        return 'Basic realm="fake"'


def _handler(registry: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read `registry.requests` instead."""

        def do_HEAD(self) -> None:
            self.handle_request(send_body=False)

        def do_GET(self) -> None:
            self.handle_request(send_body=True)

        def send(
            self,
            status: int,
            body: bytes = b"",
            headers: Mapping[str, str] | None = None,
            send_body: bool = True,
        ) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def error(self, status: int, code: str, message: str, **headers: str) -> None:
            body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
            self.send(status, body, {"Content-Type": "application/json", **headers})

        def handle_request(self, *, send_body: bool) -> None:
            path = self.path.split("?", 1)[0]
            registry.requests.append(Recorded(self.command, self.path, dict(self.headers)))
            pending = registry.failures.get(path)
            if pending:
                self.error(pending.pop(0), "UNAVAILABLE", "injected failure")
                return
            if path == "/token":
                self.serve_token()
                return
            if path.startswith("/cdn/"):
                self.serve_blob(path.removeprefix("/cdn/"), send_body)
                return
            match = _MANIFEST.match(path) or _BLOB.match(path)
            if match is None:
                self.error(404, "NOT_FOUND", "no such route")
                return
            repository = match.group("repo")
            if not registry.authorized(self, repository):
                self.error(
                    401,
                    "UNAUTHORIZED",
                    "authentication required",
                    **{"WWW-Authenticate": registry.challenge(repository)},
                )
                return
            if "ref" in match.groupdict():
                self.serve_manifest(repository, match.group("ref"), send_body)
            elif registry.redirect_blobs:
                self.send(307, headers={"Location": f"/cdn/{match.group('digest')}"})
            else:
                self.serve_blob(match.group("digest"), send_body)

        def serve_token(self) -> None:
            query = dict(
                part.split("=", 1) for part in self.path.split("?", 1)[1].split("&") if part
            )
            from urllib.parse import unquote_plus

            scope = unquote_plus(query.get("scope", ""))
            if (
                registry.users
                and registry.basic_user(self.headers.get("Authorization", "")) is None
            ):
                self.error(401, "UNAUTHORIZED", "bad credentials")
                return
            body = json.dumps({"token": registry.token_for(scope)}).encode()
            self.send(200, body, {"Content-Type": "application/json"})

        def serve_manifest(self, repository: str, reference: str, send_body: bool) -> None:
            if not any(repo == repository for repo, _ in registry.manifests):
                self.error(404, "NAME_UNKNOWN", "repository name not known to registry")
                return
            stored = registry.manifests.get((repository, reference))
            if stored is None:
                self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                return
            body, media_type = stored
            if media_type not in self.headers.get("Accept", ""):
                self.error(404, "MANIFEST_UNKNOWN", "accept header does not allow the type")
                return
            headers = {"Content-Type": media_type, "Docker-Content-Digest": sha256(body)}
            self.send(200, body, headers, send_body)

        def serve_blob(self, digest: str, send_body: bool) -> None:
            data = registry.blobs.get(digest)
            if data is None:
                self.error(404, "BLOB_UNKNOWN", "blob unknown to registry")
                return
            if digest in registry.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = 0
            range_header = self.headers.get("Range")
            if range_header:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
            status = 206 if range_header else 200
            part = data[start:]
            if digest in registry.reset_once and send_body:
                registry.reset_once.discard(digest)
                self.send_response(status)
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                self.wfile.write(part[: len(part) // 2])
                self.wfile.flush()
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.connection.close()
                self.close_connection = True
                return
            if digest in registry.cut_once and send_body:
                registry.cut_once.discard(digest)
                self.send_response(status)
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                self.wfile.write(part[: len(part) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            headers = {"Content-Type": "application/octet-stream"}
            if range_header:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self.send(status, part, headers, send_body)

    return Handler


@contextmanager
def serve(registry: FakeRegistry) -> Iterator[FakeRegistry]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(registry))
    registry.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
