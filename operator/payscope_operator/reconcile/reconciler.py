"""One reconcile pass over one resource: validate, resolve, plan, provision, audit, report.

``reconcile`` is the only entry point the kopf layer calls. It never raises
for a problem of the resource: an invalid spec, a missing Secret or a
permission problem becomes ``Stalled`` with a reason naming the field or the
object, a dependency that is down turns its checks Unknown. It writes the
status only when it differs from what the API server holds (one request), and
posts an Event for every condition transition. Knows nothing of kopf.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from payscope_operator import errors
from payscope_operator.api import conditions as api_conditions
from payscope_operator.api import spec, status
from payscope_operator.backends import base
from payscope_operator.kube import gateway, workloads
from payscope_operator.reconcile import audit, catalog, checks, provision, readiness, registry, report, secrets, session

logger = logging.getLogger(__name__)
Reason = api_conditions.Reason
ManagementPolicy = spec.ManagementPolicy
PAUSED_ANNOTATION = "payscope.io/paused"


@dataclass(frozen=True)
class Resource:
    """A snapshot of one PayScopeDeployment, as the watch delivered it."""

    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str | None
    annotations: Mapping[str, str]
    spec: Mapping[str, Any]
    status: Mapping[str, Any] | None

    @property
    def paused(self) -> bool:
        return self.annotations.get(PAUSED_ANNOTATION, "").lower() == "true"

    @property
    def ref(self) -> gateway.ObjectRef:
        return gateway.ObjectRef(self.namespace, self.name, self.uid, self.resource_version)


class Cluster(Protocol):
    """What a pass needs from Kubernetes (``kube.gateway.Gateway``)."""

    async def read_secret(self, namespace: str, name: str) -> Any: ...

    async def read_deployment(self, namespace: str, name: str) -> workloads.DeploymentFacts | None: ...

    async def replace_status(self, ref: gateway.ObjectRef, body: Mapping[str, Any]) -> None: ...

    async def post_event(
        self,
        ref: gateway.ObjectRef,
        *,
        kind: Literal["Normal", "Warning"],
        reason: str,
        message: str,
        action: str = ...,
    ) -> None: ...


class Observer(Protocol):
    """Where a pass reports what it measured (``telemetry`` in production)."""

    def pass_finished(
        self, resource: Resource, result: status.PayScopeStatus, seconds: float, audit_seconds: float
    ) -> None: ...

    def transitions(self, resource: Resource, changed: int) -> None: ...

    def error(self, resource: Resource, stage: str) -> None: ...


@dataclass
class Dependencies:
    """What the reconciler is wired with."""

    cluster: Cluster
    observer: Observer
    provisioners: Sequence[provision.Factory] = ()
    catalog: Sequence[checks.Check[Any]] = catalog.CATALOG
    clients: dict[str, session.ClientCache] = field(default_factory=dict)
    memory: dict[str, audit.Memory] = field(default_factory=dict)

    def clients_of(self, resource: Resource) -> session.ClientCache:
        return self.clients.setdefault(resource.uid, session.ClientCache())

    def memory_of(self, resource: Resource) -> audit.Memory:
        """Gatherings kept between passes (see ``checks.Source.reuse_for``)."""
        return self.memory.setdefault(resource.uid, {})


@dataclass(frozen=True)
class Result:
    """What a pass produced: the status it computed and whether it wrote it."""

    status: status.PayScopeStatus
    written: bool
    stalled: bool


def _field_of(error: Mapping[str, Any]) -> str:
    path = "spec"
    for part in error.get("loc", ()):
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validate(resource: Resource, known_checks: frozenset[str]) -> spec.PayScopeSpec:
    """The spec as a model, or ``SpecInvalid`` naming the first offending field."""
    try:
        desired = spec.PayScopeSpec.model_validate(dict(resource.spec))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        more = f" ({exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise errors.SpecInvalid(f"{_field_of(first)}: {first['msg']}{more}") from None
    for index, waiver in enumerate(desired.audit.waivers):
        if waiver.check not in known_checks:
            raise errors.SpecInvalid(f"spec.audit.waivers[{index}].check: unknown check id {waiver.check!r}")
    return desired


async def _report(
    deps: Dependencies,
    resource: Resource,
    facts: readiness.Facts,
    *,
    checks_out: Sequence[status.CheckResult] = (),
    plans: Sequence[base.Plan] = (),
    preview: Sequence[str] = (),
    now: datetime.datetime,
) -> tuple[status.PayScopeStatus, bool]:
    previous = report.parse(resource.status)
    built = report.build(facts, previous=previous, checks=checks_out, plans=plans, preview=preview, now=now)
    if not report.needs_write(resource.status, built):
        return built, False
    await deps.cluster.replace_status(resource.ref, report.to_wire(built))
    changed = readiness.transitions(previous.conditions if previous else (), built.conditions)
    for _, new in changed:
        logger.info("%s/%s: %s=%s (%s)", resource.namespace, resource.name, new.type, new.status, new.reason)
    for old, new in changed:
        warning = _is_warning(new)
        if old is None and not warning:
            continue  # a resource's first status: only what needs attention becomes an Event
        was = f"{old.status}/{old.reason}" if old else "unset"
        await deps.cluster.post_event(
            resource.ref,
            kind="Warning" if warning else "Normal",
            reason=new.reason,
            message=f"{new.type} is {new.status} (was {was}): {new.message}",
        )
    deps.observer.transitions(resource, len(changed))
    return built, True


def _is_warning(condition: status.Condition) -> bool:
    """Stalled=True, or a condition False, except Reconciling's False (good news) and work in progress."""
    ctype, cstatus = condition.type, condition.status
    if ctype == api_conditions.ConditionType.STALLED:
        return cstatus == status.ConditionStatus.TRUE
    if condition.reason in (Reason.RECONCILING, Reason.PROVISIONING_PENDING):
        return False
    return cstatus == status.ConditionStatus.FALSE and ctype != api_conditions.ConditionType.RECONCILING


