"""Operator settings: engine images, GPU profiles, policy. One frozen object, passed in.

Loaded from the YAML file the Helm chart and kustomize write into a ConfigMap, validated
once at start-up (`load_settings`), and handed to the core as an argument: nothing in the
core reads a global or the environment.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from types import UnionType
from typing import Any, Literal, Union, cast, get_args, get_origin, get_type_hints

import yaml

from compose_operator import templates
from compose_operator.errors import ComposeError, Problem

SharingPolicy = Literal["prefer", "require", "never"]
ModelEndpoint = Literal["gateway", "direct"]
OPERATOR_IMAGE = "ghcr.io/compose-operator/compose-operator:latest"


@dataclass(frozen=True)
class EngineImages:
    gpu: str
    """Image for pods that get GPUs."""
    cpu: str
    """Image for `gpus: 0` pods."""
    command: tuple[str, ...]
    """The server's executable, stated so the contract never rests on an image's entrypoint."""


@dataclass(frozen=True)
class GpuProfile:
    """What `cloud.instance-type=<name>` means on this cluster."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    gpus: int | None = None
    """GPUs per replica; a model's `x-kubernetes.gpus` overrides it. None: the default."""


DENIED_ENV_NAMES = (
    "LD_*",
    "PYTHON*",
    "GLIBC_*",
    "GCONV_PATH",
    "MALLOC_*",
    "*_PROXY",
    "PATH",
    "HOME",
    "SHELL",
    "ENV",
    "BASH_ENV",
    "IFS",
    "PS4",
    "TMPDIR",
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_EXTRA_CA_CERTS",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "RUBYLIB",
    "SSL_CERT_*",
    "OPENSSL_*",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "AWS_*",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_*",
    "KUBECONFIG",
    "KUBERNETES_*",
)
DENIED_ANNOTATIONS = (
    "kubernetes.io/*",
    "*.kubernetes.io/*",
    "k8s.io/*",
    "*.k8s.io/*",
    "io.kubernetes.*",
    "*.istio.io/*",
    "istio.io/*",
    "*.linkerd.io/*",
    "linkerd.io/*",
    "*.kuma.io/*",
    "kuma.io/*",
    "*.hashicorp.com/*",
    "*.openshift.io/*",
    "iam.amazonaws.com/*",
    "eks.amazonaws.com/*",
    "iam.gke.io/*",
    "azure.workload.identity/*",
    "compose-operator.io/*",
)
"""AppArmor, seccomp and Pod Security annotations (`*.kubernetes.io`), runtime annotations
(`io.kubernetes.*`), service-mesh injection and exclusions, Vault/Consul injection, cloud
identities, and the operator's own."""


@dataclass(frozen=True)
class Policy:
    """What a Compose file may ask for. Everything that could escape a pod is off by default."""

    allow_privileged: bool = False
    allow_host_namespaces: bool = False
    allow_bind_mounts: bool = False
    allow_devices: bool = False
    allow_capabilities: bool = False
    """`cap_add` beyond NET_BIND_SERVICE (which Pod Security "restricted" allows anyway)."""
    allow_root: bool = False
    """`user: "0"` / `user: root`: a service's processes as root (refused by "restricted")."""
    allow_any_node: bool = False
    """Tolerations of every taint (`operator: Exists` without a key) and node selectors or
    tolerations for control-plane nodes (`node-role.kubernetes.io/control-plane`, `/master`)."""
    allow_file_and_network_flags: bool = False
    """Model `runtime_flags` that make an engine read local files, load code or reach other
    hosts (`--chat-template-file`, `--mmproj-url`, `--rpc`, vLLM's `--config`, ...)."""
    denied_env_names: tuple[str, ...] = DENIED_ENV_NAMES
    """Variables a model binding may not set (`endpoint_var`, `model_var`), as glob patterns:
    each changes what a process loads or where it sends traffic, and in bind mode the
    Deployment belongs to someone else."""
    denied_annotations: tuple[str, ...] = DENIED_ANNOTATIONS
    """Compose `labels` keys that may not become pod annotations, as glob patterns: they
    would relax security (AppArmor, seccomp), skip a service mesh, or claim cloud identity."""


