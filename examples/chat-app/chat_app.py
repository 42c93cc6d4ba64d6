"""A small chat service that uses the models a Compose file binds to it.

It answers a question with the chat model, after asking the embedding model which of a few
built-in notes is closest to the question and handing that note to the chat model as context
(retrieval in its smallest form). Both models are reached with the `openai` client through the
variables Compose (or compose-operator) sets for a service bound to them:

  LLM_URL, LLM_MODEL                           the chat model (Compose model key `llm`)
  EMBEDDING_MODEL_URL, EMBEDDING_MODEL_MODEL   the embedding model (key `embedding-model`),
                                               optional: without it /chat answers without notes

A Compose file whose long syntax renames the variables (`endpoint_var` / `model_var`) tells
the app which names to read: CHAT_URL_VAR, CHAT_MODEL_VAR, EMBEDDING_URL_VAR and
EMBEDDING_MODEL_VAR hold the names of the variables to read instead of the four above.

Other settings: HOST (0.0.0.0), PORT (8080), MAX_TOKENS (64), REQUEST_TIMEOUT seconds (120).

HTTP API (JSON):
  GET  /healthz  -> 200 {"status": "ok", "chat_model": ..., "embedding_model": ...}
  POST /chat     {"question": str, "max_tokens"?: int}
                 -> 200 {"question", "answer", "model", "usage", "context", "embedding"}
  POST /embed    {"input": [str, ...]} -> 200 {"model", "dimensions", "embeddings"}
Bad input gets 400, an unknown path 404, and a failing model 502 with the model's message.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai

NOTES = (
    "Compose files list AI models under a top-level models element; services bind them.",
    "A service bound to a model gets its URL and its name in environment variables.",
    "llama.cpp serves GGUF models; vLLM serves safetensors models such as embedding models.",
    "Kubernetes schedules model servers onto GPU nodes chosen by cloud labels.",
)

DEFAULT_NAMES = {
    "CHAT_URL_VAR": "LLM_URL",
    "CHAT_MODEL_VAR": "LLM_MODEL",
    "EMBEDDING_URL_VAR": "EMBEDDING_MODEL_URL",
    "EMBEDDING_MODEL_VAR": "EMBEDDING_MODEL_MODEL",
}


class ConfigError(Exception):
    """The environment does not say where the models are."""


class BadRequest(Exception):
    """The client's request cannot be served as sent."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    model: str


@dataclass(frozen=True)
class Config:
    chat: Endpoint
    embedding: Endpoint | None
    host: str = "0.0.0.0"
    port: int = 8080
    max_tokens: int = 64
    timeout: float = 120.0


def _endpoint(environ: Mapping[str, str], url_key: str, model_key: str) -> Endpoint | None:
    url_name = environ.get(url_key, DEFAULT_NAMES[url_key])
    model_name = environ.get(model_key, DEFAULT_NAMES[model_key])
    url, model = environ.get(url_name, ""), environ.get(model_name, "")
    if not url and not model:
        return None
    if not url or not model:
        missing = url_name if not url else model_name
        raise ConfigError(f"{missing} is not set (the model's other variable is)")
    return Endpoint(url, model)


def load_config(environ: Mapping[str, str]) -> Config:
    chat = _endpoint(environ, "CHAT_URL_VAR", "CHAT_MODEL_VAR")
    if chat is None:
        names = environ.get("CHAT_URL_VAR", "LLM_URL"), environ.get("CHAT_MODEL_VAR", "LLM_MODEL")
        raise ConfigError(f"{names[0]} and {names[1]} are not set: bind a chat model")
    try:
        return Config(
            chat=chat,
            embedding=_endpoint(environ, "EMBEDDING_URL_VAR", "EMBEDDING_MODEL_VAR"),
            host=environ.get("HOST", "0.0.0.0"),
            port=int(environ.get("PORT", "8080")),
            max_tokens=int(environ.get("MAX_TOKENS", "64")),
            timeout=float(environ.get("REQUEST_TIMEOUT", "120")),
        )
    except ValueError as error:
        message = f"PORT, MAX_TOKENS and REQUEST_TIMEOUT must be numbers: {error}"
        raise ConfigError(message) from None


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


