"""Dimension G's API-side evaluations and the probe tokens, table-tested.

The evaluations get access replies (status codes per probe) and chat answers;
the tokens are checked with PyJWT itself: valid ones verify with the
installation's key, each forgery fails verification for its own reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr

from payscope_operator import errors
from payscope_operator.api import spec, status
from payscope_operator.audit import probes, registry, tokens
from payscope_operator.audit.checks import security
from payscope_operator.audit.sources import payscope_api
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.payscope_api import model as api_model
from payscope_operator.reconcile import secrets, session
from tests.unit.audit import evidence as ev

S = status.CheckStatus
CHECKS = {c.id: c for c in security.CHECKS}
SECRET = "s" * 64
EXPECTED = {
    probes.BASELINE: 422,
    probes.MISSING: 401,
    probes.MALFORMED: 401,
    probes.OTHER_ALG: 401,
    probes.ROLES_AS_STRING: 401,
    **dict.fromkeys(probes.WITHOUT_CLAIM, 401),
    probes.EXPIRED: 401,
    probes.WRONG_KEY: 401,
    probes.TAMPERED: 401,
    probes.ALG_NONE: 401,
    probes.AUDIENCE: 401,
    probes.ISSUER: 401,
    probes.UNKNOWN_KID: 401,
    probes.NO_ROLE: 403,
    probes.BANK_MISMATCH: 403,
    probes.BANK_MISSING: 403,
    probes.NO_BANK_CLAIM: 401,
    **dict.fromkeys(probes.ADMIN_AS_ADMIN, 200),
    **dict.fromkeys(probes.ADMIN_AS_ANALYST, 403),
    **dict.fromkeys(probes.ADMIN_ANONYMOUS, 401),
}
"""What contract version 1 says each probe must be answered: the healthy PayScope of these tests."""


def test_each_probe_record_expects_what_the_contract_says_and_is_sent() -> None:
    assert {p: p.expect for p in probes.ALL} == EXPECTED
    assert len({p.key for p in probes.ALL}) == len(probes.ALL)


def _access(**changes: int | None) -> payscope_api.AccessEvidence:
    codes = {
        **{p.key: code for p, code in EXPECTED.items()},
        **{k.replace("__", ":/admin/"): v for k, v in changes.items()},
    }
    replies = {
        key: api_client.Reply(
            "POST /chat/query",
            code,
            failure=None if code is not None else "no answer within 30s",
            challenge='Bearer realm="payscope"' if code == 401 else None,
        )
        for key, code in codes.items()
    }
    return payscope_api.AccessEvidence("bank-a", replies)


def _leaky(**changes: Any) -> payscope_api.ChatEvidence:
    return ev.chat({"ANOMALY": ev.answer(body=ev.answer_body("ANOMALY", **changes))})


FOREIGN = [{"kind": "pinecone", "ref": "payscope-rag/bank-z", "bank_id": "bank-z"}]


@pytest.mark.parametrize(
    ("check_id", "evidence", "expected", "fragment"),
    [
        ("G.jwt.missing", _access(), S.PASS, "with 401"),
        ("G.jwt.missing", _access(missing=422), S.FAIL, "let through no token (POST /chat/query → 422)"),
        ("G.jwt.missing", _access(malformed=200), S.FAIL, "a bearer value that is not a JWT"),
        ("G.jwt.algorithm", _access(other_alg=422), S.FAIL, "never HS256 keyed with the public key"),
        ("G.jwt.claims", _access(), S.PASS, "a token without sub"),
        ("G.jwt.claims", _access(**{"claim:exp": 422}), S.FAIL, "a token without exp"),
        ("G.jwt.claims", _access(**{"claim:roles_as_string": 500}), S.FAIL, "roles is a string"),
        ("G.jwt.missing", _access(anonymous__runtime=200), S.FAIL, "require a Bearer token"),
        ("G.jwt.missing", _access(missing=403), S.WARN, "says 401"),
        ("G.jwt.expired", _access(expired=200), S.FAIL, "verify exp"),
        ("G.jwt.expired", _access(expired=500), S.FAIL, "let through a token expired an hour ago"),
        ("G.jwt.signature", _access(), S.PASS, "signed by another key, a token altered after signing"),
        ("G.jwt.signature", _access(tampered=200), S.FAIL, "altered after signing"),
        ("G.jwt.alg_none", _access(alg_none=200), S.FAIL, "never alg: none"),
        ("G.jwt.audience", _access(audience=200), S.FAIL, "verify aud"),
        ("G.jwt.issuer", _access(issuer=422), S.FAIL, "verify iss"),
        ("G.jwt.key_id", _access(unknown_kid=200), S.FAIL, "retired key"),
        ("G.jwt.expired", _access(baseline=401), S.UNKNOWN, "valid token too"),
        ("G.jwt.expired", _access(baseline=500), S.PASS, "with 401"),
        ("G.jwt.expired", _access(baseline=403), S.UNKNOWN, "valid token too"),
        ("G.jwt.expired", _access(baseline=None), S.UNKNOWN, "no answer within 30s"),
        ("G.jwt.expired", _access(expired=None), S.UNKNOWN, "no answer within 30s"),
        ("G.isolation.bank_header", _access(), S.PASS, "with 403"),
        ("G.isolation.bank_header", _access(bank_mismatch=200), S.FAIL, "another probe tenant's X-Bank-Id"),
        ("G.isolation.bank_header", _access(bank_missing=200), S.FAIL, "no X-Bank-Id header"),
        ("G.isolation.bank_header", _access(bank_mismatch=401), S.WARN, "says 403"),
        ("G.isolation.bank_claim", _access(no_bank_claim=200), S.FAIL, "require the bank_id claim"),
        ("G.rbac.chat_role", _access(no_role=200), S.FAIL, "analyst and admin roles"),
        ("G.rbac.admin_endpoints", _access(), S.PASS, "with 403"),
        ("G.rbac.admin_endpoints", _access(analyst__pipeline=200), S.FAIL, "analyst token on /admin/pipeline"),
        ("G.isolation.sources", ev.chat(), S.PASS, "belong to the caller"),
        ("G.isolation.sources", _leaky(sources=FOREIGN), S.FAIL, "ANOMALY as bank-a: pinecone payscope-rag/bank-z"),
        ("G.isolation.sources", _leaky(bank_id="bank-z"), S.FAIL, "answered for bank-z"),
        (
            "G.isolation.sources",
            ev.chat(other=ev.answer(body=ev.answer_body("DESCRIBE", bank="bank-a"))),
            S.FAIL,
            "DESCRIBE as bank-b",
        ),
        (
            "G.isolation.sources",
            ev.chat(dict.fromkeys(api_model.INTENTS, ev.answer(200, None)), other=ev.answer(500)),
            S.UNKNOWN,
            "No answer was a JSON object citing a list of sources",
        ),
    ],
)
def test_evaluate(check_id: str, evidence: object, expected: status.CheckStatus, fragment: str) -> None:
    finding: registry.Finding = CHECKS[check_id].judge(evidence, ev.SPEC)
    assert finding.status == expected, finding.message
    assert fragment in finding.message


def test_isolation_probes_need_probe_tenants() -> None:
    bare = ev.SPEC.model_copy(update={"audit": spec.Audit()})
    applies = CHECKS["G.isolation.bank_header"].applies
    assert applies is not None
    assert not applies(bare)
    assert applies(ev.SPEC)


# ---- tokens ---------------------------------------------------------------------------------------


def _minter(algorithm: str = "HS256", key: str = SECRET) -> tokens.Minter:
    return tokens.Minter(algorithm, key, "payscope", "payscope-api")


def _verify(token: str, key: str = SECRET, algorithm: str = "HS256") -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, key, algorithms=[algorithm], audience="payscope-api", issuer="payscope")
    return decoded


def _pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    priv = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv.decode(), pub.decode()


def test_other_algorithm_is_rs256_for_hs256_and_hs256_keyed_with_the_public_key_for_rs256() -> None:
    hs = _minter().other_algorithm(bank_id="b", roles=())
    assert jwt.get_unverified_header(hs)["alg"] == "RS256"
    priv, pub = _pem(rsa.generate_private_key(65537, 2048))
    confused = _minter("RS256", priv).other_algorithm(bank_id="b", roles=())
    assert jwt.get_unverified_header(confused)["alg"] == "HS256"
    header, payload, signature = confused.split(".")
    expected = hmac.new(pub.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected


def test_valid_token_carries_the_contract_claims_and_the_audit_subject() -> None:
    claims = _verify(_minter().mint(bank_id="bank-a", roles=("analyst",)))
    assert claims["sub"] == tokens.AUDIT_SUBJECT
    assert (claims["bank_id"], claims["roles"]) == ("bank-a", ["analyst"])
    assert claims["exp"] - claims["iat"] == tokens.LIFETIME_S


@pytest.mark.parametrize(
    ("forge", "error"),
    [
        (lambda m: m.expired(bank_id="b", roles=()), jwt.ExpiredSignatureError),
        (lambda m: m.signed_by_another_key(bank_id="b", roles=()), jwt.InvalidSignatureError),
        (lambda m: m.tampered(bank_id="b", roles=()), jwt.InvalidSignatureError),
        (lambda m: m.unsigned(bank_id="b", roles=()), jwt.InvalidAlgorithmError),
        (lambda m: m.for_audience(bank_id="b", roles=()), jwt.InvalidAudienceError),
        (lambda m: m.for_issuer(bank_id="b", roles=()), jwt.InvalidIssuerError),
    ],
)
def test_each_forgery_fails_verification_for_its_own_reason(forge: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        _verify(forge(_minter()))


def test_unsigned_token_is_alg_none_with_an_empty_signature() -> None:
    header, _, signature = _minter().unsigned(bank_id="b", roles=()).split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "none", "typ": "JWT"}
    assert signature == ""


def test_unknown_key_id_and_missing_claim_variants_are_otherwise_valid() -> None:
    token = _minter().with_unknown_key_id(bank_id="b", roles=())
    assert jwt.get_unverified_header(token)["kid"] == tokens.UNKNOWN_KEY_ID
    assert _verify(token)["sub"] == tokens.AUDIT_SUBJECT
    assert "bank_id" not in _verify(_minter().without_claim("bank_id", bank_id="b", roles=()))


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_asymmetric_keys_sign_and_their_forgeries_do_not_verify(algorithm: str) -> None:
    private = rsa.generate_private_key(65537, 2048) if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1())
    priv, pub = _pem(private)
    minter = _minter(algorithm, priv)
    assert _verify(minter.mint(bank_id="b", roles=()), pub, algorithm)["sub"] == tokens.AUDIT_SUBJECT
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(minter.signed_by_another_key(bank_id="b", roles=()), pub, algorithm)


def _session(algorithm: str, key: str) -> session.PassSession:
    raw = ev.SPEC.model_dump(by_alias=True, exclude_none=True)
    raw["api"]["auth"]["algorithm"] = algorithm
    values = secrets.Secrets({("jwt", "k"): SecretStr(key)})
    desired = spec.PayScopeSpec.model_validate(raw)
    return session.PassSession(desired, "ns", "psd", values, (), None, session.ClientCache())  # type: ignore[arg-type]


def test_minter_hides_the_key_and_refuses_a_key_that_cannot_sign() -> None:
    minter = tokens.from_session(_session("HS256", SECRET))
    assert SECRET not in repr(minter)
    with pytest.raises(errors.SpecInvalid, match="PEM private key usable with RS256") as raised:
        tokens.from_session(_session("RS256", "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----"))
    assert "not-a-key" not in str(raised.value)


def _with_key_ids(key_ids: object, unknown_kid: int = 401) -> payscope_api.AccessEvidence:
    """Access replies whose admin read of /admin/runtime lists ``key_ids`` (auth.key_ids)."""
    access = _access(unknown_kid=unknown_kid)
    runtime = api_client.Reply("GET /admin/runtime", 200, body={"auth": {"key_ids": key_ids}})
    return payscope_api.AccessEvidence(access.bank, {**access.replies, "admin:/admin/runtime": runtime})


@pytest.mark.parametrize(
    ("evidence", "expected", "fragment"),
    [
        (_with_key_ids(["primary", "next"]), S.PASS, "accepts 2 listed key id(s): primary, next"),
        (_with_key_ids(["primary"], unknown_kid=200), S.FAIL, "a token naming an unknown key id"),
        (_with_key_ids(["primary"], unknown_kid=422), S.FAIL, "refuse unknown ones"),
        (_with_key_ids([]), S.WARN, "does not list the ids it accepts"),
        (_with_key_ids(None), S.WARN, "auth.key_ids in GET /admin/runtime"),
        (_access(), S.UNKNOWN, "could not be read"),
        (_with_key_ids([tokens.UNKNOWN_KEY_ID]), S.UNKNOWN, "proves nothing"),
    ],
)
def test_unknown_key_id_is_refused_and_the_accepted_ids_are_listed(
    evidence: payscope_api.AccessEvidence, expected: status.CheckStatus, fragment: str
) -> None:
    finding = CHECKS["G.jwt.key_id"].judge(evidence, ev.SPEC)
    assert finding.status == expected, finding.message
    assert fragment in finding.message


def test_an_answer_citing_no_source_proves_no_isolation() -> None:
    bare = {i: ev.answer(body=ev.answer_body(i, sources=[])) for i in api_model.INTENTS}
    finding = CHECKS["G.isolation.sources"].judge(
        ev.chat(bare, other=ev.answer(body=ev.answer_body("DESCRIBE", bank="bank-b", sources=[]))), ev.SPEC
    )
    assert finding.status == S.UNKNOWN
    assert "None of the 6 answers cited a source" in finding.message


@pytest.mark.parametrize(
    ("challenge", "expected"),
    [('Bearer realm="payscope"', S.PASS), ('Bearer realm="payscope", error="invalid_token"', S.WARN), (None, S.WARN)],
)
def test_a_request_without_credentials_gets_a_challenge_without_error_code(
    challenge: str | None, expected: status.CheckStatus
) -> None:
    access = _access()
    missing = api_client.Reply("POST /chat/query", 401, challenge=challenge)
    finding = CHECKS["G.jwt.missing"].judge(
        payscope_api.AccessEvidence(access.bank, {**access.replies, "missing": missing}), ev.SPEC
    )
    assert finding.status == expected, finding.message
