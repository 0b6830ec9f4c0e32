"""kopf wiring: every decorator of the operator lives here, and each handler is thin.

- ``startup``: kopf settings (progress and diff-base in annotations, our own
  finalizer name, quiet event posting, watch and request timeouts, peering
  timing), the Kubernetes gateway with its own threads, the bounded pool boto3
  runs on, the Event poster (a pass never waits for its Events), metrics and
  health server, and the scheduler, all kept in ``memo``.
- ``on.event``: every watch event of a PayScopeDeployment goes to the
  scheduler, which decides when to reconcile (no finalizer needed).
- ``on.delete`` only when ``deletionPolicy: Delete``: kopf then adds a
  finalizer, and this handler removes the provisioned objects.
- ``cleanup``: stop the scheduler, close every client.

Shards (``--shard N --total-shards M``): both handlers carry a ``when=`` filter, so a
resource another shard owns (``reconcile.shards``) never reaches the scheduler: no
pass, no status write, no Event, no metric series, no finalizer. The watch check
compares only owned resources.

Timeouts, because the API server can freeze or restart under us: a watch
request asks the server to end it after ``watch_timeout`` seconds and the
client gives up ``WATCH_GRACE`` later, so a silent stream (a frozen server, a
half-open connection a load balancer forgot) is noticed within a minute; kopf
retries a failed request every few seconds (``API_BACKOFFS``) for about ten
minutes, so the watch is back within seconds of the server, and a restart of
the API server behind a load balancer (5xx meanwhile) does not stop the
operator. With peering, each peer's record lives ``peering_lifetime`` seconds
and is renewed 5-10 s before it lapses: a standby takes over that long after
the active peer dies.

Handlers map outcomes to kopf's errors: transient faults to
``kopf.TemporaryError(delay=...)``, spec and permission faults to
``kopf.PermanentError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import kopf

from payscope_operator import errors, logs, telemetry
from payscope_operator.egress import policy as egress_policy
from payscope_operator.kube import gateway
from payscope_operator.reconcile import connections, events, reconciler, scheduler, shards, systems

logger = logging.getLogger(__name__)
GROUP, VERSION, PLURAL = gateway.GROUP, gateway.VERSION, gateway.PLURAL
FINALIZER = "payscope.io/finalizer"
ANNOTATION_PREFIX = "payscope.io"

operator_registry = kopf.OperatorRegistry()
WATCH_GRACE = 10  # seconds the client waits beyond the server's own end of a watch request
CONNECT_TIMEOUT = 10.0  # seconds for a connection (TLS included) to the API server
REQUEST_TIMEOUT = 30.0  # seconds for one of kopf's short requests (patches, lists, peering)
API_BACKOFFS = (0.5, 1, 1, 2, 2, *(3,) * 200)
"""kopf's retries of a failed request: never long asleep, and for about ten minutes before kopf gives up.