@dataclass(frozen=True)
class Sharing:
    """Shared models: how apps bind to offers, and who may offer at all.

    Who may offer is the platform's decision: an offered model receives other teams' traffic
    (prompts, documents), so an offer from any other namespace is refused. In the settings
    file `sharing: prefer` is short for `sharing: {policy: prefer}`.
    """

    policy: SharingPolicy = "prefer"
    offer_namespaces: tuple[str, ...] = ()
    """Namespaces whose ComposeApps may offer models (`x-kubernetes.offer`)."""
    offer_namespace_selector: Mapping[str, Any] | None = None
    """Or a label selector on Namespaces (labels only cluster admins can set). Neither set:
    nobody may offer."""


@dataclass(frozen=True)
class GatewaySettings:
    """The per-app model gateway (`modelEndpoint: gateway`): one URL for all of an app's models."""

    image: str = OPERATOR_IMAGE
    """The operator's own image; its `gateway` command is the router."""
    replicas: int | None = None
    """None: 2 when one of the app's models runs more than one replica (the hop in front of
    replicated models should not be the one thing that is not), else 1. More than 1 gets a
    PodDisruptionBudget, so a node drain takes one gateway pod at a time."""
    max_request_bytes: int = 16 * 1024 * 1024
    """Request bodies above this get 413: the gateway reads a body whole to find its `model`."""
    upstream_timeout_seconds: int = 600
    """How long the gateway waits for the next bytes from an engine (a long generation keeps
    sending, so this bounds silence, not the whole answer)."""
    drain_seconds: int = 600
    """How long a stopping gateway pod keeps finishing the requests it has (a rollout after a
    routing change): its terminationGracePeriodSeconds is this plus the endpoint delay."""
    resources: Mapping[str, Any] = field(
        default_factory=lambda: {
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        }
    )
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Settings:
    engines: Mapping[str, EngineImages] = field(
        default_factory=lambda: {
            # The llama.cpp server images keep the binary at /app, off PATH
            # (ggml-org/llama.cpp .devops/cuda.Dockerfile: ENTRYPOINT ["/app/llama-server"]).
            "llama.cpp": EngineImages(
                gpu="ghcr.io/ggml-org/llama.cpp:server-cuda",
                cpu="ghcr.io/ggml-org/llama.cpp:server",
                command=("/app/llama-server",),
            ),
            "vllm": EngineImages(
                gpu="vllm/vllm-openai:latest",
                cpu="vllm/vllm-openai-cpu:latest",
                command=("vllm",),
            ),
        }
    )
    default_engine: str = "llama.cpp"
    puller_image: str = OPERATOR_IMAGE
    """The operator's own image; its `pull-model` command fetches OCI model artifacts."""
    gpu_resource_name: str = "nvidia.com/gpu"
    default_gpus: int = 1
    gpu_tolerations: tuple[Mapping[str, Any], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    )
    instance_type_label: str = "node.kubernetes.io/instance-type"
    profiles: Mapping[str, GpuProfile] = field(default_factory=dict)
    cluster_domain: str = "cluster.local"
    registry_mirrors: Mapping[str, str] = field(default_factory=dict)
    """Registry host rewrites for model pulls, e.g. {"docker.io": "registry.local:5000"}."""
    insecure_registries: tuple[str, ...] = ()
    """Registries the puller may reach over plain HTTP (localhost always may)."""
    model_volume_size: str = "20Gi"
    """emptyDir size limit for model weights when a model sets no `x-kubernetes.cache`."""
    policy: Policy = field(default_factory=Policy)
    templates: Mapping[str, str] = field(default_factory=dict)
    """Replacement Jinja2 templates for the model workload, by template file name."""
    sharing: Sharing = field(default_factory=Sharing)
    network_policies: bool = False
    stall_after_crashes: int = 5
    """Crashes in a row with the same exit code after which a model or service makes its app
    Stalled (reason CrashLoop, kstatus Failed), so GitOps tools stop waiting; 0: never."""
    model_endpoint: ModelEndpoint = "gateway"
    """`gateway`: every `*_URL` of an app is its model gateway, which routes by the request's
    `model`, as Docker Model Runner's one endpoint does; `direct`: one URL per model Service."""
    gateway: GatewaySettings = field(default_factory=GatewaySettings)


