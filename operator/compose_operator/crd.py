"""The ComposeApp CustomResourceDefinition, built as a dict.

`crds/composeapp.yaml` is generated from `render_crd_yaml()` (`compose-operator crd`), and a
test fails when the two differ, so the schema has one source. Every field has a
description so `kubectl explain composeapp.spec` documents the resource.
"""

from __future__ import annotations

from typing import Any

import yaml

from compose_operator.compose import projectfiles, yamlload

GROUP = "compose-operator.io"
VERSION = "v1alpha1"
KIND = "ComposeApp"
PLURAL = "composeapps"
SINGULAR = "composeapp"
SHORT_NAME = "capp"

Schema = dict[str, Any]

MAX_ENVIRONMENT = 512
MAX_ENVIRONMENT_VALUE = 32 * 1024
"""Interpolation values: the API server refuses more before the operator reads any, and the
loader bounds what they expand to (`yamlload.MAX_EXPANDED`)."""


def _string(description: str) -> Schema:
    return {"type": "string", "description": description}


def _integer(description: str) -> Schema:
    return {"type": "integer", "format": "int64", "description": description}


def _string_list(description: str) -> Schema:
    return {"type": "array", "description": description, "items": {"type": "string"}}


MAX_IMAGES = 256
MAX_IMAGE = 512
"""Characters in an image reference (registry, path, tag and digest fit easily)."""

_PATH_RULE = " && ".join(
    [
        "!self.path.startsWith('/')",
        "!self.path.endsWith('/')",
        "!self.path.contains('//')",
        "self.path != '.'",
        "self.path != '..'",
        "!self.path.startsWith('./')",
        "!self.path.startsWith('../')",
        "!self.path.endsWith('/.')",
        "!self.path.endsWith('/..')",
        "!self.path.contains('/./')",
        "!self.path.contains('/../')",
    ]
)


def _files_schema() -> Schema:
    return {
        "type": "array",
        "description": "The project files the Compose file names, as docker compose reads "
        "them next to it: bind mounts of project files and folders, `configs.*.file`, "
        "`env_file`, `include` and `extends.file`. `compose-operator convert` fills this in. "
        "Never secrets: a Compose secret is the Kubernetes Secret of its name. spec.compose "
        "plus every inline content holds at most 1 MiB; larger or binary files go in a "
        "ConfigMap of their own (configMapKeyRef).",
        "maxItems": projectfiles.MAX_FILES,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["path"],
        "items": {
            "type": "object",
            "description": "One project file: its path and its content or where it is.",
            "required": ["path"],
            "properties": {
                "path": {
                    "type": "string",
                    "description": "Relative to the Compose file's folder, e.g. agents.yaml "
                    "or wiremock/mappings/hello.json; no leading /, no . or .. segments.",
                    "minLength": 1,
                    "maxLength": projectfiles.MAX_PATH,
                },
                "content": {
                    "type": "string",
                    "description": "The file's text.",
                    "maxLength": projectfiles.MAX_SPEC_BYTES,
                },
                "configMapKeyRef": {
                    "type": "object",
                    "description": "A key of a ConfigMap in the app's namespace holding the "
                    "file (text in data or binary in binaryData), e.g. from a kustomize "
                    "configMapGenerator; a change to it rolls the pods that mount the file.",
                    "required": ["name", "key"],
                    "properties": {
                        "name": {**_string("The ConfigMap's name."), "maxLength": 253},
                        "key": {**_string("The key holding the file."), "maxLength": 253},
                    },
                },
                "mode": {
                    "type": "integer",
                    "format": "int32",
                    "description": "The file's mode in the containers, e.g. 493 (0755) for a "
                    "script; default: Kubernetes' 0644.",
                    "minimum": 0,
                    "maximum": projectfiles.MAX_MODE,
                },
            },
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.content) != has(self.configMapKeyRef)",
                    "message": "give exactly one of content and configMapKeyRef",
                },
                {
                    "rule": _PATH_RULE,
                    "message": "path is relative to the project folder, with no empty, '.' "
                    "or '..' segments",
                },
            ],
        },
    }