kopf stops the whole operator when its watch request exhausts these retries on a
5xx (what a load balancer answers while the API server restarts); ten minutes of
an API server away is worth waiting for, and beyond that a restart of the Pod is."""


@dataclass
class Config:
    """How this operator instance runs (flags of ``payscope-operator run``)."""

    namespaces: tuple[str, ...] = ()  # empty: every namespace
    metrics_host: str = "0.0.0.0"  # noqa: S104 - the Pod's metrics port must be reachable by Prometheus
    metrics_port: int = 8080
    peering: str | None = None  # a KopfPeering name for HA; None: standalone
    priority: int = 0  # peering priority: the highest-priority live peer works, the others wait
    concurrency: int = 4
    kubeconfig: str | None = None
    watch_timeout: int = 50  # seconds the API server keeps one watch request open
    pass_deadline: float = 60.0  # a pass is cancelled after this long (at least 3 probe timeouts)
    peering_lifetime: int = 15  # seconds a peer's record stays valid: the takeover time after a crash
    s3_threads: int = 16  # boto3 calls in flight at once, over every resource
    watch_check_interval: float = 60.0  # how often the watch is compared with the API server
    watch_stale_after: float = 120.0  # /healthz fails once the watch has missed changes for longer than this
    allowed_egress: str = ""  # PAYSCOPE_ALLOWED_EGRESS: CIDRs, host names, *.domain; empty: no allowlist
    allow_ambient_credentials: bool = False  # sections without credentials act as the operator's own identity
    max_response_bytes: int = egress_policy.DEFAULT_MAX_RESPONSE_BYTES
    shard: shards.Shard = field(default_factory=shards.Shard)  # which resources this process owns


@dataclass
class Memo:
    """What handlers share: created once at startup, closed at cleanup."""

    config: Config
    cluster: gateway.Gateway | None = None
    metrics: telemetry.Metrics = field(default_factory=telemetry.Metrics)
    scheduler: scheduler.Scheduler | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    runner: Any = None
    s3_threads: ThreadPoolExecutor | None = None
    postgres_pool: connections.Pool = field(default_factory=connections.Pool)
    event_poster: events.Poster | None = None


class LeanDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's diff base, built without first deep-copying what it throws away.

    kopf builds the "essence" of every watch event's body (the on.delete handler makes it
    look for changes) by deep-copying the whole body and then deleting ``status`` and the
    metadata but labels and annotations. Our status (every check) and the managed fields
    are most of a body: copying them cost more CPU than a pass's own work on a new
    resource. The essence is the same; only the copy is smaller.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        if extra_fields:
            return super().build(body=body, extra_fields=extra_fields)
        lean: dict[str, Any] = {key: value for key, value in body.items() if key != "status"}
        meta = lean.get("metadata")
        if isinstance(meta, dict):
            lean["metadata"] = {k: v for k, v in meta.items() if k in ("labels", "annotations")}
        return super().build(body=kopf.Body(lean), extra_fields=extra_fields)  # type: ignore[arg-type]


def _memo(memo: Any) -> Memo:
    found = memo.get("payscope") if hasattr(memo, "get") else None
    if not isinstance(found, Memo):
        raise kopf.PermanentError("operator not started through payscope_operator.main.run")
    return found


def resource_of(body: kopf.Body) -> reconciler.Resource:
    meta = body.get("metadata", {})
    return reconciler.Resource(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 0),
        resource_version=meta.get("resourceVersion"),
        annotations=dict(meta.get("annotations") or {}),
        spec=dict(body.get("spec") or {}),
        status=dict(body.get("status") or {}) or None,
    )


def _owned(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    """Whether this process's shard owns the resource (always, with one shard)."""
    uid = str(body.get("metadata", {}).get("uid", ""))
    return _memo(memo).config.shard.owns(uid)


