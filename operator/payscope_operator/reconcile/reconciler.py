"""One reconcile pass over one resource: validate, resolve, plan, provision, audit, report.

``reconcile`` is the entry point the scheduler calls. On a new generation it
first says so (Ready False, Reconciling). It never raises for a problem of the
resource: an invalid spec, a missing Secret, a permission problem, an endpoint
outside the operator's egress policy or a section that would need the operator's
own credentials becomes ``Stalled`` with a reason naming the field or the object
(``EgressDenied``, ``CredentialsRequired`` and ``OwnedByAnotherResource`` included),
a dependency that is down turns its checks Unknown. Every client of the pass acts
for the resource's uid and within the operator's reach (``Dependencies.egress``,
``Dependencies.ambient_credentials``). Everything it reports goes through one
``status_writer.StatusWriter`` per pass: the stored status is parsed once, the
status is written only when it differs from what the API server holds, a
failed write is retried alone (never the probes), and Events follow the write.
Knows nothing of kopf.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from payscope_operator import errors
from payscope_operator.api import spec, status
from payscope_operator.audit import catalog, runner
from payscope_operator.backends import base
from payscope_operator.backends.s3 import client as s3_client
from payscope_operator.egress import policy
from payscope_operator.kube import gateway, pods, policies, workloads
from payscope_operator.reconcile import (
    connections,
    events,
    object_backoff,
    provision,
    reach,
    readiness,
    report,
    secrets,
    session,
    status_writer,
)

logger = logging.getLogger(__name__)
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


class Cluster(status_writer.Target, Protocol):
    """What a pass needs from Kubernetes (``kube.gateway.Gateway``): the writer's calls and the audit's reads."""

    async def read_secret(self, namespace: str, name: str) -> Any: ...

    async def read_deployment(self, namespace: str, name: str) -> workloads.DeploymentFacts | None: ...

    async def list_disruption_budgets(self, namespace: str) -> tuple[policies.DisruptionBudgetFacts, ...]: ...

    async def list_network_policies(self, namespace: str) -> tuple[policies.NetworkPolicyFacts, ...]: ...

    async def list_pods(self, namespace: str, selector: str) -> tuple[pods.PodFacts, ...]: ...

    async def read_pod_log(self, namespace: str, pod: str, container: str) -> str | None: ...


class Observer(Protocol):
    """Where a pass reports what it measured (``telemetry`` in production)."""

    def pass_finished(
        self, resource: Resource, result: status.PayScopeStatus, seconds: float, audit_seconds: float
    ) -> None: ...

    def transitions(self, resource: Resource, changed: int) -> None: ...

    def provisioned(self, resource: Resource, applied: Sequence[base.Action]) -> None: ...

    def error(self, resource: Resource, stage: str) -> None: ...

    def forget(self, resource: Resource) -> None: ...


@dataclass
class Dependencies:
    """What the reconciler is wired with."""

    cluster: Cluster
    observer: Observer
    provisioners: Sequence[provision.Factory] = ()
    catalog: runner.Catalog = catalog.CATALOG
    clients: dict[str, session.ClientCache] = field(default_factory=dict)
    memory: dict[str, runner.Memory] = field(default_factory=dict)
    backoff: status_writer.Backoff = field(default_factory=status_writer.Backoff)
    s3_threads: Executor | None = None
    """The bounded pool boto3 calls run on (None: the loop's default pool, as in the CLI)."""
    egress: policy.Policy = field(default_factory=policy.Policy.from_environment)
    """The egress policy every client of every resource passes (``--allowed-egress``; default: the environment's)."""
    ambient_credentials: bool = False
    """``--allow-ambient-credentials``: a section without credentials acts as the operator's own identity."""
    lock_backoff: dict[str, object_backoff.Memory] = field(default_factory=dict)
    """Per resource uid: its objects waiting for a lock, retried with backoff (``object_backoff``)."""
    postgres_pool: connections.Pool | None = None
    """Postgres connections shared per address across passes (None: every block opens its own)."""
    event_poster: events.Poster | None = None
    """Posts a pass's Events in the background (None: inline, as the CLI and tests do)."""

    def pass_session(
        self,
        resource: Resource,
        desired: spec.PayScopeSpec,
        resolved: secrets.Secrets,
        missing: tuple[secrets.Missing, ...] = (),
    ) -> session.PassSession:
        """The session of one pass over ``resource``: its clients, owner and reach."""
        return session.PassSession(
            spec=desired,
            namespace=resource.namespace,
            name=resource.name,
            secrets=resolved,
            missing=missing,
            cluster=self.cluster,
            clients=self.clients_of(resource),
            uid=resource.uid,
            egress=self.egress,
            ambient_credentials=self.ambient_credentials,
            lock_backoff=self.lock_backoff.setdefault(resource.uid, object_backoff.Memory()).begin(resource.generation),
            postgres_pool=self.postgres_pool,
        )

    def clients_of(self, resource: Resource) -> session.ClientCache:
        return self.clients.setdefault(resource.uid, session.ClientCache())

    def memory_of(self, resource: Resource) -> runner.Memory:
        """Gatherings kept between passes (see ``Source.reuse_for`` in ``audit.registry``)."""
        return self.memory.setdefault(resource.uid, {})

    def writer_for(self, resource: Resource, *, background: bool = True) -> status_writer.StatusWriter:
        """The status writer of one pass over ``resource`` (it parses the stored status, once).

        ``background``: its Events go through ``event_poster`` when there is one; a deletion's are posted inline,
        before the finalizer is released (forgetting the resource drops what waits in the background).
        """
        poster = self.event_poster if background else None
        return status_writer.StatusWriter(
            self.cluster, resource.ref, resource.status, backoff=self.backoff, poster=poster
        )


@dataclass(frozen=True)
class Result:
    """What a pass produced: the status it computed, whether it wrote it, and what the server now holds."""

    status: status.PayScopeStatus
    written: bool
    stalled: bool
    resource_version: str | None = None
    """The resourceVersion after the pass's writes (what ``stored`` is the status of)."""
    stored: Mapping[str, Any] | None = None
    """The status as the API server holds it after the pass, when known."""
    write_failure: str | None = None
    gone: bool = False
    """The API server no longer has the resource (404 on the write): forget it."""
    awaiting: Mapping[str, frozenset[str]] | None = None
    """Stalled on Secrets: their names and the keys it waits for (empty: the Secret must become readable)."""


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
        if waiver.prefix is not None and not any(waiver.covers(known) for known in known_checks):
            raise errors.SpecInvalid(f"spec.audit.waivers[{index}].check: no check id starts with {waiver.prefix!r}")
        if waiver.prefix is None and waiver.check not in known_checks and waiver.check not in catalog.RETIRED:
            raise errors.SpecInvalid(f"spec.audit.waivers[{index}].check: unknown check id {waiver.check!r}")
    return desired


async def _publish(
    deps: Dependencies,
    resource: Resource,
    writer: status_writer.StatusWriter,
    draft: report.Draft,
    now: datetime.datetime,
    *,
    placeholder: bool = False,
) -> status_writer.Published:
    published = await writer.publish(draft, now=now, placeholder=placeholder)
    deps.observer.transitions(resource, published.transitions)
    if published.failure is not None:
        deps.observer.error(resource, "status")
    return published


def _result(
    writer: status_writer.StatusWriter,
    published: status_writer.Published,
    *,
    stalled: bool,
    awaiting: Mapping[str, frozenset[str]] | None = None,
) -> Result:
    return Result(
        published.status,
        published.written,
        stalled,
        resource_version=writer.resource_version,
        stored=writer.stored,
        write_failure=published.failure,
        gone=published.gone,
        awaiting=awaiting or None,
    )


async def _announce(
    deps: Dependencies, resource: Resource, writer: status_writer.StatusWriter, now: datetime.datetime
) -> status_writer.Published | None:
    """On a new generation, say so at once: Ready False (Reconciling) for kstatus and kubectl wait."""
    previous = writer.previous
    if previous is not None and previous.observed_generation == resource.generation:
        return None
    kept = previous.checks if previous else ()
    facts = readiness.Facts(
        generation=resource.generation,
        checks=kept,
        reconciling=f"Reconciling generation {resource.generation}.",
        paused=resource.paused,
    )
    draft = report.Draft(facts, checks=kept)
    return await _publish(deps, resource, writer, draft, now, placeholder=previous is None)


async def reconcile(deps: Dependencies, resource: Resource, *, now: datetime.datetime | None = None) -> Result:
    """Run one full pass and report it; never raises for problems of the resource."""
    with s3_client.using(deps.s3_threads):
        return await _reconcile(deps, resource, now=now)


async def _reconcile(deps: Dependencies, resource: Resource, *, now: datetime.datetime | None) -> Result:
    started = time.monotonic()
    now = now or datetime.datetime.now(datetime.UTC)
    writer = deps.writer_for(resource)
    previous = writer.previous  # before the announcement replaces it: the objects it lists as provisioned
    announced = await _announce(deps, resource, writer, now)
    if announced is not None and announced.gone:
        return _result(writer, announced, stalled=False)  # deleted meanwhile: nothing to probe for
    known = frozenset(c.id for c in deps.catalog)
    try:
        desired = validate(resource, known)
    except errors.SpecInvalid as exc:
        facts = readiness.Facts(
            resource.generation, stall=readiness.Stall(exc.reason, exc.message), paused=resource.paused
        )
        return _result(writer, await _publish(deps, resource, writer, report.Draft(facts), now), stalled=True)

    stall: readiness.Stall | None = None
    awaiting: dict[str, frozenset[str]] | None = None  # Secrets the scheduler re-reads while Stalled on them
    resolved: secrets.Secrets = secrets.Secrets({})
    missing: tuple[secrets.Missing, ...] = ()
    try:
        resolved, missing = await secrets.resolve(resource.namespace, desired, deps.cluster.read_secret)
        secrets.require(missing)
    except errors.SecretUnreadable as exc:
        stall, awaiting = readiness.Stall(exc.reason, exc.message), {exc.secret: frozenset()}
    except errors.PermanentError as exc:
        stall = readiness.Stall(exc.reason, exc.message)
        awaiting = secrets.waiting_for(missing) if isinstance(exc, errors.SecretNotFound) else None
    except errors.TransientError as exc:
        deps.observer.error(resource, "secrets")
        logger.warning("%s/%s: cannot read Secrets: %s", resource.namespace, resource.name, exc.message)
    run = deps.pass_session(resource, desired, resolved, missing)
    run.observations = provision.ledger(deps.provisioners, run, previous)  # provisioning and the audit share it

    managed = desired.management_policy == ManagementPolicy.FULL and not resource.paused
    outcome = provision.Outcome()
    if stall is None:
        outcome = await provision.run(deps.provisioners, run, apply=managed)
        deps.observer.provisioned(resource, outcome.applied)
        for action in outcome.applied:
            if action.drift:
                writer.note("Normal", "DriftCorrected", action.describe(), action="Provision")
        stall = outcome.stall()

    audit_started = time.monotonic()
    try:
        audited = await runner.run(deps.catalog, run, today=now.date(), memory=deps.memory_of(resource))
    finally:
        await run.observations.close()
    audit_seconds = time.monotonic() - audit_started
    if stall is None and (reached := reach.stalled_by(audited.results)) is not None:
        stall = readiness.Stall(*reached)  # an endpoint denied or credentials lent: the resource must change
    for waiver in audited.expired_waivers:
        writer.note(
            "Warning",
            "WaiverExpired",
            f"Waiver for {waiver.check} expired on {waiver.expires}; what it waived counts again.",
            action="Audit",
        )

    facts = readiness.Facts(
        generation=resource.generation,
        checks=audited.results,
        provisioning=outcome.summary(managed=managed) if stall is None or outcome.plans else None,
        stall=stall,
        reconciling=outcome.pending() if stall is None else None,
        paused=resource.paused,
        waived_dimensions=audited.waived_dimensions,
    )
    preview = [a.describe() for a in outcome.preview] + outcome.foreign()
    draft = report.Draft(facts, checks=audited.bounded(), plans=outcome.plans, preview=preview)
    published = await _publish(deps, resource, writer, draft, now)
    deps.observer.pass_finished(resource, published.status, time.monotonic() - started, audit_seconds)
    return _result(writer, published, stalled=stall is not None, awaiting=awaiting)


async def forget(deps: Dependencies, resource: Resource) -> None:
    """The resource is gone: close its clients, drop what was kept for it, remove its metric series."""
    deps.memory.pop(resource.uid, None)
    deps.lock_backoff.pop(resource.uid, None)
    deps.observer.forget(resource)
    if deps.event_poster is not None:
        deps.event_poster.forget(resource.uid)
    cache = deps.clients.pop(resource.uid, None)
    if cache is not None:
        await cache.close()


async def teardown(deps: Dependencies, resource: Resource, *, now: datetime.datetime) -> provision.Outcome:
    """``deletionPolicy: Delete``: remove provisioned objects, never data; report what was kept.

    Raises ``errors.TransientError`` while a system is unreachable, so the
    deletion is retried; anything permanent is reported as a Warning Event and
    the finalizer is released, so a deletion never blocks forever.
    """
    with s3_client.using(deps.s3_threads):
        return await _teardown(deps, resource)


async def _teardown(deps: Dependencies, resource: Resource) -> provision.Outcome:
    writer = deps.writer_for(resource, background=False)  # no status is written while deleting: only its Events
    try:
        desired = validate(resource, frozenset(c.id for c in deps.catalog))
        resolved, missing = await secrets.resolve(resource.namespace, desired, deps.cluster.read_secret)
    except errors.PermanentError as exc:
        writer.note("Warning", exc.reason, f"Provisioned objects kept: {exc.message}", action="Delete")
        await writer.flush()
        return provision.Outcome()
    outcome = await provision.teardown(deps.provisioners, deps.pass_session(resource, desired, resolved, missing))
    for result in outcome.teardown:
        for kept in result.kept:
            writer.note("Warning", "ObjectKept", f"{result.system}: {kept}", action="Delete")
        if result.removed:
            writer.note(
                "Normal", "ObjectsRemoved", f"{result.system}: removed {', '.join(result.removed)}", action="Delete"
            )
    transient = [f for f in outcome.failures if not f.permanent]
    if transient:
        await writer.flush()
        raise errors.DependencyUnavailable(f"{transient[0].system}: {transient[0].message}")
    for failure in outcome.failures:
        writer.note("Warning", failure.reason, f"{failure.system}: {failure.message}", action="Delete")
    await writer.flush()
    await forget(deps, resource)
    return outcome
