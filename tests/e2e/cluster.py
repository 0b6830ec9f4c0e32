"""Helpers for tests that run the real operator against the test control plane.

The operator runs as a separate process, authenticated as a ServiceAccount
bound to the RBAC rendered from the Helm chart (never as admin), so the e2e
tests prove the chart's role is enough. Writes are counted from the
kube-apiserver's own audit log, filtered by that ServiceAccount.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from payscope_operator.api import crd
from tests.testenv import kube, process

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "payscope-operator"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def install_crd(api: k8s.ApiClient) -> None:
    """Server-side apply the generated CRD and wait until it is Established."""
    body = yaml.safe_load((REPO / "crds" / "payscope.io_payscopedeployments.yaml").read_text())
    ext = k8s.ApiextensionsV1Api(api)
    name = body["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = ext.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(name, body)
    wait_for(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in (ext.read_custom_resource_definition(name).status.conditions or [])
        ),
        what="CRD established",
        timeout=30,
    )


def wait_for(
    predicate: Callable[[], object],
    *,
    what: str,
    timeout: float,
    interval: float = 0.2,
    show: Callable[[], object] | None = None,
) -> Any:
    """Poll until ``predicate`` returns something truthy; return it (``show`` says what was seen last)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    seen = show() if show is not None else last
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {seen!r}")


def render_chart(namespace: str, *values: str) -> list[dict[str, Any]]:
    """``helm template`` the chart into ``namespace`` and return its documents."""
    argv = ["helm", "template", "payscope", str(CHART), "--namespace", namespace]
    for value in values:
        argv += ["--set", value]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def apply_documents(docs: list[dict[str, Any]]) -> None:
    payload = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    subprocess.run(
        ["kubectl", "apply", "--server-side", "--force-conflicts", "-f", "-"],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
    )


def install_rbac(namespace: str, *values: str) -> dict[str, Any]:
    """Apply the chart's ServiceAccount and RBAC; return the ServiceAccount document."""
    docs = [d for d in render_chart(namespace, *values) if d.get("kind") in RBAC_KINDS]
    apply_documents(docs)
    accounts = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert len(accounts) == 1, "the chart renders exactly one ServiceAccount"
    return accounts[0]


def service_account_kubeconfig(api: k8s.ApiClient, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig authenticating as the ServiceAccount through a TokenRequest."""
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    token = k8s.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request).status.token
    kube.write_kubeconfig(
        path,
        server=os.environ["PAYSCOPE_KUBE_SERVER"],
        ca_file=Path(os.environ["PAYSCOPE_KUBE_CA_FILE"]),
        token=token,
        user=f"{namespace}-{name}",
    )
    return path


@dataclass
class OperatorProcess:
    """The operator, started exactly as the container's entrypoint starts it."""

    pid: int
    metrics_url: str
    log: Path

    def metrics(self) -> str:
        return httpx.get(f"{self.metrics_url}/metrics", timeout=5).text

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.metrics_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        process.stop(self.pid)


def start_operator(
    kubeconfig: Path,
    log: Path,
    *,
    namespaces: tuple[str, ...] = (),
    extra_env: Mapping[str, str] | None = None,
    command: tuple[str, ...] | None = None,
    extra_args: tuple[str, ...] = (),
) -> OperatorProcess:
    port = process.free_port()
    argv = list(command or (str(Path(sys.executable).parent / "payscope-operator"), "run"))
    argv += ["--kubeconfig", str(kubeconfig), "--metrics-host", "127.0.0.1", "--metrics-port", str(port)]
    argv += extra_args
    if namespaces:
        argv += ["--namespaces", ",".join(namespaces)]
    # Check the watch against the API server every 2 s (60 s in production) so tests exercise it.
    env = {"KUBECONFIG": str(kubeconfig), "PAYSCOPE_WATCH_CHECK_INTERVAL": "2", **(extra_env or {})}
    pid = process.spawn(argv, log=log, env=env)
    running = OperatorProcess(pid=pid, metrics_url=f"http://127.0.0.1:{port}", log=log)
    process.wait_until(running.healthy, what="operator /healthz", timeout=30, pid=pid, log=log)
    return running


@dataclass(frozen=True)
class AuditEvent:
    verb: str
    user: str
    resource: str
    subresource: str
    namespace: str
    name: str
    stage: str
    code: int = 0  # the HTTP status the API server answered


def audit_events(user: str) -> Iterator[AuditEvent]:
    """Every completed request ``user`` made, from the kube-apiserver's audit log."""
    path = Path(os.environ["PAYSCOPE_KUBE_AUDIT_LOG"])
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("user", {}).get("username") != user or entry.get("stage") != "ResponseComplete":
            continue
        ref = entry.get("objectRef", {})
        yield AuditEvent(
            verb=entry.get("verb", ""),
            user=user,
            resource=ref.get("resource", ""),
            subresource=ref.get("subresource", ""),
            namespace=ref.get("namespace", ""),
            name=ref.get("name", ""),
            stage=entry["stage"],
            code=int(entry.get("responseStatus", {}).get("code") or 0),
        )


def writes(user: str, namespace: str) -> list[AuditEvent]:
    """Requests that change something in ``namespace``, made by ``user``."""
    return [e for e in audit_events(user) if e.namespace == namespace and e.verb not in ("get", "list", "watch")]


def psd(api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name
    )
    return found


def conditions(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}


def wait_condition(
    api: k8s.ApiClient, namespace: str, name: str, ctype: str, status: str = "True", *, timeout: float
) -> dict[str, dict[str, Any]]:
    """Poll PayScopeDeployment ``name`` until its condition ``ctype`` has ``status``; return every condition."""

    def reached() -> dict[str, dict[str, Any]] | None:
        conds = conditions(psd(api, namespace, name))
        return conds if conds.get(ctype, {}).get("status") == status else None

    found: dict[str, dict[str, Any]] = wait_for(reached, what=f"{name}: {ctype}={status}", timeout=timeout)
    return found


def create_psd(api: k8s.ApiClient, namespace: str, name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    body = {
        "apiVersion": f"{crd.GROUP}/{crd.VERSION}",
        "kind": crd.KIND,
        "metadata": {"name": name, **meta},
        "spec": spec,
    }
    created: dict[str, Any] = k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, body
    )
    return created


def patch_psd(api: k8s.ApiClient, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    patched: dict[str, Any] = k8s.CustomObjectsApi(api).patch_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name, patch
    )
    return patched


def create_secret(api: k8s.ApiClient, namespace: str, name: str, data: Mapping[str, str]) -> None:
    k8s.CoreV1Api(api).create_namespaced_secret(
        namespace, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name), string_data=dict(data))
    )


