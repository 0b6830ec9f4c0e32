"""``payscope-operator audit|plan -f FILE``: the same plan and audit code, without a cluster.

The resource file is read locally, Secrets come from environment variables
(``--secrets-from-env``: ``PAYSCOPE_SECRET_<NAME>_<KEY>``, upper-cased, other
characters as ``_``) or from a file of Secret manifests (``--secrets-file``),
and the reconciler runs in ObserveOnly mode against an in-memory stand-in for
the cluster: nothing is ever changed. With no cluster there are no
Deployments to inspect, so those checks report NotConfigured.

``audit`` prints the results (table, json, JUnit XML, or the readiness report
in the checklist's shape as Markdown, the same document ``kubectl payscope
report`` prints) and exits 1 when a non-waived check fails, 2 when the file
itself is invalid, and 3 when nothing failed but a dimension was not audited at
all and no waiver accepts that, or nothing was audited (``Ready`` reason
``DimensionsNotConfigured`` or ``NotConfigured``): an audit that looked at
nothing must not gate a release as a pass. ``plan`` prints the provisioning
actions Full management would take.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree as ET

import yaml
from pydantic import SecretStr

from payscope_operator import errors, telemetry
from payscope_operator.api import conditions, status
from payscope_operator.audit import report_markdown, verdicts
from payscope_operator.kube import gateway, pods, policies, workloads
from payscope_operator.reconcile import reconciler, report, systems


def env_name(secret: str, key: str) -> str:
    """The environment variable holding ``key`` of Secret ``secret``."""
    return "PAYSCOPE_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", f"{secret}_{key}").upper()


@dataclass
class LocalCluster:
    """The cluster as the reconciler sees it, in memory: Secrets given, writes kept.

    The status is kept as the API server keeps it: merge patches applied, each
    write a new resourceVersion, and a write at another version refused (409).
    """

    secrets: dict[str, dict[str, SecretStr]] = field(default_factory=dict)
    status: dict[str, Any] | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    version: int = 0

    async def read_secret(self, namespace: str, name: str) -> dict[str, SecretStr] | None:
        return self.secrets.get(name)

    async def read_deployment(self, namespace: str, name: str) -> workloads.DeploymentFacts | None:
        return None  # never asked: workloads are removed from the spec

    async def list_disruption_budgets(self, namespace: str) -> tuple[policies.DisruptionBudgetFacts, ...]:
        return ()  # never asked, as above

    async def list_network_policies(self, namespace: str) -> tuple[policies.NetworkPolicyFacts, ...]:
        return ()

    async def list_pods(self, namespace: str, selector: str) -> tuple[pods.PodFacts, ...]:
        return ()  # never asked: workloads are removed from the spec

    async def read_pod_log(self, namespace: str, pod: str, container: str) -> str | None:
        return None

    async def read_status(self, ref: gateway.ObjectRef) -> gateway.StoredStatus | None:
        return gateway.StoredStatus(str(self.version), self.status)

    async def patch_status(
        self, ref: gateway.ObjectRef, changes: Mapping[str, Any], *, resource_version: str | None
    ) -> str | None:
        if resource_version is not None and resource_version != str(self.version):
            raise errors.Conflict(f"{ref.name} is at version {self.version}, not {resource_version}")
        self.status = report.apply_merge_patch(self.status, changes)
        self.version += 1
        return str(self.version)

    async def post_event(
        self, ref: gateway.ObjectRef, *, kind: Literal["Normal", "Warning"], reason: str, message: str, action: str = ""
    ) -> None:
        self.events.append((kind, reason, message))


class EnvSecrets(LocalCluster):
    """Secrets looked up as ``PAYSCOPE_SECRET_<NAME>_<KEY>`` (keys matched case-insensitively)."""

    async def read_secret(self, namespace: str, name: str) -> dict[str, SecretStr] | None:
        prefix = env_name(name, "")
        values = {k[len(prefix) :]: v for k, v in os.environ.items() if k.startswith(prefix)}
        if not values:
            return None
        return _CaseInsensitive({k.lower(): SecretStr(v) for k, v in values.items()})


class _CaseInsensitive(dict[str, SecretStr]):
    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(re.sub(r"[^A-Za-z0-9]", "_", key).lower())

    def __getitem__(self, key: str) -> SecretStr:
        return super().__getitem__(re.sub(r"[^A-Za-z0-9]", "_", key).lower())


def load_secrets_file(path: Path) -> dict[str, dict[str, SecretStr]]:
    """Secret manifests (data base64, or stringData) keyed by name."""
    found: dict[str, dict[str, SecretStr]] = {}
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc or doc.get("kind") != "Secret":
            continue
        values = {k: SecretStr(base64.b64decode(v).decode()) for k, v in (doc.get("data") or {}).items()}
        values.update({k: SecretStr(str(v)) for k, v in (doc.get("stringData") or {}).items()})
        found[doc["metadata"]["name"]] = values
    return found


def load_resource(path: Path) -> tuple[str, str, dict[str, Any]]:
    """(namespace, name, spec) of the first PayScopeDeployment in the file, or a bare spec."""
    for doc in yaml.safe_load_all(path.read_text()):
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == gateway.KIND:
            meta = doc.get("metadata") or {}
            return meta.get("namespace", "default"), meta.get("name", path.stem), dict(doc.get("spec") or {})
        if "kind" not in doc:
            return "default", path.stem, doc
    raise ValueError(f"{path} holds no {gateway.KIND}")


def audited_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec a standalone audit runs: ObserveOnly, nothing deleted, no workloads (there is no cluster)."""
    audited = {**spec, "managementPolicy": "ObserveOnly", "deletionPolicy": "Retain"}
    audited.pop("workloads", None)
    return audited


