"""`plan`: a whole Compose project as the objects to apply, env bindings and status.

Pure and deterministic: no I/O, no clock, no environment; the same input gives the same
plan byte for byte. Every problem is collected and raised as one `ComposeError`, so the
user fixes the file in one round trip and nothing is ever half-applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from compose_operator import names
from compose_operator.engines import ENGINES
from compose_operator.errors import ComposeError, Problem, Warning
from compose_operator.plan import (
    EnvBinding,
    Manifest,
    Plan,
    PlannedGateway,
    PlannedModel,
    PlannedSecret,
    PlannedService,
)
from compose_operator.project import ComposeProject, ProjectFile, Secret, Volume
from compose_operator.render import env, gateway, projectfiles, security, sharing
from compose_operator.render.models import build_model_workload
from compose_operator.render.services import build_service_workload
from compose_operator.render.volumes import build_volume_claim
from compose_operator.settings import Settings

NOTHING_TO_DO = "no image and no models: nothing to run or to patch on Kubernetes; ignored"
NOT_PATCHED = (
    "not applied: without an image the service runs as an existing Deployment, "
    "which gets only the model variables; give it an image (spec.images, or --image) "
    "to run it as written"
)
NOT_SHARED_IGNORED = "ignored: the sharing policy is require, so every model binds to an offer"
APPLY_ORDER = {"ConfigMap": 0, "PersistentVolumeClaim": 1, "Service": 2, "Deployment": 3}
"""ConfigMaps, claims and Services first, so a Deployment's pods find them when they start."""
GATEWAY_PATH = "the model gateway"