DIGEST = "sha256:" + "0" * 64


def not_audited(*letters: str) -> list[dict[str, str]]:
    """Waivers accepting that whole dimensions are not audited (else Ready stays False: DimensionsNotConfigured)."""
    return [{"check": f"{letter}.*", "reason": "not part of this test", "expires": "2099-12-31"} for letter in letters]


WORKLOADS_ONLY = not_audited("B", "C", "D", "E")
"""What a spec with only spec.workloads leaves unaudited: the data layer, the pipeline, agents and APIs."""


def create_deployment(
    api: k8s.ApiClient,
    namespace: str,
    name: str,
    *,
    probes: bool = True,
    resources: bool = True,
    pre_stop: bool = True,
    available: bool = True,
    replicas: int = 2,
    guarded: bool = True,
    node: str | None = None,
) -> None:
    """A PayScope-like Deployment with one pod (on ``node``) that passes every workload check.

    Hardened as the pod-security checks want it (non-root, no privilege escalation,
    all capabilities dropped, read-only root, RuntimeDefault seccomp, no API token,
    a pinned image, its Secret through secretKeyRef), spread over nodes, and, with
    ``guarded``, covered by its own PodDisruptionBudget and NetworkPolicy.
    There are no controllers in the test control plane: statuses are written by hand.
    """
    liveness = k8s.V1Probe(http_get=k8s.V1HTTPGetAction(path="/healthz", port=8000)) if probes else None
    readiness = k8s.V1Probe(http_get=k8s.V1HTTPGetAction(path="/readyz", port=8000)) if probes else None
    container = k8s.V1Container(
        name="app",
        image=f"registry.invalid/payscope@{DIGEST}",
        liveness_probe=liveness,
        readiness_probe=readiness,
        resources=k8s.V1ResourceRequirements(requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": "512Mi"})
        if resources
        else None,
        lifecycle=k8s.V1Lifecycle(pre_stop=k8s.V1LifecycleHandler(_exec=k8s.V1ExecAction(command=["sleep", "5"])))
        if pre_stop
        else None,
        security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        env=[
            k8s.V1EnvVar(name="PORT", value="8000"),
            k8s.V1EnvVar(
                name="DB_PASSWORD",
                value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name="pg", key="password")),
            ),
        ],
    )
    labels = {"app": name}
    body = k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name=name, labels=labels),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas,
            selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(
                    containers=[container],
                    termination_grace_period_seconds=30,
                    automount_service_account_token=False,
                    security_context=k8s.V1PodSecurityContext(
                        run_as_non_root=True,
                        run_as_user=10001,
                        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
                    ),
                    topology_spread_constraints=[
                        k8s.V1TopologySpreadConstraint(
                            max_skew=1,
                            topology_key="kubernetes.io/hostname",
                            when_unsatisfiable="ScheduleAnyway",
                            label_selector=k8s.V1LabelSelector(match_labels=labels),
                        )
                    ],
                ),
            ),
        ),
    )
    apps = k8s.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, body)
    set_deployment_available(api, namespace, name, replicas if available else 0, replicas)
    if replicas:
        create_pod(api, namespace, name, ready=available, node=node)  # what the ReplicaSet would have started
    if guarded:
        create_disruption_budget(api, namespace, name, {"app": name})
        create_network_policy(api, namespace, name, {"app": name})


def create_disruption_budget(
    api: k8s.ApiClient, namespace: str, name: str, selects: Mapping[str, str], *, min_available: int | str = 1
) -> None:
    body = k8s.V1PodDisruptionBudget(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1PodDisruptionBudgetSpec(
            selector=k8s.V1LabelSelector(match_labels=dict(selects)), min_available=min_available
        ),
    )
    k8s.PolicyV1Api(api).create_namespaced_pod_disruption_budget(namespace, body)


