"""The ComposeApp CRD: the committed YAML is the generated one, and the schema documents itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from compose_operator import crd

REPO = Path(__file__).resolve().parents[1]


def test_committed_crd_is_the_generated_one() -> None:
    committed = (REPO / "crds" / "composeapp.yaml").read_text(encoding="utf-8")
    assert committed == crd.render_crd_yaml(), (
        "crds/composeapp.yaml is stale; run: compose-operator crd > crds/composeapp.yaml"
    )


def test_the_crd_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate.validate(yaml.safe_load(crd.render_crd_yaml()), "1.36", strict=True)


def undocumented(schema: dict[str, Any], path: str) -> list[str]:
    missing = [] if "description" in schema or path == "metadata" else [path]
    for name, child in schema.get("properties", {}).items():
        missing += undocumented(child, f"{path}.{name}" if path else name)
    if "items" in schema and schema["items"].get("type") == "object":
        missing += undocumented(schema["items"], f"{path}[]")
    return missing


def version() -> dict[str, Any]:
    versions: list[dict[str, Any]] = crd.build_crd()["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    schema = version()["schema"]["openAPIV3Schema"]
    assert undocumented(schema, "") == []


def test_names_scope_and_subresources() -> None:
    spec = crd.build_crd()["spec"]
    assert spec["group"] == "compose-operator.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "ComposeApp",
        "listKind": "ComposeAppList",
        "plural": "composeapps",
        "singular": "composeapp",
        "shortNames": ["capp"],
    }
    assert version()["name"] == "v1alpha1"
    assert version()["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = [(c["name"], c["jsonPath"]) for c in version()["additionalPrinterColumns"]]
    assert columns == [
        ("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        ("Models", ".status.ready.models"),
        ("Services", ".status.ready.services"),
        ("Shared", ".status.ready.shared"),
        ("Serving", ".status.ready.serving"),
        ("Age", ".metadata.creationTimestamp"),
    ]


def test_status_says_where_each_model_comes_from_and_whom_an_offer_serves() -> None:
    status = version()["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    model = status["models"]["items"]["properties"]
    assert model["servedApps"]["type"] == "integer"
    assert model["servedNamespaces"]["items"] == {"type": "string"}
    assert "shared: <ns>/<app>/<model>" in model["source"]["description"]
    assert set(status["ready"]["properties"]) == {"models", "services", "shared", "serving"}


def test_spec_shape() -> None:
    spec = version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(spec["properties"]) == {
        "compose",
        "composeFrom",
        "environment",
        "files",
        "images",
        "suspend",
    }
    assert spec["properties"]["environment"]["additionalProperties"] == {
        "type": "string",
        "maxLength": 32 * 1024,
    }
    assert spec["properties"]["suspend"]["type"] == "boolean"
    assert spec["properties"]["composeFrom"]["properties"]["configMapKeyRef"]["required"] == [
        "name",
        "key",
    ]
    assert spec["x-kubernetes-validations"] == [
        {
            "rule": "has(self.compose) != has(self.composeFrom)",
            "message": "set exactly one of spec.compose and spec.composeFrom",
        }
    ]


def test_status_fields_match_what_the_shell_writes() -> None:
    from compose_operator.shell.status import OWNED_KEYS

    status = version()["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert set(status["properties"]) == set(OWNED_KEYS)
    modes = status["properties"]["services"]["items"]["properties"]["mode"]["enum"]
    assert modes == ["created", "patched", "refused"]


def test_files_are_a_list_keyed_by_path_with_bounded_sizes() -> None:
    """A list keyed by path (not a map): server-side apply merges entries by path, CEL checks
    each path, and kustomize can reach configMapKeyRef names inside it."""
    files = version()["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["files"]
    assert (files["x-kubernetes-list-type"], files["x-kubernetes-list-map-keys"]) == (
        "map",
        ["path"],
    )
    assert files["maxItems"] == 512
    entry = files["items"]
    assert entry["required"] == ["path"]
    assert entry["properties"]["path"]["maxLength"] == 512
    assert entry["properties"]["content"]["maxLength"] == 1 << 20
    assert entry["properties"]["mode"]["maximum"] == 0o777
    rules = [v["rule"] for v in entry["x-kubernetes-validations"]]
    assert rules[0] == "has(self.content) != has(self.configMapKeyRef)"
    assert "!self.path.contains('/../')" in rules[1]
