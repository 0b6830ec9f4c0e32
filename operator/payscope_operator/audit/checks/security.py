"""Dimension G, security: forged tokens, tenant binding, roles, what answers cite, RLS as the app role, audit log.

Why this module exists: PayScope is multi-tenant; a bank must never see another
bank's data, and what happened must stay on record. Through the API that rests
on four rules, each probed with the records of ``probes`` (``payscope.access``)
and judged by ``refusals``: every forged or incomplete token is refused with 401;
a caller's ``X-Bank-Id`` must equal its token's ``bank_id`` (403 otherwise); only
analysts and admins may query, only admins read the admin endpoints (403
otherwise); and the chat answers (``payscope.chat``) cite only the caller's own
data. In Postgres, the app role acting for one tenant must see and write no other
tenant's row (``postgres.isolation``), and the audit log's hash chain must verify
and stay out of the app role's reach (``postgres.catalog``).

What it must not do: put a token, or anything from which one could be rebuilt,
into a message or evidence (evidence names the probe, the endpoint and the
status), send requests or queries (sources do), or judge the data layer's own
declarations (RLS enabled, graph and vector tenancy: dimension B).
"""

from __future__ import annotations

from payscope_operator.api import spec, status
from payscope_operator.audit import probes, registry
from payscope_operator.audit.checks import refusals
from payscope_operator.audit.sources import payscope_api, postgres
from payscope_operator.backends.payscope_api import client as api_client

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
AccessEvidence = payscope_api.AccessEvidence
CHECKS = registry.Registry()
_JWT = "E/Bank Isolation/JWT validation"
_CORRECT = "G/JWT/Validation correctness"
_SIGNATURE = "G/JWT/Signature verification"


MISSING = (probes.MISSING, probes.MALFORMED, *probes.ADMIN_ANONYMOUS)


