"""The example chat app (examples/chat-app) against a fake OpenAI server on 127.0.0.1.

The fake serves /v1/chat/completions and /v1/embeddings for one model name each, answers
another name with 404 as vLLM does, and embeds text as a hashed bag of words, so which note
the app retrieves is predictable. The app runs as a real process, configured only through
its environment, as in a pod.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

APP = Path(__file__).resolve().parents[1] / "examples" / "chat-app" / "chat_app.py"
CHAT_MODEL = "ai/gemma3"
EMBEDDING_MODEL = "ai/all-minilm"
DIMENSIONS = 64


def load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chat_app", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chat_app"] = module
    spec.loader.exec_module(module)
    return module


chat_app = load_app()


def bag_of_words(text: str) -> list[float]:
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"[a-z.]+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMENSIONS] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


@dataclass
class FakeOpenAI:
    url: str
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_with: int | None = None


@pytest.fixture(scope="module")
def shared_fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append((self.path, body))
            if fake.fail_with:
                self._reply(fake.fail_with, {"error": {"message": "engine is down"}})
            elif self.path == "/v1/chat/completions":
                self._chat(body)
            elif self.path == "/v1/embeddings":
                self._embeddings(body)
            else:
                self._reply(404, {"error": {"message": f"no route {self.path}"}})

        def _chat(self, body: dict[str, Any]) -> None:
            if body["model"] != CHAT_MODEL:
                self._unknown_model(body["model"])
                return
            prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
            self._reply(
                200,
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "length",
                            "message": {"role": "assistant", "content": "Two variables."},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": body["max_tokens"],
                        "total_tokens": prompt_tokens + body["max_tokens"],
                    },
                },
            )

        def _embeddings(self, body: dict[str, Any]) -> None:
            if body["model"] != EMBEDDING_MODEL:
                self._unknown_model(body["model"])
                return
            data = [
                {"object": "embedding", "index": i, "embedding": bag_of_words(text)}
                for i, text in enumerate(body["input"])
            ]
            # Out of order on purpose: clients must sort by index.
            self._reply(
                200,
                {"object": "list", "model": body["model"], "data": data[::-1], "usage": {}},
            )

        def _unknown_model(self, model: str) -> None:
            self._reply(404, {"error": {"message": f"The model `{model}` does not exist."}})

        def _reply(self, status: int, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_openai(shared_fake_openai: FakeOpenAI) -> FakeOpenAI:
    """The module's fake server, with no requests recorded and no failure set."""
    shared_fake_openai.requests.clear()
    shared_fake_openai.fail_with = None
    return shared_fake_openai


@dataclass
class RunningApp:
    process: subprocess.Popen[str]
    url: str


