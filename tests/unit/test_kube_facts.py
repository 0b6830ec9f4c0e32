"""``kube.workloads`` and ``kube.policies``: the client's objects reduced to the facts the audit judges.

The checks are table-tested on facts (``tests/unit/audit/pods.py``); these tests
hold the converters to Kubernetes' own rules: a container's securityContext wins
over the pod's, init containers count, a label selector's ``matchExpressions``,
a NetworkPolicy without ``policyTypes`` restricts ingress, a budget's
percentages round up, and an environment value never survives the conversion.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from payscope_operator.kube import policies, workloads

PASSWORD = "correct-horse-battery-staple"


def _deployment(pod: dict[str, Any], *, containers: list[k8s.V1Container] | None = None) -> k8s.V1Deployment:
    labels = {"app": "payscope-api"}
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="payscope-api", generation=1),
        spec=k8s.V1DeploymentSpec(
            replicas=2,
            selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(containers=containers or [k8s.V1Container(name="app", image="a:1")], **pod),
            ),
        ),
    )


def test_the_pods_security_context_reaches_containers_that_set_nothing_and_theirs_wins() -> None:
    pod = {
        "security_context": k8s.V1PodSecurityContext(
            run_as_non_root=True, run_as_user=1000, seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault")
        ),
        "init_containers": [k8s.V1Container(name="migrate", image="m:1")],
    }
    own = k8s.V1SecurityContext(
        run_as_user=0,
        privileged=True,
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        capabilities=k8s.V1Capabilities(drop=["ALL"], add=["NET_ADMIN"]),
        seccomp_profile=k8s.V1SeccompProfile(type="Unconfined"),
    )
    containers = [k8s.V1Container(name="app", image="a:1", security_context=own), k8s.V1Container(name="b", image="b")]
    facts = workloads.facts_of(_deployment(pod, containers=containers))
    app, plain = facts.containers
    (init,) = facts.init_containers
    assert app.security == workloads.SecurityFacts(
        run_as_non_root=True,
        run_as_user=0,
        privileged=True,
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        capabilities_add=("NET_ADMIN",),
        capabilities_drop=("ALL",),
        seccomp="Unconfined",
    )
    inherited = workloads.SecurityFacts(run_as_non_root=True, run_as_user=1000, seccomp="RuntimeDefault")
    assert plain.security == inherited
    assert (init.security, init.init, init.label) == (inherited, True, "migrate (init)")
    assert [c.name for c in facts.every_container] == ["migrate", "app", "b"]


def test_the_pods_reach_into_its_node() -> None:
    pod = {
        "host_network": True,
        "host_pid": True,
        "automount_service_account_token": False,
        "volumes": [
            k8s.V1Volume(name="docker", host_path=k8s.V1HostPathVolumeSource(path="/var/run/docker.sock")),
            k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource()),
        ],
    }
    ports = [k8s.V1ContainerPort(container_port=8000, host_port=8000), k8s.V1ContainerPort(container_port=9000)]
    facts = workloads.facts_of(_deployment(pod, containers=[k8s.V1Container(name="app", image="a:1", ports=ports)]))
    assert (facts.host_network, facts.host_pid, facts.host_ipc) == (True, True, False)
    assert facts.host_path_volumes == ("docker: /var/run/docker.sock",)
    assert facts.containers[0].host_ports == (8000,)
    assert facts.automount_service_account_token is False
    assert workloads.facts_of(_deployment({})).automount_service_account_token is None


def test_an_environment_value_is_kept_only_as_its_shape() -> None:
    env = [
        k8s.V1EnvVar(name="DB_PASSWORD", value=PASSWORD),
        k8s.V1EnvVar(name="DATABASE_URL", value=f"postgresql://payscope:{PASSWORD}@db:5432/payscope"),
        k8s.V1EnvVar(name="PORT", value="8000"),
        k8s.V1EnvVar(name="EMPTY", value=""),
        k8s.V1EnvVar(
            name="JWT_SECRET",
            value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name="jwt", key="k")),
        ),
    ]
    facts = workloads.facts_of(_deployment({}, containers=[k8s.V1Container(name="app", image="a:1", env=env)]))
    assert facts.containers[0].env_literals == (
        ("DB_PASSWORD", "text"),
        ("DATABASE_URL", "credential-url"),
        ("PORT", "number"),
    )
    assert PASSWORD not in repr(facts)


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        ("s3cr3t-value", "text"),
        ("redis://:pw@redis:6379/0", "credential-url"),
        ("postgresql://user:pw@db/x", "credential-url"),
        ("postgresql://db/x", "text"),
        ("$(OTHER)", "reference"),
        ("8000", "number"),
        ("30s", "number"),
        ("512Mi", "number"),
        ("true", "boolean"),
        ("/var/run/secrets/jwt", "path"),
    ],
)
def test_shape_of(value: str, shape: str) -> None:
    assert workloads.shape_of(value) == shape


def test_spread_terms_from_anti_affinity_and_topology_spread() -> None:
    select = k8s.V1LabelSelector(match_labels={"app": "payscope-api"})
    term = k8s.V1PodAffinityTerm(topology_key="kubernetes.io/hostname", label_selector=select)
    pod = {
        "affinity": k8s.V1Affinity(
            pod_anti_affinity=k8s.V1PodAntiAffinity(
                required_during_scheduling_ignored_during_execution=[term],
                preferred_during_scheduling_ignored_during_execution=[
                    k8s.V1WeightedPodAffinityTerm(weight=50, pod_affinity_term=term)
                ],
            )
        ),
        "topology_spread_constraints": [
            k8s.V1TopologySpreadConstraint(
                max_skew=1, topology_key="topology.kubernetes.io/zone", when_unsatisfiable="ScheduleAnyway"
            )
        ],
    }
    facts = workloads.facts_of(_deployment(pod))
    selector = policies.LabelSelector((("app", "payscope-api"),))
    assert facts.spread == (
        workloads.SpreadTerm("required podAntiAffinity", "kubernetes.io/hostname", selector),
        workloads.SpreadTerm("preferred podAntiAffinity", "kubernetes.io/hostname", selector),
        workloads.SpreadTerm("topologySpreadConstraint", "topology.kubernetes.io/zone", None),
    )
    assert facts.pod_labels == {"app": "payscope-api"}


@pytest.mark.parametrize(
    ("expressions", "labels", "matches"),
    [
        ([], {}, True),
        ([("app", "In", ["api", "web"])], {"app": "api"}, True),
        ([("app", "In", ["api"])], {"app": "worker"}, False),
        ([("app", "In", ["api"])], {}, False),
        ([("app", "NotIn", ["worker"])], {}, True),
        ([("app", "NotIn", ["worker"])], {"app": "worker"}, False),
        ([("canary", "Exists", [])], {"canary": ""}, True),
        ([("canary", "DoesNotExist", [])], {"canary": "1"}, False),
        ([("app", "Unheard", ["api"])], {"app": "api"}, False),
    ],
)
def test_label_selector(expressions: list[tuple[str, str, list[str]]], labels: dict[str, str], matches: bool) -> None:
    raw = k8s.V1LabelSelector(
        match_expressions=[k8s.V1LabelSelectorRequirement(key=k, operator=o, values=v) for k, o, v in expressions]
    )
    selector = policies.selector_of(raw)
    assert selector is not None
    assert selector.matches(labels) is matches
    assert policies.selector_of(None) is None


def test_match_labels_and_expressions_must_all_hold() -> None:
    selector = policies.selector_of(
        k8s.V1LabelSelector(
            match_labels={"app": "api"},
            match_expressions=[k8s.V1LabelSelectorRequirement(key="tier", operator="In", values=["payscope"])],
        )
    )
    assert selector is not None
    assert selector.matches({"app": "api", "tier": "payscope", "x": "y"})
    assert not selector.matches({"app": "api"})
    assert str(selector) == "app=api,tier In (payscope)"


def _policy(**spec: Any) -> k8s.V1NetworkPolicy:
    spec.setdefault("pod_selector", k8s.V1LabelSelector())
    return k8s.V1NetworkPolicy(metadata=k8s.V1ObjectMeta(name="np"), spec=k8s.V1NetworkPolicySpec(**spec))


def test_network_policy_facts() -> None:
    bare = policies.network_policy_facts(_policy())
    assert (bare.ingress, bare.admits_all_ingress, bare.isolates({"any": "pod"})) == (True, False, True)
    egress = policies.network_policy_facts(_policy(policy_types=["Egress"]))
    assert (egress.ingress, egress.isolates({})) == (False, False)
    peer = k8s.V1NetworkPolicyPeer(pod_selector=k8s.V1LabelSelector(match_labels={"app": "gateway"}))
    narrow = policies.network_policy_facts(_policy(ingress=[k8s.V1NetworkPolicyIngressRule(_from=[peer])]))
    assert narrow.admits_all_ingress is False
    wide = policies.network_policy_facts(_policy(ingress=[k8s.V1NetworkPolicyIngressRule()]))
    assert wide.admits_all_ingress is True


@pytest.mark.parametrize(
    ("min_available", "max_unavailable", "replicas", "allowed"),
    [(1, None, 3, 2), ("50%", None, 3, 1), (None, 1, 3, 1), (None, "50%", 3, 2), (None, None, 3, None)],
)
def test_budget_facts_count_disruptions_as_the_controller_does(
    min_available: int | str | None, max_unavailable: int | str | None, replicas: int, allowed: int | None
) -> None:
    budget = k8s.V1PodDisruptionBudget(
        metadata=k8s.V1ObjectMeta(name="api"),
        spec=k8s.V1PodDisruptionBudgetSpec(
            selector=k8s.V1LabelSelector(match_labels={"app": "api"}),
            min_available=min_available,
            max_unavailable=max_unavailable,
        ),
    )
    facts = policies.budget_facts(budget)
    assert facts.allowed_disruptions(replicas) == allowed
    assert facts.selects({"app": "api"})
