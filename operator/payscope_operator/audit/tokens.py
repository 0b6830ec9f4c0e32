"""Mint the JWTs the audit probes PayScope's API with: valid ones, and the forgeries it must refuse.

Why this module exists: dimensions D, E and G call PayScope as a tenant
analyst or an admin, and G checks that PayScope refuses every forged token
(expired, signed by another key, altered after signing, ``alg: none``, another
algorithm, wrong audience or issuer, unknown key id, a required claim removed),
as contract version 1 (docs/payscope-contract.md, sections 1 and 3.4) lists them. The operator signs them
itself from the key referenced by ``spec.api.auth.jwtSecretRef`` (the HS256
shared secret, or an RS256/ES256 PEM private key), with the dedicated subject
:data:`AUDIT_SUBJECT` so that PayScope's own audit log tells probes from
people, and a short lifetime (:data:`LIFETIME_S`).

What it must not do: log, store or return a token anywhere but to the request
that carries it (tokens never reach status, evidence, events or logs), keep the
key beyond the :class:`Minter` of one pass (its ``repr`` hides it), or talk to
the network. PyJWT refuses to encode ``alg: none`` and to use a PEM key as an
HMAC secret, so those two forgeries are assembled by hand.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.warnings import InsecureKeyLengthWarning

from payscope_operator import errors
from payscope_operator.audit import context

AUDIT_SUBJECT = "system:payscope-audit"
"""The ``sub`` of every token the audit mints."""
LIFETIME_S = 120
"""Seconds a probe token is valid: long enough for one pass, short enough to be useless afterwards."""
ROLE_ANALYST = "analyst"
ROLE_ADMIN = "admin"
ANALYST_ROLES = (ROLE_ANALYST,)
ADMIN_ROLES = (ROLE_ADMIN,)
UNKNOWN_KEY_ID = "payscope-operator-audit-unknown-key"
WRONG_AUDIENCE = "payscope-operator-audit-wrong-audience"
WRONG_ISSUER = "payscope-operator-audit-wrong-issuer"


def _segment(value: Mapping[str, object]) -> str:
    raw = json.dumps(dict(value), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@functools.cache
def _impostor_key(algorithm: str) -> Any:
    """A throwaway private key of ``algorithm``'s family, made once per process (RSA generation is slow).

    It signs nothing but forgeries, so it is no one's secret.
    """
    if algorithm == "HS256":
        return secrets.token_hex(32)
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    return private


def _sign(payload: Mapping[str, object], key: Any, algorithm: str, kid: str | None = None) -> str:
    with warnings.catch_warnings():
        # A short HS256 secret is PayScope's choice; the audit probes with what it is given.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(dict(payload), key, algorithm=algorithm, headers={"kid": kid} if kid else None)


@dataclass(frozen=True)
class Minter:
    """Signs probe tokens for one pass with the installation's key; ``repr`` hides the key."""

    algorithm: str
    key: str = field(repr=False)
    issuer: str
    audience: str

    @functools.cached_property
    def _signing_key(self) -> Any:
        """What PyJWT signs with: the HS256 secret as is, or the PEM key parsed once (a parse costs ~0.1 s)."""
        if self.algorithm == "HS256":
            return self.key
        return serialization.load_pem_private_key(self.key.encode(), password=None)

    def claims(self, *, bank_id: str, roles: Sequence[str], now: int | None = None) -> dict[str, object]:
        """The claims of contract version 1 for the audit subject, valid from ``now`` for LIFETIME_S."""
        issued = int(time.time()) if now is None else now
        return {
            "sub": AUDIT_SUBJECT,
            "bank_id": bank_id,
            "roles": list(roles),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": issued,
            "exp": issued + LIFETIME_S,
        }

    def mint(self, *, bank_id: str, roles: Sequence[str], now: int | None = None, **overrides: object) -> str:
        """A valid token (unless ``overrides`` change a claim)."""
        claims = {**self.claims(bank_id=bank_id, roles=roles, now=now), **overrides}
        return _sign(claims, self._signing_key, self.algorithm)

    # ---- forgeries: each must be refused with 401 ---------------------------------------------

    def expired(self, *, bank_id: str, roles: Sequence[str], now: int | None = None) -> str:
        """Correctly signed, but expired an hour ago (far beyond any clock-skew leeway)."""
        issued = (int(time.time()) if now is None else now) - 7200
        return self.mint(bank_id=bank_id, roles=roles, now=issued, exp=issued + 3600)

    def signed_by_another_key(self, *, bank_id: str, roles: Sequence[str]) -> str:
        """Same algorithm and claims, signed by a key PayScope has never seen."""
        return _sign(self.claims(bank_id=bank_id, roles=roles), _impostor_key(self.algorithm), self.algorithm)

    def tampered(self, *, bank_id: str, roles: Sequence[str]) -> str:
        """A valid token whose claims were changed after signing (roles raised to admin)."""
        header, payload, signature = self.mint(bank_id=bank_id, roles=roles).split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["roles"] = [ROLE_ADMIN]
        return f"{header}.{_segment(claims)}.{signature}"

    def unsigned(self, *, bank_id: str, roles: Sequence[str]) -> str:
        """``alg: none``: header and claims with an empty signature, built by hand."""
        header = {"alg": "none", "typ": "JWT"}
        return f"{_segment(header)}.{_segment(self.claims(bank_id=bank_id, roles=roles))}."

    def other_algorithm(self, *, bank_id: str, roles: Sequence[str]) -> str:
        """Signed with another algorithm: RS256 by a stranger's key for an HS256 installation, else HS256
        keyed with the installation's own public key (the algorithm-confusion attack)."""
        claims = self.claims(bank_id=bank_id, roles=roles)
        if self.algorithm == "HS256":
            return _sign(claims, _impostor_key("RS256"), "RS256")
        public = self._signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT'})}.{_segment(claims)}"
        digest = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"

    def for_audience(self, *, bank_id: str, roles: Sequence[str], audience: str = WRONG_AUDIENCE) -> str:
        return self.mint(bank_id=bank_id, roles=roles, aud=audience)

    def for_issuer(self, *, bank_id: str, roles: Sequence[str], issuer: str = WRONG_ISSUER) -> str:
        return self.mint(bank_id=bank_id, roles=roles, iss=issuer)

    def with_unknown_key_id(self, *, bank_id: str, roles: Sequence[str]) -> str:
        """Correctly signed, but naming a key id PayScope does not hold (a retired key, say)."""
        return _sign(self.claims(bank_id=bank_id, roles=roles), self._signing_key, self.algorithm, kid=UNKNOWN_KEY_ID)

    def with_claim(self, claim: str, value: object, *, bank_id: str, roles: Sequence[str]) -> str:
        """Correctly signed, but with ``claim`` set to ``value`` (``roles`` as a string, say)."""
        return _sign({**self.claims(bank_id=bank_id, roles=roles), claim: value}, self._signing_key, self.algorithm)

    def without_claim(self, claim: str, *, bank_id: str, roles: Sequence[str]) -> str:
        """Correctly signed, but lacking ``claim`` (e.g. ``bank_id``)."""
        payload = {k: v for k, v in self.claims(bank_id=bank_id, roles=roles).items() if k != claim}
        return _sign(payload, self._signing_key, self.algorithm)


def from_session(run: context.Session) -> Minter:
    """The pass's minter, from ``spec.api.auth`` and the referenced key.

    Raises ``errors.SpecInvalid`` when auth is not configured or the key cannot
    sign with the configured algorithm (the message names the field, never the key).
    """
    api = run.spec.api
    if api is None or api.auth is None:
        raise errors.SpecInvalid("spec.api.auth is not set: the audit cannot mint tokens")
    auth = api.auth
    ref = auth.jwt_secret_ref
    key = context.reveal(run, ref.name, ref.key, "spec.api.auth.jwtSecretRef")
    algorithm = str(auth.algorithm)
    minter = Minter(algorithm, key, auth.issuer, auth.audience)
    try:
        minter.mint(bank_id="probe", roles=())
    except (jwt.PyJWTError, ValueError, TypeError):
        what = "shared secret" if algorithm == "HS256" else "PEM private key"
        raise errors.SpecInvalid(
            f"spec.api.auth.jwtSecretRef ({ref.name}/{ref.key}) does not hold a {what} usable with {algorithm}"
        ) from None
    return minter
