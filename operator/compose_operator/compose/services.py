"""The `services:` element: each Compose service as the typed Service the planner runs.

Every key of the Compose spec falls in one group: mapped onto the Service, recorded as an
escalation (the planner applies policy), refused (it names another file), or ignored with a
warning naming its path (no Kubernetes meaning). A key outside the spec is an error.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from compose_operator.compose import bindings, envfile, filerefs, servicefields, values
from compose_operator.compose.models import parse_tolerations
from compose_operator.compose.projectfiles import NO_FILES, ProjectFiles, normalize, not_carried
from compose_operator.compose.report import Report, child, clip, item
from compose_operator.project import (
    Escalations,
    FileMount,
    ModelBinding,
    Resources,
    Service,
    VolumeMount,
)

NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
"""Kubernetes' rule for env names (apimachinery `IsEnvVarName`)."""
MAPPED_KEYS = frozenset(
    {
        "image",
        "build",
        "command",
        "entrypoint",
        "environment",
        "ports",
        "expose",
        "deploy",
        "scale",
        "cpus",
        "mem_limit",
        "mem_reservation",
        "healthcheck",
        "labels",
        "working_dir",
        "user",
        "volumes",
        "configs",
        "secrets",
        "env_file",
        "label_file",
        "models",
        "privileged",
        "network_mode",
        "pid",
        "ipc",
        "cap_add",
        "cap_drop",
        "devices",
        "read_only",
    }
)
IGNORED_KEYS = frozenset(
    {
        "annotations",
        "attach",
        "blkio_config",
        "cgroup",
        "cgroup_parent",
        "container_name",
        "cpu_count",
        "cpu_percent",
        "cpu_period",
        "cpu_quota",
        "cpu_rt_period",
        "cpu_rt_runtime",
        "cpu_shares",
        "cpuset",
        "credential_spec",
        "depends_on",
        "develop",
        "device_cgroup_rules",
        "dns",
        "dns_opt",
        "dns_search",
        "domainname",
        "external_links",
        "extra_hosts",
        "gpus",
        "group_add",
        "hostname",
        "init",
        "isolation",
        "links",
        "logging",
        "mac_address",
        "mem_swappiness",
        "memswap_limit",
        "networks",
        "oom_kill_disable",
        "oom_score_adj",
        "pids_limit",
        "platform",
        "post_start",
        "pre_start",
        "pre_stop",
        "profiles",
        "pull_policy",
        "pull_refresh_after",
        "restart",
        "runtime",
        "security_opt",
        "shm_size",
        "stdin_open",
        "stop_grace_period",
        "stop_signal",
        "storage_opt",
        "sysctls",
        "tmpfs",
        "tty",
        "ulimits",
        "use_api_socket",
        "userns_mode",
        "uts",
        "volumes_from",
    }
)
SERVICE_KEYS = MAPPED_KEYS | IGNORED_KEYS | {"provider"}
DEPLOY_KEYS = (
    "replicas",
    "resources",
    "mode",
    "labels",
    "placement",
    "restart_policy",
    "rollback_config",
    "update_config",
    "endpoint_mode",
)
KUBERNETES_KEYS = ("nodeSelector", "tolerations")
IGNORED = "no meaning on Kubernetes; ignored"


@dataclass(frozen=True)
class Context:
    """What services may refer to: the declared models, volumes, configs and secrets; the
    interpolation environment, which also fills `environment: [NAME]` entries as Compose's
    shell would; the project files (`env_file`, bind mounts); images from `spec.images`."""

    models: Collection[str]
    volumes: Collection[str]
    environment: Mapping[str, str]
    files: ProjectFiles = NO_FILES
    configs: Collection[str] = ()
    secrets: Collection[str] = ()
    images: Mapping[str, str] = field(default_factory=dict)


def parse_services(value: Any, context: Context, report: Report) -> dict[str, Service]:
    entries = values.mapping(value, "services", report)
    if entries is None:
        return {}
    services: dict[str, Service] = {}
    for name, body in entries.items():
        path = child("services", name)
        if not NAME.match(name):
            report.problem(path, "a service name may hold only letters, digits, '.', '_' and '-'")
            continue
        fields = values.mapping(body, path, report)
        if fields is not None:
            services[name] = _ServiceReader(name, fields, path, report).read(context)
    return services