def plan(
    project: ComposeProject,
    *,
    app: str,
    namespace: str,
    settings: Settings,
    file: str = "compose.yaml",
    offers: sharing.SharingInput | None = None,
    namespace_labels: Mapping[str, str] | None = None,
) -> Plan:
    """With `offers` (what the operator knows of platform offers), models bind to matching
    offers as the settings' sharing policy says; without (`render` offline), every model
    runs as the app's own. `namespace_labels` (None: not known, offline) decide whether the
    app may offer models when the settings name Namespaces by a selector."""
    problems, warnings = sharing.offer_refusals(
        project, namespace=namespace, namespace_labels=namespace_labels, settings=settings.sharing
    )
    warnings = [*project.warnings, *warnings]
    # Each object with the Compose path it came from, to name both sides of a clash.
    owned: list[tuple[str, Manifest]] = []

    decision = (
        sharing.Decision()
        if offers is None
        else sharing.decide(
            project, app=app, namespace=namespace, settings=settings, sharing=offers
        )
    )
    endpoints = {
        key: env.model_url(
            names.model(app, key), namespace=namespace, cluster_domain=settings.cluster_domain
        )
        for key in project.models
    }
    endpoints.update({key: offer.endpoint for key, offer in decision.bindings.items()})
    gateway_url = gateway.url(app, namespace, settings)
    via_gateway = {
        key: (model.kubernetes.endpoint or settings.model_endpoint) == "gateway"
        for key, model in project.models.items()
    }
    urls = {key: gateway_url if via_gateway[key] else endpoints[key] for key in project.models}
    offered = {
        offer.key: offer
        for offer in sharing.offers_of(project, app=app, namespace=namespace, settings=settings)
    }
    planned_models: list[PlannedModel] = []
    for key, model in sorted(project.models.items()):
        path = f"models.{key}"
        if settings.sharing.policy == "require" and not model.kubernetes.shared:
            warnings.append(Warning(f"{path}.x-kubernetes.shared", NOT_SHARED_IGNORED))
        binding = decision.bindings.get(key)
        if binding is not None or key in decision.refusals:
            planned_models.append(_not_own(model.key, model.model, binding, endpoints[key]))
            continue
        problems += security.model_refusals(model, settings.policy, path)
        workload = build_model_workload(
            model, app=app, namespace=namespace, endpoint=endpoints[key], settings=settings
        )
        problems += workload.problems
        warnings += workload.warnings
        owned += [(path, manifest) for manifest in workload.objects]
        offer = offered.get(key)
        if workload.planned is not None and offer is not None:
            planned_models.append(replace(workload.planned, offered=True))
            if settings.network_policies:
                policy = sharing.build_network_policy(offer, port=ENGINES[offer.engine].port)
                owned.append((f"{path}.x-kubernetes.offer", policy))
        elif workload.planned is not None:
            planned_models.append(workload.planned)

    planned_services: list[PlannedService] = []
    bindings: list[EnvBinding] = []
    claimed: set[str] = set()
    inline_files: dict[str, ProjectFile] = {}
    config_contents: dict[str, str] = {}
    folder_claims: dict[str, str] = {}
    secret_users: dict[str, list[str]] = {}
    for name, service in sorted(project.services.items()):
        path = f"services.{name}"
        if service.image is None and not service.models:
            warnings.append(Warning(path, NOTHING_TO_DO))
            continue
        bound_env = env.binding_env(service, project.models, urls, mode=settings.model_endpoint)
        problems += security.binding_refusals(service, settings.policy, path)
        problems += bound_env.problems
        warnings += bound_env.warnings
        injected = bound_env.env
        bound = tuple(dict.fromkeys(binding.model for binding in service.models))
        deployment = names.service(name)
        planned_services.append(
            PlannedService(
                name=name,
                mode="patched" if service.image is None else "created",
                deployment=deployment,
                models=bound,
            )
        )
        if service.image is None:
            dropped = [
                key
                for key, given in (
                    ("environment", service.environment),
                    ("ports", service.ports),
                    ("volumes", service.volumes),
                    ("configs", service.configs),
                    ("secrets", service.secrets),
                )
                if given
            ]
            warnings += [Warning(f"{path}.{key}", NOT_PATCHED) for key in dropped]
            bindings.append(
                EnvBinding(deployment=deployment, service=name, env=tuple(sorted(injected.items())))
            )
            continue
        refused = security.refusals(service, settings.policy, path)
        problems += refused
        if refused:
            continue
        service_env, env_warnings = env.service_env(service, injected, path)
        warnings += env_warnings
        mounts = projectfiles.service_mounts(service, project, app)
        problems += mounts.problems
        warnings += mounts.warnings
        inline_files.update(mounts.inline)
        config_contents.update(mounts.configs)
        folder_claims.update(mounts.claims)
        for secret in mounts.secrets:
            secret_users.setdefault(secret, []).append(name)
        created = build_service_workload(
            service, app=app, namespace=namespace, env=service_env, settings=settings, mounts=mounts
        )
        warnings += created.warnings
        owned += [(path, manifest) for manifest in created.objects]
        claimed.update(mount.source for mount in service.volumes if not mount.bind)

    for volume_name in sorted(claimed):
        volume = project.volumes.get(volume_name) or Volume(name=volume_name)
        claim = build_volume_claim(volume, app=app, namespace=namespace)
        owned.append((f"volumes.{volume_name}", claim))
    for folder in sorted(folder_claims):
        claim = build_volume_claim(Volume(name=folder), app=app, namespace=namespace)
        owned.append((f"./{folder}", claim))
    if inline_files:
        files = projectfiles.build_files_config_map(app, namespace, inline_files)
        owned.append(("spec.files", files))
    if config_contents:
        configs = projectfiles.build_configs_config_map(app, namespace, config_contents)
        owned.append(("configs", configs))
    secrets = tuple(
        _planned_secret(project.secrets[name], namespace, tuple(users))
        for name, users in sorted(secret_users.items())
    )

    planned_gateway = None
    if any(via_gateway[b.model] for service in project.services.values() for b in service.models):
        routes = _routes(project, planned_models, decision.bindings)
        table_warnings = gateway.route_names(routes)[1]
        warnings += table_warnings
        planned_gateway = PlannedGateway(
            name=names.gateway(app), url=gateway_url, replicas=gateway.replicas(routes, settings)
        )
        # First, so a clash names the Compose entry that took the gateway's name.
        owned[:0] = [
            (GATEWAY_PATH, manifest)
            for manifest in gateway.build_gateway(app, namespace, routes, settings)
        ]

    problems += _clashes(owned, bindings)
    if problems:
        raise ComposeError(file, problems)
    if decision.waiting:
        return Plan(waiting=tuple(sorted(decision.waiting.items())), warnings=tuple(warnings))
    if decision.refusals:
        return Plan(
            models=tuple(planned_models),
            services=tuple(planned_services),
            warnings=tuple(warnings),
            refusals=tuple(sorted(decision.refusals.items())),
        )
    return Plan(
        objects=tuple(sorted((manifest for _, manifest in owned), key=_apply_order)),
        bindings=tuple(bindings),
        models=tuple(planned_models),
        services=tuple(planned_services),
        secrets=secrets,
        warnings=tuple(warnings),
        gateway=planned_gateway,
    )


