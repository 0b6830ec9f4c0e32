"""What the fault tests read from a PayScopeDeployment's status, and how they wait for it.

Helpers, not tests: whether a status reflects a generation (a complete pass, not
only the announcement of it), kstatus' notion of Current, the checks by id, and a
``Clock`` that times how long a wait took.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from kubernetes import client as k8s

from tests.e2e import cluster


def conditions(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return cluster.conditions(obj)


def checks(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in (obj.get("status") or {}).get("checks", [])}


def reflects(obj: Mapping[str, Any], generation: int) -> bool:
    """A complete pass over ``generation`` is in the status: observed, and no longer Reconciling it."""
    status = obj.get("status") or {}
    reconciling = conditions(obj).get("Reconciling", {})
    return bool(
        status.get("observedGeneration") == generation
        and reconciling.get("status") == "False"
        and reconciling.get("observedGeneration") == generation
    )


def current(obj: Mapping[str, Any]) -> bool:
    """kstatus' Current (what Flux computes): Ready True at the current generation, neither Reconciling nor Stalled."""
    generation = obj.get("metadata", {}).get("generation")
    status = obj.get("status") or {}
    found = conditions(obj)
    return bool(
        status.get("observedGeneration") == generation
        and found.get("Ready", {}).get("status") == "True"
        and found.get("Reconciling", {}).get("status") != "True"
        and found.get("Stalled", {}).get("status") != "True"
    )


def wait_reflects(api: k8s.ApiClient, namespace: str, name: str, generation: int, timeout: float) -> dict[str, Any]:
    found: dict[str, Any] = cluster.wait_for(
        lambda: (obj := cluster.psd(api, namespace, name)) and reflects(obj, generation) and obj,
        what=f"{namespace}/{name} reconciled at generation {generation}",
        timeout=timeout,
        interval=0.1,
    )
    return found


class Clock:
    """Seconds since it was made (or last reset)."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def reset(self) -> None:
        self.start = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.start


DIMENSIONS = {
    "A": "InfrastructureReady",
    "B": "DataLayerReady",
    "C": "PipelineReady",
    "D": "AgentsReady",
    "E": "APIsReady",
    "F": "ObservabilityReady",
    "G": "SecurityReady",
}
"""The condition of each check letter's dimension."""
