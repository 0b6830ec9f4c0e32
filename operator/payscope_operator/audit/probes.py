"""The access probes of PayScope's API: each forged or misdirected call the audit makes, defined once.

Why this module exists: the G checks (and E's admin check) judge how PayScope
answers calls it must refuse or serve. Each probe is one :class:`Probe` record:
how its request is made (which token, which ``X-Bank-Id``, which path), the
answer contract version 1 requires, and the words findings use for it. The
``payscope.access`` source sends every record; a check names the records it
judges, so adding a probe is adding one record and naming it in one check.

Chat probes carry :data:`INVALID_BODY`: contract version 1 authenticates (401)
and authorises (403) before it validates (422), so a refused call answers 401 or
403, one that got through answers 422, and no agent ever runs for a forged token.

What it must not do: send requests (``sources.payscope_api`` does), keep a
token (records hold how to mint one, never the token), or judge replies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from payscope_operator.audit import tokens
from payscope_operator.backends.payscope_api import client as api_client

INVALID_BODY = b'{"intent": "DESCRIBE"}'
"""A body without ``query``: PayScope must refuse it with 422 and its JSON error body."""
REQUIRED_CLAIMS = ("sub", "roles", "iss", "aud", "iat", "exp")
"""Claims removed one at a time by the G.jwt.claims probes (bank_id has its own check)."""

Mint = Callable[[tokens.Minter, str], str | None]
"""How a probe's bearer token is made, from the pass's minter and the probe tenant (None: no token)."""


class Bank(Enum):
    """Which ``X-Bank-Id`` a probe sends."""

    OWN = "the probe tenant's"
    OTHER = "the second probe tenant's"
    NONE = "none"


@dataclass(frozen=True)
class Probe:
    """One access probe: its request, the answer PayScope owes it, and its label in findings."""

    key: str
    """Stable name of the probe's reply in ``AccessEvidence.replies``."""
    label: str
    expect: int
    """The status contract version 1 requires (401 or 403 for a refusal, 200 for an admin's call)."""
    token: Mint
    path: str = api_client.CHAT_PATH
    """``POST /chat/query`` with :data:`INVALID_BODY`, or ``GET`` of this admin path."""
    bank: Bank = Bank.OWN
    needs_second_tenant: bool = False
    """Sent only when ``spec.audit.probeTenants`` names a second tenant."""

    @property
    def forges(self) -> bool:
        """Whether it presents a token PayScope must reject as invalid (401 with a token, not without one)."""
        return self.expect == 401 and self.token is not _none

    def request(self, minter: tokens.Minter, tenants: tuple[str, str | None], timeouts: Timeouts) -> api_client.Request:
        own, other = tenants
        token = self.token(minter, own)
        header = {Bank.OWN: own, Bank.OTHER: other, Bank.NONE: None}[self.bank]
        if self.path == api_client.CHAT_PATH:
            return api_client.Request("POST", self.path, timeouts.chat, token, header, INVALID_BODY)
        return api_client.Request("GET", self.path, timeouts.admin, token, header)


@dataclass(frozen=True)
class Timeouts:
    """Per-request timeouts of the probes, from ``spec.api.timeouts``."""

    chat: float
    admin: float


def to_send(tenants: tuple[str, str | None]) -> tuple[Probe, ...]:
    """The probes one pass sends: all of them, but those needing a second probe tenant only with one."""
    return tuple(p for p in ALL if tenants[1] is not None or not p.needs_second_tenant)


def labels(probes: Sequence[Probe]) -> str:
    return ", ".join(p.label for p in probes)


def _analyst(mint: Callable[..., str]) -> Mint:
    """A token from ``mint`` (a Minter method) for the probe tenant as an analyst."""
    return lambda minter, bank: mint(minter, bank_id=bank, roles=tokens.ANALYST_ROLES)


def _admin(minter: tokens.Minter, bank: str) -> str:
    return minter.mint(bank_id=bank, roles=tokens.ADMIN_ROLES)


def _none(minter: tokens.Minter, bank: str) -> None:
    return None


def _without(claim: str) -> Mint:
    return lambda minter, bank: minter.without_claim(claim, bank_id=bank, roles=tokens.ANALYST_ROLES)


