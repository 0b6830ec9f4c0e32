"""The floor a kopf operator cannot beat: on every new generation, write one status and nothing else.

Why it exists: ``benchmarks/scale.py`` compares the operator's apply-to-status time
with this one, run by ``kopf run`` on the same control plane with the same number
of resources: what is left above it is the operator's own work (the pass, the
audit, Postgres), not kopf's nor the API server's. It writes what the benchmark
waits for (``observedGeneration`` and a ``Reconciling`` False condition at that
generation) in kopf's own status patch, once per generation.

What it must not do: read any store, audit anything, or be imported by the operator.

    .venv/bin/kopf run --standalone --namespace NS benchmarks/bare_kopf.py
"""

from __future__ import annotations

import datetime
from typing import Any

import kopf

GROUP, VERSION, PLURAL = "payscope.io", "v1alpha1", "payscopedeployments"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False
    settings.scanning.disabled = True
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="bare.payscope.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="bare.payscope.io")


@kopf.on.event(GROUP, VERSION, PLURAL)
def write_status(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    generation = body.get("metadata", {}).get("generation")
    if (body.get("status") or {}).get("observedGeneration") == generation:
        return
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch.status["observedGeneration"] = generation
    patch.status["conditions"] = [
        {"type": "Reconciling", "status": "False", "reason": "Done", "message": "bare kopf",
         "observedGeneration": generation, "lastTransitionTime": now},
    ]  # fmt: skip