def create_network_policy(api: k8s.ApiClient, namespace: str, name: str, selects: Mapping[str, str]) -> None:
    """Ingress to the selected pods from pods of the same namespace, on port 8000 only."""
    rule = k8s.V1NetworkPolicyIngressRule(
        _from=[k8s.V1NetworkPolicyPeer(pod_selector=k8s.V1LabelSelector())],
        ports=[k8s.V1NetworkPolicyPort(port=8000, protocol="TCP")],
    )
    body = k8s.V1NetworkPolicy(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1NetworkPolicySpec(
            pod_selector=k8s.V1LabelSelector(match_labels=dict(selects)), policy_types=["Ingress"], ingress=[rule]
        ),
    )
    k8s.NetworkingV1Api(api).create_namespaced_network_policy(namespace, body)


def set_deployment_available(api: k8s.ApiClient, namespace: str, name: str, available: int, replicas: int) -> None:
    """Write the status a controller would: caught up with the current generation, ``available`` of ``replicas``."""
    generation = k8s.AppsV1Api(api).read_namespaced_deployment(name, namespace).metadata.generation or 1
    status = {
        "status": {
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available,
            "updatedReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if available >= replicas else "False",
                    "reason": "MinimumReplicasAvailable",
                    "message": "set by the test",
                }
            ],
        }
    }
    k8s.AppsV1Api(api).patch_namespaced_deployment_status(name, namespace, status)


def create_pod(
    api: k8s.ApiClient,
    namespace: str,
    deployment: str,
    n: int = 1,
    *,
    ready: bool = True,
    restarts: int = 0,
    node: str | None = None,
) -> str:
    """A pod ``create_deployment``'s selector matches, with the status a kubelet would write.

    There is no scheduler nor kubelet here. Without ``node`` the pod is bound to none, and the API server
    answers its log with no line; bound to a ``node`` that does not exist, its log cannot be read at all.
    """
    name = f"{deployment}-{n}"
    body = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, labels={"app": deployment}),
        spec=k8s.V1PodSpec(
            node_name=node, containers=[k8s.V1Container(name="app", image="registry.invalid/payscope:1.0")]
        ),
    )
    core = k8s.CoreV1Api(api)
    core.create_namespaced_pod(namespace, body)
    waiting = {"waiting": {"reason": "CrashLoopBackOff"}} if restarts >= 5 else {"running": {}}
    container = {
        "name": "app",
        "image": "registry.invalid/payscope:1.0",
        "imageID": "",
        "ready": ready,
        "restartCount": restarts,
        "state": waiting,
        "lastState": {"terminated": {"exitCode": 1}} if restarts else {},
    }
    state = {
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [container],
        }
    }
    core.patch_namespaced_pod_status(name, namespace, state)
    return name


def grant(api: k8s.ApiClient, namespace: str, account: str, role: str, rules: list[k8s.V1PolicyRule]) -> None:
    """A ServiceAccount ``account`` bound to a new Role ``role`` of exactly ``rules``."""
    core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=account)))
    rbac.create_namespaced_role(namespace, k8s.V1Role(metadata=k8s.V1ObjectMeta(name=role), rules=rules))
    rbac.create_namespaced_role_binding(
        namespace,
        k8s.V1RoleBinding(
            metadata=k8s.V1ObjectMeta(name=role),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=role),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=account, namespace=namespace)],
        ),
    )


def remove_resources(api: k8s.ApiClient, namespace: str, *, grace: float = 15.0) -> None:
    """Delete every PayScopeDeployment of ``namespace``: a test leaves none behind.

    Without a controller-manager a deleted namespace keeps its objects, and a later
    test's cluster-wide operator would reconcile them against servers that are gone.
    A finalizer (``deletionPolicy: Delete``) that no running operator releases within
    ``grace`` seconds is removed, so the deletion completes anyway.
    """
    custom = k8s.CustomObjectsApi(api)

    def names() -> list[str]:
        try:
            listed = custom.list_namespaced_custom_object(crd.GROUP, crd.VERSION, namespace, crd.PLURAL)
        except ApiException as exc:
            if exc.status == 404:  # the CRD is not installed: nothing to remove
                return []
            raise
        return [str(item["metadata"]["name"]) for item in listed["items"]]

    for name in names():
        delete_psd(api, namespace, name)
    deadline = time.monotonic() + grace
    while names() and time.monotonic() < deadline:
        time.sleep(0.2)
    for name in names():
        try:
            custom.patch_namespaced_custom_object(
                crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name, {"metadata": {"finalizers": None}}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise


def delete_psd(api: k8s.ApiClient, namespace: str, name: str) -> None:
    """Delete a test's resource, so that cluster-wide operators of later tests never audit it (gone is fine)."""
    try:
        k8s.CustomObjectsApi(api).delete_namespaced_custom_object(crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name)
    except ApiException as exc:
        if exc.status != 404:
            raise
