"""Mint the JWTs the tests send to a PayScope API: valid ones and every forgery the audit tries.

Why it exists: the fixture's tests (and later the operator's tests) need tokens
signed with HS256 shared secrets and RS256 key pairs, and the forged tokens of
the G.jwt checks: expired, wrongly signed, ``alg: none``, wrong audience or
issuer, unknown key id, missing claims. PyJWT refuses to encode ``alg: none``
with claims of our choosing, so that one is assembled by hand here.

What it must not do: verify tokens (the fixture's ``auth`` does, and the
operator mints its own probes), or hold keys beyond the objects it returns.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.payscope_api import contract
from tests.payscope_api.config import Algorithm

DEFAULT_ISSUER = "payscope"
DEFAULT_AUDIENCE = "payscope-api"
DEFAULT_LIFETIME_S = 300


@dataclass(frozen=True)
class SigningKey:
    """A key to sign with (``private``) and what a verifier needs (``public``), with its ``kid``.

    For HS256 both are the same shared secret.
    """

    algorithm: Algorithm
    private: str
    public: str
    kid: str | None = "primary"

    def with_kid(self, kid: str | None) -> SigningKey:
        """The same key material announced under another key id (or none)."""
        return dataclasses.replace(self, kid=kid)


def hs256_key(secret: str | None = None, *, kid: str | None = "primary") -> SigningKey:
    """A shared-secret key; random (64 hex characters, above PyJWT's minimum) unless given."""
    value = secret if secret is not None else secrets.token_hex(32)
    return SigningKey("HS256", value, value, kid)


def rs256_key(*, kid: str | None = "primary", bits: int = 2048) -> SigningKey:
    """A fresh RSA key pair in PEM (PKCS#8 private key, SubjectPublicKeyInfo public key)."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return SigningKey("RS256", private_pem, public_pem, kid)


def verification_keys(keys: Iterable[SigningKey]) -> dict[str, str]:
    """The ``FixtureConfig.keys`` mapping (kid → public part) for these signing keys."""
    return {key.kid or "primary": key.public for key in keys}


def claims(
    *,
    sub: str = "payscope-audit",
    bank_id: str = "bank-a",
    roles: Iterable[str] = (contract.ROLE_ANALYST,),
    issuer: str = DEFAULT_ISSUER,
    audience: str | list[str] = DEFAULT_AUDIENCE,
    lifetime_s: int = DEFAULT_LIFETIME_S,
    issued_at: int | None = None,
) -> contract.Claims:
    """The claims of contract version 1; a negative ``lifetime_s`` gives an already expired token."""
    now = int(time.time()) if issued_at is None else issued_at
    exp = now + lifetime_s
    iat = now if lifetime_s >= 0 else exp + lifetime_s  # an expired token was issued before it expired
    return {
        "sub": sub,
        "bank_id": bank_id,
        "roles": list(roles),
        "iss": issuer,
        "aud": audience,
        "iat": iat,
        "exp": exp,
    }


def mint(key: SigningKey, payload: Mapping[str, object]) -> str:
    """Sign ``payload`` with ``key`` (``kid`` header when the key has one)."""
    headers = {"kid": key.kid} if key.kid is not None else None
    return jwt.encode(dict(payload), key.private, algorithm=key.algorithm, headers=headers)


def _segment(value: Mapping[str, object]) -> str:
    raw = json.dumps(dict(value), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint_unsigned(payload: Mapping[str, object]) -> str:
    """An ``alg: none`` token: header and claims, and an empty signature (built by hand)."""
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(payload)}."


def mint_alg_confusion(key: SigningKey, payload: Mapping[str, object]) -> str:
    """HS256 keyed with ``key``'s public PEM: the RS256 algorithm-confusion forgery (built by hand,
    since PyJWT refuses to use a PEM key as an HMAC secret)."""
    header: dict[str, object] = {"alg": "HS256", "typ": "JWT"}
    if key.kid is not None:
        header["kid"] = key.kid
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    digest = hmac.new(key.public.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


@functools.cache
def _impostor(algorithm: Algorithm) -> SigningKey:
    """One throwaway key per algorithm, made once: RSA key generation is slow."""
    return hs256_key() if algorithm == "HS256" else rs256_key()


def mint_with_wrong_key(key: SigningKey, payload: Mapping[str, object], algorithm: Algorithm | None = None) -> str:
    """A token that names ``key``'s kid (and ``algorithm``, by default ``key``'s) but is signed by another key."""
    return mint(_impostor(algorithm or key.algorithm).with_kid(key.kid), payload)


def tamper(token: str) -> str:
    """The same token with one claim changed after signing (its signature no longer matches)."""
    header, payload, signature = token.split(".")
    padded = payload + "=" * (-len(payload) % 4)
    decoded = json.loads(base64.urlsafe_b64decode(padded))
    decoded["roles"] = [contract.ROLE_ADMIN]
    return f"{header}.{_segment(decoded)}.{signature}"


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


def headers(token: str, bank_id: str) -> dict[str, str]:
    """Authorization and X-Bank-Id headers for a tenant-scoped request."""
    return {**bearer(token), contract.BANK_HEADER: bank_id}