def start_app(environment: Mapping[str, str]) -> RunningApp:
    env = {"PATH": os.environ.get("PATH", ""), "HOST": "127.0.0.1", "PORT": "0", **environment}
    process = subprocess.Popen(
        [sys.executable, str(APP)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    banner = process.stdout.readline()
    match = re.search(r"listening on 127\.0\.0\.1:(\d+);", banner)
    assert match, (banner, process.stderr.read() if process.stderr else "")
    return RunningApp(process, f"http://127.0.0.1:{match.group(1)}")


def compose_environment(fake: FakeOpenAI) -> dict[str, str]:
    """What Compose sets for a service bound to models `llm` and `embedding-model`."""
    return {
        "LLM_URL": fake.url,
        "LLM_MODEL": CHAT_MODEL,
        "EMBEDDING_MODEL_URL": fake.url,
        "EMBEDDING_MODEL_MODEL": EMBEDDING_MODEL,
    }


@pytest.fixture(scope="module")
def shared_app(shared_fake_openai: FakeOpenAI) -> Iterator[RunningApp]:
    running = start_app(compose_environment(shared_fake_openai))
    yield running
    running.process.kill()
    running.process.wait()


@pytest.fixture
def app(shared_app: RunningApp, fake_openai: FakeOpenAI) -> RunningApp:
    """The module's app process, talking to the freshly reset fake server."""
    return shared_app


@pytest.fixture
def own_app(fake_openai: FakeOpenAI) -> Iterator[RunningApp]:
    """An app process of the test's own (for tests that stop it or need its first calls)."""
    running = start_app(compose_environment(fake_openai))
    yield running
    running.process.kill()
    running.process.wait()


def call(url: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_healthz_names_the_bound_models(app: RunningApp) -> None:
    assert call(app.url + "/healthz") == (
        200,
        {"status": "ok", "chat_model": CHAT_MODEL, "embedding_model": EMBEDDING_MODEL},
    )


def test_chat_retrieves_the_closest_note_and_asks_the_chat_model(
    app: RunningApp, fake_openai: FakeOpenAI
) -> None:
    question = "Which environment variables does a bound service get?"
    status, body = call(app.url + "/chat", {"question": question, "max_tokens": 12})

    note = "A service bound to a model gets its URL and its name in environment variables."
    assert status == 200
    assert body["question"] == question
    assert body["answer"] == "Two variables."
    assert body["model"] == CHAT_MODEL
    assert body["embedding"] == {"model": EMBEDDING_MODEL, "dimensions": DIMENSIONS}
    assert body["context"]["note"] == note
    expected_similarity = chat_app.cosine(bag_of_words(question), bag_of_words(note))
    assert body["context"]["similarity"] == pytest.approx(expected_similarity, abs=1e-6)
    chat_requests = [b for path, b in fake_openai.requests if path == "/v1/chat/completions"]
    assert chat_requests == [
        {
            "model": CHAT_MODEL,
            "messages": [
                {
                    "role": "system",
                    "content": f"Answer in one or two short sentences. This note may help: {note}",
                },
                {"role": "user", "content": question},
            ],
            "max_tokens": 12,
        }
    ]
    prompt_tokens = len(chat_requests[0]["messages"][0]["content"].split()) + len(question.split())
    assert body["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 12,
        "total_tokens": prompt_tokens + 12,
    }


def test_notes_are_embedded_once(own_app: RunningApp, fake_openai: FakeOpenAI) -> None:
    for question in ("What does llama.cpp serve?", "Where do model servers run?"):
        assert call(own_app.url + "/chat", {"question": question})[0] == 200

    embedding_inputs = [b["input"] for path, b in fake_openai.requests if path == "/v1/embeddings"]
    assert embedding_inputs == [
        list(chat_app.NOTES),
        ["What does llama.cpp serve?"],
        ["Where do model servers run?"],
    ]
    max_tokens = [b["max_tokens"] for p, b in fake_openai.requests if p == "/v1/chat/completions"]
    assert max_tokens == [64, 64]


def test_embed_returns_vectors_in_input_order(app: RunningApp) -> None:
    texts = ["a cat sat", "the dog ran", "a cat sat down"]
    status, body = call(app.url + "/embed", {"input": texts})

    assert status == 200
    assert body == {
        "model": EMBEDDING_MODEL,
        "dimensions": DIMENSIONS,
        "embeddings": [pytest.approx(bag_of_words(t)) for t in texts],
    }


NOT_POSITIVE = "max_tokens must be a positive integer"


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/chat", {"q": "hi"}, 400, 'send {"question": "..."}'),
        ("/chat", {"question": "  "}, 400, "question is empty"),
        ("/chat", {"question": "hi", "max_tokens": 0}, 400, NOT_POSITIVE),
        ("/chat", {"question": "hi", "max_tokens": True}, 400, NOT_POSITIVE),
        ("/chat", "not an object", 400, 'send {"question": "..."}'),
        ("/embed", {"input": []}, 400, 'send {"input": ["text", ...]}'),
        ("/embed", {"input": "one"}, 400, 'send {"input": ["text", ...]}'),
        ("/nowhere", {}, 404, "no such path: /nowhere"),
    ],
)
def test_bad_requests_are_refused_without_calling_a_model(
    app: RunningApp,
    fake_openai: FakeOpenAI,
    path: str,
    body: Any,
    status: int,
    error: str,
) -> None:
    assert call(app.url + path, body) == (status, {"error": error})
    assert fake_openai.requests == []


def test_a_body_that_is_not_json_is_refused(app: RunningApp) -> None:
    request = urllib.request.Request(app.url + "/chat", data=b"{oops")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 400
    assert json.loads(raised.value.read()) == {"error": "the body is not JSON"}


def test_a_failing_model_is_a_bad_gateway(app: RunningApp, fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_with = 503

    status, body = call(app.url + "/chat", {"question": "hi"})

    assert status == 502
    assert body["error"].startswith("model request failed:")
    assert "engine is down" in body["error"]


def test_long_syntax_names_are_read_through_the_indirection_variables(
    fake_openai: FakeOpenAI,
) -> None:
    running = start_app(
        {
            "CHAT_URL_VAR": "AI_MODEL_URL",
            "CHAT_MODEL_VAR": "AI_MODEL_NAME",
            "EMBEDDING_URL_VAR": "EMBEDDING_URL",
            "EMBEDDING_MODEL_VAR": "EMBEDDING_NAME",
            "AI_MODEL_URL": fake_openai.url,
            "AI_MODEL_NAME": CHAT_MODEL,
            "EMBEDDING_URL": fake_openai.url,
            "EMBEDDING_NAME": EMBEDDING_MODEL,
            # Variables under the default names are ignored once the indirection names others.
            "LLM_MODEL": "ai/other",
        }
    )
    try:
        status, body = call(running.url + "/chat", {"question": "What serves GGUF models?"})
    finally:
        running.process.kill()
        running.process.wait()

    assert status == 200
    assert body["model"] == CHAT_MODEL
    assert body["embedding"] == {"model": EMBEDDING_MODEL, "dimensions": DIMENSIONS}


def test_without_an_embedding_model_chat_answers_without_notes(fake_openai: FakeOpenAI) -> None:
    running = start_app({"LLM_URL": fake_openai.url, "LLM_MODEL": CHAT_MODEL})
    try:
        health = call(running.url + "/healthz")
        chat = call(running.url + "/chat", {"question": "hello"})
        embed = call(running.url + "/embed", {"input": ["x"]})
    finally:
        running.process.kill()
        running.process.wait()

    assert health == (200, {"status": "ok", "chat_model": CHAT_MODEL, "embedding_model": None})
    assert chat[0] == 200
    assert (chat[1]["context"], chat[1]["embedding"]) == (None, None)
    assert [path for path, _ in fake_openai.requests] == ["/v1/chat/completions"]
    assert embed == (400, {"error": "no embedding model is bound to this service"})


def test_sigterm_stops_the_app_cleanly(own_app: RunningApp) -> None:
    own_app.process.send_signal(signal.SIGTERM)
    assert own_app.process.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({}, "LLM_URL and LLM_MODEL are not set: bind a chat model"),
        ({"LLM_URL": "http://x/v1/"}, "LLM_MODEL is not set (the model's other variable is)"),
        (
            {"LLM_URL": "http://x/v1/", "LLM_MODEL": "m", "EMBEDDING_MODEL_MODEL": "e"},
            "EMBEDDING_MODEL_URL is not set (the model's other variable is)",
        ),
        (
            {"CHAT_URL_VAR": "A", "CHAT_MODEL_VAR": "B", "LLM_URL": "u", "LLM_MODEL": "m"},
            "A and B are not set: bind a chat model",
        ),
        (
            {"LLM_URL": "u", "LLM_MODEL": "m", "PORT": "eighty"},
            "PORT, MAX_TOKENS and REQUEST_TIMEOUT must be numbers: "
            "invalid literal for int() with base 10: 'eighty'",
        ),
    ],
)
def test_config_errors_name_the_variable(environment: dict[str, str], message: str) -> None:
    with pytest.raises(chat_app.ConfigError) as raised:
        chat_app.load_config(environment)
    assert str(raised.value) == message


def test_config_reads_compose_defaults() -> None:
    config = chat_app.load_config(
        {
            "LLM_URL": "http://llm/v1/",
            "LLM_MODEL": "ai/gemma3",
            "EMBEDDING_MODEL_URL": "http://emb/v1/",
            "EMBEDDING_MODEL_MODEL": "ai/all-minilm",
            "MAX_TOKENS": "32",
        }
    )
    assert config == chat_app.Config(
        chat=chat_app.Endpoint("http://llm/v1/", "ai/gemma3"),
        embedding=chat_app.Endpoint("http://emb/v1/", "ai/all-minilm"),
        max_tokens=32,
    )


def test_a_process_without_a_chat_model_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, str(APP)],
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stderr) == (
        2,
        "chat-app: LLM_URL and LLM_MODEL are not set: bind a chat model\n",
    )
