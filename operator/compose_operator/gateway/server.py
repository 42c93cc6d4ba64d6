"""The gateway's HTTP server: OpenAI's API routed by the body's `model`, streaming through.

Paths: `/v1/...`, and Docker Model Runner's `/engines/v1/...` and `/engines/<engine>/v1/...`
(the engine segment is accepted and ignored: the model decides). `GET .../models` lists the
app's models; every other request is a `POST` whose JSON body names a model, and goes to that
model's Service, `<upstream>/v1/<the rest of the path>`.

Responses stream through as the engine sends them (`iter_any`: each read is written at once),
so server-sent events keep their pace and the time to the first token is the engine's. A
short response with a length is relayed whole, which is cheaper. Connections to the engines
are pooled and kept alive. A client that disconnects cancels its handler (aiohttp's
`handler_cancellation`), which closes the upstream connection, so the engine stops generating.

Errors are OpenAI-shaped (`{"error": {"message", "type", "code"}}`): 404 for a model the app
does not have (naming the ones it has), 413 for a body over the limit, 400 for a body that
names no model, 503 when the engine cannot be reached, 504 when it goes silent. The gateway's
own answers are too: 404 for a path it does not serve, 405 (with `Allow`) for a method a path
does not answer, where aiohttp's router would answer in plain text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import prometheus_client
from aiohttp import web
from aiohttp.typedefs import Handler

from compose_operator.gateway.routes import Table, Upstream

BUFFER_LIMIT = 1024 * 1024
"""Responses with a Content-Length up to this are relayed whole; longer ones, and those
without a length (server-sent events), stream."""
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
"""Headers about one connection, not the message (RFC 9110 §7.6.1), and those aiohttp sets."""
NOT_RELAYED = HOP_BY_HOP | {"date", "server"}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
"""From a cached short answer to a long generation."""
UNKNOWN = "unknown"
"""The metrics label of requests that name no model of the app."""
PREFIXES = ("/v1", "/engines/v1", "/engines/{engine}/v1")
"""OpenAI's, and Docker Model Runner's with and without an engine segment."""

log = logging.getLogger("compose_operator.gateway")


class Metrics:
    """Per model: requests by status, latency and time to first byte, requests in flight."""

    def __init__(self, models: list[str]) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        prometheus_client.ProcessCollector(registry=self.registry)
        prometheus_client.PlatformCollector(registry=self.registry)
        self.requests = prometheus_client.Counter(
            "compose_gateway_requests",
            "Requests by model (its key) and HTTP status.",
            ["model", "code"],
            registry=self.registry,
        )
        self.duration = prometheus_client.Histogram(
            "compose_gateway_request_duration_seconds",
            "Time from the request to the last byte of the response.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_byte = prometheus_client.Histogram(
            "compose_gateway_time_to_first_byte_seconds",
            "Time from the request to the first byte of the response body sent on.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = prometheus_client.Gauge(
            "compose_gateway_in_flight_requests",
            "Requests being served.",
            ["model"],
            registry=self.registry,
        )
        self._counters: dict[tuple[str, int], Any] = {}
        for model in [*models, UNKNOWN]:
            self.duration.labels(model)
            self.first_byte.labels(model)
            self.in_flight.labels(model)

    def count(self, model: str, code: int) -> None:
        counter = self._counters.get((model, code))
        if counter is None:
            counter = self._counters[model, code] = self.requests.labels(model, str(code))
        counter.inc()

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)


def error_body(message: str, kind: str, code: str, param: str | None = None) -> bytes:
    """OpenAI's error shape, which its clients turn into typed exceptions."""
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if param is not None:
        error["param"] = param
    return json.dumps({"error": error}).encode()


class Exchange:
    """What one request did, for its metrics and its log line."""

    __slots__ = ("first_byte", "model", "requested", "started", "status", "upstream")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.model = UNKNOWN
        self.requested = ""
        self.status = 0
        self.first_byte: float | None = None
        self.upstream = ""


