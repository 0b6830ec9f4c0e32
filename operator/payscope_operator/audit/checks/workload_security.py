"""Dimension G, security of PayScope's pods: what Polaris, kube-score and Kubescape check on a Deployment.

Why this module exists: a readiness audit that passes a privileged root
container with the host's network, a ``:latest`` image and a password in its
environment is not one a platform team can trust. Each check here reads the pod
template of the api, worker and ingestion Deployments (``kubernetes.workloads``,
already gathered for dimension A) and judges every container, init containers
included, with the pod's securityContext inherited where a container sets
nothing (``kube.workloads`` resolves that). The NetworkPolicy check matches the
namespace's policies to each Deployment's pod labels.

What it must not do: do I/O, read or show an environment variable's value
(``kube.workloads`` keeps only its shape), or judge availability (dimension A).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from payscope_operator.api import spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import per_object
from payscope_operator.audit.sources import kubernetes
from payscope_operator.kube import workloads

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
Evidence = kubernetes.WorkloadEvidence
CHECKS = registry.Registry()
ContainerTest = Callable[[workloads.DeploymentFacts, workloads.ContainerFacts], str | None]
PodTest = Callable[[workloads.DeploymentFacts], str | None]
_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "DSN")
_HARMLESS_SHAPES = ("reference", "path", "boolean")


def _existing(evidence: Evidence) -> list[workloads.DeploymentFacts] | Finding:
    existing = [f for f in evidence.deployments.values() if f is not None]
    if not existing:
        return Finding.unknown("None of the declared Deployments exists, so there is no pod template to judge.")
    return existing


def _containers(evidence: Evidence, test: ContainerTest, fix: str, holds: str) -> Finding:
    """Fail with ``fix`` and the first problems when a container of an existing Deployment fails ``test``."""
    existing = _existing(evidence)
    if isinstance(existing, Finding):
        return existing
    problems = [
        f"{d.name}/{c.label}: {p}" for d in existing for c in d.every_container if (p := test(d, c)) is not None
    ]
    checked = ", ".join(d.name for d in existing)
    if problems:
        return Finding.failed(f"{fix}: " + "; ".join(problems[: per_object.MAX_SHOWN]), evidence=checked)
    count = sum(len(d.every_container) for d in existing)
    return Finding.passed(f"{holds} in all {count} containers.", evidence=checked)


def _pods(evidence: Evidence, test: PodTest, fix: str, holds: str) -> Finding:
    existing = _existing(evidence)
    if isinstance(existing, Finding):
        return existing
    problems = [f"{d.name}: {p}" for d in existing if (p := test(d)) is not None]
    checked = ", ".join(d.name for d in existing)
    if problems:
        return Finding.failed(f"{fix}: " + "; ".join(problems), evidence=checked)
    return Finding.passed(f"{holds} in all {len(existing)} Deployments.", evidence=checked)


def _check(
    check_id: str, severity: Severity, title: str, passes_when: str, *covers: str | registry.Cover, fix: str
) -> Callable[[registry.Evaluate[Evidence]], registry.Evaluate[Evidence]]:
    return CHECKS.check(
        check_id,
        source=kubernetes.WORKLOADS,
        severity=severity,
        grade=Grade.OBSERVED,
        title=title,
        passes_when=passes_when,
        fix=fix,
        covers=covers,
    )


# The container's securityContext ----------------------------------------------------------------


def _root(d: workloads.DeploymentFacts, c: workloads.ContainerFacts) -> str | None:
    s = c.security
    if s.run_as_user == 0:
        return "runAsUser is 0 (root)" + (", which runAsNonRoot: true refuses to start" if s.run_as_non_root else "")
    if s.run_as_non_root or (s.run_as_user is not None and s.run_as_user > 0):
        return None
    return "neither runAsNonRoot: true nor a non-zero runAsUser, so the image's USER (often root) decides"


@_check(
    "G.workloads.run_as_non_root",
    Severity.HIGH,
    "Every container runs as a non-root user (its securityContext, or the pod's).",
    "runAsNonRoot is true or runAsUser is above 0, and runAsUser is not 0.",
    fix="Set runAsNonRoot: true and a non-zero runAsUser in the pod's securityContext, and build the image with"
    " a non-root USER.",
)
def run_as_non_root(evidence: Evidence, desired: spec.PayScopeSpec) -> Finding:
    return _containers(evidence, _root, "Run as a non-root user (runAsNonRoot: true, runAsUser > 0)", "No root user")


@_check(
    "G.workloads.privileged",
    Severity.CRITICAL,
    "No container is privileged.",
    "securityContext.privileged is not true.",
    fix="Remove privileged: true from the container's securityContext.",
)
def privileged(evidence: Evidence, desired: spec.PayScopeSpec) -> Finding:
    def test(d: workloads.DeploymentFacts, c: workloads.ContainerFacts) -> str | None:
        return "privileged: true (root on the node)" if c.security.privileged else None

    return _containers(evidence, test, "Remove privileged: true", "No privileged container")


@_check(
    "G.workloads.privilege_escalation",
    Severity.HIGH,
    "No container may gain more privileges than its process started with.",
    "securityContext.allowPrivilegeEscalation is false (unset means true).",
    fix="Set allowPrivilegeEscalation: false in every container's securityContext.",
)
def privilege_escalation(evidence: Evidence, desired: spec.PayScopeSpec) -> Finding:
    def test(d: workloads.DeploymentFacts, c: workloads.ContainerFacts) -> str | None:
        allowed = c.security.allow_privilege_escalation
        return None if allowed is False else f"allowPrivilegeEscalation is {'true' if allowed else 'not set (true)'}"

    return _containers(evidence, test, "Set allowPrivilegeEscalation: false", "No privilege escalation")


@_check(
    "G.workloads.capabilities",
    Severity.HIGH,
    "Every container drops all Linux capabilities and adds back at most NET_BIND_SERVICE.",
    "securityContext.capabilities.drop contains ALL and add holds nothing but NET_BIND_SERVICE.",
    fix="Set capabilities: {drop: [ALL]} in every container's securityContext; add back only NET_BIND_SERVICE"
    " if needed.",
)
def capabilities(evidence: Evidence, desired: spec.PayScopeSpec) -> Finding:
    def test(d: workloads.DeploymentFacts, c: workloads.ContainerFacts) -> str | None:
        added = [
            a for a in c.security.capabilities_add if a.upper() not in ("NET_BIND_SERVICE", "CAP_NET_BIND_SERVICE")
        ]
        problems = [] if "ALL" in (x.upper() for x in c.security.capabilities_drop) else ["does not drop ALL"]
        problems += [f"adds {', '.join(added)}"] if added else []
        return ", ".join(problems) or None

    return _containers(
        evidence, test, "Drop ALL capabilities (add back NET_BIND_SERVICE at most)", "Capabilities dropped"
    )


@_check(
    "G.workloads.read_only_root_fs",
    Severity.MEDIUM,
    "Every container's root filesystem is read-only.",
    "securityContext.readOnlyRootFilesystem is true (writable paths come from volumes).",
    fix="Set readOnlyRootFilesystem: true and mount an emptyDir where the process writes (/tmp).",
)
def read_only_root_fs(evidence: Evidence, desired: spec.PayScopeSpec) -> Finding:
    def test(d: workloads.DeploymentFacts, c: workloads.ContainerFacts) -> str | None:
        return None if c.security.read_only_root_filesystem else "readOnlyRootFilesystem is not true"

    fix = "Set readOnlyRootFilesystem: true and mount an emptyDir where the process writes"
    return _containers(evidence, test, fix, "A read-only root filesystem")


@_check(
    "G.workloads.seccomp",
    Severity.MEDIUM,
    "Every container runs under a seccomp profile (its own, or the pod's).",
    "seccompProfile.type is RuntimeDefault or Localhost.",
    fix="Set seccompProfile: {type: RuntimeDefault} in the pod's securityContext.",
)
def seccomp(evidence: Evidence, desired: spec.PayScopeSpec) -> Finding:
    def test(d: workloads.DeploymentFacts, c: workloads.ContainerFacts) -> str | None:
        profile = c.security.seccomp
        if profile in ("RuntimeDefault", "Localhost"):
            return None
        if profile:
            return f"seccompProfile is {profile}"
        return "no seccompProfile (Unconfined unless the kubelet defaults otherwise)"

    fix = "Set seccompProfile: {type: RuntimeDefault} on the pod"
    return _containers(evidence, test, fix, "A seccomp profile")


# The pod's reach into its node ------------------------------------------------------------------


@_check(
    "G.workloads.host_namespaces",
    Severity.CRITICAL,
    "No pod shares the node's network, process or IPC namespace.",
    "hostNetwork, hostPID and hostIPC are not true.",
    fix="Remove hostNetwork, hostPID and hostIPC from the pod template.",
)
def host_namespaces(evidence: Evidence, desired: spec.PayScopeSpec) -> Finding:
    def test(d: workloads.DeploymentFacts) -> str | None:
        flags = (("hostNetwork", d.host_network), ("hostPID", d.host_pid), ("hostIPC", d.host_ipc))
        return ", ".join(f"{name}: true" for name, on in flags if on) or None

    return _pods(evidence, test, "Stop sharing the node's namespaces", "No host namespace is shared")


@_check(
    "G.workloads.host_path",
    Severity.HIGH,
    "No pod mounts a directory of its node (hostPath volume).",
    "The pod template has no hostPath volume.",
    fix="Replace hostPath volumes with emptyDir, a ConfigMap or Secret, or a PersistentVolumeClaim.",
)
def host_path(evidence: Evidence, desired: spec.PayScopeSpec) -> Finding:
    def test(d: workloads.DeploymentFacts) -> str | None:
        return f"hostPath volume(s) {', '.join(d.host_path_volumes)}" if d.host_path_volumes else None

    return _pods(evidence, test, "Replace hostPath volumes (emptyDir, a PersistentVolumeClaim)", "No hostPath volume")


@_check(
    "G.workloads.host_ports",
    Severity.MEDIUM,
    "No container binds a port of its node (hostPort).",
    "No container port sets hostPort.",
    fix="Remove hostPort from the container ports and expose the pods through a Service.",
)
def host_ports(evidence: Evidence, desired: spec.PayScopeSpec) -> Finding:
    def test(d: workloads.DeploymentFacts, c: workloads.ContainerFacts) -> str | None:
        return f"hostPort {', '.join(map(str, c.host_ports))}" if c.host_ports else None

    return _containers(evidence, test, "Remove hostPort (expose the pods through a Service)", "No hostPort")


# What runs, and with what -----------------------------------------------------------------------


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None (a digest, or a tag other than latest)."""
    if "@sha256:" in image:
        return None
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"{image} has no tag (pulls :latest)"
    if name.rsplit(":", 1)[1] == "latest":
        return f"{image} uses :latest"
    return None


