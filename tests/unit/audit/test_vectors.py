"""G.isolation.vectors, table-tested: the namespace queries' answers in, findings out."""

from __future__ import annotations

import pytest

from payscope_operator.api import spec, status
from payscope_operator.audit.checks import vectors as vector_checks
from payscope_operator.audit.sources import vectors

S = status.CheckStatus
CHECK = next(c for c in vector_checks.CHECKS if c.id == "G.isolation.vectors")
SPEC = spec.PayScopeSpec.model_validate(
    {
        "pinecone": {
            "apiKeySecretRef": {"name": "p", "key": "k"},
            "indexes": [{"name": "rag", "dimension": 4, "serverless": {"cloud": "aws", "region": "us-east-1"}}],
        },
        "audit": {"probeTenants": ["bank-a", "bank-b"]},
    }
)
A = vectors.Probe("rag", "bank-a", "bank-b", nearest=("a-1",))
B = vectors.Probe("rag", "bank-b", "bank-a", nearest=("b-1",))


def _evidence(*probes: vectors.Probe, skipped: tuple[str, ...] = ()) -> vectors.VectorIsolation:
    return vectors.VectorIsolation("bank_id", probes, skipped)


@pytest.mark.parametrize(
    ("evidence", "expected", "words"),
    [
        (_evidence(A, B), S.PASS, "2 tenant namespace(s) hold vectors and none matches another tenant's bank_id"),
        (_evidence(A, vectors.Probe("rag", "bank-b", "bank-a")), S.PASS, "1 tenant namespace(s)"),
        (
            _evidence(vectors.Probe("rag", "bank-a", "bank-b", ("a-1",), ("b-9",)), B),
            S.FAIL,
            "rag/bank-a holds bank-b's b-9",
        ),
        (_evidence(vectors.Probe("rag", "bank-a", "bank-b")), S.WARN, "No probe tenant's namespace holds vectors yet"),
        (_evidence(vectors.Probe("rag", "bank-a", "bank-b", problem="HTTP 400")), S.UNKNOWN, "isolation: HTTP 400"),
        (_evidence(A, vectors.Probe("rag", "bank-b", "bank-a", problem="timed out")), S.UNKNOWN, "1 of 2"),
        (_evidence(skipped=("rag: not found",)), S.UNKNOWN, "no index could be queried (rag: not found)"),
    ],
)
def test_evaluate(evidence: vectors.VectorIsolation, expected: status.CheckStatus, words: str) -> None:
    finding = CHECK.judge(evidence, SPEC)
    assert finding.status == expected, finding.message
    assert words in finding.message


def test_the_source_needs_probe_tenants_and_reads_the_tenant_key() -> None:
    assert vectors.configured(SPEC)
    assert not vectors.configured(SPEC.model_copy(update={"audit": spec.Audit()}))
    assert vectors.tenant_key(SPEC) == "bank_id"
    keyed = SPEC.model_copy(update={"tenancy": spec.Tenancy(tenant_key="tenant")})
    assert vectors.tenant_key(keyed) == "tenant"
