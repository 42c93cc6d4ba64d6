"""The environment contract: `<PREFIX>_URL` and `<PREFIX>_MODEL`, exactly as Docker Compose.

`*_URL` is an in-cluster OpenAI base URL (port 80, trailing slash): the app's model gateway
(`modelEndpoint: gateway`, Compose's one endpoint), or the model's own Service (`direct`);
`*_MODEL` is the reference as written, which the engine serves under that name. The
variable names come from the loader (`endpoint_var`/`model_var` or the key's prefix).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from compose_operator.errors import Problem, Warning
from compose_operator.plan import EnvBinding, Manifest
from compose_operator.project import Model, Service
from compose_operator.settings import ModelEndpoint


def model_url(service: str, *, namespace: str, cluster_domain: str) -> str:
    return f"http://{service}.{namespace}.svc.{cluster_domain}/v1/"


@dataclass
class BoundEnv:
    """The variables a service's bindings inject, or why they cannot."""

    env: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)


@dataclass(frozen=True)
class _Assignment:
    kind: Literal["url", "model"]
    value: str
    model: str
    at: str


SHARED_IN_DIRECT = (
    "under modelEndpoint: direct every model has its own URL, so variables may not be shared "
    "(modelEndpoint: gateway, the default, accepts this as Docker Compose does: one URL serves "
    "every model)"
)


def binding_env(
    service: Service,
    models: Mapping[str, Model],
    urls: Mapping[str, str],
    *,
    mode: ModelEndpoint,
) -> BoundEnv:
    """The variables the service's `models:` entries inject, as Compose assigns them: for each
    binding its model variable, then its URL variable.

    Under `gateway` bindings may share a variable, as Compose allows: every URL is the same
    gateway URL; a variable that is one binding's model variable and another's URL variable
    gets the URL (a binding's URL is assigned last), with a warning; a model variable shared by
    bindings of different models gets the last one listed (Compose's own order there is Go's
    map order, so not fixed), with a warning. Under `direct` any sharing is refused.
    """
    result = BoundEnv()
    assigned: dict[str, list[_Assignment]] = {}
    for binding in service.models:
        name = _Assignment("model", models[binding.model].model, binding.model, binding.model_at)
        url = _Assignment("url", urls[binding.model], binding.model, binding.endpoint_at)
        assigned.setdefault(binding.model_var, []).append(name)
        assigned.setdefault(binding.endpoint_var, []).append(url)
    for var, assignments in assigned.items():
        value = _resolve(var, assignments, mode, result)
        if value is not None:
            result.env[var] = value
    return result


def _resolve(
    var: str, assignments: list[_Assignment], mode: ModelEndpoint, result: BoundEnv
) -> str | None:
    first, last = assignments[0], assignments[-1]
    if len(assignments) == 1:
        return first.value
    if mode == "direct":
        for later in assignments[1:]:
            if later.model == first.model:
                what = f"endpoint_var and model_var are both {var}"
            else:
                what = f"{var} is already set by the binding of model {first.model}"
            result.problems.append(Problem(later.at, f"{what}; {SHARED_IN_DIRECT}"))
        return None
    urls = [a for a in assignments if a.kind == "url"]
    if len({a.value for a in urls}) > 1:
        listed = "; ".join(f"model {a.model}: {a.value}" for a in urls)
        result.problems.append(
            Problem(
                urls[-1].at,
                f"{var} would need two URLs ({listed}): a model with x-kubernetes.endpoint: "
                "direct has its own; bind it to another variable",
            )
        )
        return None
    if urls:
        names = [a for a in assignments if a.kind == "model"]
        if names:
            others = ", ".join(sorted({a.model for a in names}))
            result.warnings.append(
                Warning(
                    names[0].at,
                    f"{var} is the model variable of {others} and the URL variable of "
                    f"{urls[0].model}: it gets the URL, as under docker compose up (a binding's "
                    "URL is assigned after its model name)",
                )
            )
        return urls[0].value
    if len({a.value for a in assignments}) > 1:
        listed = ", ".join(f"{a.model} ({a.value})" for a in assignments)
        result.warnings.append(
            Warning(
                last.at,
                f"{var} is the model variable of {listed}: it gets the last one's name, "
                f"{last.value} (docker compose assigns them in no fixed order)",
            )
        )
    return last.value


def service_env(
    service: Service, injected: Mapping[str, str], path: str
) -> tuple[dict[str, str], list[Warning]]:
    """The service's own environment with the model variables on top, as Compose does."""
    warnings = [
        Warning(
            f"{path}.environment.{name}",
            f"replaced by the model variable {name} (as under docker compose up)",
        )
        for name in sorted(injected)
        if name in service.environment
    ]
    return dict(sorted({**service.environment, **injected}.items())), warnings


def build_env_patch(binding: EnvBinding, *, namespace: str, containers: Sequence[str]) -> Manifest:
    """A server-side-apply body that sets only the model variables, in every container.

    Applied under the operator's field manager, it owns exactly these env entries: the
    Deployment's other fields stay with whoever applied them.
    """

    def env() -> list[dict[str, Any]]:
        return [{"name": name, "value": value} for name, value in binding.env]

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": binding.deployment, "namespace": namespace},
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": container, "env": env()} for container in containers]
                }
            }
        },
    }
