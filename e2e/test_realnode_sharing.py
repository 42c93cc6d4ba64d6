"""A platform team's shared model, for real: an app in a team namespace gets a chat completion
from the model the platform namespace offers, through its own `LLM_URL` (its model gateway,
which routes to the offer's Service across namespaces), with no model Deployment of its own.

The operator is the same Helm-installed pod as in test_realnode_chat.py (its fixtures are
reused); the model is llama.cpp serving the real gemma3 GGUF on the real node. NetworkPolicy
enforcement is not tested: the node's CNI `bridge` plugin does not enforce NetworkPolicies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from e2e import realchat
from e2e.realchat import Images, Kube, Say
from e2e.test_realnode_chat import images, kube, operator, say

pytestmark = pytest.mark.realnode
__all__ = ["images", "kube", "operator", "say"]

PLATFORM = realchat.OFFER_NAMESPACE
TEAM = "real-team"
PLACEMENT = """
    x-cloud-options: [cloud.instance-type=gpu-small, cloud.region=us-west-2]"""
PLATFORM_COMPOSE = f"""
models:
  llm:
    model: ai/gemma3
    context_size: 2048{PLACEMENT}
    x-kubernetes:
      offer: {{namespaces: [{TEAM}]}}
"""
TEAM_COMPOSE = f"""
services:
  client:
    image: ${{CLIENT_IMAGE}}
    entrypoint: [sleep, infinity]
    x-kubernetes:
      tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]
    models: [llm]
models:
  llm:
    model: ai/gemma3
    context_size: 1024{PLACEMENT}
"""
CHAT = """
import json, os, urllib.request
body = {"model": os.environ["LLM_MODEL"], "max_tokens": 8,
        "messages": [{"role": "user", "content": "Say hello."}]}
request = urllib.request.Request(
    os.environ["LLM_URL"] + "chat/completions", data=json.dumps(body).encode(),
    headers={"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=120) as response:
    print(json.dumps({"status": response.status, "url": os.environ["LLM_URL"],
                      "body": json.load(response)}))
"""


def app(name: str, namespace: str, compose: str, client_image: str) -> dict[str, Any]:
    return {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"compose": compose, "environment": {"CLIENT_IMAGE": client_image}},
    }


@pytest.fixture(scope="module")
def shared(kube: Kube, operator: None, images: Images, say: Say) -> Iterator[dict[str, Any]]:
    for namespace in (PLATFORM, TEAM):
        realchat.ensure_namespace(kube, namespace)
    try:
        say(f"offering ai/gemma3 from {PLATFORM} to {TEAM}")
        realchat.apply(kube, app("platform", PLATFORM, PLATFORM_COMPOSE, images.operator))
        realchat.wait_current(kube, PLATFORM, "platform", say)
        realchat.apply(kube, app("team", TEAM, TEAM_COMPOSE, images.operator))
        yield realchat.wait_current(kube, TEAM, "team", say)
    finally:
        for namespace in (TEAM, PLATFORM):
            kube.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=true",
                         "--timeout=120s", check=False)  # fmt: skip


def test_the_team_app_binds_to_the_offer_and_runs_no_model_of_its_own(
    kube: Kube, shared: dict[str, Any]
) -> None:
    (model,) = shared["status"]["models"]
    assert model["source"] == f"shared: {PLATFORM}/platform/llm", json.dumps(model)
    assert model["endpoint"] == f"http://platform-llm.{PLATFORM}.svc.cluster.local/v1/"
    deployments = kube.get("-n", TEAM, "deployments")["items"]
    assert [d["metadata"]["name"] for d in deployments] == ["client", "team-models"]
    routes = json.loads(kube.get("-n", TEAM, "configmap", "team-models")["data"]["routes.json"])
    (route,) = routes["models"]
    assert route["upstream"] == f"http://platform-llm.{PLATFORM}.svc.cluster.local"
    platform = kube.get("-n", PLATFORM, "composeapp", "platform")
    (offered,) = platform["status"]["models"]
    assert offered["servedNamespaces"] == [TEAM], json.dumps(platform["status"])


def test_a_chat_completion_crosses_namespaces_through_the_apps_own_llm_url(
    kube: Kube, shared: dict[str, Any]
) -> None:
    answer = realchat.in_app(kube, TEAM, CHAT, deployment="client")
    assert answer["status"] == 200
    assert answer["url"] == f"http://team-models.{TEAM}.svc.cluster.local/v1/"  # its gateway
    assert answer["body"]["model"] == "ai/gemma3"
    assert answer["body"]["usage"]["completion_tokens"] > 0
