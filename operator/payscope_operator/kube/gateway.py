"""Reads and writes against the Kubernetes API: Secrets, Deployments and their guards, pods, logs, status, Events.

The official client is synchronous; every call runs in a worker thread with an
explicit request timeout, so the event loop never blocks. The threads are the
gateway's own (a bounded pool, ``KUBE_THREADS``), never the event loop's
default executor: blocking store clients (boto3) and DNS lookups use other
pools, so a hundred S3 calls hanging on a dead endpoint cannot starve the
Kubernetes calls of other resources, nor the reverse. Errors map onto the
operator's tree: 404 is "absent" (``None``), 403 is ``PermissionDenied``, 409 is
``Conflict`` (a resourceVersion precondition failed), everything else (429, 5xx,
timeouts, refused connections) is ``DependencyUnavailable``. Secret values are
returned wrapped in ``pydantic.SecretStr`` so that no repr, log line or
exception shows them.

The status is written as a JSON merge patch of the status subresource that
carries ``metadata.resourceVersion``: the API server applies it only if the
object still has that version and answers 409 otherwise (the optimistic lock
of controller-runtime's ``MergeFromWithOptimisticLock``).

What it must not do: decide anything. Callers decide what to read and write.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import datetime
import json
import logging
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from pydantic import SecretStr
from urllib3.exceptions import HTTPError as TransportError

from payscope_operator import errors
from payscope_operator.kube import pods, policies, workloads

logger = logging.getLogger(__name__)

GROUP = "payscope.io"
VERSION = "v1alpha1"
PLURAL = "payscopedeployments"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
"""The Accept header that makes a list answer with each object's metadata only."""
KIND = "PayScopeDeployment"
REQUEST_TIMEOUT = 10.0
KUBE_THREADS = 8
"""Kubernetes calls in flight at once (the client's urllib3 pool holds 5 per core, at least 10 on 2 cores)."""


@dataclass(frozen=True)
class ObjectRef:
    """The PayScopeDeployment an Event is about."""

    namespace: str
    name: str
    uid: str
    resource_version: str | None = None


@dataclass(frozen=True)
class StoredStatus:
    """A PayScopeDeployment's status as the API server holds it, at one resourceVersion."""

    resource_version: str
    status: Mapping[str, Any] | None


def load_api_client(kubeconfig: str | None = None) -> k8s.ApiClient:
    """In-cluster credentials when running in a Pod, else the kubeconfig.

    Each call is one attempt: urllib3 would otherwise retry a timed-out request
    three times on its own (four request timeouts for one call), while the
    callers already retry what is worth retrying, with backoff.
    """
    configuration = k8s.Configuration()
    configuration.retries = 0
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
            return k8s.ApiClient(configuration)
        except k8s_config.ConfigException:
            pass
    k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return k8s.ApiClient(configuration)


