"""The operator's RBAC: least privilege, no wildcards, exactly the verbs its code sends.

The rules live in the chart (templates/_helpers.tpl) and in manifests/rbac.yaml. This
test pins them to one table, ``EXPECTED``, each entry justified by the code that needs it:

- kopf (1.45) lists and watches PayScopeDeployments and patches their metadata
  (annotations, finalizer); it never GETs one object (_cogs/clients/fetching.py, watching.py,
  patching.py). It posts Events to core/v1 only (_core/engines/posting.py waits for
  ``Selector('v1', 'events')``; events.k8s.io is only excluded from EVERYTHING). With
  peering, it lists/watches the peering objects and patches its own entry
  (_core/engines/peering.py). Discovery (/api, /apis) is a non-resource URL.
- kube.gateway: read_namespaced_secret, read_namespaced_deployment,
  list_namespaced_pod_disruption_budget and list_namespaced_network_policy (the audit
  matches their selectors to the workloads' pods: list, never get or watch),
  list_namespaced_pod (a Deployment's pods by its selector), read_namespaced_pod_log
  (their recent lines),
  get_namespaced_custom_object_status (the re-read after a 409, and the whole object the watch check
  catches up with: the status subresource answers with all of it),
  patch_namespaced_custom_object_status, create_namespaced_event, and one raw ``call_api``: the list
  of PayScopeDeployments as metadata only (the same list verb). A new Kubernetes call in
  the gateway fails ``test_gateway_calls_are_all_granted`` until it is mapped and granted.

The chart is rendered with helm when it is installed (the test environment's cache);
without helm only the static manifests are checked.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.testenv import cache, kube_build

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/payscope-operator"
GATEWAY = ROOT / "operator/payscope_operator/kube/gateway.py"

Rule = tuple[str, str, frozenset[str]]  # (apiGroup, resource, resourceNames)

EXPECTED: dict[Rule, set[str]] = {
    ("payscope.io", "payscopedeployments", frozenset()): {"list", "watch", "patch"},
    ("payscope.io", "payscopedeployments/status", frozenset()): {"get", "patch"},
    ("", "secrets", frozenset()): {"get"},
    ("apps", "deployments", frozenset()): {"get"},
    ("policy", "poddisruptionbudgets", frozenset()): {"list"},
    ("networking.k8s.io", "networkpolicies", frozenset()): {"list"},
    ("", "pods", frozenset()): {"list"},
    ("", "pods/log", frozenset()): {"get"},
    ("", "events", frozenset()): {"create"},
}
PEERING_NAME = "payscope-operator"


def peering_rules(resource: str) -> dict[Rule, set[str]]:
    return {
        ("kopf.dev", resource, frozenset()): {"list", "watch"},
        ("kopf.dev", resource, frozenset({PEERING_NAME})): {"patch"},
    }


# kubernetes client methods the gateway may call → the (group, resource, verb) they need.
CLIENT_CALLS: dict[str, tuple[str, str, str]] = {
    "read_namespaced_secret": ("", "secrets", "get"),
    "read_namespaced_deployment": ("apps", "deployments", "get"),
    "list_namespaced_pod_disruption_budget": ("policy", "poddisruptionbudgets", "list"),
    "list_namespaced_network_policy": ("networking.k8s.io", "networkpolicies", "list"),
    "list_namespaced_pod": ("", "pods", "list"),
    "read_namespaced_pod_log": ("", "pods/log", "get"),
    "get_namespaced_custom_object_status": ("payscope.io", "payscopedeployments/status", "get"),
    "patch_namespaced_custom_object_status": ("payscope.io", "payscopedeployments/status", "patch"),
    "create_namespaced_event": ("", "events", "create"),
    "list_cluster_custom_object": ("payscope.io", "payscopedeployments", "list"),
    "list_namespaced_custom_object": ("payscope.io", "payscopedeployments", "list"),
}


def _helm() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    cached = cache.artifact_dir("helm", kube_build.HELM_VERSION) / "bin/helm"
    return str(cached) if cached.exists() else None


def render(*args: str) -> list[dict[str, Any]]:
    helm = _helm()
    if helm is None:
        pytest.skip("helm is not installed (python -m tests.testenv up builds it)")
    out = subprocess.run(
        [helm, "template", "payscope-operator", str(CHART), "--namespace", "payscope-system", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def rules_of(role: dict[str, Any]) -> dict[Rule, set[str]]:
    """The role's rules as {(group, resource, resourceNames): verbs}, merged across rules."""
    table: dict[Rule, set[str]] = {}
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule, rule
        names = frozenset(rule.get("resourceNames") or ())
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource, names), set()).update(rule["verbs"])
    return table


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def assert_no_wildcards(role: dict[str, Any]) -> None:
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            for value in rule.get(key) or []:
                assert "*" not in value, f"wildcard in {role['kind']} {role['metadata']['name']}: {key}={value}"