@_check(
    "G.workloads.image_pinned",
    Severity.HIGH,
    "Every container's image is pinned: a digest, or at least a tag other than latest.",
    "No image is untagged or :latest (a digest is preferred: a tag can be moved; the message counts tag-only images).",
    fix="Reference every image by digest (image@sha256:...) or at least by a version tag; never :latest or no tag.",
)
def image_pinned(evidence: Evidence, desired: spec.PayScopeSpec) -> Finding:
    fix = "Pin every image (a digest, or a version tag)"
    found = _containers(evidence, lambda d, c: image_problem(c.image), fix, "Pinned images")
    if found.status != status.CheckStatus.PASS:
        return found
    images = [c.image for d in evidence.deployments.values() if d is not None for c in d.every_container]
    by_tag = sorted({i for i in images if "@sha256:" not in i})
    note = f"; by tag only (a tag can be moved, a digest cannot): {', '.join(by_tag[:3])}" if by_tag else ""
    return Finding.passed(f"All {len(images)} container images are pinned{note}.", found.evidence)


def secret_looking(name: str) -> bool:
    """An environment variable name whose last word names a secret (DB_PASSWORD, JWT_SECRET_KEY, PGPASSWORD)."""
    words = [w for w in re.split(r"[^A-Z0-9]+", name.upper()) if w]
    return bool(words) and words[-1].endswith(_SECRET_WORDS)