class ChatService:
    """The app's behaviour, free of HTTP: one OpenAI client per model."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.chat_client = self._client(config.chat)
        self.embedding_client = self._client(config.embedding) if config.embedding else None
        self._note_vectors: list[list[float]] | None = None
        self._lock = threading.Lock()

    def _client(self, endpoint: Endpoint) -> openai.OpenAI:
        # Local engines need no key; the client insists on one.
        return openai.OpenAI(
            base_url=endpoint.url, api_key="unused", timeout=self.config.timeout, max_retries=1
        )

    def embed(self, texts: Sequence[str]) -> dict[str, Any]:
        if self.embedding_client is None or self.config.embedding is None:
            raise BadRequest("no embedding model is bound to this service")
        response = self.embedding_client.embeddings.create(
            model=self.config.embedding.model, input=list(texts)
        )
        vectors = [item.embedding for item in sorted(response.data, key=lambda d: d.index)]
        return {
            "model": response.model,
            "dimensions": len(vectors[0]) if vectors else 0,
            "embeddings": vectors,
        }

    def _closest_note(self, question: str) -> tuple[dict[str, Any], dict[str, Any]]:
        with self._lock:
            if self._note_vectors is None:
                self._note_vectors = self.embed(NOTES)["embeddings"]
            note_vectors = self._note_vectors
        embedded = self.embed([question])
        vector = embedded["embeddings"][0]
        scores = [cosine(vector, note) for note in note_vectors]
        best = max(range(len(NOTES)), key=scores.__getitem__)
        context = {"note": NOTES[best], "similarity": round(scores[best], 6)}
        return context, {"model": embedded["model"], "dimensions": embedded["dimensions"]}

    def chat(self, question: str, max_tokens: int | None = None) -> dict[str, Any]:
        context: dict[str, Any] | None = None
        embedding: dict[str, Any] | None = None
        system = "Answer in one or two short sentences."
        if self.embedding_client is not None:
            context, embedding = self._closest_note(question)
            system += f" This note may help: {context['note']}"
        completion = self.chat_client.chat.completions.create(
            model=self.config.chat.model,
            messages=[
                {"role": "system", "content": system},
                {"role": "user", "content": question},
            ],
            max_tokens=max_tokens or self.config.max_tokens,
        )
        usage = completion.usage
        return {
            "question": question,
            "answer": completion.choices[0].message.content or "",
            "model": completion.model,
            "usage": {
                "prompt_tokens": usage.prompt_tokens if usage else 0,
                "completion_tokens": usage.completion_tokens if usage else 0,
                "total_tokens": usage.total_tokens if usage else 0,
            },
            "context": context,
            "embedding": embedding,
        }


def _chat_request(body: Any) -> tuple[str, int | None]:
    if not isinstance(body, dict) or not isinstance(body.get("question"), str):
        raise BadRequest('send {"question": "..."}')
    question = body["question"].strip()
    if not question:
        raise BadRequest("question is empty")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise BadRequest("max_tokens must be a positive integer")
    return question, max_tokens


def _embed_request(body: Any) -> list[str]:
    texts = body.get("input") if isinstance(body, dict) else None
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest('send {"input": ["text", ...]}')
    return texts


def make_handler(service: ChatService) -> type[BaseHTTPRequestHandler]:
    config = service.config

    class Handler(BaseHTTPRequestHandler):
        server_version = "chat-app/1"

        def do_GET(self) -> None:
            if self.path == "/healthz":
                embedding_model = config.embedding.model if config.embedding else None
                self._reply(
                    HTTPStatus.OK,
                    {
                        "status": "ok",
                        "chat_model": config.chat.model,
                        "embedding_model": embedding_model,
                    },
                )
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})

        def do_POST(self) -> None:
            routes: dict[str, Callable[[Any], dict[str, Any]]] = {
                "/chat": lambda body: service.chat(*_chat_request(body)),
                "/embed": lambda body: service.embed(_embed_request(body)),
            }
            route = routes.get(self.path)
            if route is None:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})
                return
            try:
                self._reply(HTTPStatus.OK, route(self._body()))
            except BadRequest as error:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": str(error)})
            except openai.APIError as error:
                self._reply(HTTPStatus.BAD_GATEWAY, {"error": f"model request failed: {error}"})

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                return json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                raise BadRequest("the body is not JSON") from None

        def _reply(self, status: HTTPStatus, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"chat-app: {self.address_string()} {format % args}\n")

    return Handler


def main() -> int:
    try:
        config = load_config(os.environ)
    except ConfigError as error:
        print(f"chat-app: {error}", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer((config.host, config.port), make_handler(ChatService(config)))
    # Kubernetes stops a pod with SIGTERM: finish in-flight requests, then exit 0.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    embedding = config.embedding
    embedding_text = f"embedding model {embedding.model} at {embedding.url}" if embedding else ""
    print(
        f"chat-app: listening on {config.host}:{server.server_address[1]}; "
        f"chat model {config.chat.model} at {config.chat.url}; {embedding_text or 'no embeddings'}",
        flush=True,
    )
    with server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
