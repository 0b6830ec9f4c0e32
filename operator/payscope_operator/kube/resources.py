"""PayScopeDeployments as a person's command-line tool reads and edits them: list, get, patch; synchronous.

Why this module exists: the kubectl plugin (``payscope_operator.kubectl``) runs
as the person who types it, with their kubeconfig and context, one request at a
time, so it needs none of the operator's asynchronous gateway (``gateway``) and
must never fall back to in-cluster credentials. It keeps the rule that only the
``kube`` package talks to the Kubernetes API. Errors map onto the operator's
tree as in ``gateway``: 404 is "absent" (``None``), 401/403
``PermissionDenied``, 409 ``Conflict``, 422 (the API server's admission refused
the change) ``SpecInvalid`` with the server's message, anything else
``DependencyUnavailable``.

What it must not do: decide anything (callers build the patches), read Secrets,
or write the status subresource (the operator owns the status).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError as TransportError

from payscope_operator import errors
from payscope_operator.kube import gateway

Json = dict[str, Any]


def _server_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def _map(exc: ApiException, what: str) -> errors.PayScopeError:
    if exc.status in (401, 403):
        return errors.PermissionDenied(f"you may not {what} (HTTP {exc.status}): {_server_message(exc)}")
    if exc.status == 409:
        return errors.Conflict(f"could not {what}: the object changed since it was read (HTTP 409)", delay=0.0)
    if exc.status == 422:
        return errors.SpecInvalid(f"the API server refused to {what}: {_server_message(exc)}")
    return errors.DependencyUnavailable(f"Kubernetes API failed to {what} (HTTP {exc.status})")


@dataclass
class Resources:
    """Reads and edits of PayScopeDeployments with the caller's own credentials."""

    api: k8s.ApiClient
    default_namespace: str = "default"
    timeout: float = gateway.REQUEST_TIMEOUT

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, context: str | None = None) -> Resources:
        """The kubeconfig's (or ``$KUBECONFIG``'s) context, as kubectl would use it; its namespace is the default."""
        try:
            api = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
            contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
        except (k8s_config.ConfigException, OSError) as exc:
            raise errors.PermissionDenied(f"no usable kubeconfig: {exc}") from None
        chosen = next((c for c in contexts if c.get("name") == context), active) if context else active
        namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
        return cls(api, namespace)

    def close(self) -> None:
        self.api.close()

    @property
    def _custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api)

    def _call(self, call: Callable[[], Any], what: str) -> Any | None:
        try:
            return call()
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _map(exc, what) from None
        except (OSError, TransportError) as exc:
            raise errors.DependencyUnavailable(f"Kubernetes API unreachable: {type(exc).__name__}") from None

    def list(self, namespace: str | None) -> list[Json]:
        """Every PayScopeDeployment in ``namespace`` (None: in every namespace), sorted by namespace and name."""
        custom = self._custom
        if namespace is None:
            found = self._call(
                lambda: custom.list_cluster_custom_object(
                    gateway.GROUP, gateway.VERSION, gateway.PLURAL, _request_timeout=self.timeout
                ),
                "list PayScopeDeployments in all namespaces",
            )
        else:
            found = self._call(
                lambda: custom.list_namespaced_custom_object(
                    gateway.GROUP, gateway.VERSION, namespace, gateway.PLURAL, _request_timeout=self.timeout
                ),
                f"list PayScopeDeployments in {namespace}",
            )
        items: list[Json] = list((found or {}).get("items", []))
        return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def get(self, namespace: str, name: str) -> Json | None:
        """The PayScopeDeployment, or None when it does not exist."""
        custom = self._custom
        found: Json | None = self._call(
            lambda: custom.get_namespaced_custom_object(
                gateway.GROUP, gateway.VERSION, namespace, gateway.PLURAL, name, _request_timeout=self.timeout
            ),
            f"read PayScopeDeployment {namespace}/{name}",
        )
        return found

    def patch(self, namespace: str, name: str, body: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Json | None:
        """A merge patch (a mapping) or a JSON patch (a list of operations); the object after it, None when gone."""
        content = "application/json-patch+json" if isinstance(body, Sequence) else "application/merge-patch+json"
        custom = self._custom
        payload: Any = [dict(op) for op in body] if isinstance(body, Sequence) else dict(body)
        found: Json | None = self._call(
            lambda: custom.patch_namespaced_custom_object(
                gateway.GROUP,
                gateway.VERSION,
                namespace,
                gateway.PLURAL,
                name,
                payload,
                _request_timeout=self.timeout,
                _content_type=content,
            ),
            f"change PayScopeDeployment {namespace}/{name}",
        )
        return found
