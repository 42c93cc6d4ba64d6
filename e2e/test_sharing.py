"""Shared models on the real control plane: a platform namespace offers a model, team
namespaces bind to it, and the sharing policy (prefer, require) decides what happens when an
app is not admitted, when the offer shrinks below an app's need, and when it goes.

Each test runs its own operator process (as the chart's ServiceAccount, with the chart's RBAC
for `networkPolicies: true`) with its own settings file, and a watcher thread checks, the whole
time, that nothing is half-bound: a service's `LLM_URL` never names a Service that does not
exist, and no app with a model bound to an offer also runs its own model Deployment.

Not here: the real-node proof (a chat completion across namespaces). It would reuse the
`realnode` fixture and the chat-app images of test_realnode_basics.py: a platform namespace
offers the llama.cpp CPU model (`x-kubernetes: {gpus: 0, offer: {namespaces: [team]}}`, the
node's local registry as mirror), the team namespace applies examples/chat-app with the same
model reference, and a pod in the team namespace POSTs to `$CHAT_MODEL_URL/chat/completions`
(cross-namespace Service DNS through the node's CoreDNS); then, with `networkPolicies: true`,
a pod in a third namespace must time out against the same URL, which only holds where the
node's network plugin enforces NetworkPolicies (plain bridge/host-local CNI does not; say so).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.cluster_support import Cluster, create_namespace
from e2e.operator_harness import (
    KWOK_SETTINGS,
    OperatorProcess,
    compose_app,
    condition,
    dumps,
    env_of,
    eventually,
    install_crd_and_rbac,
    running_operator,
)

MODEL = "ai/smollm2"
OFFERS_LABEL = "e2e.compose-operator.io/offers"
URL = re.compile(r"^http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local/v1/$")


def platform_compose(context_size: int, team_a: str, team_b: str) -> str:
    return f"""\
models:
  llm:
    model: {MODEL}
    context_size: {context_size}
    x-kubernetes:
      offer:
        namespaces: [{team_a}, {team_b}]
"""


ROGUE_OFFER = f"""\
models:
  llm:
    model: {MODEL}
    context_size: 65536
    x-kubernetes:
      offer: {{namespaceSelector: {{}}}}
"""
"""An offer to every namespace, of the same model, from a namespace that may not offer."""

TEAM_COMPOSE = f"""\
services:
  chat:
    image: registry.local/chat:1
    models: [llm]
models:
  llm:
    model: docker.io/{MODEL}:latest
    context_size: 4096
