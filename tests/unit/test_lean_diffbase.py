"""The operator's diff base builds exactly kopf's essence, without copying the status it drops.

Pure: kopf's own ``AnnotationsDiffBaseStorage.build`` is the reference, on bodies
like the watch delivers (a large status, managed fields, kopf's and others'
annotations, labels).
"""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from payscope_operator import main

BODY: dict[str, Any] = {
    "apiVersion": "payscope.io/v1alpha1",
    "kind": "PayScopeDeployment",
    "metadata": {
        "name": "psd",
        "namespace": "ns",
        "uid": "0c1d2a54",
        "resourceVersion": "42",
        "generation": 3,
        "labels": {"team": "payments"},
        "annotations": {
            "payscope.io/last-handled-configuration": "{}",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "payscope.io/paused": "true",
        },
        "managedFields": [{"manager": "payscope-operator", "fieldsV1": {"f:status": {}}}] * 20,
        "finalizers": ["payscope.io/finalizer"],
    },
    "spec": {"managementPolicy": "ObserveOnly", "postgres": {"tables": [{"name": "t"}]}},
    "status": {"checks": [{"id": f"B.check.{n}", "message": "x" * 200} for n in range(100)]},
}


@pytest.mark.parametrize(
    "body",
    [BODY, {**BODY, "status": {}}, {k: v for k, v in BODY.items() if k != "status"}, {"spec": {"a": 1}}],
    ids=["full", "empty-status", "no-status", "bare"],
)
def test_the_essence_is_kopfs(body: dict[str, Any]) -> None:
    ours = main.LeanDiffBase(prefix=main.ANNOTATION_PREFIX, key="last-handled-configuration")
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=main.ANNOTATION_PREFIX, key="last-handled-configuration")
    assert ours.build(body=kopf.Body(body)) == kopfs.build(body=kopf.Body(body))  # type: ignore[arg-type]


def test_extra_fields_fall_back_to_kopf() -> None:
    ours = main.LeanDiffBase(prefix=main.ANNOTATION_PREFIX, key="last-handled-configuration")
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=main.ANNOTATION_PREFIX, key="last-handled-configuration")
    extra = ["status.checks"]
    body = kopf.Body(BODY)  # type: ignore[arg-type]
    assert ours.build(body=body, extra_fields=extra) == kopfs.build(body=body, extra_fields=extra)