def _spec_schema() -> Schema:
    return {
        "type": "object",
        "description": "The Compose application to run: its Compose file and the values "
        "for its ${VAR} interpolation.",
        "properties": {
            "compose": {
                **_string(
                    "The Compose file text, verbatim (the top-level `models:` element "
                    "included), at most 1 MiB; the files it names travel in files. Exactly one of "
                    "compose and composeFrom is set. A "
                    "model may carry `x-kubernetes.offer` ({namespaces: [..]} or "
                    "{namespaceSelector: {..}}) to offer it to apps in other namespaces, which "
                    "then bind to it instead of running their own (only namespaces the "
                    "operator's settings sharing.offerNamespaces/offerNamespaceSelector name may "
                    "offer); `x-kubernetes.shared: false` keeps a model from binding to an offer "
                    "(unless the operator's sharing policy is require), `{from: [ns, ..]}` "
                    "accepts offers only from those namespaces. `x-kubernetes.endpoint: direct` "
                    "gives a model's *_URL its own Service instead of the app's model gateway "
                    "(`gateway` the other way round; the operator setting modelEndpoint decides "
                    "otherwise). Behind the gateway, bindings may share an endpoint_var (every "
                    "URL is the gateway's), as under docker compose."
                ),
                "maxLength": yamlload.MAX_BYTES,
            },
            "composeFrom": {
                "type": "object",
                "description": "Where to read the Compose file from instead of `compose`, "
                "e.g. a ConfigMap written by a kustomize configMapGenerator.",
                "properties": {
                    "configMapKeyRef": {
                        "type": "object",
                        "description": "A key of a ConfigMap in the ComposeApp's namespace.",
                        "properties": {
                            "name": _string("The ConfigMap's name."),
                            "key": _string("The key holding the Compose file text."),
                        },
                        "required": ["name", "key"],
                    }
                },
                "required": ["configMapKeyRef"],
            },
            "environment": {
                "type": "object",
                "description": "Values for ${VAR} interpolation in the Compose file, as "
                f"the shell environment gives them to `docker compose` (at most "
                f"{MAX_ENVIRONMENT} values of {MAX_ENVIRONMENT_VALUE} characters each).",
                "maxProperties": MAX_ENVIRONMENT,
                "additionalProperties": {"type": "string", "maxLength": MAX_ENVIRONMENT_VALUE},
            },
            "files": _files_schema(),
            "images": {
                "type": "object",
                "description": "The image of a Compose service, by service name, e.g. for a "
                "service that has only `build:` (a CI pipeline builds and pushes it, then sets "
                "the result here). It replaces the service's `image:` when it has one. A "
                "service with neither runs as an existing Deployment that gets only the model "
                "variables.",
                "maxProperties": MAX_IMAGES,
                "additionalProperties": {"type": "string", "maxLength": MAX_IMAGE},
            },
            "suspend": {
                "type": "boolean",
                "description": "When true the operator leaves the app's objects as they are: "
                "nothing is applied or deleted until it is false again.",
            },
        },
        "x-kubernetes-validations": [
            {
                "rule": "has(self.compose) != has(self.composeFrom)",
                "message": "set exactly one of spec.compose and spec.composeFrom",
            }
        ],
    }


def _condition_schema() -> Schema:
    return {
        "type": "object",
        "description": "A kstatus condition: Ready, Reconciling or Stalled.",
        "properties": {
            "type": _string("Ready, Reconciling or Stalled."),
            "status": {
                "type": "string",
                "description": "True, False or Unknown.",
                "enum": ["True", "False", "Unknown"],
            },
            "reason": _string("A CamelCase word saying why, e.g. InvalidCompose."),
            "message": _string("What is wrong or under way, in words."),
            "observedGeneration": _integer("The metadata.generation this condition describes."),
            "lastTransitionTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the status last changed.",
            },
        },
        "required": ["type", "status"],
    }


def _crash_schema() -> Schema:
    return {
        "type": "object",
        "description": "A container of the newest pod that crashed and has not recovered. "
        "At the operator's stallAfterCrashes crashes in a row the app is Stalled (reason "
        "CrashLoop); a ready container or a spec change ends it.",
        "properties": {
            "pod": _string("The pod."),
            "container": _string("The container (the engine, or the model-puller init container)."),
            "exitCode": _integer("Its last exit code (128 + the signal when killed by one)."),
            "meaning": _string(
                "The exit code in words, e.g. 132: SIGILL, the image was built for CPU "
                "instructions this node lacks; 137 OOMKilled: the memory limit."
            ),
            "restartCount": _integer("The container's restart count when last seen."),
            "crashes": _integer("Crashes in a row with this exit code, since the spec changed."),
        },
    }