"""


@dataclass
class Namespaces:
    platform: str
    team_a: str
    team_b: str
    team_c: str

    @property
    def teams(self) -> tuple[str, str, str]:
        return self.team_a, self.team_b, self.team_c

    @property
    def all(self) -> tuple[str, ...]:
        return (self.platform, *self.teams)


@pytest.fixture
def spaces(cluster: Cluster) -> Iterator[Namespaces]:
    suffix = secrets.token_hex(3)
    found = Namespaces(
        platform=f"e2e-platform-{suffix}",
        team_a=f"e2e-team-a-{suffix}",
        team_b=f"e2e-team-b-{suffix}",
        team_c=f"e2e-team-c-{suffix}",
    )
    for name in found.all:
        create_namespace(cluster, name)
    # Only the platform namespace may offer models (the settings select it by this label).
    cluster.kubectl("label", "namespace", found.platform, f"{OFFERS_LABEL}=true")
    yield found
    for name in found.all:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def operator_with(
    cluster: Cluster, scratch: Path, policy: str
) -> contextlib.AbstractContextManager[OperatorProcess]:
    account = install_crd_and_rbac(
        cluster, webhook=False, chart_values=("settings.networkPolicies=true",)
    )
    settings = yaml.safe_load(KWOK_SETTINGS.read_text()) or {}
    # modelEndpoint: direct, so the invariants below read where each env points; this suite
    # is also the kwok suite's proof of that setting (test_operator.py runs the gateway).
    sharing = {"policy": policy, "offerNamespaceSelector": {"matchLabels": {OFFERS_LABEL: "true"}}}
    settings.update({"sharing": sharing, "networkPolicies": True, "modelEndpoint": "direct"})
    return running_operator(
        cluster,
        scratch,
        account=account,
        settings=settings,
        name=f"operator-{policy}",
        # --verbose: every reconcile is logged, so a test can count them per app.
        extra_args=("--resync-seconds", "300", "--verbose"),
    )


def apply(cluster: Cluster, namespace: str, name: str, text: str) -> None:
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=compose_app(name, text))


def app_of(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.get_json("-n", namespace, "composeapp", name)
    return found


def settled(app: dict[str, Any]) -> bool:
    return bool(app.get("status", {}).get("observedGeneration") == app["metadata"]["generation"])


def wait_for(
    cluster: Cluster, namespace: str, name: str, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        app = app_of(cluster, namespace, name)
        return app if settled(app) and check(app) else None

    try:
        return eventually(probe, timeout=90, what=what)
    except AssertionError:
        status = app_of(cluster, namespace, name).get("status")
        raise AssertionError(f"{what}; {namespace}/{name} status: {dumps(status)}") from None


def offering_app_gone(cluster: Cluster, namespace: str) -> None:
    """Waits for the offering app `models` to be deleted: its finalizer lets it go only once
    nobody is bound."""
    eventually(
        lambda: cluster.kubectl(
            "-n", namespace, "get", "composeapp", "models", check=False
        ).returncode != 0,
        timeout=60,
        what="the offering app deleted once nobody is bound",
    )  # fmt: skip


def ready(app: dict[str, Any]) -> bool:
    return condition(app, "Ready").get("status") == "True"


def stalled(app: dict[str, Any]) -> bool:
    return condition(app, "Stalled").get("status") == "True"


def sources(app: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m.get("source", "") for m in app.get("status", {}).get("models", [])}


def model_deployments(cluster: Cluster, spaces: Namespaces) -> list[str]:
    items = cluster.get_json("deployments", "-A", "-l", "compose-operator.io/model")["items"]
    return sorted(
        f"{d['metadata']['namespace']}/{d['metadata']['name']}"
        for d in items
        if d["metadata"]["namespace"] in spaces.all
        and d["metadata"]["labels"].get("compose-operator.io/app") in ("chat", "models")
        and not d["metadata"].get("deletionTimestamp")
    )


def chat_env(cluster: Cluster, namespace: str) -> dict[str, str] | None:
    """The env of the team app's service Deployment; None when it does not exist."""
    found = cluster.kubectl("-n", namespace, "get", "deployment", "chat", "-o", "json", check=False)
    if found.returncode != 0:
        return None
    return env_of(yaml.safe_load(found.stdout))


def reconciles_since(operator: OperatorProcess, mark: int) -> dict[str, int]:
    """Reconciles per app (`ns/name`) in the operator's JSON log after a mark (--verbose)."""
    with operator.log_path.open("rb") as log:
        log.seek(mark)
        lines = log.read().decode(errors="replace").splitlines()
    counted: dict[str, int] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("logger") == "compose_operator.reconcile" and str(
            record.get("message", "")
        ).startswith("reconciled"):
            counted[record["app"]] = counted.get(record["app"], 0) + 1
    return counted


def metric(operator: OperatorProcess, name: str) -> float:
    for line in operator.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not found")


