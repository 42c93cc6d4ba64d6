"""The example chat app for real (issue 6): the operator as a pod under its Helm chart, llama.cpp
and vLLM on the real node with real small models pulled by the init containers, and the app's
pod asking them questions through the variables it received.

The tests run in file order against one ComposeApp; each says what it proves. Progress (image
builds, pushes, waits) goes to the terminal even under pytest's capture.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e import realchat
from e2e.cluster_support import Cluster
from e2e.realchat import Images, Kube, Say
from e2e.realnode_support import RealNode

pytestmark = pytest.mark.realnode

APP = "chat"
NAMESPACE = "real-chat"
BROKEN_NAMESPACE = "real-chat-broken"
MODEL_LABELS = {
    "node.kubernetes.io/instance-type": "gpu-small",
    "topology.kubernetes.io/region": "us-west-2",
}
PULLED = re.compile(
    r"pulled (?P<reference>\S+) \((?P<digest>sha256:[0-9a-f]{64})\) into /models: "
    r"(?P<files>\d+) files, [^;]+; downloaded [^(]+\((?P<bytes>\d+) bytes\)"
)
GGUF_BYTES = 253_113_024
GATEWAY = f"http://{APP}-models.{NAMESPACE}.svc.cluster.local/v1/"
"""Every *_URL of the app: its model gateway, as Docker Model Runner's one endpoint."""


@pytest.fixture(scope="module")
def say(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Progress on the terminal, past pytest's capture."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    inner = realchat.say_to()

    def say(message: str) -> None:
        with capture.global_and_fixture_disabled():
            inner(message)

    return say


@pytest.fixture(scope="module")
def kube(cluster: Cluster) -> Kube:
    return Kube(cluster.kubectl_path, cluster.helm_path, cluster.kubeconfig)


@pytest.fixture(scope="module")
def images(realnode: RealNode, pytestconfig: pytest.Config) -> Images:
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        return realchat.build_and_push(realnode.registry, realchat.say_to())


@pytest.fixture(scope="module")
def operator(kube: Kube, images: Images, say: Say) -> Iterator[None]:
    realchat.install_operator(kube, images, say)
    yield
    for namespace in (NAMESPACE, BROKEN_NAMESPACE):
        kube.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=true",
                     "--timeout=120s", check=False)  # fmt: skip
    kube.helm("uninstall", realchat.RELEASE, "--namespace", realchat.OPERATOR_NAMESPACE, "--wait")
    # Waited for: a module installing the operator next must not meet a terminating namespace.
    kube.kubectl("delete", "namespace", realchat.OPERATOR_NAMESPACE, "--wait=true",
                 "--timeout=120s", check=False)  # fmt: skip


@pytest.fixture(scope="module")
def app(kube: Kube, operator: None, images: Images, say: Say) -> dict[str, Any]:
    """The example applied as it is; its status once Ready (kstatus Current)."""
    realchat.ensure_namespace(kube, NAMESPACE)
    say(f"applying examples/chat-app/compose.yaml as {NAMESPACE}/{APP}")
    realchat.apply(kube, realchat.compose_app(APP, NAMESPACE, realchat.example(), images.app))
    return realchat.wait_current(kube, NAMESPACE, APP, say)


def live_pods(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    pods = kube.get("-n", namespace, "pods", "-l", selector)["items"]
    return [pod for pod in pods if "deletionTimestamp" not in pod["metadata"]]


def model_selector(model: str) -> str:
    return f"compose-operator.io/app={APP},compose-operator.io/model={model}"


def model_pod(kube: Kube, model: str) -> dict[str, Any]:
    pods = live_pods(
        kube, NAMESPACE, f"compose-operator.io/app={APP},compose-operator.io/model={model}"
    )
    assert len(pods) == 1, f"expected one {model} pod, got {[p['metadata']['name'] for p in pods]}"
    return pods[0]


def in_app(kube: Kube, code: str, *args: str) -> Any:
    return realchat.in_app(kube, NAMESPACE, code, *args)


def registry_digest(registry: str, repository: str, tag: str) -> str:
    """The manifest digest the registry itself reports for a tag."""
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers["Docker-Content-Digest"])


