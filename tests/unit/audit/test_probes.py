"""The access probe records: each one builds the request it describes, and a pass sends the right ones.

Pure: the records are turned into ``api_client.Request`` objects with a real
``tokens.Minter`` and their tokens decoded with PyJWT; nothing is sent.
"""

from __future__ import annotations

import time

import jwt
import pytest

from payscope_operator.audit import probes, tokens
from payscope_operator.backends.payscope_api import client as api_client

MINTER = tokens.Minter("HS256", "k" * 64, "payscope", "payscope-api")
TENANTS = ("bank-a", "bank-b")
TIMEOUTS = probes.Timeouts(chat=30.0, admin=5.0)


def _claims(token: str | None) -> dict[str, object]:
    assert token is not None
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    return claims


@pytest.mark.parametrize("probe", probes.ALL, ids=[p.key for p in probes.ALL])
def test_each_record_builds_the_request_it_describes(probe: probes.Probe) -> None:
    request = probe.request(MINTER, TENANTS, TIMEOUTS)
    header = {probes.Bank.OWN: "bank-a", probes.Bank.OTHER: "bank-b", probes.Bank.NONE: None}[probe.bank]
    assert (request.path, request.bank_id) == (probe.path, header)
    if probe.path == api_client.CHAT_PATH:
        assert (request.method, request.body, request.timeout) == ("POST", probes.INVALID_BODY, 30.0)
    else:
        assert (request.method, request.body, request.timeout) == ("GET", None, 5.0)
    assert probe.label
    if request.token is not None:
        assert request.token not in repr(request)


@pytest.mark.parametrize(
    ("probe", "claim", "value"),
    [
        (probes.BASELINE, "roles", [tokens.ROLE_ANALYST]),
        (probes.NO_ROLE, "roles", []),
        (probes.ROLES_AS_STRING, "roles", tokens.ROLE_ANALYST),
        (probes.AUDIENCE, "aud", tokens.WRONG_AUDIENCE),
        (probes.ISSUER, "iss", tokens.WRONG_ISSUER),
        (probes.BANK_MISMATCH, "bank_id", "bank-a"),
        *((p, "roles", [tokens.ROLE_ADMIN]) for p in probes.ADMIN_AS_ADMIN),
        *((p, "roles", [tokens.ROLE_ANALYST]) for p in probes.ADMIN_AS_ANALYST),
    ],
)
def test_tokens_carry_what_the_probe_is_about(probe: probes.Probe, claim: str, value: object) -> None:
    assert _claims(probe.request(MINTER, TENANTS, TIMEOUTS).token)[claim] == value


def test_forgeries_that_remove_or_age_a_claim() -> None:
    for probe in (*probes.WITHOUT_CLAIM, probes.NO_BANK_CLAIM):
        missing = probe.key.removeprefix("claim:") if probe is not probes.NO_BANK_CLAIM else "bank_id"
        assert missing not in _claims(probe.request(MINTER, TENANTS, TIMEOUTS).token)
    expired = _claims(probes.EXPIRED.request(MINTER, TENANTS, TIMEOUTS).token)["exp"]
    assert isinstance(expired, int)
    assert expired < time.time() - 1800
    for probe in (probes.MISSING, *probes.ADMIN_ANONYMOUS):
        assert probe.request(MINTER, TENANTS, TIMEOUTS).token is None
    assert probes.MALFORMED.request(MINTER, TENANTS, TIMEOUTS).token == "not.a.jwt"


def test_a_pass_sends_the_second_tenant_probes_only_with_a_second_tenant() -> None:
    second = {probes.BANK_MISMATCH, probes.BANK_MISSING, probes.NO_BANK_CLAIM}
    assert set(probes.to_send(TENANTS)) == set(probes.ALL)
    assert set(probes.to_send(("bank-a", None))) == set(probes.ALL) - second
    assert {p for p in probes.ALL if p.needs_second_tenant} == second
