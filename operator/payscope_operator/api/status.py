"""The ``status`` of a PayScopeDeployment: what kubectl, kstatus, Flux and Argo CD read.

Why this module exists: the status is a contract as much as the spec. These models
define its shape (conditions as a map keyed by type, per-dimension summaries, a
bounded list of check results, provisioned objects, the ObserveOnly plan), its size
bounds (``MAX_CHECKS``, ``MAX_MESSAGE_LENGTH``) and its vocabulary (check statuses,
severities, check-result reasons, evidence grades). The CRD's status schema is generated from
``PayScopeStatus``.

What it must not do: decide condition values, order or truncate check results, or
compare statuses; the reconcile layer does, and must respect the bounds declared here.
Condition ``type`` and ``reason`` are plain validated strings so that a status written
by another operator version still parses; write them from ``conditions``' enums.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

from payscope_operator.api import conditions, fields

MAX_CHECKS = 150
"""At most this many check results are kept in status.checks (failing first)."""
MAX_MESSAGE_LENGTH = 1024
"""Messages of checks and provisioned objects are cut to this length."""
MAX_CONDITION_MESSAGE_LENGTH = 32768
"""As metav1.Condition."""

CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


def _whole_seconds(value: AwareDatetime) -> AwareDatetime:
    return value.replace(microsecond=0)


Timestamp = Annotated[AwareDatetime, AfterValidator(_whole_seconds)]
"""A timezone-aware time truncated to whole seconds, as metav1.Time serializes."""
Message = Annotated[str, StringConstraints(max_length=MAX_MESSAGE_LENGTH)]


class ConditionStatus(StrEnum):
    """Status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class CheckStatus(StrEnum):
    """Result of one audit check."""

    PASS = "Pass"  # noqa: S105 (a check result, not a password)
    FAIL = "Fail"
    WARN = "Warn"
    UNKNOWN = "Unknown"
    NOT_CONFIGURED = "NotConfigured"
    WAIVED = "Waived"


class CheckReason(StrEnum):
    """Why a check result is what it is (``status.checks[].reason``): CamelCase, stable, documented."""

    EVALUATED = "Evaluated"
    INCONCLUSIVE = "Inconclusive"
    NOT_CONFIGURED = "NotConfigured"
    SOURCE_UNAVAILABLE = "SourceUnavailable"
    BLOCKED_BY = "BlockedBy"
    UNEXPECTED_ERROR = "UnexpectedError"
    WAIVED = "Waived"
    EGRESS_DENIED = "EgressDenied"
    CREDENTIALS_REQUIRED = "CredentialsRequired"
    RESPONSE_TOO_LARGE = "ResponseTooLarge"

    @property
    def description(self) -> str:
        """The documented one-line meaning of this reason."""
        return CHECK_REASON_DESCRIPTIONS[self]


CHECK_REASON_DESCRIPTIONS: dict[CheckReason, str] = {
    CheckReason.EVALUATED: "The check judged its evidence: Pass, Fail or Warn.",
    CheckReason.INCONCLUSIVE: "Its evidence was gathered but does not decide it (Unknown); the message says why.",
    CheckReason.NOT_CONFIGURED: "What the check reads is not declared in the spec (counted in status.dimensions,"
    " not listed in status.checks).",
    CheckReason.SOURCE_UNAVAILABLE: "Its evidence could not be gathered (timeout, refused, missing Secret); Unknown,"
    " or Fail for a reachability check.",
    CheckReason.BLOCKED_BY: "A check it depends on did not pass (Unknown); the message names that check.",
    CheckReason.UNEXPECTED_ERROR: "Evaluating the evidence failed unexpectedly (Unknown).",
    CheckReason.WAIVED: "A failing or warning result covered by an unexpired waiver.",
    CheckReason.EGRESS_DENIED: "Its endpoint is outside the operator's egress policy; it was never contacted"
    " (Unknown).",
    CheckReason.CREDENTIALS_REQUIRED: "Its section names no credentials and the operator lends none of its own"
    " (Unknown).",
    CheckReason.RESPONSE_TOO_LARGE: "An answer it reads was larger than the operator's response size cap (Unknown).",
}