async def mark_reconciling(deps: Dependencies, resource: Resource, *, now: datetime.datetime) -> None:
    """On a new generation, say so at once: Ready False (Reconciling) for kstatus and kubectl wait."""
    previous = report.parse(resource.status)
    if previous is not None and previous.observed_generation == resource.generation:
        return
    facts = readiness.Facts(
        generation=resource.generation,
        checks=previous.checks if previous else (),
        reconciling=f"Reconciling generation {resource.generation}.",
        paused=resource.paused,
    )
    await _report(deps, resource, facts, checks_out=previous.checks if previous else (), now=now)


async def reconcile(deps: Dependencies, resource: Resource, *, now: datetime.datetime | None = None) -> Result:
    """Run one full pass and report it; never raises for problems of the resource."""
    started = time.monotonic()
    now = now or datetime.datetime.now(datetime.UTC)
    known = frozenset(c.id for c in deps.catalog)
    try:
        desired = validate(resource, known)
    except errors.SpecInvalid as exc:
        facts = readiness.Facts(
            resource.generation, stall=readiness.Stall(exc.reason, exc.message), paused=resource.paused
        )
        built, written = await _report(deps, resource, facts, now=now)
        return Result(built, written, stalled=True)

    stall: readiness.Stall | None = None
    resolved: secrets.Secrets = secrets.Secrets({})
    missing: tuple[secrets.Missing, ...] = ()
    try:
        resolved, missing = await secrets.resolve(resource.namespace, desired, deps.cluster.read_secret)
        secrets.require(missing)
    except errors.PermanentError as exc:
        stall = readiness.Stall(exc.reason, exc.message)
    except errors.TransientError as exc:
        deps.observer.error(resource, "secrets")
        logger.warning("%s/%s: cannot read Secrets: %s", resource.namespace, resource.name, exc.message)
    run = session.PassSession(
        spec=desired,
        namespace=resource.namespace,
        name=resource.name,
        secrets=resolved,
        missing=missing,
        cluster=deps.cluster,
        clients=deps.clients_of(resource),
        provisioned_neo4j=registry.provisioned_names(report.parse(resource.status), "neo4j"),
    )

    managed = desired.management_policy == ManagementPolicy.FULL and not resource.paused
    outcome = provision.Outcome()
    if stall is None:
        outcome = await provision.run(deps.provisioners, run, apply=managed)
        for action in outcome.applied:
            if action.drift:
                await deps.cluster.post_event(
                    resource.ref, kind="Normal", reason="DriftCorrected", message=action.describe(), action="Provision"
                )
        stall = outcome.stall()

    audit_started = time.monotonic()
    audited = await audit.run(deps.catalog, run, today=now.date(), memory=deps.memory_of(resource))
    audit_seconds = time.monotonic() - audit_started
    for waiver in audited.expired_waivers:
        await deps.cluster.post_event(
            resource.ref,
            kind="Warning",
            reason="WaiverExpired",
            message=f"Waiver for {waiver.check} expired on {waiver.expires}; the check counts again.",
            action="Audit",
        )

    facts = readiness.Facts(
        generation=resource.generation,
        checks=audited.results,
        provisioning=outcome.summary(managed=managed) if stall is None or outcome.plans else None,
        stall=stall,
        reconciling=outcome.pending() if stall is None else None,
        paused=resource.paused,
    )
    built, written = await _report(
        deps,
        resource,
        facts,
        checks_out=audited.bounded(),
        plans=outcome.plans,
        preview=[a.describe() for a in outcome.preview],
        now=now,
    )
    deps.observer.pass_finished(resource, built, time.monotonic() - started, audit_seconds)
    return Result(built, written, stalled=stall is not None)