def _wants_delete(spec: kopf.Spec, body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    return bool(spec.get("deletionPolicy") == "Delete") and _owned(body, memo)


@kopf.on.login(registry=operator_registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster ServiceAccount credentials, else the kubeconfig ($KUBECONFIG)."""
    info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
    return info


@kopf.on.startup(registry=operator_registry)
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    state = _memo(memo)
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = LeanDiffBase(prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.WARNING  # our own Events say what changed; no per-handler chatter
    settings.watching.server_timeout = state.config.watch_timeout
    settings.watching.client_timeout = state.config.watch_timeout + WATCH_GRACE
    settings.watching.connect_timeout = CONNECT_TIMEOUT
    settings.watching.inactivity_timeout = state.config.watch_timeout + WATCH_GRACE
    settings.networking.connect_timeout = CONNECT_TIMEOUT
    settings.networking.request_timeout = REQUEST_TIMEOUT
    settings.networking.error_backoffs = API_BACKOFFS
    settings.peering.lifetime = state.config.peering_lifetime
    settings.scanning.disabled = True  # only our own CRD is served; no CRD or namespace scanning (no RBAC for it)
    settings.peering.standalone = state.config.peering is None
    if state.config.peering is not None:
        settings.peering.name = state.config.peering
    state.cluster = gateway.Gateway(gateway.load_api_client(state.config.kubeconfig))
    state.s3_threads = ThreadPoolExecutor(max_workers=state.config.s3_threads, thread_name_prefix="s3")
    state.event_poster = events.Poster(state.cluster)
    deps = reconciler.Dependencies(
        cluster=state.cluster,
        observer=state.metrics,
        provisioners=systems.PROVISIONERS,
        egress=egress_of(state.config, state.cluster.api_server()),
        ambient_credentials=state.config.allow_ambient_credentials,
        s3_threads=state.s3_threads,
        postgres_pool=state.postgres_pool,
        event_poster=state.event_poster,
    )
    logger.info(
        "egress policy: %s; ambient credentials %s; %s",
        deps.egress.describe(),
        "allowed" if deps.ambient_credentials else "not lent",
        state.config.shard.describe(),
    )
    state.metrics.set_shard(state.config.shard.index, state.config.shard.total)
    policy = scheduler.Policy(deadline=state.config.pass_deadline)
    state.scheduler = scheduler.Scheduler(deps, concurrency=state.config.concurrency, policy=policy)
    sched = state.scheduler
    health = telemetry.Health(max_stale=state.config.watch_stale_after)
    state.runner = await telemetry.serve(
        telemetry.make_app(state.metrics, health), state.config.metrics_host, state.config.metrics_port
    )
    state.tasks.append(asyncio.create_task(sched.run(state.stop)))
    state.tasks.append(asyncio.create_task(_check_watch(state, health)))


def egress_of(config: Config, api_server: tuple[str, int]) -> egress_policy.Policy:
    """The egress policy of ``config``, denying the API server's resolved addresses on its port."""
    host, port = api_server
    try:
        addresses = egress_policy.resolve_now(host, port) if host else ()
    except OSError:
        addresses = ()
        logger.warning("cannot resolve the API server's host %s: the egress policy cannot deny it by address", host)
    return egress_policy.Policy.from_settings(
        config.allowed_egress,
        api_server=[(address, port) for address in addresses],
        max_response_bytes=config.max_response_bytes,
    )


CATCH_UP_EVERY = 2.0
"""Seconds between two lists while the watch may be silent after an outage (see :func:`_check_watch`)."""
CATCH_UP_FOR = 60.0
"""How long after an outage the operator keeps listing that often: until a silent watch has surely been renewed."""


async def _check_watch(state: Memo, health: telemetry.Health) -> None:
    """Every ``watch_check_interval``, compare what the API server holds with what the watch delivered (a read).

    A change the watch did not deliver is acted on from the list itself (:func:`_catch_up`). After the
    API server could not be listed (frozen, restarted, behind a load balancer that lost the stream), a
    watch renewed during the outage may stay silent until kopf gives it up (a minute); so for
    :data:`CATCH_UP_FOR` seconds after the first successful list the check runs every
    :data:`CATCH_UP_EVERY` seconds, and a spec changed just after the outage is reconciled within seconds.
    """
    fast_until = 0.0
    while not state.stop.is_set():
        now = time.monotonic()
        every = CATCH_UP_EVERY if fast_until == math.inf or now < fast_until else state.config.watch_check_interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.stop.wait(), timeout=every)
        if state.stop.is_set():
            return
        if not await _check_once(state, health):
            fast_until = math.inf  # until the API server answers again
        elif fast_until == math.inf:
            fast_until = time.monotonic() + CATCH_UP_FOR


async def _check_once(state: Memo, health: telemetry.Health) -> bool:
    """One comparison (its list is dropped on return, not kept until the next); False when the list failed."""
    assert state.cluster is not None
    assert state.scheduler is not None
    try:
        listed = await state.cluster.list_metadata(state.config.namespaces)
    except errors.PayScopeError as exc:
        logger.warning("cannot list PayScopeDeployments to check the watch: %s", exc.message)
        return False
    owned = [meta for meta in listed if state.config.shard.owns(str(meta.get("uid", "")))]
    await _catch_up(state.scheduler, owned, state.cluster.read_resource)
    server = {str(meta.get("uid", "")): str(meta.get("resourceVersion", "")) for meta in owned}
    seen = {uid: entry.seen_version for uid, entry in state.scheduler.entries.items()}
    health.compare(server, seen)
    state.metrics.watch_stale.set(len(health.stale))
    if health.stale:
        logger.warning("the watch lags behind the API server for %d resource(s)", len(health.stale))
    return True


Reader = Callable[[str, str], Awaitable[dict[str, Any] | None]]


async def _catch_up(sched: scheduler.Scheduler, listed: list[dict[str, Any]], read: Reader) -> None:
    """Hand the scheduler every listed resource whose spec (generation) the watch has not delivered yet.

    ``listed`` holds metadata only; such a resource is read whole (a read each, rare: after an outage).
    """
    for meta in listed:
        entry = sched.entries.get(str(meta.get("uid", "")))
        if entry is not None and entry.resource.generation >= int(meta.get("generation") or 0):
            continue
        try:
            item = await read(str(meta.get("namespace", "")), str(meta.get("name", "")))
        except errors.PayScopeError as exc:
            logger.warning("cannot read %s/%s to catch up: %s", meta.get("namespace"), meta.get("name"), exc.message)
            continue
        if item is None or item.get("metadata", {}).get("uid") != meta.get("uid"):
            continue  # gone meanwhile, or deleted and created again: the watch will deliver it
        resource = resource_of(kopf.Body(item))  # type: ignore[arg-type]
        logger.info("%s/%s: generation %d found by listing, not yet by the watch", resource.namespace,
                    resource.name, resource.generation)  # fmt: skip
        deleting = item.get("metadata", {}).get("deletionTimestamp") is not None
        sched.observe(resource, deleting=deleting, listed=True)


@kopf.on.cleanup(registry=operator_registry)
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    state = _memo(memo)
    state.stop.set()
    for task in state.tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)
    if state.scheduler is not None:
        for cache in state.scheduler.deps.clients.values():
            await cache.close()
    if state.event_poster is not None:
        await state.event_poster.close()
    await state.postgres_pool.close()
    if state.runner is not None:
        await state.runner.cleanup()
    if state.cluster is not None:
        state.cluster.close()
    if state.s3_threads is not None:
        state.s3_threads.shutdown(wait=False, cancel_futures=True)


