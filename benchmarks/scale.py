"""The scale benchmark: N ComposeApps (2 models each) against the e2e control plane, in one run.

Run: `make bench-scale` (or `.venv/bin/python -m benchmarks.scale [--sizes 100,1000]`). It uses
the running e2e cluster (`e2e/cluster/cluster.sh`), or starts one and stops it at the end. The
operator runs as a local process under the Helm chart's ServiceAccount and RBAC, and the
cluster's audit log records its every request, reads and watches included.

Printed, all from this one run (nothing is deleted between the runs: namespace deletion takes
minutes here, so later runs see the earlier apps and the floor's objects):
- the floor, first, on the fresh cluster: serial `kubectl apply --server-side` of the objects
  `render` gives for the same N apps, one request per object (kubectl sends them one after
  another), their label keys prefixed so no operator watch selects them;
- create: from `kubectl apply` of N ComposeApps to every app's status current (observed
  generation, both models listed), in one namespace and spread over 20 namespaces;
- requests per app while creating, reads (get, list) and writes, from the audit log;
- steady state: requests per resync period once every status is current;
- one edit: from patching one app's `context_size` to its Deployment's new args, the other
  apps idle;
- the operator's RSS (current and peak) after the first run (N = the first size);
- how long the operator takes to exit on SIGTERM with every app in the cluster.

The kwok GPU nodes fill up, so most model pods stay Pending, as on a busy cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from compose_operator.compose import load_project
from compose_operator.render import plan
from compose_operator.settings import load_settings
from e2e.cluster_support import Cluster, running_cluster
from e2e.operator_harness import (
    KWOK_SETTINGS,
    OperatorProcess,
    install_crd_and_rbac,
    running_operator,
)

REPO = Path(__file__).resolve().parent.parent
READ_VERBS = frozenset({"get", "list"})
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def compose_text(context_size: int = 4096) -> str:
    return (
        "models:\n"
        "  chat:\n"
        "    model: ai/smollm2\n"
        f"    context_size: {context_size}\n"
        "  embed:\n"
        "    model: ai/mxbai-embed-large\n"
    )


def app_manifest(name: str, namespace: str, context_size: int = 4096) -> dict[str, Any]:
    return {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"compose": compose_text(context_size)},
    }


def namespaces_for(run: str, spread: int) -> list[str]:
    return [f"bench-{run}-{i}" for i in range(spread)]


def placement(count: int, namespaces: list[str]) -> list[tuple[str, str]]:
    return [(namespaces[i % len(namespaces)], f"app-{i:04d}") for i in range(count)]


@dataclass
class Audit:
    path: Path
    user: str

    def mark(self) -> int:
        return self.path.stat().st_size

    def events(self, since: int, until: int | None = None) -> list[dict[str, Any]]:
        time.sleep(1.0)  # the API server writes the log as requests complete
        with self.path.open("rb") as log:
            log.seek(since)
            data = log.read() if until is None else log.read(until - since)
        found = []
        for line in data.splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            if event.get("user", {}).get("username") != self.user:
                continue
            stage = event.get("stage")
            # A watch is logged when it starts and again when it ends: count it once.
            if (event.get("verb") == "watch" and stage == "ResponseStarted") or (
                event.get("verb") != "watch" and stage == "ResponseComplete"
            ):
                found.append(event)
        return found


def tally(events: list[dict[str, Any]]) -> dict[str, Any]:
    verbs = Counter(str(e.get("verb")) for e in events)
    by = Counter(
        f"{e.get('verb')} {e.get('objectRef', {}).get('resource', '')}"
        + (f"/{e['objectRef']['subresource']}" if e.get("objectRef", {}).get("subresource") else "")
        for e in events
    )
    return {
        "reads": sum(verbs[v] for v in READ_VERBS),
        "writes": sum(verbs[v] for v in WRITE_VERBS),
        "watches": verbs["watch"],
        "leases": sum(
            1
            for e in events
            if e.get("objectRef", {}).get("resource") == "leases" and e.get("verb") in WRITE_VERBS
        ),
        "by": dict(by.most_common()),
    }


class CurrentWatch:
    """Records when each ComposeApp's status became current, from a watch (admin credentials)."""

    def __init__(self, cluster: Cluster) -> None:
        from kubernetes import client, config

        self.api = client.CustomObjectsApi(
            config.new_client_from_config(config_file=str(cluster.kubeconfig))
        )
        self.current: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from kubernetes import watch

        while not self.stop.is_set():
            stream = watch.Watch()
            with contextlib.suppress(Exception):
                for event in stream.stream(
                    self.api.list_cluster_custom_object,
                    "compose-operator.io",
                    "v1alpha1",
                    "composeapps",
                    timeout_seconds=30,
                ):
                    self._see(event["object"])
                    if self.stop.is_set():
                        break

    def _see(self, app: dict[str, Any]) -> None:
        metadata = app.get("metadata", {})
        status = app.get("status", {}) or {}
        key = (metadata.get("namespace", ""), metadata.get("name", ""))
        is_current = (
            status.get("observedGeneration") == metadata.get("generation")
            and len(status.get("models", [])) == 2
        )
        with self.lock:
            if is_current:
                self.current.setdefault(key, time.monotonic())
            else:
                self.current.pop(key, None)

    def wait(self, keys: list[tuple[str, str]], timeout: float) -> tuple[int, float | None]:
        """How many of `keys` are current, and when the last became so (None: not all)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                done = [self.current[k] for k in keys if k in self.current]
            if len(done) == len(keys):
                return len(done), max(done)
            time.sleep(0.2)
        with self.lock:
            return sum(1 for k in keys if k in self.current), None

    def close(self) -> None:
        self.stop.set()


FLOOR_PREFIX = "floor."
"""Label keys of the floor's objects get this prefix: the same objects, which no operator watch
selects (its selector is the key compose-operator.io/app)."""


def _relabel(value: Any) -> Any:
    """Every label key of ours, in labels and selectors alike, under the floor's prefix."""
    if isinstance(value, dict):
        return {
            (
                FLOOR_PREFIX + k
                if isinstance(k, str) and k.startswith("compose-operator.io/")
                else k
            ): (_relabel(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_relabel(v) for v in value]
    return value


def floor_seconds(cluster: Cluster, count: int) -> float:
    """Serial server-side apply of the objects `render` gives for `count` apps, one namespace.

    Measured first, on the fresh cluster; afterwards its Deployments are scaled to zero, so
    their pods do not keep the scheduler busy during the operator's runs.
    """
    settings = load_settings(KWOK_SETTINGS.read_text(), file=str(KWOK_SETTINGS))
    namespace = f"bench-floor-{count}"
    documents = []
    for _, name in placement(count, [namespace]):
        project = load_project(compose_text(), file="spec.compose")
        for obj in plan(project, app=name, namespace=namespace, settings=settings).objects:
            relabelled = _relabel(obj)
            relabelled["metadata"]["namespace"] = namespace
            documents.append(relabelled)
    cluster.kubectl("create", "namespace", namespace)
    created_namespaces.append(namespace)
    command = [str(cluster.kubectl_path), f"--kubeconfig={cluster.kubeconfig}"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump_all(documents, handle)
    try:
        started = time.monotonic()
        subprocess.run(
            [*command, "apply", "--server-side", "-f", handle.name],
            check=True,
            capture_output=True,
            timeout=3600,
        )
        elapsed = time.monotonic() - started
    finally:
        Path(handle.name).unlink()
    subprocess.run(
        [*command, "-n", namespace, "scale", "deployment", "--all", "--replicas=0"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    print(f"floor, {len(documents)} objects: {elapsed:.1f} s", file=sys.stderr)
    return elapsed


created_namespaces: list[str] = []


def delete_namespaces(cluster: Cluster, namespaces: list[str]) -> None:
    """Left to the namespace controller: a reused cluster is cleaned up in the background."""
    command = [str(cluster.kubectl_path), f"--kubeconfig={cluster.kubeconfig}"]
    subprocess.run(
        [*command, "delete", "namespace", "--ignore-not-found", "--wait=false", *namespaces],
        check=False,
        capture_output=True,
        timeout=300,
    )


@dataclass
class RunResult:
    label: str
    count: int
    spread: int
    floor: float
    seconds: float | None
    current: int
    requests: dict[str, Any] = field(default_factory=dict)


def create_run(
    cluster: Cluster,
    watch: CurrentWatch,
    audit: Audit,
    *,
    count: int,
    spread: int,
    timeout: float,
) -> tuple[RunResult, list[tuple[str, str]]]:
    run = f"{count}x{spread}"
    namespaces = namespaces_for(run, spread)
    for namespace in namespaces:
        cluster.kubectl("create", "namespace", namespace)
        created_namespaces.append(namespace)
    keys = placement(count, namespaces)
    text = yaml.safe_dump_all([app_manifest(name, ns) for ns, name in keys])
    mark = audit.mark()
    started = time.monotonic()
    subprocess.run(
        [str(cluster.kubectl_path), f"--kubeconfig={cluster.kubeconfig}", "apply", "-f", "-"],
        input=text.encode(),
        check=True,
        capture_output=True,
        timeout=3600,
    )
    current, last = watch.wait(keys, timeout)
    seconds = None if last is None else last - started
    result = RunResult(
        label=f"{count} apps in {spread} namespace{'s' if spread > 1 else ''}",
        count=count,
        spread=spread,
        floor=0.0,
        seconds=seconds,
        current=current,
        requests=tally(audit.events(mark)),
    )
    return result, keys


def quiet(audit: Audit, *, seconds: float, limit: float) -> None:
    """Wait until the operator has sent no write for `seconds` (status updates settle)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        mark = audit.mark()
        time.sleep(seconds)
        writes = [
            e
            for e in audit.events(mark)
            if e.get("verb") in WRITE_VERBS and e.get("objectRef", {}).get("resource") != "leases"
        ]
        if not writes:
            return


def edit_latency(cluster: Cluster, key: tuple[str, str]) -> float | None:
    """From the patch of one app's context_size to its chat Deployment showing the new size."""
    from kubernetes import client, config, watch

    api = client.AppsV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    namespace, name = key
    deployment = f"{name}-chat"
    listed = api.list_namespaced_deployment(namespace, field_selector=f"metadata.name={deployment}")
    assert listed.metadata is not None, "a list always carries its resourceVersion"
    version = listed.metadata.resource_version
    patch = json.dumps({"spec": {"compose": compose_text(8192)}})
    started = time.monotonic()
    cluster.kubectl("-n", namespace, "patch", "composeapp", name, "--type=merge", "-p", patch)
    stream = watch.Watch()
    for event in stream.stream(
        api.list_namespaced_deployment,
        namespace,
        field_selector=f"metadata.name={deployment}",
        resource_version=version,
        timeout_seconds=60,
    ):
        args = event["object"].spec.template.spec.containers[0].args or []
        if "8192" in args:
            stream.stop()
            return time.monotonic() - started
    return None


def rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def say_starting() -> None:
    print("starting the e2e cluster (e2e/cluster/cluster.sh up)", file=sys.stderr)


def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def report(results: list[RunResult], extra: dict[str, Any]) -> None:
    print()
    print(f"{'run':<28}{'floor':>9}{'create':>10}{'x floor':>9}{'reads/app':>11}{'writes/app':>12}")
    for r in results:
        ratio = "-" if r.seconds is None else f"{r.seconds / r.floor:.2f}"
        create = fmt_seconds(r.seconds) if r.seconds is not None else f"{r.current}/{r.count}"
        print(
            f"{r.label:<28}{fmt_seconds(r.floor):>9}{create:>10}{ratio:>9}"
            f"{r.requests['reads'] / r.count:>11.2f}{r.requests['writes'] / r.count:>12.2f}"
        )
    for r in results:
        print(f"\nrequests while creating {r.label}: {json.dumps(r.requests['by'])}")
    for key, value in extra.items():
        print(f"{key}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,100", help="app counts, in run order")
    parser.add_argument("--spreads", default="1,20", help="namespace counts, in run order")
    parser.add_argument("--resync-seconds", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="per create run")
    parser.add_argument("--operator-arg", action="append", default=[], help="extra run flags")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    spreads = [int(s) for s in args.spreads.split(",")]
    results: list[RunResult] = []
    extra: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch,
        running_cluster(Path(scratch), on_start=say_starting) as cluster,
    ):
        floors = {count: floor_seconds(cluster, count) for count in sizes}
        account = install_crd_and_rbac(cluster, webhook=False)
        watch = CurrentWatch(cluster)
        with running_operator(
            cluster,
            Path(scratch),
            account=account,
            extra_args=("--resync-seconds", str(args.resync_seconds), *args.operator_arg),
        ) as operator:
            assert cluster.audit_log is not None
            audit = Audit(cluster.audit_log, operator.user)
            for count in sizes:
                for spread in spreads:
                    result, keys = create_run(
                        cluster, watch, audit, count=count, spread=spread, timeout=args.timeout
                    )
                    results.append(result)
                    print(
                        f"{result.label}: {fmt_seconds(result.seconds)} "
                        f"({result.current}/{count} current)",
                        file=sys.stderr,
                    )
                    if count == sizes[0] and spread == spreads[0]:
                        measure_steady(cluster, audit, operator, keys, args, extra)
            shutdown_seconds(operator, extra)
        watch.close()
        for result in results:
            result.floor = floors[result.count]
        delete_namespaces(cluster, sorted(created_namespaces))
    report(results, extra)


def shutdown_seconds(operator: OperatorProcess, extra: dict[str, Any]) -> None:
    """SIGTERM with every app in the cluster: how long the operator takes to exit."""
    started = time.monotonic()
    operator.process.send_signal(signal.SIGTERM)
    try:
        operator.process.wait(timeout=60)
        extra["shutdown on SIGTERM"] = fmt_seconds(time.monotonic() - started)
    except subprocess.TimeoutExpired:
        extra["shutdown on SIGTERM"] = "still running after 60 s"


def measure_steady(
    cluster: Cluster,
    audit: Audit,
    operator: OperatorProcess,
    keys: list[tuple[str, str]],
    args: argparse.Namespace,
    extra: dict[str, Any],
) -> None:
    count = len(keys)
    quiet(audit, seconds=5, limit=180)
    periods = 2
    mark = audit.mark()
    time.sleep(periods * args.resync_seconds + 5)
    steady = tally(audit.events(mark))
    extra[f"steady state, {count} apps, per resync period ({args.resync_seconds:.0f} s)"] = (
        f"reads {steady['reads'] / periods:.1f}, writes {steady['writes'] / periods:.1f} "
        f"(lease renewals {steady['leases'] / periods:.1f}), watches opened "
        f"{steady['watches'] / periods:.1f}; {json.dumps(steady['by'])}"
    )
    latency = edit_latency(cluster, keys[count // 2])
    extra[f"one edit under {count} apps"] = fmt_seconds(latency)
    current, peak = rss(operator.process.pid)
    extra[f"operator RSS at {count} apps"] = f"{current} MiB (peak {peak} MiB)"


if __name__ == "__main__":
    main()