async def forget(deps: Dependencies, uid: str) -> None:
    """The resource is gone: close its clients."""
    deps.memory.pop(uid, None)
    cache = deps.clients.pop(uid, None)
    if cache is not None:
        await cache.close()


async def teardown(deps: Dependencies, resource: Resource, *, now: datetime.datetime) -> provision.Outcome:
    """``deletionPolicy: Delete``: remove provisioned objects, never data; report what was kept.

    Raises ``errors.TransientError`` while a system is unreachable, so the
    deletion is retried; anything permanent is reported as a Warning Event and
    the finalizer is released, so a deletion never blocks forever.
    """
    try:
        desired = validate(resource, frozenset(c.id for c in deps.catalog))
        resolved, missing = await secrets.resolve(resource.namespace, desired, deps.cluster.read_secret)
    except errors.PermanentError as exc:
        await deps.cluster.post_event(
            resource.ref,
            kind="Warning",
            reason=exc.reason,
            message=f"Provisioned objects kept: {exc.message}",
            action="Delete",
        )
        return provision.Outcome()
    run = session.PassSession(
        desired, resource.namespace, resource.name, resolved, missing, deps.cluster, deps.clients_of(resource)
    )
    outcome = await provision.teardown(deps.provisioners, run)
    for result in outcome.teardown:
        for kept in result.kept:
            await deps.cluster.post_event(
                resource.ref, kind="Warning", reason="ObjectKept", message=f"{result.system}: {kept}", action="Delete"
            )
        if result.removed:
            await deps.cluster.post_event(
                resource.ref,
                kind="Normal",
                reason="ObjectsRemoved",
                message=f"{result.system}: removed {', '.join(result.removed)}",
                action="Delete",
            )
    transient = [f for f in outcome.failures if not f.permanent]
    if transient:
        raise errors.DependencyUnavailable(f"{transient[0].system}: {transient[0].message}")
    for failure in outcome.failures:
        await deps.cluster.post_event(
            resource.ref,
            kind="Warning",
            reason=failure.reason,
            message=f"{failure.system}: {failure.message}",
            action="Delete",
        )
    await forget(deps, resource.uid)
    return outcome