@dataclass
class HalfBoundWatcher:
    """Polls the team namespaces while the offer changes; records every half-bound sighting."""

    cluster: Cluster
    spaces: Namespaces
    violations: list[str] = field(default_factory=list)
    looks: int = 0
    phase: str = "set-up"
    """What the test is doing, named in each violation."""
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            first = self.violations_now()
            # Lists of different kinds are not one snapshot: confirm with a second look that
            # sees the same Deployment env (a move between the two reads is no violation).
            if first and self.violations_now() == first:
                self.violations += [f"{self.phase}: {found}" for found in first]
            self.looks += 1

    def violations_now(self) -> list[str]:
        listed = self.cluster.get_json("deployments,services,composeapps", "-A")["items"]
        mine = [o for o in listed if o["metadata"]["namespace"] in self.spaces.all]
        services = {
            (o["metadata"]["namespace"], o["metadata"]["name"])
            for o in mine
            if o["kind"] == "Service"
        }
        found: list[str] = []
        for obj in mine:
            namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
            if obj["kind"] == "Deployment" and name == "chat":
                url = env_of(obj).get("LLM_URL", "")
                match = URL.match(url)
                if match and (match[2], match[1]) not in services:
                    found.append(f"{namespace}: LLM_URL names missing {match[2]}/{match[1]}")
            if obj["kind"] != "ComposeApp" or name != "chat":
                continue
            for entry in obj.get("status", {}).get("models", []):
                source, endpoint = entry.get("source", ""), entry.get("endpoint", "")
                own = f".{namespace}.svc." in endpoint
                if source.startswith("shared: ") and (own or "readyReplicas" in entry):
                    found.append(f"{namespace}: shared model also reported as its own")
                if source == "own" and not own:
                    found.append(f"{namespace}: own model with another's endpoint")
        return found


@pytest.fixture
def watcher(cluster: Cluster, spaces: Namespaces) -> Iterator[HalfBoundWatcher]:
    watching = HalfBoundWatcher(cluster, spaces)
    thread = threading.Thread(target=watching.run, daemon=True)
    thread.start()
    yield watching
    watching.stop.set()
    thread.join(timeout=30)


UNRELATED_COMPOSE = TEAM_COMPOSE.replace("chat", "notes").replace(MODEL, "ai/qwen3")


def set_up(cluster: Cluster, spaces: Namespaces, context_size: int = 8192) -> None:
    apply(cluster, spaces.team_c, "notes", UNRELATED_COMPOSE)
    apply(
        cluster,
        spaces.platform,
        "models",
        platform_compose(context_size, spaces.team_a, spaces.team_b),
    )
    for namespace in spaces.teams:
        apply(cluster, namespace, "chat", TEAM_COMPOSE)


@contextlib.contextmanager
def cleaned_up(cluster: Cluster, spaces: Namespaces) -> Iterator[None]:
    """Delete the apps while the operator still runs, so its finalizers go, pass or fail."""
    try:
        yield
    finally:
        for namespace in spaces.all:
            cluster.kubectl(
                "-n", namespace, "delete", "composeapp", "--all", "--timeout=60s", check=False
            )