class EvidenceGrade(StrEnum):
    """How strong a check's evidence is."""

    OBSERVED = "Observed"
    """The operator saw the property itself: a catalog row, a refused forged token, a pod spec field."""
    INFERRED = "Inferred"
    """A proxy that correlates with the property (a metric family exists, a probe is set)."""
    REPORTED = "Reported"
    """PayScope's own statement about itself (``/admin`` documents, ``/readyz`` entries)."""


class Severity(StrEnum):
    """How much a failing check matters."""

    CRITICAL = "Critical"
    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


class ProvisionState(StrEnum):
    """State of one provisioned external object."""

    READY = "Ready"
    PENDING = "Pending"
    MISSING = "Missing"
    DRIFTED = "Drifted"
    FAILED = "Failed"
    FOREIGN = "Foreign"
    """It exists but this resource did not create it (nor adopt it): observed and audited, never changed."""
    LOCK_TIMEOUT = "LockTimeout"
    """Changing it needs a lock other sessions hold: the change gave up after lockTimeout; retried with backoff."""


class Condition(fields.SpecModel):
    """One condition, shaped like metav1.Condition."""

    type: str = Field(
        pattern=CONDITION_TYPE_PATTERN, max_length=316, description="Condition type, e.g. Ready or DataLayerReady."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        pattern=REASON_PATTERN, min_length=1, max_length=1024, description="Stable CamelCase reason (documented)."
    )
    message: str = Field("", max_length=MAX_CONDITION_MESSAGE_LENGTH, description="Human-readable details.")
    last_transition_time: Timestamp = Field(description="When status last changed.")
    observed_generation: fields.StrictInt | None = Field(
        None, ge=0, description="metadata.generation this condition was computed for."
    )


class GradeCounts(fields.SpecModel):
    """How many of a dimension's passing checks rest on each grade of evidence."""

    observed: fields.StrictInt = Field(0, ge=0, description="Passing checks whose evidence the operator saw itself.")
    inferred: fields.StrictInt = Field(0, ge=0, description="Passing checks whose evidence is a correlating proxy.")
    reported: fields.StrictInt = Field(0, ge=0, description="Passing checks that rest on PayScope's own statement.")


class DimensionSummary(fields.SpecModel):
    """Counts of check results in one audit dimension, and its score."""

    passed: fields.StrictInt = Field(0, ge=0, description="Checks that passed.")
    failed: fields.StrictInt = Field(0, ge=0, description="Checks that failed.")
    warned: fields.StrictInt = Field(0, ge=0, description="Checks that warned.")
    unknown: fields.StrictInt = Field(0, ge=0, description="Checks whose probe could not run.")
    not_configured: fields.StrictInt = Field(0, ge=0, description="Checks whose spec section is absent.")
    waived: fields.StrictInt = Field(0, ge=0, description="Failing checks covered by a waiver.")
    score: fields.StrictInt = Field(ge=0, le=100, description="Readiness score from 0 to 100.")
    passed_by_grade: GradeCounts | None = Field(
        None,
        description="The passing checks by the strength of their evidence (Observed, Inferred, Reported): what"
        " the dimension's True rests on.",
    )


class Dimensions(fields.SpecModel):
    """Per-dimension summaries, keyed by dimension name."""

    infrastructure: DimensionSummary | None = Field(None, alias="Infrastructure", description="A: infrastructure.")
    data_layer: DimensionSummary | None = Field(None, alias="DataLayer", description="B: data layer.")
    pipeline: DimensionSummary | None = Field(None, alias="Pipeline", description="C: pipeline integrity.")
    agents: DimensionSummary | None = Field(None, alias="Agents", description="D: AI/ML agents.")
    apis: DimensionSummary | None = Field(None, alias="APIs", description="E: chat, RAG and APIs.")
    observability: DimensionSummary | None = Field(None, alias="Observability", description="F: observability.")
    security: DimensionSummary | None = Field(None, alias="Security", description="G: security and compliance.")

    def get(self, dimension: conditions.Dimension) -> DimensionSummary | None:
        """The summary of one dimension, if present."""
        for name, info in type(self).model_fields.items():
            if info.alias == dimension.value:
                summary: DimensionSummary | None = getattr(self, name)
                return summary
        raise KeyError(dimension)


