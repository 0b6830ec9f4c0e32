"""The ``spec`` of a PayScopeDeployment: the public contract platform teams write.

Why this module exists: ``PayScopeSpec`` is the single source of truth for what a
PayScopeDeployment may say; the CRD (``crd.build_crd``) is generated from it and kopf
handlers validate ``body["spec"]`` with ``PayScopeSpec.model_validate``. Field names
on the wire are the ones in DESIGN.md ("The resource"); add fields freely, rename none.
Every section is optional: an absent section is neither provisioned nor audited, and
its checks report NotConfigured. The store sections live in ``postgres_spec`` and
``stores_spec``; this module holds the top level, tenancy, workloads, the API and the audit.

What it must not do: read Secrets, talk to the cluster or any store, or hold the
defaults of runtime behaviour that are not part of the resource.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from payscope_operator.api import fields, postgres_spec, stores_spec


class ManagementPolicy(StrEnum):
    """What the operator may do to external systems."""

    FULL = "Full"
    OBSERVE_ONLY = "ObserveOnly"


class DeletionPolicy(StrEnum):
    """Fate of the provisioned external objects when the resource is deleted."""

    RETAIN = "Retain"
    DELETE = "Delete"


class JwtAlgorithm(StrEnum):
    """Signing algorithm of PayScope's JWTs."""

    HS256 = "HS256"
    RS256 = "RS256"
    ES256 = "ES256"


class Tenancy(fields.SpecModel):
    """How PayScope separates tenants (banks)."""

    tenant_key: fields.SqlIdentifier = Field(
        "bank_id", description="Column, graph property and vector metadata key holding the tenant id."
    )
    session_variable: fields.SessionVariable = Field(
        "app.current_bank_id", description="Postgres setting carrying the current tenant, used by the RLS policies."
    )


class Workload(fields.SpecModel):
    """A PayScope Deployment in the resource's namespace."""

    name: fields.KubeName = Field(description="Name of the Deployment.")


class Workloads(fields.SpecModel):
    """The PayScope Deployments audited under dimensions A and F; each absent one is not audited."""

    api: Workload | None = Field(None, description="The HTTP API Deployment.")
    worker: Workload | None = Field(None, description="The Celery worker Deployment.")
    ingestion: Workload | None = Field(None, description="The ingestion service Deployment.")


class ApiAuth(fields.SpecModel):
    """How the operator mints the JWTs it probes PayScope's API with."""

    jwt_secret_ref: fields.SecretKeyRef = Field(
        description="Secret key holding the signing key: the shared secret (HS256) or a PEM private key."
    )
    algorithm: JwtAlgorithm = Field(JwtAlgorithm.HS256, description="HS256, RS256 or ES256.")
    issuer: fields.Token = Field(description="The iss claim PayScope accepts.")
    audience: fields.Token = Field(description="The aud claim PayScope accepts.")


class ApiTimeouts(fields.SpecModel):
    """Timeouts of the probes against PayScope's API."""

    request: fields.Duration = Field("5s", description="Health, metrics and admin endpoints.")
    query: fields.Duration = Field("30s", description="POST /chat/query, which runs the agents.")


class Api(fields.SpecModel):
    """PayScope's HTTP API, probed for dimensions D, E, F and G."""

    url: fields.HttpUrl = Field(description="Base URL, e.g. http://payscope-api:8000.")
    auth: ApiAuth | None = Field(None, description="JWT settings; absent: authenticated probes report NotConfigured.")
    timeouts: ApiTimeouts = Field(ApiTimeouts(), description="Probe timeouts.")
    max_requests_in_flight: fields.StrictInt = Field(
        8,
        ge=1,
        le=64,
        description="Most requests the audit of this resource has in flight to the API at once; the others"
        " wait their turn within their own timeout, so one audit never overruns a small server's listen backlog.",
    )


class Waiver(fields.SpecModel):
    """An accepted failure of one check, of an area's checks, or of a whole dimension, until a date."""

    check: fields.WaiverTarget = Field(
        description="A check id (F.metrics.agents), every check of an area (B.neo4j.*) or a whole dimension (D.*)."
        " A dimension waiver also accepts that the dimension is not audited at all (no check of it configured),"
        " which otherwise keeps Ready False with reason DimensionsNotConfigured."
    )
    reason: fields.Text = Field(description="Why the failure is accepted (shown in status).")
    expires: fields.IsoDate = Field(description="Last day the waiver applies (YYYY-MM-DD).")

    @property
    def prefix(self) -> str | None:
        """``D.`` or ``B.neo4j.`` for a waiver ending in ``*``; None for one naming a single check."""
        return self.check[:-1] if self.check.endswith("*") else None

    def covers(self, check_id: str) -> bool:
        """Whether this waiver names ``check_id``, itself or by its prefix."""
        prefix = self.prefix
        return check_id == self.check if prefix is None else check_id.startswith(prefix)

    @property
    def dimension_letter(self) -> str | None:
        """The dimension's letter for a whole-dimension waiver (``D.*``), else None."""
        return self.check[0] if self.check[1:] == ".*" else None


