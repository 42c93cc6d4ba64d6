"""The top-level `models:` element, with our `image` alias, `labels`, `x-cloud-options` and
the Kubernetes-only `x-kubernetes` extension."""

from __future__ import annotations

import re
from typing import Any

from compose_operator.compose import values
from compose_operator.compose.report import Report, child, item
from compose_operator.project import CacheSpec, KubernetesOptions, Model, OfferSpec

KEY = re.compile(r"^[a-zA-Z0-9._-]+$")
MODEL_KEYS = (
    "model",
    "image",
    "name",
    "context_size",
    "runtime_flags",
    "labels",
    "x-cloud-options",
    "x-kubernetes",
)
KUBERNETES_KEYS = (
    "engine",
    "gpus",
    "replicas",
    "image",
    "resources",
    "cache",
    "nodeSelector",
    "tolerations",
    "offer",
    "shared",
    "endpoint",
)
ENDPOINTS = ("gateway", "direct")
ENGINES = ("llama.cpp", "vllm")
RESOURCE_KEYS = ("requests", "limits")
CACHE_KEYS = ("size", "storageClass")
TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")
OFFER_KEYS = ("namespaces", "namespaceSelector")
SHARED_KEYS = ("from",)
SELECTOR_KEYS = ("matchLabels", "matchExpressions")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


def parse_models(value: Any, report: Report) -> dict[str, Model]:
    entries = values.mapping(value, "models", report)
    if entries is None:
        return {}
    models: dict[str, Model] = {}
    for key, body in entries.items():
        path = child("models", key)
        if not KEY.match(key):
            report.problem(path, "a model key may hold only letters, digits, '.', '_' and '-'")
            continue
        model = _model(key, body, path, report)
        if model is not None:
            models[key] = model
    return models


def _model(key: str, body: Any, path: str, report: Report) -> Model | None:
    fields = values.mapping(body, path, report)
    if fields is None:
        return None
    values.unknown_keys(fields, path, MODEL_KEYS, report)
    reference = _reference(fields, path, report)
    name = _optional(fields, "name", path, report, values.string)
    context_size = None
    if "context_size" in fields:
        context_size = values.integer(
            fields["context_size"], child(path, "context_size"), report, minimum=1
        )
    runtime_flags: tuple[str, ...] | None = ()
    if "runtime_flags" in fields:
        runtime_flags = values.string_list(
            fields["runtime_flags"], child(path, "runtime_flags"), report
        )
    labels = _labels(fields, path, report)
    kubernetes = KubernetesOptions()
    if "x-kubernetes" in fields:
        parsed = _kubernetes(fields["x-kubernetes"], child(path, "x-kubernetes"), report)
        if parsed is None:
            return None
        kubernetes = parsed
    if reference is None or runtime_flags is None:
        return None
    return Model(
        key=key,
        model=reference,
        name=name,
        context_size=context_size,
        runtime_flags=runtime_flags,
        labels=labels,
        kubernetes=kubernetes,
    )


def _reference(fields: dict[str, Any], path: str, report: Report) -> str | None:
    """`model`, or `image` as Docker's documentation examples write it."""
    model: str | None = _optional(fields, "model", path, report, values.nonempty_string)
    image: str | None = _optional(fields, "image", path, report, values.nonempty_string)
    if model is not None and image is not None and model != image:
        report.problem(
            child(path, "image"),
            f"'image' is an alias of 'model'; they differ ({model!r} and {image!r}): keep 'model'",
        )
        return None
    if "model" not in fields and "image" not in fields:
        report.problem(path, "'model' is required: the model's OCI reference, e.g. ai/smollm2")
    return model or image


def _optional(fields: dict[str, Any], key: str, path: str, report: Report, read: Any) -> Any:
    return read(fields[key], child(path, key), report) if key in fields else None


def _labels(fields: dict[str, Any], path: str, report: Report) -> dict[str, str]:
    """`labels` and `x-cloud-options` as one mapping; the same key twice must agree."""
    labels: dict[str, str] = {}
    if "labels" in fields:
        labels = values.key_value_list(fields["labels"], child(path, "labels"), report, bare="")
    if "x-cloud-options" in fields:
        options_path = child(path, "x-cloud-options")
        options = values.key_value_list(fields["x-cloud-options"], options_path, report, bare=None)
        for key, value in options.items():
            if labels.get(key, value) != value:
                report.problem(
                    options_path,
                    f"{key}={value} contradicts labels ({key}={labels[key]})",
                )
            labels[key] = value
    return labels


