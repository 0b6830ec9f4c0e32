"""Dimension G, security: forged tokens, tenant binding, roles, what answers cite, RLS as the app role, audit log.

Why this module exists: PayScope is multi-tenant; a bank must never see another
bank's data, and what happened must stay on record. Through the API that rests
on four rules, each probed with the records of ``probes`` (``payscope.access``)
and judged by ``refusals``: every forged or incomplete token is refused with 401;
a caller's ``X-Bank-Id`` must equal its token's ``bank_id`` (403 otherwise); only
analysts and admins may query, only admins read the admin endpoints (403
otherwise); and the chat answers (``payscope.chat``) cite only the caller's own
data. In Postgres, the app role acting for one tenant must see and write no other
tenant's row (``postgres.isolation``). The audit log is judged in ``audit_log``.

What it must not do: put a token, or anything from which one could be rebuilt,
into a message or evidence (evidence names the probe, the endpoint and the
status), send requests or queries (sources do), or judge the data layer's own
declarations (RLS enabled, graph and vector tenancy: dimension B).
"""

from __future__ import annotations

from payscope_operator.api import spec, status
from payscope_operator.audit import probes, registry, tokens
from payscope_operator.audit.checks import refusals
from payscope_operator.audit.sources import payscope_api, postgres
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.payscope_api import model as api_model
from payscope_operator.backends.postgres import isolation as pg_isolation

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
    passes_when=refusals.REFUSED_401 + " The refusal of the call without a token challenges with Bearer and no "
    "error code (otherwise Warn).",
    covers=(_CORRECT, _JWT),
)
def jwt_missing(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    found = refusals.refused(evidence, MISSING, "require a Bearer token on every endpoint but health and metrics.")
    challenge = evidence.reply(probes.MISSING).challenge
    if found.status == status.CheckStatus.PASS and (not challenge or "error=" in challenge):
        return Finding.warned(
            f"A request without a token is refused, but its challenge is {challenge!r}: answer "
            "'WWW-Authenticate: Bearer realm=\"payscope\"' with no error code when no credentials were sent "
            "(RFC 6750 section 3.1, contract section 0).",
            evidence=found.evidence,
        )
    return found


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


RUNTIME_AS_ADMIN = next(p for p in probes.ADMIN_AS_ADMIN if p.path == "/admin/runtime")


@CHECKS.check(
    "G.jwt.key_id",
    fix="Refuse tokens whose kid names no key PayScope holds (list the keys in spec.api.auth.keyIds); answer 401.",
    source=payscope_api.ACCESS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title=refusals.calls((probes.UNKNOWN_KID,)) + " The accepted key ids are read from GET /admin/runtime "
    "(auth.key_ids).",
    passes_when="The unknown key id is refused with 401 (accepted: Fail) and auth.key_ids lists the accepted key "
    "ids, none of them the probe's (no list: Warn).",
    covers=("G/JWT/Key rotation support", _CORRECT),
)
def jwt_key_id(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    runtime = evidence.reply(RUNTIME_AS_ADMIN)
    listed = api_model.parse_runtime(runtime.body).key_ids if runtime.status == 200 and runtime.body else None
    if listed is not None and tokens.UNKNOWN_KEY_ID in listed:
        return Finding.unknown(
            f"PayScope lists the probe's own key id {tokens.UNKNOWN_KEY_ID!r} as accepted, so its refusal proves "
            "nothing."
        )
    fix = "look keys up by kid and refuse unknown ones, so a retired key stops working once removed."
    refused = refusals.refused(evidence, (probes.UNKNOWN_KID,), fix)
    if refused.status != status.CheckStatus.PASS:
        return refused
    where = f"{refused.evidence}; {runtime.describe()}: auth.key_ids={list(listed) if listed is not None else None}"
    if runtime.status != 200 or runtime.body is None:
        return Finding.unknown(
            "PayScope refuses unknown key ids, but the ids it accepts could not be read: "
            f"{payscope_api.explain(runtime)}.",
            evidence=where,
        )
    if not listed:
        return Finding.warned(
            "PayScope refuses unknown key ids but does not list the ids it accepts (auth.key_ids in GET "
            "/admin/runtime): a rotation in progress cannot be followed from outside.",
            evidence=where,
        )
    return Finding.passed(
        f"PayScope refuses an unknown key id and accepts {len(listed)} listed key id(s): {', '.join(listed)}.",
        evidence=where,
    )


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
    passes_when="At least one source is cited, and every cited source and answer belongs to the tenant that asked "
    "(each probe tenant); answers citing nothing are Unknown.",
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
    if not cited:
        return Finding.unknown(
            f"None of the {len(seen)} answers cited a source, so no answer could show a leak: give the probe tenants "
            "(spec.audit.probeTenants) data PayScope can cite.",
            evidence=where,
        )
    return Finding.passed(f"All {cited} sources cited in {len(seen)} answers belong to the caller.", evidence=where)


@CHECKS.check(
    "G.isolation.rls_probe",
    fix="Make the tenant policies bind the app role: ENABLE and FORCE RLS, policies on the session variable,"
    " no BYPASSRLS.",
    source=postgres.ISOLATION,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="As the app role with the session variable set to one tenant, no other tenant's row is visible or writable.",
    passes_when="A row of another tenant, planted by the probe (or already there), is not visible, and an insert for"
    " that tenant is refused, inside a rolled-back transaction (an insert that fails for another reason, such as a"
    " trigger: Unknown).",
    covers=("G/Bank Isolation/DB RLS enforcement", "G/Bank Isolation/JWT bank_id validation"),
)
def rls_probe(evidence: postgres.IsolationEvidence, desired: spec.PayScopeSpec) -> Finding:
    problems, undecided, unproven = [], [], []
    for p in evidence.probes:
        own, other = p.tenants
        if p.visible_foreign_rows:
            problems.append(
                f"{p.table}: as {p.role} for {own}, {p.visible_foreign_rows} other tenants' row(s) are visible"
            )
        elif p.unproven:
            unproven.append(f"{p.table}: {p.unproven}")
        if p.foreign_write == pg_isolation.NOT_WRITTEN:
            pass
        elif p.foreign_write.startswith("inconclusive"):
            why = p.foreign_write.partition(": ")[2]
            undecided.append(f"{p.table}: the write for {other} failed for another reason ({why})")
        elif not p.foreign_write.startswith("refused"):
            problems.append(f"{p.table}: as {p.role} for {own}, a row for {other} was {p.foreign_write}")
    where = "; ".join(_probed(p) for p in evidence.probes) + " (rolled back)"
    if problems:
        return Finding.failed("Tenant isolation is broken: " + "; ".join(problems[:4]), evidence=where)
    if undecided:
        return Finding.unknown(
            "No other tenant's row is visible, but whether one can be written is undecided: " + "; ".join(undecided),
            evidence=where,
        )
    if unproven:
        return Finding.unknown("Tenant isolation is not proven: " + "; ".join(unproven[:4]), evidence=where)
    return Finding.passed(
        f"As the app role, {len(evidence.probes)} table(s) hide other tenants' rows and refuse writes for them.",
        evidence=where,
    )


def _probed(facts: pg_isolation.IsolationFacts) -> str:
    planted = f", a row of {facts.tenants[1]} planted by {facts.planted}" if facts.planted else ""
    return f"{facts.table} as {facts.role}{planted}"


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