BASELINE = Probe("baseline", "the audit's valid token", 422, _analyst(tokens.Minter.mint))
"""Must get through (422 for the invalid body): a refusal of the others proves something only then."""
MISSING = Probe("missing", "no token", 401, _none)
MALFORMED = Probe("malformed", "a bearer value that is not a JWT", 401, lambda minter, bank: "not.a.jwt")
EXPIRED = Probe("expired", "a token expired an hour ago", 401, _analyst(tokens.Minter.expired))
WRONG_KEY = Probe("wrong_key", "a token signed by another key", 401, _analyst(tokens.Minter.signed_by_another_key))
TAMPERED = Probe("tampered", "a token altered after signing", 401, _analyst(tokens.Minter.tampered))
ALG_NONE = Probe("alg_none", "an unsigned alg: none token", 401, _analyst(tokens.Minter.unsigned))
OTHER_ALG = Probe("other_alg", "a token signed with another algorithm", 401, _analyst(tokens.Minter.other_algorithm))
AUDIENCE = Probe("audience", "a token for another audience", 401, _analyst(tokens.Minter.for_audience))
ISSUER = Probe("issuer", "a token from another issuer", 401, _analyst(tokens.Minter.for_issuer))
UNKNOWN_KID = Probe("unknown_kid", "a token naming an unknown key id", 401, _analyst(tokens.Minter.with_unknown_key_id))
NO_ROLE = Probe(
    "no_role",
    "a token with neither the analyst nor the admin role",
    403,
    lambda minter, bank: minter.mint(bank_id=bank, roles=()),
)
ROLES_AS_STRING = Probe(
    "claim:roles_as_string",
    "a token whose roles is a string",
    401,
    lambda minter, bank: minter.with_claim("roles", tokens.ROLE_ANALYST, bank_id=bank, roles=tokens.ANALYST_ROLES),
)
WITHOUT_CLAIM: tuple[Probe, ...] = tuple(
    Probe(f"claim:{claim}", f"a token without {claim}", 401, _without(claim)) for claim in REQUIRED_CLAIMS
)
BANK_MISMATCH = Probe(
    "bank_mismatch",
    "another probe tenant's X-Bank-Id",
    403,
    _analyst(tokens.Minter.mint),
    bank=Bank.OTHER,
    needs_second_tenant=True,
)
BANK_MISSING = Probe(
    "bank_missing", "no X-Bank-Id header", 403, _analyst(tokens.Minter.mint), bank=Bank.NONE, needs_second_tenant=True
)
NO_BANK_CLAIM = Probe("no_bank_claim", "a token without bank_id", 401, _without("bank_id"), needs_second_tenant=True)
ADMIN_AS_ADMIN: tuple[Probe, ...] = tuple(
    Probe(f"admin:{p}", f"an admin token on {p}", 200, _admin, path=p, bank=Bank.NONE) for p in api_client.ADMIN_PATHS
)
ADMIN_AS_ANALYST: tuple[Probe, ...] = tuple(
    Probe(f"analyst:{p}", f"an analyst token on {p}", 403, _analyst(tokens.Minter.mint), path=p, bank=Bank.NONE)
    for p in api_client.ADMIN_PATHS
)
ADMIN_ANONYMOUS: tuple[Probe, ...] = tuple(
    Probe(f"anonymous:{p}", f"no token on {p}", 401, _none, path=p, bank=Bank.NONE) for p in api_client.ADMIN_PATHS
)

ALL: tuple[Probe, ...] = (
    BASELINE,
    MISSING,
    MALFORMED,
    EXPIRED,
    WRONG_KEY,
    TAMPERED,
    ALG_NONE,
    OTHER_ALG,
    AUDIENCE,
    ISSUER,
    UNKNOWN_KID,
    NO_ROLE,
    ROLES_AS_STRING,
    *WITHOUT_CLAIM,
    BANK_MISMATCH,
    BANK_MISSING,
    NO_BANK_CLAIM,
    *ADMIN_AS_ADMIN,
    *ADMIN_AS_ANALYST,
    *ADMIN_ANONYMOUS,
)
"""Every access probe; ``payscope.access`` sends each one (those needing a second tenant only with one)."""