def _literal_secrets(d: workloads.DeploymentFacts, c: workloads.ContainerFacts) -> str | None:
    shown = [
        n + (" (a URL with a password)" if shape == "credential-url" else "")
        for n, shape in c.env_literals
        if shape == "credential-url" or (secret_looking(n) and shape not in _HARMLESS_SHAPES)
    ]
    return "literal value in env " + ", ".join(shown) if shown else None


@_check(
    "G.workloads.env_secrets",
    Severity.CRITICAL,
    "No container carries a secret as a literal environment value (names ending in KEY, SECRET, TOKEN, PASSWORD or"
    " DSN, or any URL with a password).",
    "Such variables come from valueFrom.secretKeyRef (or a mounted Secret), never from value. Values are judged by"
    " shape only and never shown.",
    "A/Environment Variables/Secrets handling (JWT keys, API keys)",
    fix="Move the value into a Secret and reference it with valueFrom.secretKeyRef (or mount the Secret as a file).",
)
def env_secrets(evidence: Evidence, desired: spec.PayScopeSpec) -> Finding:
    fix = "Move these into a Secret and use valueFrom.secretKeyRef"
    return _containers(evidence, _literal_secrets, fix, "No secret-looking literal in env")


@CHECKS.check(
    "G.workloads.service_account_token",
    source=kubernetes.WORKLOADS,
    severity=Severity.LOW,
    grade=Grade.OBSERVED,
    title="No pod mounts a Kubernetes API token it does not need.",
    passes_when="automountServiceAccountToken is false on the pod template (otherwise Warn: waive it where PayScope"
    " calls the Kubernetes API).",
    fix="Set automountServiceAccountToken: false on the pod template, unless PayScope calls the Kubernetes API.",
)
def service_account_token(evidence: Evidence, desired: spec.PayScopeSpec) -> Finding:
    existing = _existing(evidence)
    if isinstance(existing, Finding):
        return existing
    mounted = [d.name for d in existing if d.automount_service_account_token is not False]
    checked = ", ".join(d.name for d in existing)
    if mounted:
        return Finding.warned(
            f"{', '.join(mounted)} mount(s) a ServiceAccount token (automountServiceAccountToken is not false on the"
            " pod): set it false unless PayScope calls the Kubernetes API.",
            checked,
        )
    return Finding.passed(f"No pod of the {len(existing)} Deployments mounts a ServiceAccount token.", checked)


