"""Serving engines, one file each, behind the `base.Engine` interface."""

from __future__ import annotations

from collections.abc import Mapping

from compose_operator.engines import base, llamacpp, vllm

ENGINES: Mapping[str, base.Engine] = {
    engine.name: engine for engine in (llamacpp.LlamaCpp(), vllm.Vllm())
}
