"""Condition types, audit dimensions and condition reasons: the status vocabulary.

Why this module exists: kubectl, Flux, Argo CD, alerting and the tests match on
condition types and reasons, so they are constants in one place, each reason with a
one-line documented meaning (``REASON_DESCRIPTIONS``, rendered into the docs by
``reason_table``). A reason is stable once released: add new ones, rename none.

What it must not do: compute conditions from check results (that is the reconcile
layer's pure function), or hold free-text messages.
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    """Types of the conditions in ``status.conditions``."""

    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    PROVISIONED = "Provisioned"
    INFRASTRUCTURE_READY = "InfrastructureReady"
    DATA_LAYER_READY = "DataLayerReady"
    PIPELINE_READY = "PipelineReady"
    AGENTS_READY = "AgentsReady"
    APIS_READY = "APIsReady"
    OBSERVABILITY_READY = "ObservabilityReady"
    SECURITY_READY = "SecurityReady"


ABNORMAL_TRUE = frozenset({ConditionType.RECONCILING, ConditionType.STALLED})
"""kstatus "abnormal-true" conditions: True means not done; never both True."""


class Dimension(StrEnum):
    """Audit dimensions, lettered A to G as in audit-checklist.md."""

    INFRASTRUCTURE = "Infrastructure"
    DATA_LAYER = "DataLayer"
    PIPELINE = "Pipeline"
    AGENTS = "Agents"
    APIS = "APIs"
    OBSERVABILITY = "Observability"
    SECURITY = "Security"

    @property
    def letter(self) -> str:
        """The checklist letter, A to G; also the first segment of its check ids."""
        return _LETTERS[self]

    @property
    def condition_type(self) -> ConditionType:
        """The condition reporting this dimension, e.g. ``DataLayerReady``."""
        return ConditionType(f"{self.value}Ready")

    @classmethod
    def from_letter(cls, letter: str) -> Dimension:
        """The dimension of a checklist letter; raises ValueError for other letters."""
        for dimension, known in _LETTERS.items():
            if known == letter:
                return dimension
        raise ValueError(f"no audit dimension has letter {letter!r}")

    @classmethod
    def of_check(cls, check_id: str) -> Dimension:
        """The dimension a check id (``B.postgres.rls_forced``) belongs to."""
        return cls.from_letter(check_id.partition(".")[0])


_LETTERS = {dimension: "ABCDEFG"[index] for index, dimension in enumerate(Dimension)}


class Reason(StrEnum):
    """Every ``reason`` the operator writes on a condition (CamelCase, stable)."""

    # Summaries of check results (dimension conditions and Ready).
    ALL_CHECKS_PASSED = "AllChecksPassed"
    CHECKS_FAILING = "ChecksFailing"
    CHECKS_WARNING = "ChecksWarning"
    CHECKS_UNKNOWN = "ChecksUnknown"
    NOT_CONFIGURED = "NotConfigured"
    DIMENSIONS_NOT_CONFIGURED = "DimensionsNotConfigured"
    WAIVED = "Waived"
    AUDIT_PENDING = "AuditPending"
    # Progress (Reconciling, Stalled, Ready).
    RECONCILING = "Reconciling"
    RECONCILE_SUCCEEDED = "ReconcileSucceeded"
    PAUSED = "Paused"
    DELETING = "Deleting"
    # What retrying cannot fix (Stalled=True).
    SPEC_INVALID = "SpecInvalid"
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 (a reason, not a secret)
    SECRET_KEY_MISSING = "SecretKeyMissing"  # noqa: S105
    PERMISSION_DENIED = "PermissionDenied"
    WORKLOAD_NOT_FOUND = "WorkloadNotFound"
    # Provisioning (Provisioned).
    PROVISIONED = "Provisioned"
    PROVISIONING_PENDING = "ProvisioningPending"
    PROVISIONING_FAILED = "ProvisioningFailed"
    NOTHING_TO_PROVISION = "NothingToProvision"
    OBSERVE_ONLY = "ObserveOnly"
    DRIFT_DETECTED = "DriftDetected"
    # Specific provisioning or audit faults.
    TABLE_NOT_FOUND = "TableNotFound"
    TIMESCALE_UNAVAILABLE = "TimescaleUnavailable"
    UNSUPPORTED_ON_EDITION = "UnsupportedOnEdition"
    INDEX_SPEC_IMMUTABLE = "IndexSpecImmutable"
    BUCKET_OWNED_BY_ANOTHER_ACCOUNT = "BucketOwnedByAnotherAccount"
    CONSTRAINT_VIOLATED_BY_DATA = "ConstraintViolatedByData"
    APP_ROLE_INVALID = "AppRoleInvalid"
    DEPENDENCY_UNAVAILABLE = "DependencyUnavailable"
    DEPENDENCY_TIMEOUT = "DependencyTimeout"
    WORKLOAD_UNAVAILABLE = "WorkloadUnavailable"
    TENANT_COLUMN_NOT_FOUND = "TenantColumnNotFound"
    TENANT_COLUMN_TYPE_UNSUPPORTED = "TenantColumnTypeUnsupported"
    ROW_SECURITY_CONFLICTS_WITH_COMPRESSION = "RowSecurityConflictsWithCompression"
    TIME_COLUMN_NOT_FOUND = "TimeColumnNotFound"
    TIME_COLUMN_TYPE_UNSUPPORTED = "TimeColumnTypeUnsupported"
    TIME_COLUMN_IMMUTABLE = "TimeColumnImmutable"
    HYPERTABLE_CONSTRAINT_INCOMPATIBLE = "HypertableConstraintIncompatible"
    COMPRESSION_SPEC_CONFLICT = "CompressionSpecConflict"
    NOT_IMPLEMENTED_BY_ENDPOINT = "NotImplementedByEndpoint"
    LOCK_TIMEOUT = "LockTimeout"
    HYPERTABLE_NEEDS_DATA_MIGRATION = "HypertableNeedsDataMigration"
    UNEXPECTED_ERROR = "UnexpectedError"
    # Reach: what a resource may use and touch.
    CREDENTIALS_REQUIRED = "CredentialsRequired"
    EGRESS_DENIED = "EgressDenied"
    RESPONSE_TOO_LARGE = "ResponseTooLarge"
    OWNED_BY_ANOTHER_RESOURCE = "OwnedByAnotherResource"

    @property
    def description(self) -> str:
        """The documented one-line meaning of this reason."""
        return REASON_DESCRIPTIONS[self]


REASON_DESCRIPTIONS: dict[Reason, str] = {
    Reason.ALL_CHECKS_PASSED: "Every check in scope passed or is waived.",
    Reason.CHECKS_FAILING: "At least one check in scope failed; see status.checks.",
    Reason.CHECKS_WARNING: "No check failed, but at least one warned.",
    Reason.CHECKS_UNKNOWN: "No check failed, but at least one probe could not run (timeout, unreachable).",
    Reason.NOT_CONFIGURED: "The spec section this condition covers is absent; nothing is audited.",
    Reason.DIMENSIONS_NOT_CONFIGURED: "Ready only: no check of the named dimensions ran (their spec sections are"
    " absent) and no waiver accepts that; nothing passes on empty evidence.",
    Reason.WAIVED: "Every failing check in scope is covered by an unexpired waiver.",
    Reason.AUDIT_PENDING: "No audit has completed yet for the current generation.",
    Reason.RECONCILING: "The operator is provisioning or auditing the current generation.",
    Reason.RECONCILE_SUCCEEDED: "The current generation is fully reconciled; nothing is in progress or blocked.",
    Reason.PAUSED: 'The annotation payscope.io/paused is "true"; external systems are left untouched.',
    Reason.DELETING: "The resource is being deleted and provisioned objects are being removed.",
    Reason.SPEC_INVALID: "The spec is inconsistent with itself or the cluster; fix the resource.",
    Reason.SECRET_NOT_FOUND: "A referenced Secret does not exist in the resource's namespace.",
    Reason.SECRET_KEY_MISSING: "A referenced Secret exists but lacks the referenced key.",
    Reason.PERMISSION_DENIED: "The operator lacks a permission, in Kubernetes or in an external system.",
    Reason.WORKLOAD_NOT_FOUND: "A Deployment named in spec.workloads does not exist.",
    Reason.PROVISIONED: "Every declared external object exists and matches the spec.",
    Reason.PROVISIONING_PENDING: "Some declared objects are being created or changed.",
    Reason.PROVISIONING_FAILED: "Creating or changing a declared object failed; the operator retries.",
    Reason.NOTHING_TO_PROVISION: "The spec declares no external objects.",
    Reason.OBSERVE_ONLY: "managementPolicy is ObserveOnly; status.plan lists what Full would do.",
    Reason.DRIFT_DETECTED: "A declared object differs from the spec and is not being changed.",
    Reason.TABLE_NOT_FOUND: "A declared Postgres table does not exist (the operator never creates tables).",
    Reason.TIMESCALE_UNAVAILABLE: "A hypertable is declared but the timescaledb extension is not installed.",
    Reason.UNSUPPORTED_ON_EDITION: "The object needs a server edition not in use (e.g. Neo4j Enterprise constraints).",
    Reason.INDEX_SPEC_IMMUTABLE: "An existing Pinecone index differs in a field that cannot change (e.g. dimension).",
    Reason.BUCKET_OWNED_BY_ANOTHER_ACCOUNT: "The bucket name is taken by another account.",
    Reason.CONSTRAINT_VIOLATED_BY_DATA: "Existing data violates a declared constraint, so it cannot be created.",
    Reason.APP_ROLE_INVALID: "postgres.appRole is missing, superuser or BYPASSRLS.",
    Reason.DEPENDENCY_UNAVAILABLE: "An external system refused the connection or is not ready.",
    Reason.DEPENDENCY_TIMEOUT: "An external system did not answer within its timeout.",
    Reason.WORKLOAD_UNAVAILABLE: "A Deployment named in spec.workloads has no available replicas.",
    Reason.TENANT_COLUMN_NOT_FOUND: "A table declaring RLS has no column named tenancy.tenantKey.",
    Reason.TENANT_COLUMN_TYPE_UNSUPPORTED: "The tenant column's type is not text, varchar, uuid or an integer type.",
    Reason.ROW_SECURITY_CONFLICTS_WITH_COMPRESSION: "TimescaleDB refuses compression on a table with RLS.",
    Reason.TIME_COLUMN_NOT_FOUND: "A hypertable's timeColumn does not exist in the table.",
    Reason.TIME_COLUMN_TYPE_UNSUPPORTED: "A hypertable's timeColumn is not a timestamp, timestamptz or date.",
    Reason.TIME_COLUMN_IMMUTABLE: "The table is already a hypertable partitioned by another column.",
    Reason.HYPERTABLE_CONSTRAINT_INCOMPATIBLE: "A unique constraint without the time column prevents a hypertable.",
    Reason.COMPRESSION_SPEC_CONFLICT: "The declared compression settings contradict the table (e.g. segmentBy column).",
    Reason.NOT_IMPLEMENTED_BY_ENDPOINT: "The S3 endpoint answers NotImplemented for a declared feature.",
    Reason.LOCK_TIMEOUT: "A DDL statement waited spec.postgres.lockTimeout for a lock other sessions hold (named in"
    " the message) and gave up; the object is retried on later passes with backoff, other objects proceed.",
    Reason.HYPERTABLE_NEEDS_DATA_MIGRATION: "The table already holds rows (estimate in the message): making it a"
    " hypertable moves them under an exclusive lock, done only with hypertable.migrateData: true.",
    Reason.UNEXPECTED_ERROR: "A system's provisioning failed unexpectedly (a bug or an unmapped error); the"
    " message names the exception's type, the operator's log has the traceback. Other systems go on.",
    Reason.CREDENTIALS_REQUIRED: "A section names no credentials Secret, and the operator does not lend its own"
    " identity (--allow-ambient-credentials); the message names the field.",
    Reason.EGRESS_DENIED: "An endpoint from the spec resolves to an address the operator's egress policy denies"
    " (link-local, loopback, the API server, or outside PAYSCOPE_ALLOWED_EGRESS); it was never contacted.",
    Reason.RESPONSE_TOO_LARGE: "An HTTP answer was larger than the operator's response size cap and was not read.",
    Reason.OWNED_BY_ANOTHER_RESOURCE: "A declared object is recorded as owned by another PayScopeDeployment (named"
    " in the message); this one observes it and never changes it.",
}


def reason_table() -> list[tuple[str, str]]:
    """``(reason, meaning)`` rows in declaration order, for generated documentation."""
    return [(reason.value, reason.description) for reason in Reason]
