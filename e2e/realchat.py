"""The example chat app for real: images and models in the node's registry, the operator as a
pod under its Helm chart, and the ComposeApp from examples/chat-app/ on the real node.

Shared by the real-node suite (e2e/test_realnode_chat.py) and `make demo` (e2e/demo.sh), which
runs it as a script once the cluster and the node are up (KUBECONFIG and PATH from their env):

    python e2e/realchat.py up NAMESPACE NAME     build/push, install the operator, apply, wait
    python e2e/realchat.py ask NAMESPACE QUESTION   POST /chat from inside the app's pod
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import yaml

REPO = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO / "e2e" / "images"
CHART = REPO / "charts" / "compose-operator"
EXAMPLE_DIR = REPO / "examples" / "chat-app"
OPERATOR_NAMESPACE = "compose-system"
RELEASE = "compose-operator"
OFFER_NAMESPACE = "real-platform"
"""The namespace the chart's settings let offer models (test_realnode_sharing.py)."""
REGISTRY_SERVICE = "registry.kube-system.svc.cluster.local:5000"
WEBHOOK_CONFIGURATION = RELEASE
"""The chart's ValidatingWebhookConfiguration; the operator patches only its CA bundle."""
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
READY_TIMEOUT = 1200.0
"""Cold: the kubelet pulls and unpacks the 6.7 GB vLLM image, then vLLM loads on CPU (~50 s)."""

Say = Callable[[str], None]
T = TypeVar("T")


def say_to(stream: TextIO | None = None) -> Say:
    """Timed progress lines; without a stream, to whatever sys.stderr is at each call."""
    started = time.monotonic()

    def say(message: str) -> None:
        out = stream or sys.stderr
        print(f"[{time.monotonic() - started:5.0f}s] {message}", file=out, flush=True)

    return say