AGGREGATE_LABELS = tuple(f"rbac.authorization.k8s.io/aggregate-to-{role}" for role in ("admin", "edit", "view"))


def _aggregated(doc: dict[str, Any]) -> bool:
    return any(label in (doc["metadata"].get("labels") or {}) for label in AGGREGATE_LABELS)


def _of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The operator's own objects of ``kind`` (the user roles aggregated into edit/view are checked apart)."""
    return [doc for doc in docs if doc["kind"] == kind and not _aggregated(doc)]


def test_static_manifests_cluster_role_is_exactly_the_expected_rules() -> None:
    docs = [doc for doc in yaml.safe_load_all((ROOT / "manifests/rbac.yaml").read_text(encoding="utf-8")) if doc]
    (role,) = _of_kind(docs, "ClusterRole")
    assert_no_wildcards(role)
    assert rules_of(role) == EXPECTED
    (binding,) = _of_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (account,) = _of_kind(docs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "payscope-system"}
    ]


def test_chart_default_cluster_role_is_exactly_the_expected_rules() -> None:
    docs = render()
    (role,) = _of_kind(docs, "ClusterRole")
    assert_no_wildcards(role)
    assert rules_of(role) == EXPECTED
    assert not _of_kind(docs, "Role")


def test_chart_and_static_manifests_grant_the_same() -> None:
    (chart_role,) = _of_kind(render(), "ClusterRole")
    static = [doc for doc in yaml.safe_load_all((ROOT / "manifests/rbac.yaml").read_text(encoding="utf-8")) if doc]
    (static_role,) = _of_kind(static, "ClusterRole")
    assert chart_role["rules"] == static_role["rules"]


def test_peering_adds_only_the_cluster_peering_rules() -> None:
    (role,) = _of_kind(render("--set", "peering.enabled=true", "--set", "replicas=2"), "ClusterRole")
    assert_no_wildcards(role)
    assert rules_of(role) == EXPECTED | peering_rules("clusterkopfpeerings")


@pytest.mark.parametrize("peering", [False, True], ids=["standalone", "peering"])
def test_namespaced_mode_grants_nothing_cluster_wide(peering: bool) -> None:
    docs = render("--set", "watchNamespaces={bank-a,bank-b}", "--set", f"peering.enabled={str(peering).lower()}")
    assert not _of_kind(docs, "ClusterRole")
    assert not _of_kind(docs, "ClusterRoleBinding")
    roles = _of_kind(docs, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["bank-a", "bank-b"]
    expected = EXPECTED | (peering_rules("kopfpeerings") if peering else {})
    for role in roles:
        assert_no_wildcards(role)
        assert rules_of(role) == expected
    bindings = _of_kind(docs, "RoleBinding")
    assert sorted((b["metadata"]["namespace"], b["roleRef"]["kind"]) for b in bindings) == [
        ("bank-a", "Role"),
        ("bank-b", "Role"),
    ]
    (deployment,) = _of_kind(docs, "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PAYSCOPE_WATCH_NAMESPACES"] == "bank-a,bank-b"


def test_no_rendered_variant_has_a_wildcard() -> None:
    variants: list[tuple[str, ...]] = [
        (),
        ("--set", "peering.enabled=true", "--set", "replicas=2"),
        ("--set", "watchNamespaces={a}", "--set", "peering.enabled=true"),
    ]
    for args in variants:
        for doc in render(*args):
            if doc["kind"] in ("ClusterRole", "Role"):
                assert not [s for s in _strings(doc["rules"]) if "*" in s], args


def test_gateway_calls_are_all_granted() -> None:
    """Every Kubernetes client method kube.gateway calls is mapped to a verb the role grants."""
    tree = ast.parse(GATEWAY.read_text(encoding="utf-8"))
    clients = {"_core", "_apps", "_custom", "_policy", "_networking"}
    called = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr in clients
    }
    assert called, "the gateway's client calls were not found: update this test"
    unmapped = called - CLIENT_CALLS.keys()
    assert not unmapped, f"map these gateway calls to RBAC verbs and grant them: {sorted(unmapped)}"
    for method in called:
        group, resource, verb = CLIENT_CALLS[method]
        assert verb in EXPECTED[(group, resource, frozenset())], method