def _routes(
    project: ComposeProject, planned: list[PlannedModel], offers: Mapping[str, sharing.Offer]
) -> list[gateway.Route]:
    """A route per model that has somewhere to go: its own Service or its offer's, whose
    engine serves the offering app's spelling of the reference."""
    routes = []
    for model in planned:
        if not model.endpoint:
            continue
        offer = offers.get(model.key)
        served = offer.model if offer is not None else model.model
        routes.append(
            gateway.Route(
                key=model.key,
                model=model.model,
                engine=model.engine,
                upstream=gateway.upstream(model.endpoint),
                served=served,
                replicas=project.models[model.key].kubernetes.replicas,
            )
        )
    return routes


def _planned_secret(secret: Secret, namespace: str, services: tuple[str, ...]) -> PlannedSecret:
    return PlannedSecret(
        name=secret.secret_name,
        key=secret.key,
        create=projectfiles.create_secret_command(secret, namespace),
        services=services,
    )


def _not_own(key: str, reference: str, offer: sharing.Offer | None, endpoint: str) -> PlannedModel:
    """A model bound to a platform offer, or refused by the `require` policy: no workload."""
    if offer is None:
        return PlannedModel(
            key=key,
            model=reference,
            engine="",
            endpoint="",
            deployment="",
            service="",
            replicas=0,
            source="refused",
        )
    return PlannedModel(
        key=key,
        model=reference,
        engine=offer.engine,
        endpoint=endpoint,
        deployment="",
        service=offer.service,
        replicas=0,
        source=offer.source,
        shared=offer.ref,
    )


def _apply_order(manifest: Manifest) -> tuple[int, str, str]:
    kind = str(manifest.get("kind", ""))
    return APPLY_ORDER.get(kind, len(APPLY_ORDER)), kind, _name(manifest)


def _name(manifest: Manifest) -> str:
    metadata: Any = manifest.get("metadata", {})
    return str(metadata.get("name", "")) if isinstance(metadata, dict) else ""


def _clashes(owned: list[tuple[str, Manifest]], bindings: list[EnvBinding]) -> list[Problem]:
    """Two Compose entries whose objects would share a kind and name (say service
    `chat-llm` beside model `llm` of app `chat`) would overwrite each other."""
    first: dict[tuple[str, str], str] = {}
    problems = []
    entries = [(path, str(manifest.get("kind")), _name(manifest)) for path, manifest in owned]
    entries += [(f"services.{b.service}", "Deployment", b.deployment) for b in bindings]
    for path, kind, name in entries:
        other = first.setdefault((kind, name), path)
        if other != path:
            problems.append(
                Problem(
                    path, f"its {kind} would be named {name!r}, like the one of {other}; rename one"
                )
            )
    return problems