@dataclass(frozen=True)
class Kube:
    """kubectl and helm for one cluster."""

    kubectl_path: Path
    helm_path: Path
    kubeconfig: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def get(self, *args: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return document

    def helm(self, *args: str) -> str:
        command = [str(self.helm_path), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout


@dataclass(frozen=True)
class Images:
    """Digest references in the node's registry, as push.sh prints them."""

    llamacpp: str
    vllm: str
    operator: str
    app: str


def _stream(command: list[str], say: Say, what: str, stdout: int | None = None) -> str:
    """Runs a build step with its progress on our stderr; its stdout is returned."""
    say(f"{what}: {' '.join(Path(part).name if '/' in part else part for part in command)}")
    started = time.monotonic()
    result = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=None, text=True, check=False, cwd=REPO
    )
    if result.returncode != 0:
        raise AssertionError(f"{what} failed (exit {result.returncode}); see its output above")
    say(f"{what}: done in {time.monotonic() - started:.0f} s")
    return result.stdout


def build_and_push(registry: str, say: Say) -> Images:
    """Builds or reuses every image (cached by inputs), pushes them and the two models."""
    _stream([str(IMAGES_DIR / "build.sh"), "all"], say, "images")
    pushed = _stream([str(IMAGES_DIR / "push.sh"), registry], say, "push images")
    refs = dict(re.findall(r"^(IMAGE_\w+)=(\S+)$", pushed, flags=re.MULTILINE))
    _stream([str(IMAGES_DIR / "push-models.sh"), registry], say, "push models")
    return Images(
        llamacpp=refs["IMAGE_LLAMACPP"],
        vllm=refs["IMAGE_VLLM"],
        operator=refs["IMAGE_OPERATOR"],
        app=refs["IMAGE_CHAT_APP"],
    )


def operator_values(images: Images, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Chart values: the pushed operator image by digest, the webhook on, CPU engines; any
    other operator settings on top."""
    repository, _, digest = images.operator.partition("@")
    repository, _, tag = repository.rpartition(":")
    return {
        "image": {"repository": repository, "tag": f"{tag}@{digest}"},
        "webhook": {"enabled": True},
        "logFormat": "plain",
        "tolerations": [GPU_TAINT],
        "settings": {
            "engines": {
                "llama.cpp": {
                    "gpu": images.llamacpp,
                    "cpu": images.llamacpp,
                    "command": ["llama-server"],
                },
                "vllm": {"gpu": images.vllm, "cpu": images.vllm, "command": ["vllm"]},
            },
            "pullerImage": images.operator,
            # test_realnode_sharing.py's platform namespace may offer models.
            "sharing": {"policy": "prefer", "offerNamespaces": [OFFER_NAMESPACE]},
            "registryMirrors": {"docker.io": REGISTRY_SERVICE},
            "insecureRegistries": [REGISTRY_SERVICE],
            # The real node is tainted as a GPU node; the app's model gateway runs there too.
            "gateway": {"tolerations": [GPU_TAINT]},
            **(settings or {}),
        },
    }


def install_operator(
    kube: Kube, images: Images, say: Say, settings: Mapping[str, Any] | None = None
) -> None:
    """`helm upgrade --install` (CRD, RBAC, Deployment, webhook Service), then waits for it."""
    say(f"helm install {RELEASE} into {OPERATOR_NAMESPACE} (operator image {images.operator})")
    ensure_namespace(kube, OPERATOR_NAMESPACE)  # the operator's own pod is restricted too
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="values-") as values:
        yaml.safe_dump(operator_values(images, settings), values)
        values.flush()
        kube.helm(
            "upgrade", "--install", RELEASE, str(CHART),
            "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "-f", values.name,
        )  # fmt: skip
    wait_for(
        lambda: operator_ready(kube),
        "the operator's pod to be Ready",
        timeout=300,
        diagnose=lambda: operator_diagnosis(kube),
        progress=lambda: ", ".join(
            f"{pod['metadata']['name']}={pod_state(pod)}"
            for pod in kube.get("-n", OPERATOR_NAMESPACE, "pods")["items"]
        ),
        say=say,
    )
    wait_for(
        lambda: kube.kubectl(
            "get", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}", check=False,
        ).stdout.strip() or None,
        "the operator's CA bundle in the chart's webhook configuration",
        timeout=120,
        diagnose=lambda: operator_diagnosis(kube),
    )  # fmt: skip
    say("operator Ready, webhook registered")


def operator_ready(kube: Kube) -> bool | None:
    """True once the Deployment is available; fails at once when the operator crash-loops."""
    for pod in kube.get("-n", OPERATOR_NAMESPACE, "pods")["items"]:
        for container in pod.get("status", {}).get("containerStatuses", []):
            if container.get("restartCount", 0) >= 2:
                raise AssertionError(f"the operator keeps crashing\n{operator_diagnosis(kube)}")
    deployment = kube.get("-n", OPERATOR_NAMESPACE, "deployment", RELEASE)
    return True if deployment.get("status", {}).get("availableReplicas") else None


def operator_diagnosis(kube: Kube) -> str:
    return "\n".join(
        kube.kubectl(*args, check=False).stdout + kube.kubectl(*args, check=False).stderr
        for args in (
            ("-n", OPERATOR_NAMESPACE, "get", "pods,deploy", "-o", "wide"),
            ("-n", OPERATOR_NAMESPACE, "logs", "deploy/compose-operator", "--tail=60"),
            ("get", "validatingwebhookconfigurations"),
        )
    )


def example(name: str = "compose.yaml") -> str:
    return (EXAMPLE_DIR / name).read_text()


def compose_app(name: str, namespace: str, compose: str, app_image: str) -> dict[str, Any]:
    """The ComposeApp: the example as it is, the app image chosen through spec.environment."""
    return {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"compose": compose, "environment": {"CHAT_APP_IMAGE": app_image}},
    }


def apply(kube: Kube, document: Mapping[str, Any]) -> None:
    kube.kubectl("apply", "-f", "-", input=json.dumps(document))


RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"


def ensure_namespace(kube: Kube, namespace: str) -> None:
    """The namespace, enforcing Pod Security "restricted": every pod the operator renders runs
    under it."""
    if kube.kubectl("get", "namespace", namespace, check=False).returncode != 0:
        kube.kubectl("create", "namespace", namespace)
    kube.kubectl("label", "--overwrite", "namespace", namespace, RESTRICTED)


def wait_for(
    check: Callable[[], T | None],
    what: str,
    *,
    timeout: float,
    interval: float = 2.0,
    diagnose: Callable[[], str] | None = None,
    progress: Callable[[], str] | None = None,
    say: Say | None = None,
) -> T:
    """Polls until `check` returns something; fails with a diagnosis after `timeout`."""
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            details = diagnose() if diagnose else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{details}")
        if say and progress and time.monotonic() - last_report > 15:
            say(f"waiting for {what}: {progress()}")
            last_report = time.monotonic()
        time.sleep(interval)


def conditions(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in document.get("status", {}).get("conditions", [])}


def current(document: Mapping[str, Any]) -> bool:
    """kstatus Current: Ready=True, Reconciling=False, both at the observed generation."""
    generation = document["metadata"]["generation"]
    found = conditions(document)
    return (
        document.get("status", {}).get("observedGeneration") == generation
        and found.get("Ready", {}).get("status") == "True"
        and found.get("Ready", {}).get("observedGeneration") == generation
        and found.get("Reconciling", {}).get("status") == "False"
    )


def kstatus(document: Mapping[str, Any]) -> str:
    """What kstatus (sigs.k8s.io/cli-utils, read by Flux) computes for a resource with conditions:
    InProgress while observedGeneration lags the generation, then the first of Reconciling=True
    (InProgress) and Stalled=True (Failed) in the list, else Current."""
    if document.get("status", {}).get("observedGeneration") != document["metadata"]["generation"]:
        return "InProgress"
    for condition in document.get("status", {}).get("conditions", []):
        if condition.get("status") == "True" and condition["type"] == "Reconciling":
            return "InProgress"
        if condition.get("status") == "True" and condition["type"] == "Stalled":
            return "Failed"
    return "Current"


def app_progress(kube: Kube, namespace: str, name: str) -> str:
    app = kube.get("-n", namespace, "composeapp", name)
    ready = conditions(app).get("Ready", {})
    pods = kube.get("-n", namespace, "pods")["items"]
    phases = ", ".join(f"{p['metadata']['name']}={pod_state(p)}" for p in pods)
    message = (ready.get("message") or "").replace("\n", "; ")
    return f"Ready={ready.get('status')} {message[:160]} | pods: {phases or 'none'}"


def pod_state(pod: Mapping[str, Any]) -> str:
    """Phase, or the reason a container waits (PodInitializing, ContainerCreating, ...)."""
    status = pod.get("status", {})
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key, []):
            waiting = container.get("state", {}).get("waiting")
            if waiting:
                return f"{container['name']}:{waiting.get('reason')}"
            if key == "containerStatuses" and not container.get("ready"):
                return f"{container['name']}:starting"
    return str(status.get("phase"))


def diagnosis(kube: Kube, namespace: str) -> str:
    """Everything that says why an app is not ready: objects, events, every container's log."""
    parts = [
        kube.kubectl("-n", namespace, "get", "composeapps", "-o", "yaml", check=False).stdout,
        kube.kubectl("-n", namespace, "get", "all", "-o", "wide", check=False).stdout,
        kube.kubectl("-n", namespace, "get", "events", "--sort-by=.lastTimestamp",
                     check=False).stdout[-6000:],
    ]  # fmt: skip
    for pod in kube.get("-n", namespace, "pods")["items"]:
        name = pod["metadata"]["name"]
        parts.append(f"--- pod {name} status:\n{json.dumps(pod.get('status', {}), indent=1)}")
        spec = pod["spec"]
        for container in (*spec.get("initContainers", []), *spec["containers"]):
            log = kube.kubectl("-n", namespace, "logs", name, "-c", container["name"],
                               "--tail=40", check=False)  # fmt: skip
            parts.append(f"--- {name}/{container['name']} log:\n{log.stdout}{log.stderr}")
    parts.append(operator_diagnosis(kube))
    return "\n".join(parts)


def wait_current(
    kube: Kube, namespace: str, name: str, say: Say, timeout: float = READY_TIMEOUT
) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        app = kube.get("-n", namespace, "composeapp", name)
        return app if current(app) else None

    app = wait_for(
        ready,
        f"ComposeApp {namespace}/{name} to be Ready",
        timeout=timeout,
        interval=3,
        diagnose=lambda: diagnosis(kube, namespace),
        progress=lambda: app_progress(kube, namespace, name),
        say=say,
    )
    say(f"ComposeApp {namespace}/{name} Ready: {json.dumps(app['status'].get('ready'))}")
    return app


def in_app(kube: Kube, namespace: str, code: str, *args: str, deployment: str = "chat") -> Any:
    """Runs Python in the app's container, which prints one JSON document."""
    result = kube.kubectl(
        "-n", namespace, "exec", f"deploy/{deployment}", "-c", deployment, "--",
        "python", "-c", code, *args,
    )  # fmt: skip
    return json.loads(result.stdout)


ASK = """
import json, sys, urllib.request
request = urllib.request.Request(
    "http://127.0.0.1:8080/chat", data=json.dumps({"question": sys.argv[1]}).encode(),
    headers={"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=300) as response:
    print(json.dumps({"status": response.status, **json.load(response)}))
"""


def ask(kube: Kube, namespace: str, question: str) -> dict[str, Any]:
    """The app's own /chat endpoint, called inside its pod."""
    answer: dict[str, Any] = in_app(kube, namespace, ASK, question)
    return answer


def up(kube: Kube, namespace: str, name: str, say: Say) -> None:
    registry = os.environ.get("COMPOSE_E2E_REGISTRY", "10.250.0.1:5000")
    images = build_and_push(registry, say)
    install_operator(kube, images, say)
    ensure_namespace(kube, namespace)
    say(f"applying examples/chat-app/compose.yaml as ComposeApp {namespace}/{name}")
    apply(kube, compose_app(name, namespace, example(), images.app))
    wait_current(kube, namespace, name, say)


def main(argv: list[str]) -> int:
    kube = Kube(
        kubectl_path=Path(shutil.which("kubectl") or "kubectl"),
        helm_path=Path(shutil.which("helm") or "helm"),
        kubeconfig=Path(os.environ["KUBECONFIG"]),
    )
    say = say_to()
    if argv[:1] == ["up"] and len(argv) == 3:
        up(kube, argv[1], argv[2], say)
        return 0
    if argv[:1] == ["ask"] and len(argv) == 3:
        reply = ask(kube, argv[1], argv[2])
        print(f"Q: {reply['question']}\nA: {reply['answer'].strip()}")
        print(
            f"   ({reply['model']}, {reply['usage']['total_tokens']} tokens; context from "
            f"{reply['embedding']['model']} ({reply['embedding']['dimensions']} dimensions): "
            f'"{reply["context"]["note"]}")'
        )
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
