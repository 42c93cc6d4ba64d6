"""The routing table the operator renders, and the lookups the server makes. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compose_operator import references


class RoutesError(Exception):
    """The routing file is not what the operator writes."""


@dataclass(frozen=True)
class Upstream:
    """One model, and where its requests go."""

    key: str
    model: str
    engine: str
    base: str
    """`http://<svc>.<ns>.svc.<domain>`: requests go to `<base>/v1/<rest>`."""
    served: str
    """The name the engine serves; a request naming the model otherwise is rewritten to it."""


@dataclass(frozen=True)
class Table:
    app: str
    namespace: str
    models: Mapping[str, Upstream]
    """By model key, in key order."""
    names: Mapping[str, str]
    """Every name a client may send → model key."""

    def lookup(self, name: str) -> Upstream | None:
        """The model a request names: any spelling of its reference, or its key."""
        key = self.names.get(name)
        if key is None:
            try:
                key = self.names.get(references.normalise(name))
            except ValueError:
                return None
        return None if key is None else self.models[key]

    def known(self) -> str:
        """The app's models, for error messages: `ai/gemma3 (llm), ai/all-minilm (embedding)`."""
        return ", ".join(f"{m.model} ({m.key})" for m in self.models.values()) or "none"

    def listing(self) -> dict[str, Any]:
        """`GET /v1/models` in OpenAI's format: each model under the name `*_MODEL` carries."""
        return {"object": "list", "data": [self.entry(m) for m in self.models.values()]}

    def entry(self, upstream: Upstream) -> dict[str, Any]:
        return {
            "id": upstream.model,
            "object": "model",
            "created": 0,
            "owned_by": f"{self.namespace}/{self.app}",
        }


def parse(text: str) -> Table:
    """The table from the routing file's JSON; RoutesError says what is wrong."""
    try:
        document = json.loads(text)
        models = {
            entry["key"]: Upstream(
                key=str(entry["key"]),
                model=str(entry["model"]),
                engine=str(entry["engine"]),
                base=str(entry["upstream"]).rstrip("/"),
                served=str(entry["served"]),
            )
            for entry in document["models"]
        }
        names = {str(name): str(key) for name, key in document["names"].items()}
        table = Table(
            app=str(document["app"]),
            namespace=str(document["namespace"]),
            models=models,
            names=names,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise RoutesError(f"not a routing table: {error!r}") from None
    missing = sorted(set(names.values()) - set(models))
    if missing:
        raise RoutesError(f"names point at models that are not in the table: {missing}")
    return table