@CHECKS.check(
    "G.jwt.missing",
    fix="Require a Bearer token on every endpoint except /healthz, /readyz and /metrics; answer 401 without one.",
    source=payscope_api.ACCESS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title=refusals.calls(MISSING),
    passes_when=refusals.REFUSED_401,
    covers=(_CORRECT, _JWT),
)
def jwt_missing(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    return refusals.refused(evidence, MISSING, "require a Bearer token on every endpoint but health and metrics.")


@CHECKS.check(
    "G.jwt.expired",
    fix="Verify exp (at most a minute of leeway) and answer 401 for an expired token.",
    source=payscope_api.ACCESS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title=refusals.calls((probes.EXPIRED,)),
    passes_when=refusals.REFUSED_401,
    covers=("G/JWT/Expiry checking", _JWT),
)
def jwt_expired(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    return refusals.refused(evidence, (probes.EXPIRED,), "verify exp (with at most a minute of leeway).")


@CHECKS.check(
    "G.jwt.signature",
    fix="Verify every token's signature against PayScope's own keys; answer 401 for a wrong or altered signature.",
    source=payscope_api.ACCESS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title=refusals.calls((probes.WRONG_KEY, probes.TAMPERED)),
    passes_when=refusals.REFUSED_401,
    covers=(_SIGNATURE, _JWT),
)
def jwt_signature(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    fix = "verify every token's signature against PayScope's own keys."
    return refusals.refused(evidence, (probes.WRONG_KEY, probes.TAMPERED), fix)


@CHECKS.check(
    "G.jwt.alg_none",
    fix="Accept only the configured algorithm; refuse alg none with 401.",
    source=payscope_api.ACCESS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title=refusals.calls((probes.ALG_NONE,)),
    passes_when=refusals.REFUSED_401,
    covers=(_SIGNATURE, _CORRECT, _JWT),
)
def jwt_alg_none(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    return refusals.refused(evidence, (probes.ALG_NONE,), "accept only the configured algorithm; never alg: none.")


@CHECKS.check(
    "G.jwt.algorithm",
    fix="Pin the accepted algorithm list to the configured one (no algorithm confusion); answer 401 otherwise.",
    source=payscope_api.ACCESS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title=refusals.calls((probes.OTHER_ALG,)),
    passes_when=refusals.REFUSED_401,
    covers=(_SIGNATURE, _JWT),
)
def jwt_algorithm(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    fix = "accept only the configured algorithm (for RS256, never HS256 keyed with the public key)."
    return refusals.refused(evidence, (probes.OTHER_ALG,), fix)


CLAIMS = (*probes.WITHOUT_CLAIM, probes.ROLES_AS_STRING)


@CHECKS.check(
    "G.jwt.claims",
    fix="Require sub, roles (a list), iss, aud, iat and exp in every token; answer 401 when one is missing.",
    source=payscope_api.ACCESS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title=refusals.calls(CLAIMS),
    passes_when=refusals.REFUSED_401,
    covers=(_CORRECT, _JWT),
)
def jwt_claims(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    return refusals.refused(evidence, CLAIMS, "require sub, roles (a list), iss, aud, iat and exp in every token.")


@CHECKS.check(
    "G.jwt.audience",
    fix="Verify aud against PayScope's audience (spec.api.auth.audience); answer 401 otherwise.",
    source=payscope_api.ACCESS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title=refusals.calls((probes.AUDIENCE,)),
    passes_when=refusals.REFUSED_401,
    covers=(_CORRECT, _JWT),
)
def jwt_audience(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    return refusals.refused(
        evidence, (probes.AUDIENCE,), "verify aud against PayScope's audience (spec.api.auth.audience)."
    )


@CHECKS.check(
    "G.jwt.issuer",
    fix="Verify iss against PayScope's issuer (spec.api.auth.issuer); answer 401 otherwise.",
    source=payscope_api.ACCESS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title=refusals.calls((probes.ISSUER,)),
    passes_when=refusals.REFUSED_401,
    covers=(_CORRECT, _JWT),
)
def jwt_issuer(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    return refusals.refused(evidence, (probes.ISSUER,), "verify iss against PayScope's issuer (spec.api.auth.issuer).")


@CHECKS.check(
    "G.jwt.key_id",
    fix="Refuse tokens whose kid names no key PayScope holds (list the keys in spec.api.auth.keyIds); answer 401.",
    source=payscope_api.ACCESS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title=refusals.calls((probes.UNKNOWN_KID,)),
    passes_when=refusals.REFUSED_401,
    covers=("G/JWT/Key rotation support",),
)
def jwt_key_id(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    fix = "look keys up by kid and refuse unknown ones, so a retired key stops working once removed."
    return refusals.refused(evidence, (probes.UNKNOWN_KID,), fix, warn=True)


@CHECKS.check(
    "G.isolation.bank_header",
    fix="Answer 403 when X-Bank-Id is missing or differs from the token's bank_id.",
    source=payscope_api.ACCESS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="Calls with a valid token but another tenant's X-Bank-Id, no X-Bank-Id, or no bank_id claim.",
    passes_when="Mismatched or missing X-Bank-Id is refused with 403 and a token without bank_id with 401 "
    "(another 4xx: Warn). Needs spec.audit.probeTenants.",
    covers=(
        "G/Bank Isolation/Header bank_id validation",
        "G/Bank Isolation/JWT bank_id validation",
        "E/Bank Isolation/Header validation (X-Bank-Id)",
    ),
    applies=lambda s: s.audit.probe_tenants is not None,
)
def bank_header(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    fix = "compare X-Bank-Id with the token's bank_id and refuse any difference with 403."
    return refusals.refused(evidence, (probes.BANK_MISMATCH, probes.BANK_MISSING), fix)


@CHECKS.check(
    "G.isolation.bank_claim",
    fix="Answer 401 for a token without a bank_id claim.",
    source=payscope_api.ACCESS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="A call with a valid token that lacks the bank_id claim.",
    passes_when="Refused with 401 (another 4xx: Warn). Needs spec.audit.probeTenants.",
    covers=("G/Bank Isolation/JWT bank_id validation", _JWT),
    applies=lambda s: s.audit.probe_tenants is not None,
)
def bank_claim(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    return refusals.refused(evidence, (probes.NO_BANK_CLAIM,), "require the bank_id claim in every token.")


@CHECKS.check(
    "G.isolation.sources",
    fix="Filter every store (Postgres, Neo4j, Pinecone) by the caller's bank_id, so answers cite only the"
    " caller's data.",
    source=payscope_api.CHAT,
    severity=Severity.CRITICAL,
    grade=Grade.INFERRED,
    title="The bank_id of every source cited by the chat answers, and of the answers themselves.",
    passes_when="Every cited source and answer belongs to the tenant that asked (each probe tenant).",
    covers=(
        "G/Bank Isolation/No data leakage paths",
        "E/Bank Isolation/DB RLS enforcement",
        "E/Bank Isolation/Neo4j filtering",
        "E/Bank Isolation/Pinecone filtering",
    ),
)
def cited_sources(evidence: payscope_api.ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    bank, other = payscope_api.tenants(desired)
    asked = [(bank, intent, answer) for intent, answer in evidence.intents.items()]
    if evidence.other_tenant is not None and other is not None:
        asked.append((other, "DESCRIBE", evidence.other_tenant))
    seen = [(b, i, a) for b, i, a in asked if a.reply.status == 200 and a.structured and a.sources is not None]
    if not seen:
        return Finding.unknown("No answer was a JSON object citing a list of sources, so there is nothing to judge.")
    leaks = [
        f"{i} as {b}: {s.kind} {s.ref} of {s.bank_id}" for b, i, a in seen for s in a.sources or () if s.bank_id != b
    ]
    leaks += [f"{i} as {b}: answered for {a.bank_id}" for b, i, a in seen if a.bank_id not in (None, b)]
    where = f"POST /chat/query → 200: {len(seen)} answers as {', '.join(sorted({b for b, _, _ in seen}))}"
    if leaks:
        return Finding.failed(
            "Answers cite another tenant's data: " + "; ".join(leaks[:4]) + ". Filter every store read by the "
            "caller's bank_id (Postgres session variable, graph property, vector namespace and metadata).",
            evidence=where,
        )
    cited = sum(len(a.sources or ()) for _, _, a in seen)
    return Finding.passed(f"All {cited} sources cited in {len(seen)} answers belong to the caller.", evidence=where)


@CHECKS.check(
    "G.isolation.rls_probe",
    fix="Make the tenant policies bind the app role: ENABLE and FORCE RLS, policies on the session variable,"
    " no BYPASSRLS.",
    source=postgres.ISOLATION,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="As the app role with the session variable set to one tenant, no other tenant's row is visible or writable.",
    passes_when="Zero foreign rows visible and an insert for another tenant refused, inside a rolled-back transaction.",
    covers=("G/Bank Isolation/DB RLS enforcement", "G/Bank Isolation/JWT bank_id validation"),
)
def rls_probe(evidence: postgres.IsolationEvidence, desired: spec.PayScopeSpec) -> Finding:
    problems = []
    for p in evidence.probes:
        own, other = p.tenants
        if p.visible_foreign_rows:
            problems.append(
                f"{p.table}: as {p.role} for {own}, {p.visible_foreign_rows} other tenants' row(s) are visible"
            )
        if not p.foreign_write.startswith("refused"):
            problems.append(f"{p.table}: as {p.role} for {own}, a row for {other} was {p.foreign_write}")
    where = "; ".join(f"{p.table} as {p.role}" for p in evidence.probes) + " (rolled back)"
    if problems:
        return Finding.failed("Tenant isolation is broken: " + "; ".join(problems[:4]), evidence=where)
    return Finding.passed(
        f"As the app role, {len(evidence.probes)} table(s) hide other tenants' rows and refuse writes for them.",
        evidence=where,
    )


@CHECKS.check(
    "G.rbac.chat_role",
    fix="Allow /chat/query only to the analyst and admin roles; answer 403 to others.",
    source=payscope_api.ACCESS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="POST /chat/query with a valid token holding neither the analyst nor the admin role.",
    passes_when="Refused with 403 (another 4xx: Warn).",
    covers=("G/RBAC/Role enforcement", "G/RBAC/Policy checks"),
)
def chat_role(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    return refusals.refused(evidence, (probes.NO_ROLE,), "serve the chat only to the analyst and admin roles.")


@CHECKS.check(
    "G.rbac.admin_endpoints",
    fix="Allow the /admin endpoints only to the admin role; answer 403 to analysts.",
    source=payscope_api.ACCESS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title=f"{', '.join(api_client.ADMIN_PATHS)} called with a valid analyst token.",
    passes_when="Each is refused with 403 (another 4xx: Warn).",
    covers=("G/RBAC/Role enforcement", "G/RBAC/Permission validation"),
)
def admin_role(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    return refusals.refused(evidence, probes.ADMIN_AS_ANALYST, "serve the admin endpoints to the admin role only.")


# The audit log ----------------------------------------------------------------------------------


def _log_table(evidence: postgres.PostgresEvidence, desired: spec.PayScopeSpec) -> tuple[str, Finding | None]:
    """``schema.table on host``, and a Fail when the audit log table does not exist."""
    log = postgres.section(desired).audit_log
    where = f"{log.schema_name}.{log.table} on {evidence.host}"
    if not evidence.audit_log.exists:
        return where, Finding.failed(f"Audit log table {log.schema_name}.{log.table} does not exist.", where)
    return where, None


@CHECKS.check(
    "G.audit_log.hash_chain",
    fix="Find the first row whose prev_hash or hash does not verify; restore it from backup and investigate"
    " who wrote it.",
    source=postgres.CATALOG,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="The audit log's hash chain verifies.",
    passes_when="Each of the newest rows' prev_hash equals the previous row's hash and each hash matches its content.",
    covers=(
        "G/Audit Logging/Fallback hash log (if Fabric disabled)",
        "G/Audit Logging/Operation logging",
        "F/Logging/Audit logging",
    ),
)
def hash_chain(evidence: postgres.PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    where, missing = _log_table(evidence, desired)
    if missing is not None:
        return missing
    facts = evidence.audit_log
    if facts.first_break:
        return Finding.failed(
            f"The audit log's hash chain is broken at {facts.first_break}: investigate tampering.", where
        )
    return Finding.passed(f"The hash chain verifies over the newest {facts.rows_checked} row(s).", where)


@CHECKS.check(
    "G.audit_log.query_logging",
    fix="Write an audit-log row (operation chat.query, with trace_id and intent) for every chat query.",
    source=postgres.CATALOG,
    severity=Severity.MEDIUM,
    grade=Grade.INFERRED,
    title="The audit log records chat queries with their trace id and intent.",
    passes_when="The verified rows include chat.query operations whose payload carries trace_id and intent.",
    covers=("G/Audit Logging/Query logging", "F/Logging/Query logging"),
)
def query_logging(evidence: postgres.PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    where, missing = _log_table(evidence, desired)
    if missing is not None:
        return missing
    counts = dict(evidence.audit_log.operations)
    if not counts.get("chat.query"):
        return Finding.failed("The audit log records no chat.query operation: queries are not logged.", where)
    if not evidence.audit_log.traced_queries:
        return Finding.failed("chat.query rows carry no trace_id and intent: queries cannot be traced.", where)
    shown = ", ".join(f"{op}: {n}" for op, n in sorted(counts.items()))
    return Finding.passed(f"Queries are logged with trace ids ({shown} in the verified rows).", where)


@CHECKS.check(
    "G.audit_log.immutable",
    fix="REVOKE UPDATE, DELETE, TRUNCATE ON the audit log FROM the app role, and give its ownership to another role.",
    source=postgres.CATALOG,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="The app role cannot rewrite the audit log.",
    passes_when="The app role holds no UPDATE, DELETE or TRUNCATE on it and does not own it.",
    covers=("G/Audit Logging/Immutability guarantees",),
    applies=lambda s: s.postgres is not None and s.postgres.app_role is not None,
)
def immutable(evidence: postgres.PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    section = postgres.section(desired)
    log, facts = section.audit_log, evidence.audit_log
    where = f"{log.schema_name}.{log.table} privileges of {section.app_role}"
    if not facts.exists:
        return Finding.failed(f"Audit log table {log.schema_name}.{log.table} does not exist.", where)
    if facts.app_role_owns:
        return Finding.failed(f"{section.app_role} owns the audit log and could rewrite it.", where)
    if facts.app_role_writes:
        return Finding.failed(
            f"REVOKE {', '.join(facts.app_role_writes)} ON {log.table} FROM {section.app_role}.", where
        )
    return Finding.passed(f"{section.app_role} can neither update, delete nor truncate the audit log.", where)


NOT_OBSERVABLE: tuple[registry.NotObservable, ...] = (
    registry.NotObservable(
        "G/Audit Logging/Fabric integration (if enabled)",
        "Contract version 1 exposes no Fabric ledger to the operator; with Fabric enabled the same records go to"
        " a ledger only PayScope can reach. The Postgres hash log is audited by G.audit_log.*.",
    ),
)