class _ServiceReader:
    def __init__(self, name: str, fields: dict[str, Any], path: str, report: Report) -> None:
        self.name = name
        self.fields = fields
        self.path = path
        self.report = report

    def at(self, key: str) -> str:
        return child(self.path, key)

    def get(self, key: str, read: Any) -> Any:
        return read(self.fields[key], self.at(key), self.report) if key in self.fields else None

    def read(self, context: Context) -> Service:
        self._check_keys()
        image = self.get("image", values.nonempty_string)
        given = context.images.get(self.name)
        if given is None and not {"image", "build", "provider"} & self.fields.keys():
            self.report.problem(
                self.path,
                f'service "{self.name}" has neither an image nor a build context specified',
            )
        if (image or given) and "build" in self.fields:
            self.report.warn(
                self.at("build"), "the image is pulled on Kubernetes, not built; ignored"
            )
        deploy = self._deploy()
        environment = self._environment(context)
        node_selector, tolerations = self._kubernetes()
        model_bindings = self._bindings(context.models)
        for binding in model_bindings:
            for var in (binding.endpoint_var, binding.model_var):
                if var in environment:
                    self.report.warn(
                        child(self.at("environment"), var),
                        f"replaced by the binding of model {binding.model}, as Compose does",
                    )
        return Service(
            name=self.name,
            image=given or image,
            command=self.get("command", _command),
            entrypoint=self.get("entrypoint", _command),
            environment=environment,
            ports=self.get("ports", servicefields.ports) or (),
            expose=self.get("expose", servicefields.expose) or (),
            replicas=self._replicas(deploy),
            resources=self._resources(deploy),
            healthcheck=self.get("healthcheck", servicefields.healthcheck),
            labels=self._labels(context),
            working_dir=self.get("working_dir", values.string),
            user=self.get("user", _user),
            read_only=bool(self.get("read_only", values.boolean)),
            volumes=self._volumes(context),
            configs=self._mounts("configs", context.configs),
            secrets=self._mounts("secrets", context.secrets),
            models=model_bindings,
            escalations=self._escalations(),
            node_selector=node_selector,
            tolerations=tolerations,
        )

    def _kubernetes(self) -> tuple[dict[str, str], tuple[dict[str, Any], ...]]:
        """`x-kubernetes: {nodeSelector, tolerations}`: placement for the service's pods."""
        if self.fields.get("x-kubernetes") is None:
            return {}, ()
        path = self.at("x-kubernetes")
        fields = values.mapping(self.fields["x-kubernetes"], path, self.report) or {}
        values.unknown_keys(fields, path, KUBERNETES_KEYS, self.report)
        node_selector = tolerations = None
        if "nodeSelector" in fields:
            node_selector = values.string_map(
                fields["nodeSelector"], child(path, "nodeSelector"), self.report
            )
        if "tolerations" in fields:
            tolerations = parse_tolerations(
                fields["tolerations"], child(path, "tolerations"), self.report
            )
        return node_selector or {}, tolerations or ()

    def _bindings(self, models: Collection[str]) -> tuple[ModelBinding, ...]:
        if "models" not in self.fields:
            return ()
        return bindings.parse_bindings(
            self.fields["models"], self.name, self.at("models"), models, self.report
        )

    def _volumes(self, context: Context) -> tuple[VolumeMount, ...]:
        if self.fields.get("volumes") is None:
            return ()
        mounts = servicefields.volumes(
            self.fields["volumes"], self.at("volumes"), self.name, context.volumes, self.report
        )
        for index, mount in enumerate(mounts):
            if not mount.project or context.files.get(mount.source) is not None:
                continue
            if not context.files.under(mount.source) and _looks_like_a_file(mount.source):
                self.report.problem(
                    item(self.at("volumes"), index),
                    f"bind mount of {not_carried(mount.source)}; a missing folder would become "
                    "an empty volume, a missing file cannot",
                )
        return mounts

    def _mounts(self, kind: str, declared: Collection[str]) -> tuple[FileMount, ...]:
        if self.fields.get(kind) is None:
            return ()
        return filerefs.parse_mounts(
            self.fields[kind], self.at(kind), self.name, kind, declared, self.report
        )

    def _environment(self, context: Context) -> dict[str, str]:
        """`env_file` values, overridden by `environment`, as compose-go resolves them: an env
        file interpolates from the project's values first, then the service's environment."""
        own: dict[str, str | None] = {}
        if self.fields.get("environment") is not None:
            own = _environment(
                self.fields["environment"], self.at("environment"), context.environment, self.report
            )
        merged: dict[str, str | None] = {}
        if self.fields.get("env_file") is not None:
            lookup = {
                **{k: v for k, v in own.items() if v is not None},
                **context.environment,
            }
            merged = {
                key: value
                for key, value in self._read_env_files("env_file", lookup, context).items()
                if key in own or valid_env_name(key, self.at("env_file"), self.report)
            }
        merged.update(own)
        return {key: value for key, value in merged.items() if value is not None}

    def _labels(self, context: Context) -> dict[str, str]:
        labels = {}
        if self.fields.get("label_file") is not None:
            labels = self._read_env_files("label_file", {}, context)
        labels.update(self.get("labels", _labels) or {})
        return labels

    def _read_env_files(
        self, key: str, lookup: Mapping[str, str], context: Context
    ) -> dict[str, str]:
        """Every file of `env_file` (or `label_file`) in order, later values winning."""
        entries = self.fields[key]
        entries = entries if isinstance(entries, list) else [entries]
        found: dict[str, str] = {}
        for index, entry in enumerate(entries):
            where = (
                item(self.at(key), index) if isinstance(self.fields[key], list) else self.at(key)
            )
            spec = {"path": entry} if isinstance(entry, str) else entry
            if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
                values.expected(self.report, where, "a path or {path, required, format}", entry)
                continue
            if key == "env_file":
                values.unknown_keys(spec, where, ("path", "required", "format"), self.report)
            required = values.boolean(
                spec.get("required", True), child(where, "required"), self.report
            )
            path = normalize("", spec["path"])
            file = context.files.get(path)
            if file is None:
                if required is not False:
                    self.report.problem(where, not_carried(path))
                continue
            if not isinstance(file.content, str):
                self.report.problem(where, f"{path} is not a text file")
                continue
            form = spec.get("format", "")

            def unset(name: str, where: str = where) -> None:
                self.report.warn(where, f'the "{name}" variable is not set; using an empty string')

            try:
                found.update(
                    envfile.parse(
                        file.content,
                        {**found, **lookup} if key == "env_file" else found,
                        form=form if isinstance(form, str) else "?",
                        unset=unset,
                    )
                )
            except envfile.EnvFileError as error:
                self.report.problem(where, f"{path}: {error}")
        return found

    def _check_keys(self) -> None:
        for key in self.fields:
            if key.startswith("x-"):
                continue
            if key == "provider":
                self.report.problem(
                    self.at(key),
                    "provider services are not supported; declare the model under the "
                    "top-level models element and list it in the service's models",
                )
            elif key in IGNORED_KEYS:
                self.report.warn(self.at(key), IGNORED)
            elif key not in SERVICE_KEYS:
                self.report.unknown_key(self.path, key, SERVICE_KEYS)

    def _deploy(self) -> dict[str, Any]:
        if self.fields.get("deploy") is None:
            return {}
        deploy_path = self.at("deploy")
        deploy = values.mapping(self.fields["deploy"], deploy_path, self.report) or {}
        values.unknown_keys(deploy, deploy_path, DEPLOY_KEYS, self.report)
        for key in deploy:
            if key in DEPLOY_KEYS and key not in ("replicas", "resources"):
                self.report.warn(child(deploy_path, key), IGNORED)
        return deploy

    def _replicas(self, deploy: dict[str, Any]) -> int | None:
        replicas = None
        if "replicas" in deploy:
            replicas_path = child(self.at("deploy"), "replicas")
            replicas = values.integer(deploy["replicas"], replicas_path, self.report)
        scale = self.get("scale", values.integer)
        if replicas is not None and scale is not None and replicas != scale:
            self.report.problem(
                self.at("scale"), "can't set distinct values on 'scale' and 'deploy.replicas'"
            )
        return replicas if replicas is not None else scale

    def _resources(self, deploy: dict[str, Any]) -> Resources:
        resources = Resources()
        if "resources" in deploy:
            resources = servicefields.resources(
                deploy["resources"], child(self.at("deploy"), "resources"), self.report
            )
        return Resources(
            cpu_limit=resources.cpu_limit or self.get("cpus", servicefields.cpus),
            memory_limit=resources.memory_limit or self.get("mem_limit", servicefields.memory),
            cpu_request=resources.cpu_request,
            memory_request=resources.memory_request
            or self.get("mem_reservation", servicefields.memory),
            gpus=resources.gpus,
        )

    def _escalations(self) -> Escalations:
        hosts = {key: self._host_mode(key) for key in ("network_mode", "pid", "ipc")}
        # Every pod drops all capabilities already (Pod Security "restricted"); cap_drop is
        # only checked for its shape.
        self.get("cap_drop", values.string_list)
        return Escalations(
            privileged=bool(self.get("privileged", values.boolean)),
            host_network=hosts["network_mode"],
            host_pid=hosts["pid"],
            host_ipc=hosts["ipc"],
            cap_add=self.get("cap_add", values.string_list) or (),
            devices=self.get("devices", _devices) or (),
        )

    def _host_mode(self, key: str) -> bool:
        mode = self.get(key, values.string)
        if mode is None:
            return False
        if mode == "host":
            return True
        self.report.warn(self.at(key), f"{key}: {mode} has no meaning on Kubernetes; ignored")
        return False