def _retry_after(exc: ApiException) -> float | None:
    value = (exc.headers or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: ignore it, the caller's backoff applies


def _not_found_name(exc: ApiException) -> str | None:
    """The name a 404's Status body says was not found (the pod, or the node a log request needed)."""
    try:
        details = json.loads(exc.body or "{}").get("details") or {}
    except (ValueError, AttributeError):
        return None
    name = details.get("name") if isinstance(details, dict) else None
    return name if isinstance(name, str) else None


def _map(exc: ApiException, what: str) -> errors.PayScopeError:
    if exc.status == 403:
        return errors.PermissionDenied(f"the operator may not {what} (HTTP 403)")
    if exc.status == 401:
        return errors.PermissionDenied(f"the operator's credentials were refused to {what} (HTTP 401)")
    if exc.status == 409:
        return errors.Conflict(f"could not {what}: the object changed since it was read (HTTP 409)", delay=0.0)
    message = f"Kubernetes API failed to {what} (HTTP {exc.status})"
    if exc.status == 429:
        return errors.RateLimited(message, delay=_retry_after(exc) or 1.0)
    return errors.DependencyUnavailable(message)


class Gateway:
    """Kubernetes reads and writes a reconcile pass needs, all asynchronous."""

    def __init__(self, api: k8s.ApiClient, *, timeout: float = REQUEST_TIMEOUT, threads: int = KUBE_THREADS) -> None:
        self._api = api
        self.timeout = timeout
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube-api")
        self._core = k8s.CoreV1Api(api)
        self._apps = k8s.AppsV1Api(api)
        self._policy = k8s.PolicyV1Api(api)
        self._networking = k8s.NetworkingV1Api(api)
        self._custom = k8s.CustomObjectsApi(api)
        self.writes = 0  # status patches and events sent; read by tests and metrics

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._api.close()

    async def _run(self, call: Callable[[], Any]) -> Any:
        """One blocking client call on the gateway's own threads."""
        context = contextvars.copy_context()  # as asyncio.to_thread does: log lines keep the pass's context
        return await asyncio.get_running_loop().run_in_executor(self._threads, context.run, call)

    def api_server(self) -> tuple[str, int]:
        """The API server's host and port as this client reaches it (the egress policy denies them to specs)."""
        url = urllib.parse.urlsplit(str(self._api.configuration.host))
        return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)

    async def _call(self, call: Callable[[], Any], what: str) -> Any | None:
        """Run one client call in a thread; None on 404, our errors for everything else."""
        try:
            return await self._run(call)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _map(exc, what) from None
        except (OSError, TransportError) as exc:  # refused, reset, timed out (urllib3 raises its own types)
            raise errors.DependencyUnavailable(f"Kubernetes API unreachable: {type(exc).__name__}") from None

    async def read_secret(self, namespace: str, name: str) -> dict[str, SecretStr] | None:
        """The Secret's decoded data, or None when it does not exist."""
        secret = await self._call(
            lambda: self._core.read_namespaced_secret(name, namespace, _request_timeout=self.timeout),
            f"read Secret {namespace}/{name}",
        )
        if secret is None:
            return None
        data: Mapping[str, str] = secret.data or {}
        decoded = {key: SecretStr(base64.b64decode(value).decode("utf-8", "replace")) for key, value in data.items()}
        for key, value in (secret.string_data or {}).items():
            decoded[key] = SecretStr(value)
        return decoded

    async def read_deployment(self, namespace: str, name: str) -> workloads.DeploymentFacts | None:
        """What the audit needs of a Deployment, or None when it does not exist."""
        deployment = await self._call(
            lambda: self._apps.read_namespaced_deployment(name, namespace, _request_timeout=self.timeout),
            f"read Deployment {namespace}/{name}",
        )
        return None if deployment is None else workloads.facts_of(deployment)

    async def list_disruption_budgets(self, namespace: str) -> tuple[policies.DisruptionBudgetFacts, ...]:
        """Every PodDisruptionBudget of the namespace (the audit matches their selectors to the api's pods)."""
        found = await self._call(
            lambda: self._policy.list_namespaced_pod_disruption_budget(namespace, _request_timeout=self.timeout),
            f"list PodDisruptionBudgets in {namespace}",
        )
        return tuple(policies.budget_facts(b) for b in (found.items if found is not None else ()))

    async def list_network_policies(self, namespace: str) -> tuple[policies.NetworkPolicyFacts, ...]:
        """Every NetworkPolicy of the namespace (the audit matches their pod selectors to each Deployment's pods)."""
        found = await self._call(
            lambda: self._networking.list_namespaced_network_policy(namespace, _request_timeout=self.timeout),
            f"list NetworkPolicies in {namespace}",
        )
        return tuple(policies.network_policy_facts(p) for p in (found.items if found is not None else ()))

    async def list_pods(self, namespace: str, selector: str, *, limit: int = 50) -> tuple[pods.PodFacts, ...]:
        """The pods matching ``selector`` (a labelSelector), at most ``limit`` of them; empty when none."""
        if not selector:
            return ()  # an empty selector would list every pod of the namespace
        found = await self._call(
            lambda: self._core.list_namespaced_pod(
                namespace, label_selector=selector, limit=limit, _request_timeout=self.timeout
            ),
            f"list the pods of {namespace} matching {selector}",
        )
        return tuple(pods.facts_of(pod) for pod in (found.items if found is not None else []))

    async def read_pod_log(self, namespace: str, pod: str, container: str) -> str | None:
        """The container's most recent log lines (``pods.MAX_LOG_LINES``, at most ``pods.MAX_LOG_BYTES``).

        None when the pod itself is gone; an empty string when the API server has no log to give (a pod
        not scheduled yet). Raises ``PermissionDenied`` without pods/log access, and ``DependencyUnavailable``
        when the API server cannot fetch the log from the pod's node (unknown node, kubelet not answering).
        """
        what = f"read the log of {namespace}/{pod} ({container})"

        def call() -> Any:
            return self._core.read_namespaced_pod_log(
                pod,
                namespace,
                container=container,
                tail_lines=pods.MAX_LOG_LINES,
                limit_bytes=pods.MAX_LOG_BYTES,
                _preload_content=False,
                _request_timeout=self.timeout,
            )

        try:
            response = await asyncio.to_thread(call)
        except ApiException as exc:
            if exc.status == 404 and _not_found_name(exc) == pod:
                return None
            if exc.status == 404:  # the pod's node: the API server cannot reach a kubelet for it
                raise errors.DependencyUnavailable(
                    f"Kubernetes API failed to {what}: the pod's node is unknown to it (HTTP 404)"
                ) from None
            raise _map(exc, what) from None
        except (OSError, TransportError) as exc:
            raise errors.DependencyUnavailable(f"Kubernetes API unreachable: {type(exc).__name__}") from None
        try:
            data: bytes = response.data or b""
        finally:
            response.release_conn()
        return data[: pods.MAX_LOG_BYTES].decode("utf-8", "replace")

    async def read_status(self, ref: ObjectRef) -> StoredStatus | None:
        """The resource's current status and resourceVersion (after a 409), or None when it is gone."""
        found = await self._call(
            lambda: self._custom.get_namespaced_custom_object_status(
                GROUP, VERSION, ref.namespace, PLURAL, ref.name, _request_timeout=self.timeout
            ),
            f"read the status of {ref.namespace}/{ref.name}",
        )
        if found is None:
            return None
        meta = found.get("metadata", {})
        if ref.uid and meta.get("uid") != ref.uid:
            return None  # deleted and created again under the same name: not the resource we reconciled
        return StoredStatus(str(meta.get("resourceVersion", "")), found.get("status"))

    async def patch_status(
        self, ref: ObjectRef, changes: Mapping[str, Any], *, resource_version: str | None
    ) -> str | None:
        """One JSON merge patch of the status subresource, applied only at ``resource_version``.

        Returns the resourceVersion the write produced, or None when the resource
        is gone. Raises ``errors.Conflict`` when the object changed since that
        version (HTTP 409), ``errors.DependencyUnavailable`` on 429, 5xx or a timeout.
        """
        body: dict[str, Any] = {"status": dict(changes)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        written = await self._call(
            lambda: self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                ref.namespace,
                PLURAL,
                ref.name,
                body,
                _request_timeout=self.timeout,
                _content_type="application/merge-patch+json",
            ),
            f"write the status of {ref.namespace}/{ref.name}",
        )
        if written is None:
            return None
        self.writes += 1
        return str(written.get("metadata", {}).get("resourceVersion", ""))

    async def list_metadata(self, namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """The metadata of every PayScopeDeployment (in ``namespaces``, or everywhere): no spec, no status.

        Asked for as a PartialObjectMetadataList (the same ``list`` permission): the watch check compares
        versions and generations only, and a thousand statuses of tens of kilobytes each would cost that
        list's memory, CPU and bandwidth many times over.
        """

        def listed(namespace: str | None) -> Callable[[], Any]:
            where = f"/namespaces/{namespace}" if namespace else ""
            return lambda: self._api.call_api(
                f"/apis/{GROUP}/{VERSION}{where}/{PLURAL}",
                "GET",
                header_params={"Accept": METADATA_LIST},
                response_types_map={200: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=self.timeout,
            )

        found: list[dict[str, Any]] = []
        for namespace in namespaces or (None,):
            page = await self._call(listed(namespace), "list PayScopeDeployments")
            found.extend(item.get("metadata", {}) for item in (page or {}).get("items", []))
        return found

    async def read_resource(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The whole PayScopeDeployment as the API server holds it now, or None when it does not exist.

        Read through the status subresource, which answers with the whole object (spec included) and
        which the operator may already get (the re-read after a 409): no permission beyond that.
        """
        found: dict[str, Any] | None = await self._call(
            lambda: self._custom.get_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self.timeout
            ),
            f"read PayScopeDeployment {namespace}/{name}",
        )
        return found

    async def post_event(
        self,
        ref: ObjectRef,
        *,
        kind: Literal["Normal", "Warning"],
        reason: str,
        message: str,
        action: str = "Reconcile",
    ) -> None:
        """A core/v1 Event about the resource; failures are logged, never raised."""
        now = datetime.datetime.now(datetime.UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        # A plain body, and the answer left unparsed: the client's models deep-copy its whole
        # configuration on every construction, which cost more CPU than the rest of a pass's Events.
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref.name}.{uuid.uuid4().hex[:16]}", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
                **({"resourceVersion": ref.resource_version} if ref.resource_version else {}),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "action": action,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "reportingComponent": "payscope-operator",
            "reportingInstance": "payscope-operator",
            "source": {"component": "payscope-operator"},
            "count": 1,
        }

        def call() -> Any:
            answer = self._core.create_namespaced_event(
                ref.namespace, event, _request_timeout=self.timeout, _preload_content=False
            )
            try:
                answer.read()  # drained: a connection handed back with an unread body breaks the next call on it
            finally:
                answer.release_conn()
            return None

        try:
            await self._run(call)
            self.writes += 1
        except Exception as exc:  # noqa: BLE001 - an Event is best effort: whatever fails, the pass goes on
            logger.warning("could not post Event %s on %s/%s: %s", reason, ref.namespace, ref.name, type(exc).__name__)