_TOLERATION_KEYS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})
_QUANTITY = re.compile(r"[+]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[mkMGTPE]|[eE][+-]?\d+)?")


def load_settings(text: str, *, file: str = "settings.yaml") -> Settings:
    """Read the operator's settings YAML (camelCase keys); every problem is located.

    An engine entry only needs the fields it changes (`engines: {vllm: {gpu: my/vllm}}`);
    the others keep their defaults. Unknown keys are refused with the closest known key,
    so a misspelt setting never silently falls back to its default.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(error, "problem", None) or str(error)
        raise ComposeError(file, [Problem("", f"not valid YAML: {reason}", line)]) from None
    problems: list[Problem] = []
    data = {} if data is None else data
    if isinstance(data, dict) and isinstance(data.get("engines"), dict):
        data = {**data, "engines": _with_engine_defaults(data["engines"], problems)}
    if isinstance(data, dict) and isinstance(data.get("sharing"), str):
        data = {**data, "sharing": {"policy": data["sharing"]}}
    settings = _convert(Settings, data, "", problems)
    if not problems:
        problems = _check(settings)
    if problems:
        raise ComposeError(file, problems)
    return cast(Settings, settings)


def camel(name: str) -> str:
    """`default_engine` → `defaultEngine`: the settings file's spelling of a field."""
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _with_engine_defaults(engines: dict[Any, Any], problems: list[Problem]) -> dict[Any, Any]:
    defaults = Settings().engines
    merged: dict[Any, Any] = {
        name: {camel(f.name): _as_yaml(getattr(images, f.name)) for f in fields(EngineImages)}
        for name, images in defaults.items()
    }
    for name, value in engines.items():
        if name not in defaults:
            known = ", ".join(sorted(defaults))
            message = f"no engine named {name!r}; known: {known}"
            problems.append(Problem(f"engines.{name}", message))
        else:
            merged[name] = {**merged[name], **value} if isinstance(value, dict) else value
    return merged


