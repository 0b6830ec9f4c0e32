"""The CRD rejects bad input at admission, naming the field (real kube-apiserver)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from payscope_operator.api import crd
from tests.cases import invalid_specs, valid_specs


@pytest.fixture(scope="module")
def installed_crd(kube_api: k8s.ApiClient) -> None:
    from tests.e2e import cluster

    cluster.install_crd(kube_api)


def _body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{crd.GROUP}/{crd.VERSION}", "kind": crd.KIND, "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize(
    ("case_id", "spec", "field"), invalid_specs.INVALID_SPECS, ids=[c[0] for c in invalid_specs.INVALID_SPECS]
)
def test_invalid_resource_is_rejected_naming_the_field(
    kube_api: k8s.ApiClient, installed_crd: None, namespace: str, case_id: str, spec: dict[str, Any], field: str
) -> None:
    custom = k8s.CustomObjectsApi(kube_api)
    strict = {"field_validation": "Strict"} if case_id in invalid_specs.STRICT_FIELD_VALIDATION_ONLY else {}
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            crd.GROUP, crd.VERSION, namespace, crd.PLURAL, _body("bad", spec), **strict
        )
    assert caught.value.status in (400, 422), caught.value.body
    message = json.loads(caught.value.body)["message"]
    assert f"spec.{field}" in message, message


def test_at_least_fifteen_distinct_invalid_cases() -> None:
    assert len({c[0] for c in invalid_specs.INVALID_SPECS}) >= 15


@pytest.mark.parametrize(("case_id", "spec"), valid_specs.VALID_SPECS, ids=[c[0] for c in valid_specs.VALID_SPECS])
def test_valid_resource_is_accepted_with_defaults(
    kube_api: k8s.ApiClient, installed_crd: None, namespace: str, case_id: str, spec: dict[str, Any]
) -> None:
    custom = k8s.CustomObjectsApi(kube_api)
    created = custom.create_namespaced_custom_object(crd.GROUP, crd.VERSION, namespace, crd.PLURAL, _body("ok", spec))
    assert created["status"]["observedGeneration"] == -1