@kopf.on.event(GROUP, VERSION, PLURAL, when=_owned, registry=operator_registry)
async def on_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    state = _memo(memo)
    if state.scheduler is None:
        return
    resource = resource_of(body)
    deleting = body.get("metadata", {}).get("deletionTimestamp") is not None
    deleted = event.get("type") == "DELETED"
    state.scheduler.observe(resource, deleted=deleted, deleting=deleting)  # DELETED: the scheduler forgets it
    state.metrics.last_event.set_to_current_time()


@kopf.on.delete(GROUP, VERSION, PLURAL, when=_wants_delete, registry=operator_registry)
async def on_delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """deletionPolicy Delete: remove what we provisioned (never data), then let kopf release the finalizer."""
    state = _memo(memo)
    if state.scheduler is None:
        raise kopf.TemporaryError("operator still starting", delay=5)
    resource = resource_of(body)
    try:
        with logs.bind(namespace=resource.namespace, name=resource.name, pass_id=logs.new_pass_id()):
            await reconciler.teardown(state.scheduler.deps, resource, now=datetime.datetime.now(datetime.UTC))
    except errors.TransientError as exc:
        raise kopf.TemporaryError(exc.message, delay=exc.delay) from None


async def run(config: Config) -> None:
    """Run the operator until it is told to stop."""
    memo = kopf.Memo()
    memo["payscope"] = Memo(config=config)
    await kopf.operator(
        registry=operator_registry,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        standalone=config.peering is None,
        peering_name=config.peering,
        priority=config.priority,
        memo=memo,
    )