def _as_yaml(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _check(settings: Settings) -> list[Problem]:
    problems = []
    if settings.default_engine not in settings.engines:
        known = ", ".join(sorted(settings.engines))
        problems.append(
            Problem(
                "defaultEngine",
                f"no engine named {settings.default_engine!r}; known: {known}",
            )
        )
    gpu_counts = [("defaultGpus", settings.default_gpus)] + [
        (f"profiles.{name}.gpus", profile.gpus) for name, profile in settings.profiles.items()
    ]
    problems += [
        Problem(path, f"must be 0 or more, not {count}")
        for path, count in gpu_counts
        if count is not None and count < 0
    ]
    if settings.stall_after_crashes < 0:
        problems.append(
            Problem(
                "stallAfterCrashes",
                f"must be 0 (never) or more, not {settings.stall_after_crashes}",
            )
        )
    if not _QUANTITY.fullmatch(settings.model_volume_size):
        problems.append(
            Problem(
                "modelVolumeSize",
                f"{settings.model_volume_size!r} is not a Kubernetes quantity such as 20Gi",
            )
        )
    tolerations = [
        ("gpuTolerations", settings.gpu_tolerations),
        ("gateway.tolerations", settings.gateway.tolerations),
    ] + [
        (f"profiles.{name}.tolerations", profile.tolerations)
        for name, profile in settings.profiles.items()
    ]
    for path, entries in tolerations:
        for index, toleration in enumerate(entries):
            problems += [
                Problem(
                    f"{path}[{index}].{key}",
                    f"unknown toleration field{_suggest(key, _TOLERATION_KEYS)}",
                )
                for key in sorted(set(toleration) - _TOLERATION_KEYS)
            ]
    problems += [
        Problem(f"templates.{name}", message)
        for name, message in templates.problems(settings.templates).items()
    ]
    gateway = settings.gateway
    problems += [
        Problem(f"gateway.{key}", f"must be 1 or more, not {value}")
        for key, value in (
            ("replicas", gateway.replicas),
            ("maxRequestBytes", gateway.max_request_bytes),
            ("upstreamTimeoutSeconds", gateway.upstream_timeout_seconds),
            ("drainSeconds", gateway.drain_seconds),
        )
        if value is not None and value < 1
    ]
    selector = settings.sharing.offer_namespace_selector
    if selector is not None:
        problems += [
            Problem(f"sharing.offerNamespaceSelector.{key}", "unknown selector field")
            for key in sorted(set(selector) - {"matchLabels", "matchExpressions"})
        ]
    problems += [
        Problem(f"engines.{name}.command", "must name the server's executable")
        for name, images in settings.engines.items()
        if not images.command
    ]
    return problems


def _suggest(key: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _type_name(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return " or ".join(repr(choice) for choice in get_args(hint))
    if origin in (Mapping, dict) or is_dataclass(hint):
        return "a mapping"
    if origin is tuple:
        return "a list"
    if origin in (Union, UnionType):
        return " or ".join(_type_name(arg) for arg in get_args(hint))
    return {str: "a string", int: "an integer", bool: "true or false", type(None): "null"}.get(
        hint, "a value"
    )


def _convert(hint: Any, value: Any, path: str, problems: list[Problem]) -> Any:
    """`value` as `hint` (a settings dataclass or a field type); a problem when it is not."""
    origin = get_origin(hint)
    where = path or "(top level)"
    if hint is Any:
        return value
    if is_dataclass(hint) and isinstance(hint, type):
        return _convert_dataclass(hint, value, path, problems)
    if origin in (Union, UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        (inner,) = [arg for arg in get_args(hint) if arg is not type(None)]
        return _convert(inner, value, path, problems)
    if origin is Literal:
        if value in get_args(hint):
            return value
    elif origin is Mapping:
        _, value_type = get_args(hint)
        if isinstance(value, dict):
            converted = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    problems.append(Problem(f"{path}.{key}", "keys must be strings"))
                    continue
                converted[key] = _convert(value_type, item, f"{path}.{key}", problems)
            return converted
    elif origin is tuple:
        (item_type, _) = get_args(hint)
        if isinstance(value, list):
            return tuple(
                _convert(item_type, item, f"{path}[{index}]", problems)
                for index, item in enumerate(value)
            )
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, hint):
        return value
    problems.append(Problem(where, f"must be {_type_name(hint)}, not {_describe(value)}"))
    return None


def _convert_dataclass(cls: type[Any], value: Any, path: str, problems: list[Problem]) -> Any:
    if not isinstance(value, dict):
        problems.append(
            Problem(path or "(top level)", f"must be a mapping, not {_describe(value)}")
        )
        return None
    hints = get_type_hints(cls)
    by_key = {camel(f.name): f for f in fields(cls)}
    kwargs = {}
    for key, item in value.items():
        child = f"{path}.{key}" if path else str(key)
        known = by_key.get(key) if isinstance(key, str) else None
        if known is None:
            problems.append(Problem(child, f"unknown setting{_suggest(str(key), by_key)}"))
            continue
        kwargs[known.name] = _convert(hints[known.name], item, child, problems)
    missing = [key for key, f in by_key.items() if _required(f) and f.name not in kwargs]
    problems += [Problem(f"{path}.{key}" if path else key, "is required") for key in missing]
    return None if missing else cls(**kwargs)


def _required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return repr(value)