def _status_schema() -> Schema:
    return {
        "type": "object",
        "description": "What the operator observed; kstatus semantics (Flux, kubectl wait).",
        "properties": {
            "observedGeneration": _integer("The metadata.generation last reconciled."),
            "conditions": {
                "type": "array",
                "description": "Ready, Reconciling and Stalled, as kstatus reads them.",
                "items": _condition_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "models": {
                "type": "array",
                "description": "One entry per Compose model.",
                "items": {
                    "type": "object",
                    "description": "A model's inference server.",
                    "properties": {
                        "name": _string("The key under the Compose `models:` element."),
                        "model": _string("The model reference as written, e.g. ai/smollm2."),
                        "engine": _string("The serving engine: llama.cpp or vllm."),
                        "endpoint": _string(
                            "The model's own Service (or its offer's) as an OpenAI-style base "
                            "URL. Services receive it as *_URL under modelEndpoint: direct or "
                            "x-kubernetes.endpoint: direct; otherwise they receive the model "
                            "gateway's URL (status.gateway.url)."
                        ),
                        "source": _string(
                            "`own`; `shared: <ns>/<app>/<model>` when bound to a platform "
                            "offer (no Deployment of its own); `refused` when the sharing "
                            "policy is require and no offer matches (see the Stalled condition)."
                        ),
                        "readyReplicas": _integer("Replicas ready to serve."),
                        "replicas": _integer("Replicas wanted."),
                        "message": _string("Why the model is not ready, when it is not."),
                        "crash": _crash_schema(),
                        "servedApps": _integer(
                            "For a model this app offers (x-kubernetes.offer): how many "
                            "other apps are bound to it."
                        ),
                        "servedNamespaces": _string_list(
                            "For an offered model: the namespaces of the apps bound to it."
                        ),
                    },
                    "required": ["name"],
                },
            },
            "services": {
                "type": "array",
                "description": "One entry per Compose service.",
                "items": {
                    "type": "object",
                    "description": "A Compose service and how it runs.",
                    "properties": {
                        "name": _string("The Compose service name."),
                        "mode": {
                            "type": "string",
                            "description": "created: our own Deployment; patched: env added "
                            "to an existing Deployment that opted in; refused: an existing "
                            "Deployment that did not opt in (or is missing).",
                            "enum": ["created", "patched", "refused"],
                        },
                        "models": _string_list("The model keys this service uses."),
                        "message": _string("Why the service is not ready, when it is not."),
                        "crash": _crash_schema(),
                    },
                    "required": ["name"],
                },
            },
            "gateway": {
                "type": "object",
                "description": "The app's model gateway (operator setting modelEndpoint: "
                "gateway, the default): one OpenAI-compatible URL for all of the app's models, "
                "as Docker Model Runner gives under docker compose. Every *_URL of the app is "
                "its url; it routes each request by the body's `model` (any spelling of the "
                "reference, or the model's key) to the model's Service, and answers 404 for a "
                "model the app does not have. Absent when no service reaches a model through it.",
                "properties": {
                    "url": _string("The URL every *_URL of the app carries."),
                    "name": _string("Its Deployment, Service and ConfigMap (routing table)."),
                    "ready": {
                        "type": "boolean",
                        "description": "Every replica serves the current routing table; the "
                        "app is Ready only when this is true.",
                    },
                    "replicas": _integer("Replicas wanted."),
                    "readyReplicas": _integer("Replicas ready to serve."),
                    "message": _string("Why the gateway is not ready, when it is not."),
                },
            },
            "warnings": _string_list("Compose keys ignored on Kubernetes, with their path."),
            "ready": {
                "type": "object",
                "description": "Summaries for printer columns.",
                "properties": {
                    "models": _string("Ready models out of all, as n/m."),
                    "services": _string("Ready services out of all, as n/m."),
                    "shared": _string("Models bound to platform offers out of all, as n/m."),
                    "serving": _integer(
                        "For an app that offers models: apps bound to its offers, in total."
                    ),
                },
            },
        },
    }


def _printer_columns() -> list[Schema]:
    return [
        {
            "name": "Ready",
            "type": "string",
            "description": "The Ready condition.",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {
            "name": "Models",
            "type": "string",
            "description": "Ready models out of all.",
            "jsonPath": ".status.ready.models",
        },
        {
            "name": "Services",
            "type": "string",
            "description": "Ready services out of all.",
            "jsonPath": ".status.ready.services",
        },
        {
            "name": "Shared",
            "type": "string",
            "description": "Models bound to platform offers out of all.",
            "jsonPath": ".status.ready.shared",
        },
        {
            "name": "Serving",
            "type": "integer",
            "description": "Apps bound to the models this app offers.",
            "jsonPath": ".status.ready.serving",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition for ComposeApp."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A Compose application with AI models (the Compose "
                            "`models:` element), run on Kubernetes by compose-operator.",
                            "properties": {
                                "apiVersion": _string(
                                    "The API version: compose-operator.io/v1alpha1."
                                ),
                                "kind": _string("ComposeApp."),
                                "metadata": {"type": "object"},
                                "spec": _spec_schema(),
                                "status": _status_schema(),
                            },
                            "required": ["spec"],
                        }
                    },
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    """The CRD as the YAML committed in `crds/composeapp.yaml`."""
    header = "# Generated by `compose-operator crd` from compose_operator/crd.py; do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)
