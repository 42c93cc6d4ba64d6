"""`compose-operator release-all`: the finalizer's escape when the operator goes away.

An app that patched Deployments it does not own, or that offers models, carries the finalizer
`compose-operator.io/bindings`, which only the operator removes. Uninstalled with such apps
left, it would hold their deletion, their namespace's and the CRD's forever. This command does
what the operator would have done last: each bound Deployment gets back exactly what it had
(an empty apply under the operator's field manager), then the finalizer goes. The apps and
their own objects stay; deleting them later no longer waits on anyone.

The operator must be stopped first, or it adds the finalizer back: `--operator` scales its
Deployment to zero (when it still exists) and waits until its pods are gone. The Helm chart
runs this as a post-delete hook (`releaseOnUninstall`), after Helm removed the operator.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from compose_operator.shell import kube
from compose_operator.shell.kube import Api, Manifest
from compose_operator.shell.reconcile import BOUND_BY_ANNOTATION, FINALIZER


class OperatorStillRunning(Exception):
    """The operator's pods did not go in time: it could add the finalizers back."""


@dataclass
class Released:
    """What release-all did, app by app."""

    apps: list[str] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)


def release_body(namespace: str, name: str) -> Manifest:
    """An empty apply: the API server drops every field the operator's manager set."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
    }


def stop_operator(
    api: Api,
    namespace: str,
    name: str,
    selector: str,
    *,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    say: Callable[[str], None] = print,
) -> None:
    """Scale the operator's Deployment to zero if it exists, then wait for its pods to go."""
    deployment = api.get(kube.DEPLOYMENTS, namespace, name)
    if deployment is not None:
        if not selector:
            labels = deployment.get("spec", {}).get("selector", {}).get("matchLabels", {})
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        api.patch(kube.DEPLOYMENTS, namespace, name, {"spec": {"replicas": 0}})
        say(f"scaled Deployment {namespace}/{name} to 0")
    if not selector:
        return
    deadline = clock() + timeout
    while pods := api.list(kube.PODS, namespace, selector):
        if clock() > deadline:
            names = ", ".join(p["metadata"]["name"] for p in pods)
            raise OperatorStillRunning(
                f"the operator's pods ({names}) are still there after {timeout:.0f} s; "
                "release-all stops: a running operator would add the finalizers back"
            )
        sleep(1)
    say(f"no operator pod left in {namespace} ({selector})")


def release_all(
    api: Api, namespaces: Sequence[str] = (), *, say: Callable[[str], None] = print
) -> Released:
    """Release every app holding the finalizer, in `namespaces` (empty: all)."""
    released = Released()
    apps = [app for ns in namespaces or [""] for app in api.list(kube.COMPOSE_APPS, ns)]
    for app in sorted(apps, key=lambda a: (a["metadata"]["namespace"], a["metadata"]["name"])):
        metadata = app["metadata"]
        finalizers = list(metadata.get("finalizers", []) or [])
        if FINALIZER not in finalizers:
            continue
        namespace, name = metadata["namespace"], metadata["name"]
        given_back = []
        for deployment in api.list(kube.DEPLOYMENTS, namespace):
            annotations = deployment["metadata"].get("annotations", {}) or {}
            if annotations.get(BOUND_BY_ANNOTATION) == name:
                deployment_name = deployment["metadata"]["name"]
                api.apply(kube.DEPLOYMENTS, release_body(namespace, deployment_name))
                given_back.append(deployment_name)
                released.deployments.append(f"{namespace}/{deployment_name}")
        path = f"/metadata/finalizers/{finalizers.index(FINALIZER)}"
        api.patch(
            kube.COMPOSE_APPS,
            namespace,
            name,
            [{"op": "test", "path": path, "value": FINALIZER}, {"op": "remove", "path": path}],
            patch_type="json",
        )
        released.apps.append(f"{namespace}/{name}")
        restored = f"; restored {', '.join(given_back)}" if given_back else ""
        say(f"released ComposeApp {namespace}/{name}: finalizer removed{restored}")
    say(f"{len(released.apps)} apps released, {len(released.deployments)} Deployments restored")
    return released


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compose-operator release-all",
        description="give bound Deployments back and remove the operator's finalizer from "
        "every ComposeApp (run it when the operator is uninstalled with apps left)",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="only ComposeApps in this namespace (repeatable; default: all)",
    )
    parser.add_argument(
        "--operator",
        metavar="NAMESPACE/DEPLOYMENT",
        help="stop this operator Deployment first and wait until its pods are gone",
    )
    parser.add_argument(
        "--operator-selector",
        default="",
        help="the operator pods' labels (default: the Deployment's selector)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api = kube.KubeApi(client.ApiClient())
    try:
        if args.operator:
            namespace, _, name = args.operator.partition("/")
            stop_operator(api, namespace, name, args.operator_selector, timeout=args.timeout)
        release_all(api, args.namespace)
    except (OperatorStillRunning, kube.ApiError) as error:
        print(f"compose-operator release-all: {error}", file=sys.stderr)
        return 1
    return 0
