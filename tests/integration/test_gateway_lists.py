"""The watch check's list carries metadata only; a resource it must catch up with is read whole.

Why it exists: ``Gateway.list_metadata`` asks the real API server for a
PartialObjectMetadataList (an Accept header the generated client cannot send, so
it goes through ``call_api``): the answer must hold each resource's uid, name,
generation and resourceVersion and none of its spec or status, in one namespace
and cluster-wide; ``read_resource`` then gives the whole object, and None once it
is gone.

What it must not do: count on timing, or touch resources outside its namespace.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from payscope_operator.kube import gateway
from tests.e2e import cluster

SPEC = {"managementPolicy": "ObserveOnly", "tenancy": {}}


@pytest.fixture(scope="module")
def crd(kube_api: k8s.ApiClient) -> None:
    cluster.install_crd(kube_api)


async def test_the_list_holds_metadata_only_and_a_read_the_whole(
    testenv: dict[str, str], kube_api: k8s.ApiClient, crd: None, namespace: str
) -> None:
    created = [cluster.create_psd(kube_api, namespace, f"psd-{n}", SPEC) for n in range(3)]
    check = {"id": "B.postgres.rls", "dimension": "DataLayer", "status": "Fail", "severity": "High"}
    big = {"checks": [{**check, "id": f"B.postgres.rls{n}", "message": "x" * 1000} for n in range(20)]}
    k8s.CustomObjectsApi(kube_api).patch_namespaced_custom_object_status(
        gateway.GROUP, gateway.VERSION, namespace, gateway.PLURAL, "psd-0", {"status": big}
    )
    kube = gateway.Gateway(k8s_config.new_client_from_config(config_file=testenv["KUBECONFIG"]))
    try:
        listed = await kube.list_metadata((namespace,))
        everywhere = await kube.list_metadata()
        whole = await kube.read_resource(namespace, "psd-0")
        cluster.delete_psd(kube_api, namespace, "psd-1")
        gone = await kube.read_resource(namespace, "psd-1")
    finally:
        kube.close()
    uids = {c["metadata"]["uid"] for c in created}
    assert {m["uid"] for m in listed} == uids
    assert uids <= {m["uid"] for m in everywhere}
    assert all({"name", "namespace", "generation", "resourceVersion"} <= set(m) for m in listed)
    assert "x" * 100 not in json.dumps(listed)  # neither the status nor the spec came with the list
    assert all("spec" not in m and "status" not in m for m in listed)
    assert whole is not None
    assert whole["spec"]["managementPolicy"] == "ObserveOnly"
    assert [c["message"] for c in whole["status"]["checks"]] == ["x" * 1000] * 20
    assert gone is None