class Audit(fields.SpecModel):
    """When and how the audit runs."""

    rules = (
        fields.Rule(
            "!has(self.probeTimeout) || !has(self.interval) || "
            f"{fields.cel_duration_seconds('self.probeTimeout')} <= {fields.cel_duration_seconds('self.interval')}",
            "probeTimeout must not exceed interval",
            lambda m: fields.parse_duration(m.probe_timeout) <= fields.parse_duration(m.interval),
            field_path=".probeTimeout",
        ),
    )

    interval: fields.Duration = Field("60s", description="Time between audit cycles, e.g. 60s.")
    probe_timeout: fields.Duration = Field("5s", description="Timeout of each probe, unless a section sets its own.")
    agent_probe_interval: fields.Duration = Field(
        "10m",
        description="How often the probes that run PayScope's agents (POST /chat/query, one per intent) are"
        " repeated; in between, their checks keep the last results. Every other probe runs every interval.",
    )
    read_pod_logs: fields.StrictBool = Field(
        True,
        description="Read the recent log lines of the spec.workloads pods (pods/log) to judge their format and level;"
        " false where the operator is not to read logs (F.logging checks then report NotConfigured).",
    )
    waivers: Annotated[tuple[Waiver, ...], fields.ListKeys(("check",))] = Field(
        (), max_length=100, description="Waived checks, areas or dimensions, unique by check."
    )
    probe_tenants: Annotated[tuple[fields.BankId, ...], Field(min_length=2, max_length=8), fields.ListKeys()] | None = (
        Field(
            None,
            description="Distinct tenant (bank) ids the isolation probes act as; absent: those probes report"
            " NotConfigured.",
        )
    )
    write_probes: fields.StrictBool = Field(
        True,
        description="The Postgres isolation probe may INSERT inside its always rolled-back transaction: a row it"
        " plants for the second probe tenant (so the read side proves something even when that tenant has no data)"
        " and an insert for it as the first, which must be refused. Inserts fire BEFORE triggers and use sequence"
        " values. false: nothing is inserted; the read side relies on rows the second tenant already has.",
    )
    deep_scan_interval: fields.Duration = Field(
        "1h",
        description="How often the audit may run a statement whose cost grows with the data, where no statistic or"
        " index can answer (Neo4j nodes lacking the tenant key); in between, the last result is reused and its"
        " age shown.",
    )


def _tables(spec: PayScopeSpec) -> tuple[postgres_spec.PostgresTable, ...]:
    return spec.postgres.tables if spec.postgres is not None else ()


_TABLES_ALL = "!has(self.postgres) || !has(self.postgres.tables) || self.postgres.tables.all(t, {})"


class PayScopeSpec(fields.SpecModel):
    """Desired state of a PayScope installation: what to provision and what to audit."""

    rules = (
        fields.Rule(
            "!has(self.managementPolicy) || !has(self.deletionPolicy)"
            " || self.managementPolicy != 'ObserveOnly' || self.deletionPolicy != 'Delete'",
            "deletionPolicy Delete contradicts managementPolicy ObserveOnly",
            lambda m: (
                m.management_policy != ManagementPolicy.OBSERVE_ONLY or m.deletion_policy != DeletionPolicy.DELETE
            ),
            field_path=".deletionPolicy",
        ),
        fields.Rule(
            "has(self.tenancy) || " + _TABLES_ALL.format("!has(t.tenantIndex) || !t.tenantIndex"),
            "tenantIndex requires spec.tenancy",
            lambda m: m.tenancy is not None or not any(t.tenant_index for t in _tables(m)),
            field_path=".tenancy",
            reason="FieldValueRequired",
        ),
        fields.Rule(
            "has(self.tenancy) || "
            + _TABLES_ALL.format(
                "!has(t.rowLevelSecurity) || (has(t.rowLevelSecurity.enabled) && !t.rowLevelSecurity.enabled)"
            ),
            "rowLevelSecurity requires spec.tenancy",
            lambda m: (
                m.tenancy is not None
                or not any(t.row_level_security is not None and t.row_level_security.enabled for t in _tables(m))
            ),
            field_path=".tenancy",
            reason="FieldValueRequired",
        ),
    )

    management_policy: ManagementPolicy = Field(
        ManagementPolicy.FULL, description="Full, or ObserveOnly: audit only, never change external systems."
    )
    deletion_policy: DeletionPolicy = Field(
        DeletionPolicy.RETAIN,
        description="Retain (no finalizer) or Delete: remove provisioned external objects with the resource.",
    )
    tenancy: Tenancy | None = Field(None, description="Tenant separation; needed by RLS and tenant indexes.")
    postgres: postgres_spec.Postgres | None = Field(None, description="Postgres/TimescaleDB.")
    neo4j: stores_spec.Neo4j | None = Field(None, description="Neo4j graph.")
    pinecone: stores_spec.Pinecone | None = Field(None, description="Pinecone vector indexes.")
    object_storage: stores_spec.ObjectStorage | None = Field(None, description="S3-compatible object storage.")
    redis: stores_spec.Redis | None = Field(None, description="Redis broker and dead-letter queue.")
    workloads: Workloads | None = Field(None, description="PayScope's Deployments.")
    api: Api | None = Field(None, description="PayScope's HTTP API.")
    audit: Audit = Field(Audit(), description="Audit schedule, probe timeout, waivers.")