def _kubernetes(value: Any, path: str, report: Report) -> KubernetesOptions | None:
    fields = values.mapping(value, path, report)
    if fields is None:
        return None
    errors = report.found
    for key in fields:
        if key not in KUBERNETES_KEYS:
            report.unknown_key(path, key, KUBERNETES_KEYS)
    engine = fields.get("engine")
    if engine is not None and engine not in ENGINES:
        report.problem(
            child(path, "engine"), f"must be one of {', '.join(ENGINES)}, got {values.show(engine)}"
        )
    gpus = _optional(fields, "gpus", path, report, values.integer)
    replicas = _optional(fields, "replicas", path, report, values.integer)
    image = _optional(fields, "image", path, report, values.nonempty_string)
    resources = _optional(fields, "resources", path, report, _resources)
    cache = _optional(fields, "cache", path, report, _cache)
    node_selector = _optional(fields, "nodeSelector", path, report, values.string_map)
    tolerations = _optional(fields, "tolerations", path, report, parse_tolerations)
    offer = _optional(fields, "offer", path, report, _offer)
    shared, shared_from = _shared(fields.get("shared", True), child(path, "shared"), report)
    endpoint = fields.get("endpoint")
    if endpoint is not None and endpoint not in ENDPOINTS:
        report.problem(
            child(path, "endpoint"),
            f"must be one of {', '.join(ENDPOINTS)}, got {values.show(endpoint)}",
        )
    if report.found > errors:
        return None
    return KubernetesOptions(
        engine=engine,
        gpus=gpus,
        replicas=1 if replicas is None else replicas,
        image=image,
        resources=resources,
        cache=cache,
        node_selector=node_selector or {},
        tolerations=tolerations or (),
        offer=offer,
        shared=shared,
        shared_from=shared_from,
        endpoint=endpoint,
    )


def _resources(value: Any, path: str, report: Report) -> dict[str, dict[str, str]] | None:
    """`{requests: {cpu: 4}, limits: {memory: 16Gi}}`, values as strings."""
    fields = values.mapping(value, path, report)
    if fields is None:
        return None
    values.unknown_keys(fields, path, RESOURCE_KEYS, report)
    result: dict[str, dict[str, str]] = {}
    for key in RESOURCE_KEYS:
        if key in fields:
            amounts = values.string_map(fields[key], child(path, key), report)
            if amounts is not None:
                result[key] = amounts
    return result


def _cache(value: Any, path: str, report: Report) -> CacheSpec | None:
    fields = values.mapping(value, path, report)
    if fields is None:
        return None
    values.unknown_keys(fields, path, CACHE_KEYS, report)
    if "size" not in fields:
        report.problem(path, "'size' is required: a Kubernetes quantity such as \"20Gi\"")
        return None
    size = quantity(fields["size"], child(path, "size"), report)
    storage_class = _optional(fields, "storageClass", path, report, values.nonempty_string)
    return None if size is None else CacheSpec(size=size, storage_class=storage_class)


def quantity(value: Any, path: str, report: Report) -> str | None:
    """A Kubernetes storage quantity written as a string, e.g. "20Gi"."""
    if isinstance(value, str) and QUANTITY.match(value):
        return value
    values.expected(report, path, 'a Kubernetes quantity such as "20Gi"', value)
    return None


def parse_tolerations(value: Any, path: str, report: Report) -> tuple[dict[str, Any], ...] | None:
    entries = values.sequence(value, path, report)
    if entries is None:
        return None
    tolerations: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        toleration = values.mapping(entry, item(path, index), report)
        if toleration is not None:
            values.unknown_keys(toleration, item(path, index), TOLERATION_KEYS, report)
            tolerations.append(toleration)
    return tuple(tolerations)


def _shared(value: Any, path: str, report: Report) -> tuple[bool, tuple[str, ...] | None]:
    """`true`, `false`, or `{from: [platform]}`: bind only to offers from those namespaces."""
    if isinstance(value, dict):
        values.unknown_keys(value, path, SHARED_KEYS, report)
        if "from" not in value:
            report.problem(path, "'from' is required: the namespaces whose offers to accept")
            return True, None
        namespaces = values.string_list(value["from"], child(path, "from"), report)
        return True, namespaces
    shared = values.boolean(value, path, report)
    return shared is not False, None


def _offer(value: Any, path: str, report: Report) -> OfferSpec | None:
    fields = values.mapping(value, path, report)
    if fields is None:
        return None
    values.unknown_keys(fields, path, OFFER_KEYS, report)
    if ("namespaces" in fields) == ("namespaceSelector" in fields):
        report.problem(path, "give exactly one of 'namespaces' (a list) or 'namespaceSelector'")
        return None
    if "namespaces" in fields:
        namespaces = values.string_list(fields["namespaces"], child(path, "namespaces"), report)
        return None if namespaces is None else OfferSpec(namespaces=namespaces)
    selector_path = child(path, "namespaceSelector")
    selector = values.mapping(fields["namespaceSelector"], selector_path, report)
    if selector is None:
        return None
    values.unknown_keys(selector, selector_path, SELECTOR_KEYS, report)
    return OfferSpec(namespace_selector=selector)