def test_prefer(
    cluster: Cluster,
    spaces: Namespaces,
    watcher: HalfBoundWatcher,
    tmp_path: Path,
    record_property: Any,
) -> None:
    with operator_with(cluster, tmp_path, "prefer") as operator, cleaned_up(cluster, spaces):
        set_up(cluster, spaces)
        offer = f"shared: {spaces.platform}/models/llm"
        for namespace in (spaces.team_a, spaces.team_b):
            app = wait_for(
                cluster, namespace, "chat", lambda a: ready(a) and sources(a) == {"llm": offer},
                f"{namespace} bound and Ready",
            )  # fmt: skip
            assert app["status"]["ready"]["shared"] == "1/1"
        wait_for(cluster, spaces.team_c, "chat", ready, "team-c Ready on its own model")
        assert sources(app_of(cluster, spaces.team_c, "chat")) == {"llm": "own"}
        assert model_deployments(cluster, spaces) == [
            f"{spaces.platform}/models-llm",
            f"{spaces.team_c}/chat-llm",
        ], "one model Deployment serves both admitted teams"
        platform_url = f"http://models-llm.{spaces.platform}.svc.cluster.local/v1/"
        for namespace in (spaces.team_a, spaces.team_b):
            pods = cluster.get_json("-n", namespace, "pods", "-l", "compose-operator.io/service")
            live = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
            assert live and all(env_of(p)["LLM_URL"] == platform_url for p in live)
            assert all(env_of(p)["LLM_MODEL"] == f"docker.io/{MODEL}:latest" for p in live)
        platform = wait_for(
            cluster, spaces.platform, "models",
            lambda a: a["status"]["models"][0].get("servedApps") == 2, "the offer serves 2 apps",
        )  # fmt: skip
        assert platform["status"]["models"][0]["servedNamespaces"] == [
            spaces.team_a,
            spaces.team_b,
        ]
        assert platform["status"]["ready"]["serving"] == 2
        policy = cluster.get_json("-n", spaces.platform, "networkpolicy", "models-llm-offer")
        (peer,) = policy["spec"]["ingress"][0]["from"]
        assert peer["namespaceSelector"]["matchExpressions"][0]["values"] == sorted(
            [spaces.platform, spaces.team_a, spaces.team_b]
        )
        assert metric(operator, "compose_operator_bound_apps") >= 2
        assert metric(operator, "compose_operator_gpu_deployments_avoided") >= 2
        reasons = cluster.kubectl(
            "-n", spaces.team_a, "get", "events", "-o", "jsonpath={.items[*].reason}"
        ).stdout.split()
        assert "BoundToOffer" in reasons

        # A namespace the settings do not let offer publishes the model to everybody, first
        # by name: it is Stalled with nothing applied, and nobody's binding moves (issue 12).
        watcher.phase = "untrusted offer"
        apply(cluster, spaces.team_c, "rogue", ROGUE_OFFER)
        rogue = wait_for(
            cluster, spaces.team_c, "rogue", stalled, "the untrusted offer Stalled"
        )  # fmt: skip
        assert condition(rogue, "Stalled")["reason"] == "InvalidCompose"
        assert (
            f"namespace {spaces.team_c} may not offer models"
            in (condition(rogue, "Stalled")["message"])
        )
        assert cluster.get_json("-n", spaces.team_c, "deployments", "-l",
                                "compose-operator.io/app=rogue")["items"] == []  # fmt: skip
        for namespace in (spaces.team_a, spaces.team_b):
            assert sources(app_of(cluster, namespace, "chat")) == {"llm": offer}
        assert sources(app_of(cluster, spaces.team_c, "chat")) == {"llm": "own"}
        cluster.kubectl("-n", spaces.team_c, "delete", "composeapp", "rogue", "--wait=false")

        # The offer shrinks below the teams' 4096: under prefer they run their own.
        watcher.phase = "offer shrinks"
        triggers = metric(operator, "compose_operator_sharing_triggers_total")
        mark = operator.log_path.stat().st_size
        apply(cluster, spaces.platform, "models",
              platform_compose(2048, spaces.team_a, spaces.team_b))  # fmt: skip
        for namespace in (spaces.team_a, spaces.team_b):
            wait_for(
                cluster, namespace, "chat", lambda a: ready(a) and sources(a) == {"llm": "own"},
                f"{namespace} on its own model",
            )  # fmt: skip
        fan_out = metric(operator, "compose_operator_sharing_triggers_total") - triggers
        record_property("fan_out_on_offer_change", fan_out)
        reconciled = reconciles_since(operator, mark)
        record_property("reconciles_after_offer_change", dumps(reconciled))
        assert f"{spaces.team_c}/notes" not in reconciled, (
            "an app that does not want the offered model is never re-reconciled for it"
        )
        assert {f"{spaces.team_a}/chat", f"{spaces.team_b}/chat"} <= set(reconciled)
        assert model_deployments(cluster, spaces) == sorted(
            [f"{spaces.platform}/models-llm"] + [f"{ns}/chat-llm" for ns in spaces.teams]
        )

        # Back to 8192: they bind again and their own model Deployments go.
        watcher.phase = "offer restored"
        apply(cluster, spaces.platform, "models",
              platform_compose(8192, spaces.team_a, spaces.team_b))  # fmt: skip
        for namespace in (spaces.team_a, spaces.team_b):
            wait_for(
                cluster, namespace, "chat", lambda a: ready(a) and sources(a) == {"llm": offer},
                f"{namespace} bound again",
            )  # fmt: skip
        eventually(
            lambda: (
                model_deployments(cluster, spaces)
                == [f"{spaces.platform}/models-llm", f"{spaces.team_c}/chat-llm"]
            ),
            timeout=60,
            what="own model Deployments pruned after binding again",
        )

        # The offer goes: the teams move to their own models before its Service goes.
        watcher.phase = "offer deleted"
        cluster.kubectl("-n", spaces.platform, "delete", "composeapp", "models", "--wait=false")
        for namespace in (spaces.team_a, spaces.team_b):
            wait_for(
                cluster, namespace, "chat", lambda a: ready(a) and sources(a) == {"llm": "own"},
                f"{namespace} on its own model after the offer went",
            )  # fmt: skip
        offering_app_gone(cluster, spaces.platform)
        watcher.stop.set()
    record_property("half_bound_looks", watcher.looks)
    assert watcher.looks >= 10, f"only {watcher.looks} looks"
    assert watcher.violations == [], watcher.violations