class Gateway:
    """The app's gateway: its routing table, its pool of engine connections, its metrics."""

    def __init__(
        self,
        table: Table,
        *,
        max_request_bytes: int,
        upstream_timeout: float,
        connect_timeout: float = 10,
        log_format: str = "json",
    ) -> None:
        self.table = table
        self.max_request_bytes = max_request_bytes
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=upstream_timeout
        )
        self.metrics = Metrics(list(table.models))
        self.draining = False
        self.log_format = log_format
        self.session: aiohttp.ClientSession | None = None
        self._listing = json.dumps(table.listing()).encode()

    def application(self) -> web.Application:
        # The body limit is enforced here, with an OpenAI-style 413; aiohttp's own is a backstop.
        app = web.Application(client_max_size=self.max_request_bytes + 1)
        # Every path ends in a handler of ours, whatever the method, so every answer is JSON.
        gets: dict[str, Handler] = {
            "/healthz": self.healthz,
            "/readyz": self.readyz,
            "/metrics": self.exposition,
        }
        for prefix in PREFIXES:
            gets[f"{prefix}/models"] = self.models
            gets[f"{prefix}/models/{{name:.+}}"] = self.model
        for path, handler in gets.items():
            app.router.add_get(path, handler, allow_head=False)
            app.router.add_route("*", path, self.only_get)
        for prefix in PREFIXES:
            app.router.add_route("*", f"{prefix}/{{rest:.*}}", self.forward)
        app.router.add_route("*", "/{path:.*}", self.not_found)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=30, keepalive_timeout=60)
        # Headers are the client's own: aiohttp adds none (an Accept-Encoding the client did
        # not send would get it a compressed body it never asked for).
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        )

    async def _close(self, _: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.Response:
        if self.draining:
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response({"status": "ready", "models": len(self.table.models)})

    async def exposition(self, _: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.exposition(), content_type="text/plain", charset="utf-8"
        )

    async def models(self, request: web.Request) -> web.Response:
        return web.Response(body=self._listing, content_type="application/json")

    async def model(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        upstream = self.table.lookup(name)
        if upstream is None:
            return self._unknown(name)
        return web.json_response(self.table.entry(upstream))

    async def only_get(self, request: web.Request) -> web.Response:
        return self._not_allowed(request, "GET")

    async def not_found(self, request: web.Request) -> web.Response:
        return self._error(
            404,
            f"{request.method} {request.path} is not served here: the model gateway serves "
            "/v1/..., /engines/v1/... and /engines/<engine>/v1/...",
            "invalid_request_error",
            "not_found",
        )

    def _not_allowed(self, request: web.Request, allowed: str, why: str = "") -> web.Response:
        response = self._error(
            405,
            f"{request.method} {request.path}: this path answers {allowed} only{why}",
            "invalid_request_error",
            "method_not_allowed",
        )
        response.headers["Allow"] = allowed
        return response

    def _error(
        self, status: int, message: str, kind: str, code: str, param: str | None = None
    ) -> web.Response:
        return web.Response(
            status=status,
            body=error_body(message, kind, code, param),
            content_type="application/json",
        )

    def _unknown(self, name: str) -> web.Response:
        table = self.table
        return self._error(
            404,
            f"model {name!r} is not served by app {table.namespace}/{table.app}; "
            f"its models: {table.known()}",
            "invalid_request_error",
            "model_not_found",
            "model",
        )

    async def forward(self, request: web.Request) -> web.StreamResponse:
        exchange = Exchange()
        try:
            response = await self._forward(request, exchange)
            exchange.status = response.status
            return response
        except asyncio.CancelledError:
            exchange.status = 499  # the client went away; the upstream request is closed
            raise
        finally:
            self._record(request, exchange)

    async def _forward(self, request: web.Request, exchange: Exchange) -> web.StreamResponse:
        if request.method != "POST":
            return self._not_allowed(
                request, "POST", " (the gateway routes it by the JSON body's `model`)"
            )
        length = request.content_length
        if length is not None and length > self.max_request_bytes:
            return self._too_large()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large()
        if len(body) > self.max_request_bytes:
            return self._too_large()
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        name = document.get("model") if isinstance(document, dict) else None
        if not isinstance(name, str):
            return self._error(
                400,
                "the body must be a JSON object with a string `model`: the gateway routes by it "
                f"(this app's models: {self.table.known()})",
                "invalid_request_error",
                "missing_model",
                "model",
            )
        exchange.requested = name[:200]
        upstream = self.table.lookup(name)
        if upstream is None:
            return self._unknown(name)
        assert isinstance(document, dict)
        exchange.model = upstream.key
        if upstream.served != name:
            document["model"] = upstream.served
            body = json.dumps(document).encode()
        return await self._relay(request, upstream, body, exchange)

    def _too_large(self) -> web.Response:
        return self._error(
            413,
            f"the request body is over {self.max_request_bytes} bytes, the gateway's limit "
            "(operator setting gateway.maxRequestBytes)",
            "invalid_request_error",
            "request_too_large",
        )

    async def _relay(
        self, request: web.Request, upstream: Upstream, body: bytes, exchange: Exchange
    ) -> web.StreamResponse:
        assert self.session is not None
        url = f"{upstream.base}/v1/{request.match_info['rest']}"
        if request.query_string:
            url += f"?{request.query_string}"
        exchange.upstream = upstream.base
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        in_flight = self.metrics.in_flight.labels(upstream.key)
        in_flight.inc()
        try:
            async with self.session.request(
                request.method, url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                return await self._respond(request, answer, exchange)
        except aiohttp.ConnectionTimeoutError as error:
            return self._unreachable(upstream, error)
        except TimeoutError:
            if exchange.first_byte is not None:
                raise  # the response has begun: all that is left is to close the connection
            return self._error(
                504,
                f"model {upstream.model} ({upstream.key}) sent nothing for "
                f"{self.timeout.sock_read} s (operator setting gateway.upstreamTimeoutSeconds)",
                "timeout",
                "model_timeout",
            )
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as error:
            if exchange.first_byte is not None:
                raise
            return self._unreachable(upstream, error)
        finally:
            in_flight.dec()

    def _unreachable(self, upstream: Upstream, error: Exception) -> web.Response:
        return self._error(
            503,
            f"model {upstream.model} ({upstream.key}) is not reachable at {upstream.base}: "
            f"{error or type(error).__name__}",
            "service_unavailable",
            "model_unavailable",
        )

    async def _respond(
        self, request: web.Request, answer: aiohttp.ClientResponse, exchange: Exchange
    ) -> web.StreamResponse:
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in NOT_RELAYED}
        length = answer.content_length
        streaming = length is None or length > BUFFER_LIMIT
        if not streaming:
            content = await answer.read()
            exchange.first_byte = time.perf_counter()
            return web.Response(status=answer.status, body=content, headers=headers)
        response = web.StreamResponse(status=answer.status, headers=headers)
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        async for chunk in answer.content.iter_any():
            if exchange.first_byte is None:
                exchange.first_byte = time.perf_counter()
            await response.write(chunk)
        await response.write_eof()
        return response

    def _record(self, request: web.Request, exchange: Exchange) -> None:
        finished = time.perf_counter()
        model, metrics = exchange.model, self.metrics
        metrics.count(model, exchange.status)
        metrics.duration.labels(model).observe(finished - exchange.started)
        if exchange.first_byte is not None:
            metrics.first_byte.labels(model).observe(exchange.first_byte - exchange.started)
        if log.isEnabledFor(logging.INFO):
            log.info(self._line(request, exchange, finished))

    def _line(self, request: web.Request, exchange: Exchange, finished: float) -> str:
        """One line per request, never a body."""
        fields: Mapping[str, Any] = {
            "method": request.method,
            "path": request.path,
            "model": exchange.model,
            "requested": exchange.requested,
            "status": exchange.status,
            "ms": round((finished - exchange.started) * 1000, 2),
            "first_byte_ms": (
                None
                if exchange.first_byte is None
                else round((exchange.first_byte - exchange.started) * 1000, 2)
            ),
            "upstream": exchange.upstream,
            "remote": request.remote,
        }
        if self.log_format == "json":
            return json.dumps(fields)
        return " ".join(f"{key}={value}" for key, value in fields.items())
