"""Reads and writes against the Kubernetes API: Secrets, Deployments, status, Events.

The official client is synchronous; every call runs in a worker thread with an
explicit request timeout, so the event loop never blocks. Errors map onto the
operator's tree: 404 is "absent" (``None``), 403 is ``PermissionDenied``,
everything else transient. Secret values are returned wrapped in
``pydantic.SecretStr`` so that no repr, log line or exception shows them.

What it must not do: decide anything. Callers decide what to read and write.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from pydantic import SecretStr

from payscope_operator import errors
from payscope_operator.kube import workloads

logger = logging.getLogger(__name__)

GROUP = "payscope.io"
VERSION = "v1alpha1"
PLURAL = "payscopedeployments"
KIND = "PayScopeDeployment"
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class ObjectRef:
    """The PayScopeDeployment an Event is about."""

    namespace: str
    name: str
    uid: str
    resource_version: str | None = None


def load_api_client(kubeconfig: str | None = None) -> k8s.ApiClient:
    """In-cluster credentials when running in a Pod, else the kubeconfig."""
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config()
            return k8s.ApiClient()
        except k8s_config.ConfigException:
            pass
    return k8s_config.new_client_from_config(config_file=kubeconfig)


def _map(exc: ApiException, what: str) -> errors.PayScopeError:
    if exc.status == 403:
        return errors.PermissionDenied(f"the operator may not {what} (HTTP 403)")
    if exc.status == 401:
        return errors.PermissionDenied(f"the operator's credentials were refused to {what} (HTTP 401)")
    return errors.DependencyUnavailable(f"Kubernetes API failed to {what} (HTTP {exc.status})")


class Gateway:
    """Kubernetes reads and writes a reconcile pass needs, all asynchronous."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self._api = api
        self._core = k8s.CoreV1Api(api)
        self._apps = k8s.AppsV1Api(api)
        self._custom = k8s.CustomObjectsApi(api)
        self.writes = 0  # status patches and events sent; read by tests and metrics

    def close(self) -> None:
        self._api.close()

    async def _call(self, call: Callable[[], Any], what: str) -> Any | None:
        """Run one client call in a thread; None on 404, our errors for everything else."""
        try:
            return await asyncio.to_thread(call)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _map(exc, what) from None
        except OSError as exc:
            raise errors.DependencyUnavailable(f"Kubernetes API unreachable: {type(exc).__name__}") from None

    async def read_secret(self, namespace: str, name: str) -> dict[str, SecretStr] | None:
        """The Secret's decoded data, or None when it does not exist."""
        secret = await self._call(
            lambda: self._core.read_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT),
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
            lambda: self._apps.read_namespaced_deployment(name, namespace, _request_timeout=REQUEST_TIMEOUT),
            f"read Deployment {namespace}/{name}",
        )
        return None if deployment is None else workloads.facts_of(deployment)

    async def replace_status(self, ref: ObjectRef, body: Mapping[str, Any]) -> None:
        """Write the whole status through the status subresource (one JSON patch); a deleted resource is skipped."""
        patch = [{"op": "add", "path": "/status", "value": body}]
        written = await self._call(
            lambda: self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                ref.namespace,
                PLURAL,
                ref.name,
                patch,
                _request_timeout=REQUEST_TIMEOUT,
                _content_type="application/json-patch+json",
            ),
            f"write the status of {ref.namespace}/{ref.name}",
        )
        if written is not None:
            self.writes += 1

    async def list_versions(self, namespaces: tuple[str, ...] = ()) -> dict[str, str]:
        """uid -> resourceVersion of every PayScopeDeployment (in ``namespaces``, or everywhere)."""

        def listed(namespace: str | None) -> Callable[[], Any]:
            if namespace is None:
                return lambda: self._custom.list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, _request_timeout=REQUEST_TIMEOUT
                )
            return lambda: self._custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, _request_timeout=REQUEST_TIMEOUT
            )

        versions: dict[str, str] = {}
        for namespace in namespaces or (None,):
            found = await self._call(listed(namespace), "list PayScopeDeployments")
            for item in (found or {}).get("items", []):
                meta = item.get("metadata", {})
                versions[meta.get("uid", "")] = meta.get("resourceVersion", "")
        return versions

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
        event = k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(name=f"{ref.name}.{uuid.uuid4().hex[:16]}", namespace=ref.namespace),
            involved_object=k8s.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind=KIND,
                name=ref.name,
                namespace=ref.namespace,
                uid=ref.uid,
                resource_version=ref.resource_version,
            ),
            type=kind,
            reason=reason,
            message=message[:1024],
            action=action,
            first_timestamp=now,
            last_timestamp=now,
            event_time=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            reporting_component="payscope-operator",
            reporting_instance="payscope-operator",
            source=k8s.V1EventSource(component="payscope-operator"),
            count=1,
        )

        def call() -> Any:
            return self._core.create_namespaced_event(ref.namespace, event, _request_timeout=REQUEST_TIMEOUT)

        try:
            await asyncio.to_thread(call)
            self.writes += 1
        except (ApiException, OSError) as exc:
            logger.warning("could not post Event %s on %s/%s: %s", reason, ref.namespace, ref.name, type(exc).__name__)