# What kopf itself sends (see the module docstring); everything else must be a gateway call.
KOPF_NEEDS: set[tuple[str, str, str]] = {
    ("payscope.io", "payscopedeployments", "list"),
    ("payscope.io", "payscopedeployments", "watch"),
    ("payscope.io", "payscopedeployments", "patch"),
    ("", "events", "create"),
}


def test_every_granted_verb_is_needed_by_a_gateway_call_or_by_kopf() -> None:
    """The other direction: no rule grows without the call that needs it (the audit's lists included)."""
    tree = ast.parse(GATEWAY.read_text(encoding="utf-8"))
    called = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in CLIENT_CALLS}
    needed = {CLIENT_CALLS[method] for method in called} | KOPF_NEEDS
    granted = {(group, resource, verb) for (group, resource, _), verbs in EXPECTED.items() for verb in verbs}
    assert granted == needed


@pytest.mark.parametrize("args", [(), ("--set", "watchNamespaces={bank-a}")], ids=["cluster-wide", "namespaced"])
def test_users_get_payscope_deployments_through_edit_and_view_and_nothing_else(args: tuple[str, ...]) -> None:
    docs = render(*args)
    roles = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "ClusterRole" and _aggregated(doc)}
    assert set(roles) == {"payscope-operator-edit", "payscope-operator-view"}
    edit, view = roles["payscope-operator-edit"], roles["payscope-operator-view"]
    assert {k: v for k, v in edit["metadata"]["labels"].items() if k in AGGREGATE_LABELS} == {
        "rbac.authorization.k8s.io/aggregate-to-admin": "true",
        "rbac.authorization.k8s.io/aggregate-to-edit": "true",
    }
    assert [k for k in view["metadata"]["labels"] if k in AGGREGATE_LABELS] == [
        "rbac.authorization.k8s.io/aggregate-to-view"
    ]
    for role in (edit, view):
        assert_no_wildcards(role)
        assert {group for rule in role["rules"] for group in rule["apiGroups"]} == {"payscope.io"}  # no Secret, ever
    assert rules_of(view) == {
        ("payscope.io", "payscopedeployments", frozenset()): {"get", "list", "watch"},
        ("payscope.io", "payscopedeployments/status", frozenset()): {"get", "list", "watch"},
    }
    assert "create" in rules_of(edit)[("payscope.io", "payscopedeployments", frozenset())]
    assert not any(doc["kind"] == "ClusterRoleBinding" and doc["roleRef"]["name"] in roles for doc in docs)
    assert not [doc for doc in render(*args, "--set", "rbac.aggregateToDefaultRoles=false") if _aggregated(doc)]


def test_static_manifests_ship_the_same_user_roles() -> None:
    static = [
        doc for doc in yaml.safe_load_all((ROOT / "manifests/aggregate-roles.yaml").read_text(encoding="utf-8")) if doc
    ]
    chart = [doc for doc in render() if doc["kind"] == "ClusterRole" and _aggregated(doc)]
    assert [(d["metadata"]["name"], d["rules"]) for d in static] == [(d["metadata"]["name"], d["rules"]) for d in chart]


def test_the_gateways_raw_calls_are_only_the_metadata_list() -> None:
    """``call_api`` bypasses the generated methods above: its only use is GET of the PayScopeDeployment list
    (the metadata-only list of the watch check), which the ``list`` verb grants."""
    tree = ast.parse(GATEWAY.read_text(encoding="utf-8"))
    raw = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "call_api"
    ]
    assert len(raw) == 1, "a new raw call: map it to an RBAC verb here"
    path, method = raw[0].args[:2]
    assert isinstance(method, ast.Constant)
    assert method.value == "GET"
    assert ast.unparse(path).endswith("{PLURAL}'")  # the collection, never one object or a subresource
    assert "list" in EXPECTED[("payscope.io", "payscopedeployments", frozenset())]