def test_require(
    cluster: Cluster,
    spaces: Namespaces,
    watcher: HalfBoundWatcher,
    tmp_path: Path,
) -> None:
    with operator_with(cluster, tmp_path, "require"), cleaned_up(cluster, spaces):
        set_up(cluster, spaces)
        offer = f"shared: {spaces.platform}/models/llm"
        for namespace in (spaces.team_a, spaces.team_b):
            wait_for(
                cluster, namespace, "chat", lambda a: ready(a) and sources(a) == {"llm": offer},
                f"{namespace} bound and Ready",
            )  # fmt: skip
        refused = wait_for(cluster, spaces.team_c, "chat", stalled, "team-c refused")
        assert condition(refused, "Stalled")["reason"] == "SharingRefused"
        assert condition(refused, "Stalled")["message"] == (
            f"models.llm: sharing policy is require and no offer of docker.io/{MODEL}:latest "
            f"matches: 1 offer not offered to namespace {spaces.team_c}"
        )
        assert "models" not in condition(refused, "Stalled")["message"].split(": ", 2)[2], (
            "the app learns nothing of the offer it may not use, not even its name"
        )
        assert chat_env(cluster, spaces.team_c) is None, "nothing of the refused app runs"
        assert model_deployments(cluster, spaces) == [f"{spaces.platform}/models-llm"]

        # The offer shrinks: the teams are refused, with the offer named and the reason.
        watcher.phase = "offer shrinks"
        apply(cluster, spaces.platform, "models",
              platform_compose(2048, spaces.team_a, spaces.team_b))  # fmt: skip
        for namespace in (spaces.team_a, spaces.team_b):
            app = wait_for(cluster, namespace, "chat", stalled, f"{namespace} refused")
            assert condition(app, "Stalled")["message"].endswith(
                f"{spaces.platform}/models/llm: context_size: the offer serves 2048, 4096 needed"
            )
            assert chat_env(cluster, namespace) is None
        assert model_deployments(cluster, spaces) == [f"{spaces.platform}/models-llm"]

        # Restored: they bind and run again.
        watcher.phase = "offer restored"
        apply(cluster, spaces.platform, "models",
              platform_compose(8192, spaces.team_a, spaces.team_b))  # fmt: skip
        for namespace in (spaces.team_a, spaces.team_b):
            wait_for(
                cluster, namespace, "chat", lambda a: ready(a) and sources(a) == {"llm": offer},
                f"{namespace} bound again",
            )  # fmt: skip

        # The offer goes: the teams are refused ("none exists"), never left pointing at it.
        watcher.phase = "offer deleted"
        cluster.kubectl("-n", spaces.platform, "delete", "composeapp", "models", "--wait=false")
        for namespace in spaces.teams:
            app = wait_for(
                cluster, namespace, "chat",
                lambda a: stalled(a) and "no offer of this model exists"
                in condition(a, "Stalled")["message"],
                f"{namespace} refused after the offer went",
            )  # fmt: skip
        offering_app_gone(cluster, spaces.platform)
        assert model_deployments(cluster, spaces) == []
        watcher.stop.set()
    assert watcher.looks >= 10, f"only {watcher.looks} looks"
    assert watcher.violations == [], watcher.violations