def _command(value: Any, path: str, report: Report) -> tuple[str, ...] | None:
    """A string is split as a shell would (Compose does the same); a list is kept."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as error:
            report.problem(path, f"cannot split {values.show(value)} into words: {error}")
            return None
    return values.string_list(value, path, report)


def _looks_like_a_file(path: str) -> bool:
    """`Chinook.db`, `agents.yaml`: a name with an extension. `data/mongodb` is a folder."""
    name = path.rsplit("/", 1)[-1].lstrip(".")
    return "." in name


def _environment(
    value: Any, path: str, interpolation: Mapping[str, str], report: Report
) -> dict[str, str | None]:
    """Map or `K=V` list. `K` alone (or `K: null`) takes the value Compose would copy from its
    shell: here the interpolation environment's; without one it is None (dropped, with a
    warning, after it has overridden any `env_file` value, as in Compose)."""
    environment: dict[str, str | None] = {}
    if isinstance(value, list):
        entries: list[tuple[str, Any, str]] = []
        for index, entry in enumerate(value):
            text = values.string(entry, item(path, index), report)
            if text is None:
                continue
            key, equals, rest = text.partition("=")
            entries.append((key, rest if equals else None, item(path, index)))
    else:
        mapping = values.mapping(value, path, report) or {}
        entries = [(key, element, child(path, key)) for key, element in mapping.items()]
    for key, element, entry_path in entries:
        if not valid_env_name(key, entry_path, report):
            continue
        if element is None:
            environment[key] = interpolation.get(key)
            if environment[key] is None:
                report.warn(
                    entry_path,
                    f"{key} has no value and is not in the interpolation environment; dropped",
                )
        elif (text := values.scalar_text(element)) is not None:
            environment[key] = text
        else:
            values.expected(report, entry_path, "a string", element)
    return environment


def valid_env_name(name: str, path: str, report: Report) -> bool:
    """Kubernetes' rule: `""`, `A=B` or `LLM URL` would be refused by the API server, after
    other objects of the app were applied already."""
    if ENV_NAME.match(name):
        return True
    report.problem(
        path,
        f"{clip(name)!r} is not a valid environment variable name: letters, digits, '_', '-' "
        "and '.', not starting with a digit",
    )
    return False


def _labels(value: Any, path: str, report: Report) -> dict[str, str]:
    return {} if value is None else values.key_value_list(value, path, report, bare="")


def _user(value: Any, path: str, report: Report) -> str | None:
    text = values.scalar_text(value) if not isinstance(value, bool) else None
    if text is None:
        values.expected(report, path, 'a user such as "1000" or "1000:1000"', value)
    return text


def _devices(value: Any, path: str, report: Report) -> tuple[str, ...]:
    """Devices as written (`/dev/kfd`, `/dev/dri:/dev/dri:rwm`, or a long form's source)."""
    devices: list[str] = []
    for index, entry in enumerate(values.sequence(value, path, report) or []):
        if isinstance(entry, dict):
            source = values.nonempty_string(
                entry.get("source"), child(item(path, index), "source"), report
            )
            devices.extend([source] if source else [])
        else:
            text = values.nonempty_string(entry, item(path, index), report)
            devices.extend([text] if text else [])
    return tuple(devices)