@CHECKS.check(
    "G.workloads.network_policy",
    source=kubernetes.NETWORK,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="A NetworkPolicy restricting ingress selects each declared Deployment's pods.",
    passes_when="For every Deployment, a NetworkPolicy with policyType Ingress whose podSelector matches its pod"
    " labels (only ones that admit every peer on every port: Warn).",
    fix="Add a NetworkPolicy with policyTypes [Ingress] whose podSelector matches the Deployment's pod labels and"
    " admits only the callers PayScope needs.",
    covers=(registry.Cover("G/Bank Isolation/No data leakage paths", Grade.INFERRED),),
)
def network_policy(evidence: kubernetes.NetworkEvidence, desired: spec.PayScopeSpec) -> Finding:
    existing = [d for d in evidence.deployments.values() if d is not None]
    if not existing:
        return Finding.unknown("None of the declared Deployments exists, so there are no pods to select.")
    open_, admitting = [], []
    for d in existing:
        isolating = [p for p in evidence.policies if p.isolates(d.pod_labels)]
        if not isolating:
            open_.append(d.name)
        elif all(p.admits_all_ingress for p in isolating):
            admitting.append(f"{d.name} ({', '.join(p.name for p in isolating)})")
    where = f"{len(evidence.policies)} NetworkPolicy(ies) matched against {', '.join(d.name for d in existing)}"
    if open_:
        return Finding.failed(
            f"No NetworkPolicy restricts ingress to {', '.join(open_)}: any pod in the cluster can connect. Add one"
            " whose podSelector matches their pod labels.",
            where,
        )
    if admitting:
        return Finding.warned(f"Selected only by policies that admit every peer: {'; '.join(admitting)}.", where)
    return Finding.passed(f"A NetworkPolicy restricts ingress to each of the {len(existing)} Deployments.", where)