def test_model_pods_run_on_the_real_node_because_of_the_cloud_labels(
    kube: Kube, app: dict[str, Any], realnode: RealNode
) -> None:
    node = kube.get("node", realnode.node_name)
    assert MODEL_LABELS.items() <= node["metadata"]["labels"].items()
    for model in ("llm", "embedding-model"):
        pod = model_pod(kube, model)
        assert pod["spec"]["nodeSelector"] == MODEL_LABELS
        assert pod["spec"]["nodeName"] == realnode.node_name
        (engine,) = pod["spec"]["containers"]
        assert engine["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    (chat,) = live_pods(kube, NAMESPACE, f"compose-operator.io/service={APP}")
    assert chat["spec"]["nodeName"] == realnode.node_name


@pytest.mark.parametrize(
    ("model", "repository", "files", "minimum"),
    [("llm", "ai/gemma3", 1, GGUF_BYTES), ("embedding-model", "ai/all-minilm", 12, 80_000_000)],
)
def test_the_init_container_pulled_the_artifact_digest_verified(
    kube: Kube, app: dict[str, Any], realnode: RealNode,
    model: str, repository: str, files: int, minimum: int,
) -> None:  # fmt: skip
    pod = model_pod(kube, model)
    (init,) = pod["status"]["initContainerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 0
    log = kube.kubectl("-n", NAMESPACE, "logs", pod["metadata"]["name"], "-c", "pull-model").stdout
    pulled = PULLED.search(log)
    assert pulled, f"no summary line in the puller's log:\n{log}"
    assert pulled["reference"] == f"{realchat.REGISTRY_SERVICE}/{repository}:latest"
    assert pulled["digest"] == registry_digest(realnode.registry, repository, "latest")
    assert int(pulled["files"]) == files
    assert int(pulled["bytes"]) >= minimum


def direct(kube: Kube, model: str) -> str:
    """The model's own Service (status.models[].endpoint): engine-specific paths (/health,
    /metrics, llama.cpp's /v1/models details) are the engine's, not the gateway's."""
    app = kube.get("-n", NAMESPACE, "composeapp", APP)
    (endpoint,) = [m["endpoint"] for m in app["status"]["models"] if m["name"] == model]
    assert endpoint == f"http://{APP}-{model}.{NAMESPACE}.svc.cluster.local/v1/"
    return str(endpoint)


def test_readiness_comes_from_the_engines_health(kube: Kube, app: dict[str, Any]) -> None:
    for model in ("llm", "embedding-model"):
        pod = model_pod(kube, model)
        (engine,) = pod["spec"]["containers"]
        assert engine["readinessProbe"]["httpGet"]["path"] == "/health"
        assert engine["startupProbe"]["httpGet"]["path"] == "/health"
        assert realchat.conditions(pod)["Ready"]["status"] == "True"
        health = in_app(kube, HEALTH, direct(kube, model))
        assert health == {"status": 200}


# A script argument is a URL or model name as it is, or the name of a variable holding one.
VALUE = "value = lambda a: a if '/' in a else os.environ[a]\n"
HEALTH = (
    VALUE
    + """
import json, os, sys, urllib.request
base = value(sys.argv[1]).removesuffix("v1/")
with urllib.request.urlopen(base + "health", timeout=10) as response:
    print(json.dumps({"status": response.status}))
"""
)


def test_every_pod_runs_under_pod_security_restricted(kube: Kube, app: dict[str, Any]) -> None:
    """The namespace enforces "restricted", so the API server admitted every pod; the real
    engines (llama.cpp, vLLM writing its caches), the puller and the gateway run non-root."""
    labels = kube.get("namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = live_pods(kube, NAMESPACE, f"compose-operator.io/app={APP}")
    assert {p["metadata"]["labels"].get("compose-operator.io/model") for p in pods} >= {
        "llm",
        "embedding-model",
    }
    for pod in pods:
        name = pod["metadata"]["name"]
        context = pod["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
            own = container["securityContext"]
            assert own["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert own["capabilities"] == {"drop": ["ALL"]}, (name, container["name"])
        assert realchat.conditions(pod)["Ready"]["status"] == "True", name
        if "compose-operator.io/model" in pod["metadata"]["labels"]:
            assert (context["runAsUser"], context["fsGroup"]) == (65532, 65532), name


def test_the_composeapp_is_current_with_ready_replicas_from_the_real_pods(
    kube: Kube, app: dict[str, Any]
) -> None:
    assert realchat.current(app)
    found = realchat.conditions(app)
    assert (found["Ready"]["status"], found["Reconciling"]["status"]) == ("True", "False")
    assert found.get("Stalled", {}).get("status", "False") == "False"
    for entry in app["status"]["models"]:
        deployment = kube.get("-n", NAMESPACE, "deployment", f"{APP}-{entry['name']}")
        assert entry["readyReplicas"] == deployment["status"]["readyReplicas"] == 1
        assert entry["replicas"] == 1
    services = {s["name"]: s["mode"] for s in app["status"]["services"]}
    assert services == {"chat": "created"}


CHAT = """
import json, os, urllib.request
body = {"model": os.environ["LLM_MODEL"], "max_tokens": 24,
        "messages": [{"role": "user", "content": "Name one primary colour."}]}
request = urllib.request.Request(os.environ["LLM_URL"] + "chat/completions",
    data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=300) as response:
    print(json.dumps({"status": response.status, **json.load(response)}))
"""


def test_a_chat_completion_through_llm_url_and_llm_model(kube: Kube, app: dict[str, Any]) -> None:
    assert in_app(kube, ENV)["LLM_URL"] == GATEWAY
    reply = in_app(kube, CHAT)
    assert reply["status"] == 200
    assert reply["model"] == "ai/gemma3"
    assert reply["usage"]["prompt_tokens"] > 0
    assert reply["usage"]["completion_tokens"] > 0
    assert reply["choices"][0]["message"]["content"].strip()


EMBED = (
    VALUE
    + """
import json, os, sys, urllib.request
body = {"model": value(sys.argv[2]), "input": sys.argv[3:]}
request = urllib.request.Request(value(sys.argv[1]) + "embeddings",
    data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=120) as response:
        print(json.dumps({"status": response.status, **json.load(response)}))
except urllib.error.HTTPError as error:
    print(json.dumps({"status": error.code, "error": error.read().decode()}))
"""
)
SENTENCES = (
    "The cat is sleeping on the sofa.",
    "A cat naps on the couch.",
    "Quarterly tax filings are due next week.",
)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_embeddings_through_the_embedding_models_variables(kube: Kube, app: dict[str, Any]) -> None:
    reply = in_app(kube, EMBED, "EMBEDDING_MODEL_URL", "EMBEDDING_MODEL_MODEL", *SENTENCES)
    assert reply["status"] == 200
    assert reply["model"] == "ai/all-minilm"
    vectors = [entry["embedding"] for entry in reply["data"]]
    assert [len(vector) for vector in vectors] == [384, 384, 384]
    paraphrase, unrelated = cosine(vectors[0], vectors[1]), cosine(vectors[0], vectors[2])
    assert paraphrase > unrelated + 0.2, (paraphrase, unrelated)


def test_the_apps_own_chat_endpoint(kube: Kube, app: dict[str, Any]) -> None:
    reply = realchat.ask(kube, NAMESPACE, "Which engine serves embedding models?")
    assert reply["status"] == 200
    assert reply["model"] == "ai/gemma3"
    assert reply["answer"].strip()
    assert reply["usage"]["completion_tokens"] > 0
    assert reply["embedding"]["dimensions"] == 384
    assert "vLLM" in reply["context"]["note"]


MODELS = (
    VALUE
    + """
import json, os, sys, urllib.request
with urllib.request.urlopen(value(sys.argv[1]) + "models", timeout=10) as response:
    print(json.dumps(json.load(response)))
"""
)


def llama_context(kube: Kube) -> int:
    (entry,) = in_app(kube, MODELS, direct(kube, "llm"))["data"]
    assert entry["id"] == "ai/gemma3"
    return int(entry["meta"]["n_ctx"])


def test_context_size_and_runtime_flags_reached_the_engines(
    kube: Kube, app: dict[str, Any]
) -> None:
    assert llama_context(kube) == 2048
    (served,) = in_app(kube, MODELS, direct(kube, "embedding-model"))["data"]
    assert (served["id"], served["max_model_len"]) == ("ai/all-minilm", 256)
    pod = model_pod(kube, "embedding-model")
    log = kube.kubectl("-n", NAMESPACE, "logs", pod["metadata"]["name"], "-c", "vllm").stdout
    arguments = re.search(r"non-default args: (\{.*\})", log)
    assert arguments, f"vLLM did not log its arguments:\n{log[-3000:]}"
    assert "'runner': 'pooling'" in arguments[1]
    assert "'enforce_eager': True" in arguments[1]
    assert "'gpu_memory_utilization': 0.2" in arguments[1]


def test_vllm_refuses_a_request_naming_another_model(kube: Kube, app: dict[str, Any]) -> None:
    """Straight at the engine; the gateway in front routes by the name instead (below)."""
    reply = in_app(kube, EMBED, direct(kube, "embedding-model"), "LLM_MODEL", "hello")
    assert reply["status"] == 404, reply
    assert "ai/gemma3" in reply["error"]


METRICS = (
    VALUE
    + """
import json, os, sys, urllib.request
base = value(sys.argv[1]).removesuffix("v1/")
with urllib.request.urlopen(base + "metrics", timeout=10) as response:
    print(json.dumps({"status": response.status, "text": response.read().decode()}))
"""
)


@pytest.mark.parametrize(
    ("model", "prefix", "family"),
    [
        ("llm", "llamacpp:", "llamacpp:prompt_tokens"),
        ("embedding-model", "vllm:", "vllm:prompt_tokens"),
    ],
)
def test_each_engines_metrics_parse(
    kube: Kube, app: dict[str, Any], model: str, prefix: str, family: str
) -> None:
    reply = in_app(kube, METRICS, direct(kube, model))
    assert reply["status"] == 200
    families = {f.name: f for f in text_string_to_metric_families(reply["text"])}
    ours = sorted(name for name in families if name.startswith(prefix))
    assert family in ours, ours
    assert families[family].samples[0].value > 0  # the requests above were counted


def ctr(realnode: RealNode, *args: str) -> str:
    address = os.environ.get("COMPOSE_E2E_CONTAINERD_ADDRESS") or realnode_address()
    return subprocess.run(
        ["ctr", "--address", address, "-n", "k8s.io", *args],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip


def realnode_address() -> str:
    exports = subprocess.run(
        [str(realchat.REPO / "e2e" / "realnode" / "node.sh"), "env"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (address,) = re.findall(r"^export COMPOSE_E2E_CONTAINERD_ADDRESS=(\S+)$", exports, re.M)
    return str(address)


def test_a_restarted_pod_with_its_volume_intact_downloads_nothing(
    kube: Kube, app: dict[str, Any], realnode: RealNode, say: Say
) -> None:
    """The pod's sandbox is killed: the kubelet starts a new one for the same pod (same
    emptyDir), so the init container runs again, and finds every file already there."""
    pod = model_pod(kube, "llm")
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    sandboxes = ctr(
        realnode, "containers", "list", "-q",
        f'labels."io.kubernetes.pod.uid"=={uid},labels."io.cri-containerd.kind"==sandbox',
    ).split()  # fmt: skip
    assert len(sandboxes) == 1, sandboxes
    say(f"killing the sandbox of {name}")
    ctr(realnode, "tasks", "kill", "--signal", "SIGKILL", sandboxes[0])

    def pulled_again() -> dict[str, Any] | None:
        current = kube.get("-n", NAMESPACE, "pod", name)
        (init,) = current["status"].get("initContainerStatuses", [{}])
        ready = realchat.conditions(current).get("Ready", {}).get("status") == "True"
        return current if init.get("restartCount", 0) >= 1 and ready else None

    restarted = realchat.wait_for(
        pulled_again, f"{name} to run its init container again and be Ready", timeout=300,
        diagnose=lambda: realchat.diagnosis(kube, NAMESPACE),
    )  # fmt: skip
    assert restarted["metadata"]["uid"] == uid
    log = kube.kubectl("-n", NAMESPACE, "logs", name, "-c", "pull-model").stdout
    pulled = PULLED.search(log)
    assert pulled, log
    assert "already present" in log
    assert int(pulled["bytes"]) == 0
    assert llama_context(kube) == 2048


def patch_compose(kube: Kube, compose: str) -> None:
    kube.kubectl(
        "-n", NAMESPACE, "patch", "composeapp", APP, "--type=merge",
        "-p", json.dumps({"spec": {"compose": compose}}),
    )  # fmt: skip


ENV = "import json, os; print(json.dumps(dict(os.environ)))"


ONE_URL = """
import json, os, openai
client = openai.OpenAI(base_url=os.environ["ENGINE_URL"], api_key="unused", max_retries=0)
chat, embedding = os.environ["CHAT_MODEL"], os.environ["EMBEDDING_MODEL"]
question = [{"role": "user", "content": "Name one primary colour."}]
plain = client.chat.completions.create(model=chat, messages=question, max_tokens=16)
stream = client.chat.completions.create(model=chat, messages=question, max_tokens=16, stream=True)
chunks = [c.choices[0].delta.content or "" for c in stream if c.choices]
vectors = client.embeddings.create(model=embedding, input=["a cat naps", "tax filings"])
listed = sorted(m.id for m in client.models.list())
try:
    client.chat.completions.create(model="ai/llama3.2", messages=question, max_tokens=4)
    unknown = None
except openai.NotFoundError as error:
    unknown = {"status": error.status_code, "message": error.message}
dmr = openai.OpenAI(base_url=os.environ["ENGINE_URL"].replace("/v1/", "/engines/v1/"),
                    api_key="unused", max_retries=0)
engines = dmr.chat.completions.create(model="llm", messages=question, max_tokens=8)
print(json.dumps({
    "url": os.environ["ENGINE_URL"],
    "plain": {"model": plain.model, "text": plain.choices[0].message.content},
    "stream": {"chunks": len(chunks), "text": "".join(chunks)},
    "embedding": {"model": vectors.model, "dimensions": [len(d.embedding) for d in vectors.data]},
    "listed": listed,
    "unknown": unknown,
    "engines": {"model": engines.model, "text": engines.choices[0].message.content},
}))
"""


def test_both_models_behind_one_engine_url_through_the_gateway(
    kube: Kube, app: dict[str, Any], say: Say
) -> None:
    """Issue 11: a llama.cpp chat model and a vLLM embedding model bound to one ENGINE_URL, as
    real Compose projects bind them; the app's pod uses the openai client and only its
    environment. The gateway routes by the model: chat (plain and streamed) reaches
    llama-server, embeddings reach vLLM, /v1/models lists both, an unknown model is a 404
    naming both, and Docker Model Runner's /engines/v1/ path works too."""
    models_before = {m: model_pod(kube, m)["metadata"]["name"] for m in ("llm", "embedding-model")}
    patch_compose(kube, realchat.example("compose.one-url.yaml"))
    realchat.wait_current(kube, NAMESPACE, APP, say, timeout=300)
    realchat.wait_for(
        lambda: True if "ENGINE_URL" in in_app(kube, ENV) else None,
        "the app's pod with ENGINE_URL", timeout=180,
    )  # fmt: skip
    reply = in_app(kube, ONE_URL)
    assert reply["url"] == GATEWAY
    assert reply["plain"]["model"] == "ai/gemma3"
    assert reply["plain"]["text"].strip()
    assert reply["stream"]["chunks"] >= 3, reply["stream"]
    assert reply["stream"]["text"].strip()
    assert reply["embedding"] == {"model": "ai/all-minilm", "dimensions": [384, 384]}
    assert reply["listed"] == ["ai/all-minilm", "ai/gemma3"]
    assert reply["unknown"]["status"] == 404
    assert "ai/gemma3 (llm)" in reply["unknown"]["message"]
    assert "ai/all-minilm (embedding-model)" in reply["unknown"]["message"]
    assert reply["engines"]["model"] == "ai/gemma3"  # the key `llm` was rewritten to its name
    answer = realchat.ask(kube, NAMESPACE, "Which engine serves embedding models?")
    assert (answer["status"], answer["model"], answer["embedding"]["dimensions"]) == (
        200, "ai/gemma3", 384,
    )  # fmt: skip
    status = kube.get("-n", NAMESPACE, "composeapp", APP)["status"]
    assert status["gateway"]["url"] == GATEWAY
    assert status["gateway"]["ready"] is True
    (gateway_pod,) = live_pods(
        kube,
        NAMESPACE,
        f"compose-operator.io/app={APP},compose-operator.io/component=model-gateway",
    )
    log = kube.kubectl("-n", NAMESPACE, "logs", gateway_pod["metadata"]["name"]).stdout
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    routed = {
        (line["model"], line["status"]) for line in lines if line["path"].endswith("embeddings")
    }
    assert ("embedding-model", 200) in routed
    assert "Name one primary colour" not in log  # one line per request, never a body
    models_after = {m: model_pod(kube, m)["metadata"]["name"] for m in ("llm", "embedding-model")}
    assert models_after == models_before, "the models did not change, so they must not roll"


def test_the_long_syntax_variant(kube: Kube, app: dict[str, Any], say: Say) -> None:
    models_before = {m: model_pod(kube, m)["metadata"]["name"] for m in ("llm", "embedding-model")}
    patch_compose(kube, realchat.example("compose.long-syntax.yaml"))
    realchat.wait_current(kube, NAMESPACE, APP, say, timeout=300)
    realchat.wait_for(
        lambda: in_app(kube, ENV) if "CHAT_ENDPOINT" in in_app(kube, ENV) else None,
        "the app's pod with the long syntax's variables", timeout=180,
    )  # fmt: skip
    environment = in_app(kube, ENV)
    assert environment["CHAT_ENDPOINT"] == GATEWAY
    assert environment["CHAT_MODEL_NAME"] == "ai/gemma3"
    assert environment["EMBEDDINGS_ENDPOINT"] == GATEWAY
    assert environment["EMBEDDINGS_MODEL_NAME"] == "ai/all-minilm"
    assert "LLM_URL" not in environment
    reply = realchat.ask(kube, NAMESPACE, "What does a bound service receive?")
    assert (reply["status"], reply["model"], reply["embedding"]["dimensions"]) == (
        200, "ai/gemma3", 384,
    )  # fmt: skip
    assert reply["answer"].strip()
    models_after = {m: model_pod(kube, m)["metadata"]["name"] for m in ("llm", "embedding-model")}
    assert models_after == models_before, "the models did not change, so they must not roll"


def test_changing_context_size_rolls_the_model_deployment(
    kube: Kube, app: dict[str, Any], say: Say
) -> None:
    before = model_pod(kube, "llm")["metadata"]["name"]
    compose = realchat.example("compose.long-syntax.yaml")
    assert compose.count("context_size: 2048") == 1
    patch_compose(kube, compose.replace("context_size: 2048", "context_size: 1024"))
    realchat.wait_for(
        lambda: True if model_pod_named_otherwise(kube, before) else None,
        "a new llm pod", timeout=300, diagnose=lambda: realchat.diagnosis(kube, NAMESPACE),
    )  # fmt: skip
    realchat.wait_current(kube, NAMESPACE, APP, say, timeout=300)
    after = model_pod(kube, "llm")
    assert after["metadata"]["name"] != before
    assert "1024" in after["spec"]["containers"][0]["args"]
    assert llama_context(kube) == 1024


def model_pod_named_otherwise(kube: Kube, name: str) -> bool:
    pods = live_pods(
        kube, NAMESPACE, f"compose-operator.io/app={APP},compose-operator.io/model=llm"
    )
    return any(pod["metadata"]["name"] != name for pod in pods)


OWNED_KINDS = "deployments,replicasets,pods,services,persistentvolumeclaims"


def test_deleting_the_composeapp_removes_everything_it_created(
    kube: Kube, app: dict[str, Any]
) -> None:
    labelled = f"compose-operator.io/app={APP}"
    assert kube.get("-n", NAMESPACE, OWNED_KINDS, "-l", labelled)["items"]
    kube.kubectl("-n", NAMESPACE, "delete", "composeapp", APP, "--wait=true", "--timeout=120s")

    def gone() -> bool | None:
        left = kube.get("-n", NAMESPACE, OWNED_KINDS)["items"]
        return True if not left else None

    realchat.wait_for(
        gone, f"every object of {APP} to go", timeout=180,
        diagnose=lambda: kube.kubectl("-n", NAMESPACE, "get", OWNED_KINDS, "-o", "wide").stdout,
    )  # fmt: skip


BROKEN = """
models:
  missing-tag:
    model: ai/gemma3:no-such-tag
    x-kubernetes: &placement
      gpus: 0
      nodeSelector: {type: real}
      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
  not-a-model:
    model: compose-operator/chat-app:dev
    x-kubernetes: *placement
"""


def test_a_missing_tag_or_a_non_model_artifact_is_quoted_in_the_status(
    kube: Kube, operator: None, images: Images, say: Say
) -> None:
    realchat.ensure_namespace(kube, BROKEN_NAMESPACE)
    realchat.apply(kube, realchat.compose_app("broken", BROKEN_NAMESPACE, BROKEN, images.app))

    def quoted() -> dict[str, str] | None:
        app = kube.get("-n", BROKEN_NAMESPACE, "composeapp", "broken")
        messages = {
            m["name"]: m.get("message", "") for m in app.get("status", {}).get("models", [])
        }
        wanted = ("not found", "not a model artifact")
        if all(
            text in messages.get(name, "")
            for name, text in zip(("missing-tag", "not-a-model"), wanted, strict=True)
        ):
            return messages
        return None

    messages = realchat.wait_for(
        quoted, "the status to quote both pull failures", timeout=300,
        progress=lambda: realchat.app_progress(kube, BROKEN_NAMESPACE, "broken"), say=say,
        diagnose=lambda: realchat.diagnosis(kube, BROKEN_NAMESPACE),
    )  # fmt: skip
    assert "container pull-model" in messages["missing-tag"]
    assert "no-such-tag" in messages["missing-tag"]
    assert "compose-operator/chat-app:dev" in messages["not-a-model"]
    app = kube.get("-n", BROKEN_NAMESPACE, "composeapp", "broken")
    ready = realchat.conditions(app)["Ready"]
    assert ready["status"] == "False"
    assert "not a model artifact" in ready["message"]
    kube.kubectl("-n", BROKEN_NAMESPACE, "delete", "composeapp", "broken", "--wait=true")