async def evaluate(spec: dict[str, Any], cluster: LocalCluster, *, namespace: str, name: str) -> status.PayScopeStatus:
    """Run one ObserveOnly pass with the local stand-in; return the status it computed."""
    spec = audited_spec(spec)
    # No uid: the objects this resource owns are recognised by the namespace/name they record.
    resource = reconciler.Resource(namespace, name, "", 1, None, {}, spec, None)
    deps = reconciler.Dependencies(cluster=cluster, observer=telemetry.Metrics(), provisioners=systems.PROVISIONERS)
    try:
        result = await reconciler.reconcile(deps, resource, now=datetime.datetime.now(datetime.UTC))
    finally:
        for cache in deps.clients.values():
            await cache.close()
    return result.status


def _table(result: status.PayScopeStatus) -> str:
    rows = [f"{'CHECK':<34} {'STATUS':<14} {'SEVERITY':<9} {'GRADE':<9} MESSAGE"]
    rows += [
        f"{c.id:<34} {c.status.value:<14} {c.severity.value:<9} {c.grade.value if c.grade else '-':<9} {c.message}"
        for c in result.checks
    ]
    rows.append("")
    rows += [f"{c.type:<20} {c.status.value:<8} {c.reason}: {c.message}" for c in result.conditions]
    return "\n".join(rows) + "\n"


def _junit(result: status.PayScopeStatus) -> str:
    failures = [c for c in result.checks if c.status == status.CheckStatus.FAIL]
    suite = ET.Element(
        "testsuite",
        name="payscope-audit",
        tests=str(len(result.checks)),
        failures=str(len(failures)),
        skipped=str(
            sum(1 for c in result.checks if c.status != status.CheckStatus.PASS and c.status != status.CheckStatus.FAIL)
        ),
    )
    for check in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"payscope.{check.dimension.value}", name=check.id)
        if check.status == status.CheckStatus.FAIL:
            ET.SubElement(case, "failure", message=check.message, type=check.severity.value).text = check.evidence or ""
        elif check.status != status.CheckStatus.PASS:
            ET.SubElement(case, "skipped", message=f"{check.status.value}: {check.message}")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def markdown_report(namespace: str, name: str, spec: Mapping[str, Any], result: status.PayScopeStatus) -> str:
    """The readiness report of this standalone audit (``--output markdown``)."""
    subject = verdicts.Subject(
        namespace,
        name,
        result,
        verdicts.waivers_of(spec),
        generation=result.observed_generation,
        desired=verdicts.spec_of(spec),
    )
    return report_markdown.render(verdicts.build(subject, now=datetime.datetime.now(datetime.UTC)))


def main(args: argparse.Namespace) -> int:
    try:
        namespace, name, spec = load_resource(Path(args.filename))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"payscope-operator: {exc}", file=sys.stderr)
        return 2
    cluster: LocalCluster = EnvSecrets() if args.secrets_from_env else LocalCluster()
    if args.secrets_file:
        cluster.secrets = load_secrets_file(Path(args.secrets_file))
    result = asyncio.run(evaluate(spec, cluster, namespace=namespace, name=name))
    stalled = next(
        (c for c in result.conditions if c.type == "Stalled" and c.status == status.ConditionStatus.TRUE), None
    )
    if args.command == "plan":
        for line in result.plan:
            print(line)
        if not result.plan:
            print("no changes: every declared object exists and matches")
        if stalled is not None:
            print(f"stalled: {stalled.reason}: {stalled.message}", file=sys.stderr)
            return 2
        return 0
    output = getattr(args, "output", "table")
    if output == "json":
        sys.stdout.write(json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2) + "\n")
    elif output == "junit":
        sys.stdout.write(_junit(verdicts.with_unlisted(result, verdicts.spec_of(audited_spec(spec)))))
    elif output == "markdown":
        sys.stdout.write(markdown_report(namespace, name, audited_spec(spec), result))
    else:
        sys.stdout.write(_table(verdicts.with_unlisted(result, verdicts.spec_of(audited_spec(spec)))))
    if stalled is not None and stalled.reason == "SpecInvalid":
        print(f"invalid resource: {stalled.message}", file=sys.stderr)
        return 2
    if any(c.status == status.CheckStatus.FAIL for c in result.checks):
        return 1
    ready = next((c for c in result.conditions if c.type == conditions.ConditionType.READY), None)
    if ready is not None and ready.reason in (
        conditions.Reason.DIMENSIONS_NOT_CONFIGURED,
        conditions.Reason.NOT_CONFIGURED,
    ):
        print(f"incomplete audit: {ready.message}", file=sys.stderr)
        return 3
    return 0