class CheckResult(fields.SpecModel):
    """The result of one audit check."""

    id: fields.CheckId = Field(description="Check id <letter>.<area>.<check>.")
    dimension: conditions.Dimension = Field(description="Audit dimension of the check.")
    status: CheckStatus = Field(description="Pass, Fail, Warn, Unknown, NotConfigured or Waived.")
    severity: Severity = Field(description="Critical, High, Medium or Low.")
    grade: EvidenceGrade | None = Field(
        None,
        description="Strength of the check's evidence: Observed (seen by the operator itself), Inferred (a proxy"
        " that correlates) or Reported (PayScope's own statement); absent in statuses written before it existed.",
    )
    reason: str | None = Field(
        None,
        pattern=REASON_PATTERN,
        max_length=64,
        description="Why the result is what it is: Evaluated, Inconclusive, NotConfigured, SourceUnavailable,"
        " BlockedBy, UnexpectedError, Waived, EgressDenied, CredentialsRequired or ResponseTooLarge (absent in"
        " statuses written before it existed).",
    )
    message: Message = Field("", description="What was found, without secret values.")
    evidence: Message | None = Field(None, description="What the finding rests on (query, endpoint, object).")
    since: Timestamp | None = Field(
        None,
        description="When the check entered its current status; kept across passes while the status holds, like a"
        " condition's lastTransitionTime (absent in statuses written before it existed).",
    )


class ProvisionedObject(fields.SpecModel):
    """One external object the operator provisions."""

    kind: str = Field(pattern=r"^[A-Za-z]+$", max_length=63, description="Kind of object, e.g. Hypertable.")
    name: str = Field(min_length=1, max_length=512, description="Name of the object, e.g. public.transactions.")
    state: ProvisionState = Field(
        description="Ready, Pending, Missing, Drifted, Failed, Foreign (exists, not created by this resource:"
        " observed and audited, never changed; adopt: true takes it over), or LockTimeout (the change waited"
        " lockTimeout for a lock other sessions hold; retried with backoff, the message names them)."
    )
    reason: str | None = Field(
        None,
        pattern=r"^[A-Z][A-Za-z]*$",
        max_length=63,
        description="Why a Failed, Foreign or LockTimeout object is so (CamelCase, e.g. TableNotFound,"
        " HypertableNeedsDataMigration, LockTimeout); absent in statuses written before it existed.",
    )
    message: Message | None = Field(None, description="Details of a non-Ready state.")


_Objects = Annotated[tuple[ProvisionedObject, ...], Field(max_length=1000), fields.ListKeys(("kind", "name"))]


class Provisioned(fields.SpecModel):
    """Provisioned external objects, per system, unique by kind and name."""

    postgres: _Objects = Field((), description="Objects provisioned in Postgres.")
    neo4j: _Objects = Field((), description="Objects provisioned in Neo4j.")
    pinecone: _Objects = Field((), description="Objects provisioned in Pinecone.")
    object_storage: _Objects = Field((), description="Objects provisioned in object storage.")


class PayScopeStatus(fields.SpecModel):
    """Observed state of a PayScope installation."""

    observed_generation: fields.StrictInt = Field(
        -1, ge=-1, description="metadata.generation last reconciled; -1 before the first reconcile."
    )
    conditions: Annotated[tuple[Condition, ...], fields.ListKeys(("type",))] = Field(
        (), max_length=32, description="Ready, Reconciling, Stalled, Provisioned and one per audit dimension."
    )
    dimensions: Dimensions | None = Field(None, description="Check counts and score per audit dimension.")
    checks: Annotated[tuple[CheckResult, ...], fields.ListKeys(("id",))] = Field(
        (),
        max_length=MAX_CHECKS,
        description=f"Results of the checks that ran, failing first, at most {MAX_CHECKS}. A check whose part of"
        " the installation the spec does not declare is counted in dimensions.<D>.notConfigured, not listed.",
    )
    provisioned: Provisioned | None = Field(None, description="External objects the operator provisions.")
    plan: tuple[Message, ...] = Field(
        (),
        max_length=200,
        description="Actions Full management would take (ObserveOnly and Paused previews), and the declared"
        " objects left as found because this resource does not own them (Foreign).",
    )
    last_audit_time: Timestamp | None = Field(None, description="When the last audit cycle completed.")
