"""Dimension G, API side: forged tokens, tenant binding, roles, and what answers cite.

Why this module exists: PayScope is multi-tenant; a bank must never see
another bank's data. Through the API that rests on four rules, each probed with
tokens the operator mints (``payscope.access``): every forged or incomplete
token is refused with 401; a caller's ``X-Bank-Id`` must equal its token's
``bank_id`` (403 otherwise); only analysts and admins may query, only admins
read the admin endpoints (403 otherwise); and the chat answers
(``payscope.chat``) cite only the caller's own data. Every probe carries an
invalid body: PayScope authenticates and authorises before validating, so a
refused call answers 401 or 403 and one that got through answers 422. A
refusal proves something only if the audit's valid token gets through, so
every check first looks at the baseline call made with it.

What it must not do: put a token, or anything from which one could be rebuilt,
into a message or evidence (evidence names the probe, the endpoint and the
status), send requests (sources do), or cover the database side of isolation
(RLS, graph and vector filters, audit log: data-layer checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from payscope_operator.api import spec, status
from payscope_operator.backends import payscope_api
from payscope_operator.reconcile import checks
from payscope_operator.reconcile.catalog import sources

Severity = status.Severity
Finding = checks.Finding
AccessEvidence = sources.AccessEvidence
REFUSALS = frozenset({400, 401, 403})
"""Statuses that count as a refusal; anything else (2xx, 404, 422, 5xx) means the call got through."""

LABELS: Mapping[str, str] = {
    sources.MISSING: "no token",
    sources.MALFORMED: "a bearer value that is not a JWT",
    sources.EXPIRED: "a token expired an hour ago",
    sources.WRONG_KEY: "a token signed by another key",
    sources.TAMPERED: "a token altered after signing",
    sources.ALG_NONE: "an unsigned alg: none token",
    sources.OTHER_ALG: "a token signed with another algorithm",
    sources.AUDIENCE: "a token for another audience",
    sources.ISSUER: "a token from another issuer",
    sources.UNKNOWN_KID: "a token naming an unknown key id",
    sources.NO_ROLE: "a token with neither the analyst nor the admin role",
    sources.BANK_MISMATCH: "another probe tenant's X-Bank-Id",
    sources.BANK_MISSING: "no X-Bank-Id header",
    sources.NO_BANK_CLAIM: "a token without bank_id",
    sources.ROLES_AS_STRING: "a token whose roles is a string",
    **{sources.claim_key(c): f"a token without {c}" for c in sources.REQUIRED_CLAIMS},
    **{sources.admin_key("anonymous", p): f"no token on {p}" for p in payscope_api.client.ADMIN_PATHS},
    **{sources.admin_key("analyst", p): f"an analyst token on {p}" for p in payscope_api.client.ADMIN_PATHS},
}


def _label(key: str, reply: payscope_api.client.Reply) -> str:
    return f"{LABELS[key]} ({reply.describe()})"


def _refused(
    keys: tuple[str, ...], expected: int, fix: str, *, accepted: str = "fail"
) -> checks.Evaluate[AccessEvidence]:
    """Pass when every probe in ``keys`` is refused with ``expected``; another refusal status is a Warn.

    A probe that gets through fails the check (or warns, with ``accepted="warn"``).
    """

    def evaluate(evidence: AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
        baseline = evidence.replies[sources.BASELINE]
        if baseline.status is None:
            return Finding.unknown(sources.explain(baseline))
        if baseline.status in REFUSALS:
            return Finding.unknown(
                f"PayScope refuses the audit's valid token too ({baseline.describe()}), so a refusal proves nothing: "
                "make spec.api.auth (key, algorithm, issuer, audience) match PayScope's."
            )
        probes = [(key, evidence.replies[key]) for key in keys]
        silent = [reply for _, reply in probes if reply.status is None]
        if silent:
            return Finding.unknown(sources.explain(silent[0]))
        where = "; ".join(_label(key, reply) for key, reply in probes)
        through = [_label(key, reply) for key, reply in probes if reply.status not in REFUSALS]
        if through:
            message = f"PayScope let through {', '.join(through)}: {fix}"
            return (
                Finding.warned(message, evidence=where)
                if accepted == "warn"
                else Finding.failed(message, evidence=where)
            )
        off = [_label(key, reply) for key, reply in probes if reply.status != expected]
        if off:
            return Finding.warned(
                f"PayScope refused {', '.join(off)}, but contract version 1 says {expected}.", evidence=where
            )
        return Finding.passed(f"PayScope refuses {', '.join(LABELS[k] for k in keys)} with {expected}.", evidence=where)

    return evaluate


def _leaks(evidence: sources.ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    bank, other = sources.tenants(desired)
    asked = [(bank, intent, answer) for intent, answer in evidence.intents.items()]
    if evidence.other_tenant is not None and other is not None:
        asked.append((other, "DESCRIBE", evidence.other_tenant))
    seen = [(b, i, a) for b, i, a in asked if a.reply.status == 200 and a.structured and a.sources is not None]
    if not seen:
        return Finding.unknown("No answer cited sources to check; see E.intents.* and E.responses.structured.")
    leaks = [
        f"{intent} as {b}: {s.kind} {s.ref} of {s.bank_id}"
        for b, intent, a in seen
        for s in a.sources or ()
        if s.bank_id != b
    ]
    leaks += [f"{intent} as {b}: answered for {a.bank_id}" for b, intent, a in seen if a.bank_id not in (None, b)]
    tenants = sorted({b for b, _, _ in seen})
    where = f"POST /chat/query → 200: {len(seen)} answers as {', '.join(tenants)}"
    if leaks:
        return Finding.failed(
            "Answers cite another tenant's data: " + "; ".join(leaks[:4]) + ". Filter every store read by the "
            "caller's bank_id (Postgres session variable, graph property, vector namespace and metadata).",
            evidence=where,
        )
    cited = sum(len(a.sources or ()) for _, _, a in seen)
    return Finding.passed(f"All {cited} sources cited in {len(seen)} answers belong to the caller.", evidence=where)


_JWT = "E/Bank Isolation/JWT validation"
_CORRECT = "G/JWT/Validation correctness"
_SIGNATURE = "G/JWT/Signature verification"


def _jwt_check(
    check_id: str, keys: tuple[str, ...], fix: str, severity: Severity, *covers: str, accepted: str = "fail"
) -> checks.Check[AccessEvidence]:
    what = ", ".join(LABELS[k] for k in keys)
    return checks.Check(
        id=check_id,
        title=f"Calls with {what}, next to one with the audit's valid token.",
        passes_when="The valid call gets through and each probe is refused with 401 (another 4xx: Warn).",
        severity=severity,
        source=sources.ACCESS,
        evaluate=_refused(keys, 401, fix, accepted=accepted),
        covers=covers,
    )


CHECKS: tuple[checks.Check[Any], ...] = (
    _jwt_check(
        "G.jwt.missing",
        (
            sources.MISSING,
            sources.MALFORMED,
            *(sources.admin_key("anonymous", p) for p in payscope_api.client.ADMIN_PATHS),
        ),
        "require a Bearer token on every endpoint but health and metrics.",
        Severity.CRITICAL,
        _CORRECT,
        _JWT,
    ),
    _jwt_check(
        "G.jwt.expired",
        (sources.EXPIRED,),
        "verify exp (with at most a minute of leeway).",
        Severity.CRITICAL,
        "G/JWT/Expiry checking",
        _JWT,
    ),
    _jwt_check(
        "G.jwt.signature",
        (sources.WRONG_KEY, sources.TAMPERED),
        "verify every token's signature against PayScope's own keys.",
        Severity.CRITICAL,
        _SIGNATURE,
        _JWT,
    ),
    _jwt_check(
        "G.jwt.alg_none",
        (sources.ALG_NONE,),
        "accept only the configured algorithm; never alg: none.",
        Severity.CRITICAL,
        _SIGNATURE,
        _CORRECT,
        _JWT,
    ),
    _jwt_check(
        "G.jwt.algorithm",
        (sources.OTHER_ALG,),
        "accept only the configured algorithm (for RS256, never HS256 keyed with the public key).",
        Severity.CRITICAL,
        _SIGNATURE,
        _JWT,
    ),
    _jwt_check(
        "G.jwt.claims",
        (*(sources.claim_key(c) for c in sources.REQUIRED_CLAIMS), sources.ROLES_AS_STRING),
        "require sub, roles (a list), iss, aud, iat and exp in every token.",
        Severity.HIGH,
        _CORRECT,
        _JWT,
    ),
    _jwt_check(
        "G.jwt.audience",
        (sources.AUDIENCE,),
        "verify aud against PayScope's audience (spec.api.auth.audience).",
        Severity.CRITICAL,
        _CORRECT,
        _JWT,
    ),
    _jwt_check(
        "G.jwt.issuer",
        (sources.ISSUER,),
        "verify iss against PayScope's issuer (spec.api.auth.issuer).",
        Severity.HIGH,
        _CORRECT,
        _JWT,
    ),
    _jwt_check(
        "G.jwt.key_id",
        (sources.UNKNOWN_KID,),
        "look keys up by kid and refuse unknown ones, so a retired key stops working once removed.",
        Severity.MEDIUM,
        "G/JWT/Key rotation support",
        accepted="warn",
    ),
    checks.Check(
        id="G.isolation.bank_header",
        title="Calls with a valid token but another tenant's X-Bank-Id, no X-Bank-Id, or no bank_id claim.",
        passes_when="Mismatched or missing X-Bank-Id is refused with 403 and a token without bank_id with 401 "
        "(another 4xx: Warn). Needs spec.audit.probeTenants.",
        severity=Severity.CRITICAL,
        source=sources.ACCESS,
        evaluate=_refused(
            (sources.BANK_MISMATCH, sources.BANK_MISSING),
            403,
            "compare X-Bank-Id with the token's bank_id and refuse any difference with 403.",
        ),
        covers=(
            "G/Bank Isolation/Header bank_id validation",
            "G/Bank Isolation/JWT bank_id validation",
            "E/Bank Isolation/Header validation (X-Bank-Id)",
        ),
        applies=lambda s: s.audit.probe_tenants is not None,
    ),
    checks.Check(
        id="G.isolation.bank_claim",
        title="A call with a valid token that lacks the bank_id claim.",
        passes_when="Refused with 401 (another 4xx: Warn). Needs spec.audit.probeTenants.",
        severity=Severity.CRITICAL,
        source=sources.ACCESS,
        evaluate=_refused((sources.NO_BANK_CLAIM,), 401, "require the bank_id claim in every token."),
        covers=("G/Bank Isolation/JWT bank_id validation", _JWT),
        applies=lambda s: s.audit.probe_tenants is not None,
    ),
    checks.Check(
        id="G.isolation.sources",
        title="The bank_id of every source cited by the chat answers, and of the answers themselves.",
        passes_when="Every cited source and answer belongs to the tenant that asked (each probe tenant).",
        severity=Severity.CRITICAL,
        source=sources.CHAT,
        evaluate=_leaks,
        covers=(
            "G/Bank Isolation/No data leakage paths",
            "E/Bank Isolation/DB RLS enforcement",
            "E/Bank Isolation/Neo4j filtering",
            "E/Bank Isolation/Pinecone filtering",
        ),
    ),
    checks.Check(
        id="G.rbac.chat_role",
        title="POST /chat/query with a valid token holding neither the analyst nor the admin role.",
        passes_when="Refused with 403 (another 4xx: Warn).",
        severity=Severity.HIGH,
        source=sources.ACCESS,
        evaluate=_refused((sources.NO_ROLE,), 403, "serve the chat only to the analyst and admin roles."),
        covers=("G/RBAC/Role enforcement", "G/RBAC/Policy checks"),
    ),
    checks.Check(
        id="G.rbac.admin_endpoints",
        title=f"{', '.join(payscope_api.client.ADMIN_PATHS)} called with a valid analyst token.",
        passes_when="Each is refused with 403 (another 4xx: Warn).",
        severity=Severity.CRITICAL,
        source=sources.ACCESS,
        evaluate=_refused(
            tuple(sources.admin_key("analyst", p) for p in payscope_api.client.ADMIN_PATHS),
            403,
            "serve the admin endpoints to the admin role only.",
        ),
        covers=("G/RBAC/Role enforcement", "G/RBAC/Permission validation"),
    ),
)
