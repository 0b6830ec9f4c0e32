"""Checks that the test control plane is a real kube-apiserver: schema, status, RBAC, tokens; helm answers.

A CRD of its own (``widgets.smoke.payscope.io``) shows structural-schema validation
naming the field and the status subresource; a TokenRequest authenticates a
ServiceAccount that RBAC then denies, until a RoleBinding grants exactly its verbs.
Run by ``python -m tests.testenv check`` (``check``).

What it must not do: touch anything outside the namespaces it creates (and deletes),
besides its own CRD.
"""

from __future__ import annotations

import subprocess

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tests.testenv import check, process

GROUP = "smoke.payscope.io"

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                                "required": ["size"],
                            },
                            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}


def _widgets(ctx: check.Context) -> tuple[k8s.ApiClient, str]:
    """An admin client, a namespace of the check's own, and the Widget CRD established."""
    api = ctx.kube()
    ext = k8s.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(CRD)
    except ApiException as exc:
        if exc.status != 409:
            raise

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(f"widgets.{GROUP}").status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    process.wait_until(established, what="the Widget CRD established", timeout=30)
    return api, ctx.namespace(api)


def readyz_answers_ok(ctx: check.Context) -> None:
    out = subprocess.run(["kubectl", "get", "--raw", "/readyz"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def structural_schema_rejects_an_invalid_resource_naming_the_field(ctx: check.Context) -> None:
    api, namespace = _widgets(ctx)
    custom = k8s.CustomObjectsApi(api)
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "bad"}, "spec": {"size": 0}}
    refused = check.raises(
        ApiException, lambda: custom.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", body)
    )
    assert refused.status == 422, refused.status
    assert "spec.size" in refused.body


def status_subresource_ignores_spec_changes(ctx: check.Context) -> None:
    api, namespace = _widgets(ctx)
    custom = k8s.CustomObjectsApi(api)
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
    custom.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", body)
    patch = {"spec": {"size": 5}, "status": {"phase": "Done"}}
    custom.patch_namespaced_custom_object_status(GROUP, "v1", namespace, "widgets", "w", patch)
    got = custom.get_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w")
    assert got["spec"]["size"] == 1
    assert got["status"]["phase"] == "Done"


def _service_account_token(kube_api: k8s.ApiClient, namespace: str, name: str) -> str:
    core = k8s.CoreV1Api(kube_api)
    core.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=name)))
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    token: str = core.create_namespaced_service_account_token(name, namespace, request).status.token
    return token


def _as_token(kube_api: k8s.ApiClient, token: str) -> k8s.ApiClient:
    config = k8s.Configuration()
    config.host = kube_api.configuration.host
    config.ssl_ca_cert = kube_api.configuration.ssl_ca_cert
    config.api_key = {"authorization": f"Bearer {token}"}
    return k8s.ApiClient(config)


def token_request_authenticates_and_rbac_denies_without_binding(ctx: check.Context) -> None:
    kube_api = ctx.kube()
    namespace = ctx.namespace(kube_api)
    token = _service_account_token(kube_api, namespace, "nobody")
    with _as_token(kube_api, token) as as_sa:
        review = k8s.AuthenticationV1Api(as_sa).create_self_subject_review(k8s.V1SelfSubjectReview())
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:nobody"
        denied = check.raises(ApiException, lambda: k8s.CoreV1Api(as_sa).list_namespaced_secret(namespace))
        assert denied.status == 403, denied.status


def rolebinding_grants_exactly_its_verbs(ctx: check.Context) -> None:
    kube_api = ctx.kube()
    namespace = ctx.namespace(kube_api)
    token = _service_account_token(kube_api, namespace, "reader")
    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(
        namespace,
        k8s.V1Role(
            metadata=k8s.V1ObjectMeta(name="read-cm"),
            rules=[k8s.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        k8s.V1RoleBinding(
            metadata=k8s.V1ObjectMeta(name="read-cm"),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="read-cm"),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)],
        ),
    )
    with _as_token(kube_api, token) as as_sa:
        core = k8s.CoreV1Api(as_sa)
        assert core.list_namespaced_config_map(namespace).items is not None
        config_map = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="x"))
        denied = check.raises(ApiException, lambda: core.create_namespaced_config_map(namespace, config_map))
        assert denied.status == 403, denied.status


def helm_answers(ctx: check.Context) -> None:
    out = subprocess.run(["helm", "version", "--short"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("v3.")


CHECKS = (
    readyz_answers_ok,
    structural_schema_rejects_an_invalid_resource_naming_the_field,
    status_subresource_ignores_spec_changes,
    token_request_authenticates_and_rbac_denies_without_binding,
    rolebinding_grants_exactly_its_verbs,
    helm_answers,
)
