"""KubeApi over a kubernetes ApiClient whose one network call is recorded instead of sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes.client import rest

from compose_operator.shell import kube
from compose_operator.shell.kube import ApiError, KubeApi, Refused


class RecordingClient(k8s.ApiClient):
    """Answers every request with one status and body, and records what was sent."""

    def __init__(self, status: int = 200, answer: Any = None) -> None:
        super().__init__(k8s.Configuration(host="https://api.invalid"))
        self.status = status
        self.answer = b"" if answer is None else json.dumps(answer).encode()
        self.sent: list[tuple[str, str, Any]] = []

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> rest.RESTResponse:
        self.sent.append((method, url.removeprefix("https://api.invalid"), body))
        return rest.RESTResponse(urllib3.HTTPResponse(body=self.answer, status=self.status))


def test_requests_go_to_the_resource_path_and_each_is_counted() -> None:
    counted: list[tuple[str, str]] = []
    sent = RecordingClient(answer={"items": [{"metadata": {"name": "chat-llm"}}]})
    api = KubeApi(sent, on_request=lambda verb, plural: counted.append((verb, plural)))
    listed = api.list(kube.DEPLOYMENTS, "team-a", "compose-operator.io/app=chat")
    assert listed == [{"metadata": {"name": "chat-llm"}}]
    api.patch(kube.COMPOSE_APPS, "team-a", "chat", {"status": {}}, subresource="status")
    assert [(method, url) for method, url, _ in sent.sent] == [
        (
            "GET",
            "/apis/apps/v1/namespaces/team-a/deployments"
            "?labelSelector=compose-operator.io%2Fapp%3Dchat",
        ),
        ("PATCH", "/apis/compose-operator.io/v1alpha1/namespaces/team-a/composeapps/chat/status"),
    ]
    assert counted == [("list", "deployments"), ("patch", "composeapps")]


def test_a_missing_object_is_none_and_other_errors_carry_the_servers_reason() -> None:
    missing = KubeApi(RecordingClient(404, {"reason": "NotFound", "message": "not found"}))
    assert missing.get(kube.DEPLOYMENTS, "team-a", "gone") is None
    forbidden = KubeApi(RecordingClient(403, {"reason": "Forbidden", "message": "no"}))
    with pytest.raises(ApiError) as raised:
        forbidden.get(kube.SECRETS, "team-a", "token")
    assert (raised.value.status, raised.value.reason) == (403, "Forbidden")


def test_the_gate_refuses_every_request_of_a_replica_that_does_not_lead() -> None:
    """Refused before it leaves, and not counted as a request; the ungated API it came from,
    which the leader election and the webhook use, still talks."""
    leading = [False]
    counted: list[str] = []
    sent = RecordingClient(404)
    api = KubeApi(sent, on_request=lambda verb, plural: counted.append(verb))
    gated = api.gated(lambda: leading[0])
    with pytest.raises(Refused):
        gated.patch(kube.COMPOSE_APPS, "ns", "app", {})
    with pytest.raises(Refused):
        gated.get(kube.DEPLOYMENTS, "ns", "x")
    assert sent.sent == [] and counted == []
    assert api.get(kube.LEASES, "ns", "compose-operator") is None
    leading[0] = True
    assert gated.get(kube.DEPLOYMENTS, "ns", "x") is None
    assert counted == ["get", "get"]
