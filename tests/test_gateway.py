"""The model gateway's server against local fake engines: routing, errors, streaming, drain.

Each fake engine is a real HTTP server on 127.0.0.1 that records what it received; the
gateway is the real aiohttp application (or `main.serve`, for the drain), reached over real
sockets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from compose_operator.gateway import main, routes
from compose_operator.gateway.server import Gateway


@dataclass
class Engine:
    """A fake engine: answers at once, or streams `chunks` with `pause` between them."""

    name: str
    chunks: int = 0
    pause: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(body)
        self.paths.append(request.path_qs)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        if not self.chunks:
            return web.json_response({"engine": self.name, "model": body["model"]})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for index in range(self.chunks):
                await response.write(f"data: {json.dumps({'n': index})}\n\n".encode())
                await asyncio.sleep(self.pause)
            await response.write(b"data: [DONE]\n\n")
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled.set()
            raise
        self.finished.append(time.monotonic())
        return response


@asynccontextmanager
async def engine_server(engine: Engine) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", engine.handle)
    server = TestServer(app, host="127.0.0.1", handler_cancellation=True)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


def table_for(upstreams: dict[str, str], *, served: dict[str, str] | None = None) -> routes.Table:
    """The table the operator renders for two models: llm (llama.cpp) and embedding (vllm)."""
    models = {
        "embedding": ("ai/all-minilm", "vllm"),
        "llm": ("ai/gemma3", "llama.cpp"),
    }
    document = {
        "app": "chat",
        "namespace": "team",
        "models": [
            {
                "key": key,
                "model": model,
                "engine": engine,
                "upstream": upstreams[key],
                "served": (served or {}).get(key, model),
            }
            for key, (model, engine) in models.items()
        ],
        "names": {
            **{
                spelling: key
                for key, (model, _) in models.items()
                for spelling in (
                    model,
                    f"{model}:latest",
                    f"docker.io/{model}",
                    f"docker.io/{model}:latest",
                )
            },
            "embedding": "embedding",
            "llm": "llm",
        },
    }
    return routes.parse(json.dumps(document))


@asynccontextmanager
async def gateway_for(table: routes.Table, **options: Any) -> AsyncIterator[tuple[str, Gateway]]:
    gateway = Gateway(
        table,
        max_request_bytes=options.pop("max_request_bytes", 4096),
        upstream_timeout=options.pop("upstream_timeout", 30),
    )
    server = TestServer(gateway.application(), host="127.0.0.1", handler_cancellation=True)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}", gateway
    finally:
        await server.close()


@asynccontextmanager
async def two_engines(
    llm: Engine | None = None, embedding: Engine | None = None, **options: Any
) -> AsyncIterator[tuple[str, Engine, Engine, Gateway]]:
    llm, embedding = llm or Engine("llm"), embedding or Engine("embedding")
    async with engine_server(llm) as llm_url, engine_server(embedding) as embedding_url:
        table = table_for({"llm": llm_url, "embedding": embedding_url}, **options)
        async with gateway_for(table) as (url, gateway):
            yield url, llm, embedding, gateway


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def post(url: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=json.dumps(body).encode(), **kwargs) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text else None


@pytest.mark.parametrize(
    ("name", "engine"),
    [
        ("ai/gemma3", "llm"),
        ("ai/gemma3:latest", "llm"),
        ("docker.io/ai/gemma3", "llm"),
        ("docker.io/ai/gemma3:latest", "llm"),
        ("index.docker.io/ai/gemma3:latest", "llm"),
        ("llm", "llm"),
        ("ai/all-minilm", "embedding"),
        ("docker.io/ai/all-minilm:latest", "embedding"),
        ("embedding", "embedding"),
    ],
)
def test_every_spelling_and_the_key_reach_the_model(name: str, engine: str) -> None:
    async def test() -> None:
        async with two_engines() as (url, llm, embedding, _):
            status, body = await post(f"{url}/v1/chat/completions", {"model": name, "n": 1})
            assert status == 200, body
            assert body["engine"] == engine
            target, other = (llm, embedding) if engine == "llm" else (embedding, llm)
            assert target.paths == ["/v1/chat/completions"]
            assert other.paths == []
            served = "ai/gemma3" if engine == "llm" else "ai/all-minilm"
            assert target.received == [{"model": served, "n": 1}]

    run(test)


@pytest.mark.parametrize(
    "prefix", ["/v1", "/engines/v1", "/engines/llama.cpp/v1", "/engines/vllm/v1"]
)
def test_docker_model_runner_paths_route_by_the_model_too(prefix: str) -> None:
    async def test() -> None:
        async with two_engines() as (url, llm, embedding, _):
            status, body = await post(f"{url}{prefix}/embeddings?x=1", {"model": "ai/all-minilm"})
            assert (status, body["engine"]) == (200, "embedding")
            assert embedding.paths == ["/v1/embeddings?x=1"]
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{url}{prefix}/models") as response,
            ):
                listing = await response.json()
            assert [entry["id"] for entry in listing["data"]] == ["ai/all-minilm", "ai/gemma3"]
            assert llm.paths == []

    run(test)


def test_the_model_listing_is_openais_format() -> None:
    async def test() -> None:
        async with two_engines() as (url, *_), aiohttp.ClientSession() as session:
            async with session.get(f"{url}/v1/models") as response:
                assert response.status == 200
                assert await response.json() == {
                    "object": "list",
                    "data": [
                        {"id": "ai/all-minilm", "object": "model", "created": 0,
                         "owned_by": "team/chat"},
                        {"id": "ai/gemma3", "object": "model", "created": 0,
                         "owned_by": "team/chat"},
                    ],
                }  # fmt: skip
            async with session.get(f"{url}/v1/models/docker.io/ai/gemma3:latest") as response:
                assert (await response.json())["id"] == "ai/gemma3"

    run(test)


def test_an_unknown_model_is_404_naming_the_apps_models_and_reaches_no_engine() -> None:
    async def test() -> None:
        async with two_engines() as (url, llm, embedding, _):
            status, body = await post(f"{url}/v1/chat/completions", {"model": "ai/llama3.2"})
            assert status == 404
            error = body["error"]
            assert error["code"] == "model_not_found"
            assert error["param"] == "model"
            assert error["message"] == (
                "model 'ai/llama3.2' is not served by app team/chat; its models: "
                "ai/all-minilm (embedding), ai/gemma3 (llm)"
            )
            assert llm.paths == embedding.paths == []

    run(test)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/chat/completions", "POST"),
        ("GET", "/engines/llama.cpp/v1/embeddings", "POST"),
        ("DELETE", "/v1/chat/completions", "POST"),
        ("POST", "/v1/models", "GET"),
        ("DELETE", "/engines/v1/models/ai/gemma3", "GET"),
        ("POST", "/healthz", "GET"),
        ("PUT", "/metrics", "GET"),
    ],
)
def test_a_method_a_path_does_not_answer_is_405_naming_the_one_it_does(
    method: str, path: str, allowed: str
) -> None:
    """In OpenAI's error shape, with `Allow`, and never forwarded, even with a body that names
    a model (a `POST /v1/models` or a `DELETE` used to reach the engine)."""

    async def test() -> None:
        async with two_engines() as (url, llm, embedding, _), aiohttp.ClientSession() as session:
            async with session.request(method, f"{url}{path}", json={"model": "llm"}) as response:
                assert response.status == 405
                assert response.headers["Allow"] == allowed
                assert response.content_type == "application/json"
                error = (await response.json())["error"]
            assert error.pop("message").startswith(
                f"{method} {path}: this path answers {allowed} only"
            )
            assert error == {"type": "invalid_request_error", "code": "method_not_allowed"}
            assert llm.paths == embedding.paths == []

    run(test)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("POST", "/chat/completions"), ("POST", "/v2/chat/completions"),
     ("GET", "/engines"), ("HEAD", "/v1")],
)  # fmt: skip
def test_a_path_the_gateway_does_not_serve_is_404_in_openais_shape(method: str, path: str) -> None:
    async def test() -> None:
        async with two_engines() as (url, llm, embedding, _), aiohttp.ClientSession() as session:
            async with session.request(method, f"{url}{path}", json={"model": "llm"}) as response:
                assert response.status == 404
                assert response.content_type == "application/json"
                if method != "HEAD":
                    error = (await response.json())["error"]
                    assert error["message"] == (
                        f"{method} {path} is not served here: the model gateway serves /v1/..., "
                        "/engines/v1/... and /engines/<engine>/v1/..."
                    )
                    assert (error["type"], error["code"]) == ("invalid_request_error", "not_found")
            assert llm.paths == embedding.paths == []

    run(test)


def test_openais_client_turns_the_gateways_own_errors_into_typed_exceptions() -> None:
    """What an app sees through its `*_URL`: the same exceptions, with the same fields, for an
    unknown model, an unknown path and a wrong method."""

    async def test() -> None:
        async with two_engines() as (url, *_):
            client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            elsewhere = openai.AsyncOpenAI(base_url=f"{url}/v2", api_key="unused", max_retries=0)
            with pytest.raises(openai.NotFoundError) as unknown_model:
                await client.chat.completions.create(model="ai/llama3.2", messages=[])
            with pytest.raises(openai.NotFoundError) as unknown_path:
                await elsewhere.models.list()
            with pytest.raises(openai.APIStatusError) as wrong_method:
                await client.get("/chat/completions", cast_to=object)
            await client.close()
            await elsewhere.close()
        found = [
            (e.value.status_code, e.value.type, e.value.code)
            for e in (unknown_model, unknown_path, wrong_method)
        ]
        assert found == [
            (404, "invalid_request_error", "model_not_found"),
            (404, "invalid_request_error", "not_found"),
            (405, "invalid_request_error", "method_not_allowed"),
        ]

    run(test)


@pytest.mark.parametrize("body", [{"messages": []}, {"model": 3}, ["model"], "not json"])
def test_a_body_naming_no_model_is_400(body: Any) -> None:
    async def test() -> None:
        async with two_engines() as (url, llm, embedding, _):
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{url}/v1/chat/completions", data=raw) as response,
            ):
                assert response.status == 400
                assert "ai/gemma3 (llm)" in (await response.json())["error"]["message"]
            assert llm.paths == embedding.paths == []

    run(test)


def test_a_body_over_the_limit_is_413_with_or_without_a_length() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    async def test() -> None:
        async with two_engines() as (url, llm, _, _), aiohttp.ClientSession() as session:
            big = json.dumps({"model": "llm", "input": "x" * 5000}).encode()
            async with session.post(f"{url}/v1/embeddings", data=big) as response:
                assert response.status == 413
                error = (await response.json())["error"]
                assert error["code"] == "request_too_large"
                assert "4096 bytes" in error["message"]
            async with session.post(f"{url}/v1/embeddings", data=chunks()) as response:
                assert response.status == 413
            fits = json.dumps({"model": "llm", "input": "x" * 3000}).encode()
            async with session.post(f"{url}/v1/embeddings", data=fits) as response:
                assert response.status == 200
            assert llm.paths == ["/v1/embeddings"]

    run(test)


def test_an_engine_that_is_down_gives_503_naming_the_model() -> None:
    async def test() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]
        table = table_for({"llm": f"http://127.0.0.1:{closed}", "embedding": "http://x"})
        async with gateway_for(table) as (url, _):
            status, body = await post(f"{url}/v1/chat/completions", {"model": "ai/gemma3"})
        assert status == 503
        assert body["error"]["code"] == "model_unavailable"
        assert body["error"]["message"].startswith("model ai/gemma3 (llm) is not reachable at ")

    run(test)


def test_an_engine_that_goes_silent_gives_504() -> None:
    async def silent(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    async def test() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", silent)
        engine = TestServer(app, host="127.0.0.1")
        await engine.start_server()
        table = table_for({"llm": f"http://127.0.0.1:{engine.port}", "embedding": "http://x"})
        async with gateway_for(table, upstream_timeout=0.3) as (url, _):
            status, body = await post(f"{url}/v1/chat/completions", {"model": "llm"})
        await engine.close()
        assert status == 504
        assert "ai/gemma3 (llm) sent nothing for 0.3 s" in body["error"]["message"]

    run(test)


def test_a_stream_passes_through_chunk_by_chunk_before_the_engine_finishes() -> None:
    async def test() -> None:
        slow = Engine("llm", chunks=4, pause=0.3)
        async with two_engines(llm=slow) as (url, *_), aiohttp.ClientSession() as session:
            body = {"model": "ai/gemma3", "stream": True}
            async with session.post(f"{url}/v1/chat/completions", json=body) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "text/event-stream"
                arrivals = []
                async for chunk in response.content.iter_any():
                    arrivals.append((time.monotonic(), chunk))
        (finished,) = slow.finished
        assert arrivals[0][1] == b'data: {"n": 0}\n\n'
        before_the_end = [at for at, _ in arrivals if at < finished - 0.2]
        assert len(before_the_end) >= 3, [(at - finished, chunk) for at, chunk in arrivals]
        assert b"".join(chunk for _, chunk in arrivals).endswith(b"data: [DONE]\n\n")

    run(test)


def test_a_client_that_disconnects_cancels_the_engines_request() -> None:
    async def test() -> None:
        endless = Engine("llm", chunks=1000, pause=0.1)
        async with two_engines(llm=endless) as (url, *_):
            async with aiohttp.ClientSession() as session:
                response = await session.post(
                    f"{url}/v1/completions", json={"model": "llm", "stream": True}
                )
                assert await response.content.readline() == b'data: {"n": 0}\n'
                response.close()  # drops the connection mid-stream
            await asyncio.wait_for(endless.cancelled.wait(), timeout=3)
            assert endless.finished == []

    run(test)


def test_headers_pass_through_but_hop_by_hop_ones_do_not() -> None:
    async def test() -> None:
        async with two_engines() as (url, llm, _, _):
            headers = {"Authorization": "Bearer t", "X-Request-Id": "r1", "Proxy-Connection": "x"}
            status, _ = await post(
                f"{url}/v1/chat/completions",
                {"model": "llm"},
                headers=headers,
                skip_auto_headers=["Accept-Encoding"],
            )
            assert status == 200
            (seen,) = llm.headers
            assert seen["authorization"] == "Bearer t"
            assert seen["x-request-id"] == "r1"
            assert "proxy-connection" not in seen
            assert "accept-encoding" not in seen  # the gateway adds none of its own

    run(test)


def test_metrics_count_requests_by_model_and_status() -> None:
    async def test() -> None:
        async with two_engines() as (url, *_):
            await post(f"{url}/v1/chat/completions", {"model": "llm"})
            await post(f"{url}/v1/chat/completions", {"model": "llm"})
            await post(f"{url}/v1/chat/completions", {"model": "nope"})
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{url}/metrics") as response,
            ):
                text = await response.text()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        counted = {
            (s.labels["model"], s.labels["code"]): s.value
            for s in families["compose_gateway_requests"].samples
            if s.name.endswith("_total")
        }
        assert counted == {("llm", "200"): 2, ("unknown", "404"): 1}
        durations = {
            s.labels["model"]: s.value
            for s in families["compose_gateway_request_duration_seconds"].samples
            if s.name.endswith("_count")
        }
        assert durations["llm"] == 2
        in_flight = families["compose_gateway_in_flight_requests"].samples
        assert {s.labels["model"]: s.value for s in in_flight}["llm"] == 0
        assert "process_resident_memory_bytes" in families or "process_resident_memory" in text

    run(test)


def test_one_log_line_per_request_without_the_body(caplog: pytest.LogCaptureFixture) -> None:
    async def test() -> None:
        async with two_engines() as (url, *_):
            await post(f"{url}/v1/chat/completions", {"model": "llm", "messages": "SECRET"})

    with caplog.at_level("INFO", logger="compose_operator.gateway"):
        run(test)
    (line,) = [r.getMessage() for r in caplog.records]
    fields = json.loads(line)
    assert (fields["method"], fields["path"], fields["model"], fields["status"]) == (
        "POST", "/v1/chat/completions", "llm", 200,
    )  # fmt: skip
    assert "SECRET" not in line


def test_a_stopping_gateway_fails_readiness_then_drains_what_it_serves() -> None:
    """A routing change rolls the gateway: the old pod gets SIGTERM (here: `stop`) while a
    long generation streams. It keeps serving through the endpoint delay, then stops
    listening, and the stream still ends whole."""

    async def test() -> None:
        slow = Engine("llm", chunks=6, pause=0.25)
        async with engine_server(slow) as llm_url:
            table = table_for({"llm": llm_url, "embedding": "http://127.0.0.1:9"})
            gateway = Gateway(table, max_request_bytes=4096, upstream_timeout=30)
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            stop = asyncio.Event()
            server = asyncio.create_task(
                main.serve(gateway, host="127.0.0.1", port=port, endpoint_delay=0.5,
                           drain_seconds=10, stop=stop)
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    async with (
                        aiohttp.ClientSession() as session,
                        session.get(f"{url}/readyz") as ready,
                    ):
                        assert ready.status == 200
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            async with aiohttp.ClientSession() as session:
                stream = await session.post(
                    f"{url}/v1/chat/completions", json={"model": "llm", "stream": True}
                )
                first = await stream.content.readline()
                stop.set()
                await asyncio.sleep(0.1)
                async with aiohttp.ClientSession() as other:
                    async with other.get(f"{url}/readyz") as ready:
                        assert ready.status == 503
                    async with other.get(f"{url}/v1/models") as listing:
                        assert listing.status == 200  # still served during the endpoint delay
                rest = await stream.content.read()
            await asyncio.wait_for(server, timeout=10)
            assert first == b'data: {"n": 0}\n'
            assert rest.endswith(b"data: [DONE]\n\n")
            assert rest.count(b"data: ") == 6
            with pytest.raises(aiohttp.ClientConnectionError):
                await post(f"{url}/v1/chat/completions", {"model": "llm"})

    run(test)


def test_a_routing_file_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    path.write_text('{"app": "chat"}')
    assert main.main(["--routes", str(path)]) == 2
    with pytest.raises(routes.RoutesError, match="not in the table"):
        routes.parse(
            json.dumps({"app": "a", "namespace": "n", "models": [], "names": {"x": "gone"}})
        )
