"""A Compose model's workload: Deployment, Service and optional cache claim, from templates.

Python decides every value (engine, arguments, placement, weights); the templates only
arrange them, so a platform team can add fields (a priority class, a sidecar) by replacing
a template without re-implementing any of the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jinja2
import yaml

from compose_operator import names, templates
from compose_operator.engines import ENGINES
from compose_operator.engines.base import Engine, health_probes
from compose_operator.errors import Problem, Warning
from compose_operator.plan import Manifest, PlannedModel
from compose_operator.project import Model
from compose_operator.render import labels, security
from compose_operator.render.placement import place
from compose_operator.render.weights import plan_weights
from compose_operator.settings import Settings

ROLL_ONE_AT_A_TIME = {
    "type": "RollingUpdate",
    "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
}
"""For pods holding GPUs or a ReadWriteOnce cache: a surge pod would wait for resources
the old pod still holds, so the old one goes first."""
SCRATCH_DIR = "/tmp"
SCRATCH_VOLUME = {"name": "tmp", "emptyDir": {}}
SCRATCH_MOUNT = {"name": "tmp", "mountPath": SCRATCH_DIR}
"""The engine's HOME and temporary files: engines run as a non-root user the image does not
know, whose home would be `/` (vLLM and its libraries write caches under HOME)."""


@dataclass
class ModelWorkload:
    objects: list[Manifest] = field(default_factory=list)
    planned: PlannedModel | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)


def build_model_workload(
    model: Model, *, app: str, namespace: str, endpoint: str, settings: Settings
) -> ModelWorkload:
    path = f"models.{model.key}"
    result = ModelWorkload()
    engine = _engine(model, settings, path, result.problems)
    placement, problems, warnings = place(model, settings, path)
    result.problems += problems
    result.warnings += warnings
    weights, problems = plan_weights(model, app=app, settings=settings, path=path)
    result.problems += problems
    if engine is None or weights is None:
        return result
    problems, warnings = engine.check(
        model,
        weights.weights,
        placement.gpus,
        path,
        external=settings.policy.allow_file_and_network_flags,
    )
    result.problems += problems
    result.warnings += warnings
    if result.problems:
        return result

    name = names.model(app, model.key)
    common = {
        "app": app,
        "namespace": namespace,
        "name": name,
        "labels": labels.for_model(app, model.key),
        "selector": labels.model_selector(app, model.key),
        "model": {
            "key": model.key,
            "model": model.model,
            "engine": engine.name,
            "gpus": placement.gpus,
            "context_size": model.context_size,
        },
    }
    env = {**engine.env(weights.weights), **weights.env, "HOME": SCRATCH_DIR}
    deployment = {
        **common,
        "replicas": model.kubernetes.replicas,
        "strategy": ROLL_ONE_AT_A_TIME if placement.gpus > 0 or weights.cache_claim else None,
        "annotations": placement.annotations,
        "node_selector": placement.node_selector,
        "tolerations": placement.tolerations,
        "init_containers": weights.init_containers,
        "engine": {
            "container": engine.container,
            "image": model.kubernetes.image or engine.image(settings, placement.gpus > 0),
            "command": engine.command(settings),
            "args": engine.args(model, weights.weights, placement.gpus),
            "port": engine.port,
            "env": [{"name": key, "value": value} for key, value in sorted(env.items())],
            "resources": placement.resources,
            "probes": health_probes(),
            "volume_mounts": [weights.mount, SCRATCH_MOUNT, *engine.volume_mounts()],
        },
        "volumes": [weights.volume, SCRATCH_VOLUME, *engine.volumes()],
    }
    rendered: list[tuple[str, dict[str, Any]]] = [
        (templates.MODEL_DEPLOYMENT, deployment),
        (templates.MODEL_SERVICE, {**common, "port": engine.port}),
    ]
    cache = model.kubernetes.cache
    if cache is not None and weights.cache_claim is not None:
        claim = {
            **common,
            "name": weights.cache_claim,
            "size": cache.size,
            "storage_class": cache.storage_class,
        }
        rendered.append((templates.MODEL_CACHE, claim))
    for template, context in rendered:
        manifest = _render(template, context, settings, path, result.problems)
        if manifest is not None and template == templates.MODEL_DEPLOYMENT:
            manifest = _hardened(manifest, path, result.problems)
        if manifest is not None:
            result.objects.append(manifest)
    result.planned = PlannedModel(
        key=model.key,
        model=model.model,
        engine=engine.name,
        endpoint=endpoint,
        deployment=name,
        service=name,
        replicas=model.kubernetes.replicas,
    )
    return result


def _hardened(manifest: Manifest, path: str, problems: list[Problem]) -> Manifest | None:
    """The restricted security context, applied after rendering so that a platform's
    replacement template gets it too."""
    try:
        template = manifest["spec"]["template"]
        template["spec"] = security.harden(template["spec"], security.MODEL_SERVER)
    except (KeyError, TypeError):
        problems.append(Problem(path, "the model Deployment template renders no pod template"))
        return None
    return manifest


def _engine(model: Model, settings: Settings, path: str, problems: list[Problem]) -> Engine | None:
    name = model.kubernetes.engine or settings.default_engine
    engine = ENGINES.get(name)
    if engine is None or name not in settings.engines:
        known = ", ".join(sorted(set(ENGINES) & set(settings.engines)))
        problems.append(
            Problem(f"{path}.x-kubernetes.engine", f"unknown engine {name!r}; known: {known}")
        )
    return engine


def _render(
    template: str,
    context: dict[str, Any],
    settings: Settings,
    path: str,
    problems: list[Problem],
) -> Manifest | None:
    """A platform's replacement template can fail; that is reported, never raised raw."""
    try:
        manifest = templates.render(template, context, settings.templates)
    except (jinja2.TemplateError, templates.TemplateValueError, yaml.YAMLError) as error:
        problems.append(Problem(path, f"template {template}: {error}"))
        return None
    if manifest is not None and not isinstance(manifest, dict):
        problems.append(Problem(path, f"template {template} must render one mapping"))
        return None
    return manifest
