"""The environment contract: `<PREFIX>_URL` and `<PREFIX>_MODEL`, exactly as Docker Compose.

`*_URL` is the model Service's in-cluster OpenAI base URL (port 80, trailing slash);
`*_MODEL` is the reference as written, which the engine serves under that name. The
variable names come from the loader (`endpoint_var`/`model_var` or the key's prefix).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from compose_operator.errors import Warning
from compose_operator.plan import EnvBinding, Manifest
from compose_operator.project import Model, Service


def model_url(service: str, *, namespace: str, cluster_domain: str) -> str:
    return f"http://{service}.{namespace}.svc.{cluster_domain}/v1/"


def binding_env(
    service: Service, models: Mapping[str, Model], endpoints: Mapping[str, str]
) -> dict[str, str]:
    """The variables the service's `models:` entries inject."""
    env: dict[str, str] = {}
    for binding in service.models:
        env[binding.endpoint_var] = endpoints[binding.model]
        env[binding.model_var] = models[binding.model].model
    return env


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
