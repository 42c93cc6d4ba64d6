"""The CRD copies that kustomize and Helm need inside their own directories stay identical to
the CRD the operator generates (crds/composeapp.yaml). Refresh both with

    cp crds/composeapp.yaml manifests/crds/composeapp.yaml
    cp crds/composeapp.yaml charts/compose-operator/crds/composeapp.yaml
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging_support import CHART, MANIFESTS, REPO

SOURCE = REPO / "crds" / "composeapp.yaml"


@pytest.mark.parametrize(
    "copy", [MANIFESTS / "crds" / "composeapp.yaml", CHART / "crds" / "composeapp.yaml"], ids=str
)
def test_crd_copy_matches_the_generated_crd(copy: Path) -> None:
    assert copy.read_bytes() == SOURCE.read_bytes(), (
        f"{copy.relative_to(REPO)} differs from crds/composeapp.yaml; "
        f"run: cp crds/composeapp.yaml {copy.relative_to(REPO)}"
    )
