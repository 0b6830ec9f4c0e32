"""Bearer-token verification and authorisation rules of the reference PayScope fixture.

Why it exists: the operator's security checks (G.jwt.*, G.rbac.*, the bank
isolation probes) are only as good as the server they are tested against. This
module verifies tokens the way contract version 1 demands (configured algorithm
only, signature by ``kid`` or by every accepted key, ``exp``, ``iss``, ``aud``,
the ``sub``/``bank_id``/``roles`` claims) and lets each authentication fault
relax exactly one of those rules.

What it must not do: speak HTTP (``app`` maps ``AuthError`` to 401 and
``ForbiddenError`` to 403), log, or reveal why a token was refused to the caller
(the reason is a metric label and a log field, never the response body).
"""

from __future__ import annotations

import base64
import hmac
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import jwt
from jwt.types import Options
from jwt.warnings import InsecureKeyLengthWarning

from tests.payscope_api import contract
from tests.payscope_api.config import FixtureConfig
from tests.payscope_api.faults import FaultName, FaultSet

AuthFailure = Literal[
    "missing",
    "malformed",
    "alg_not_allowed",
    "unknown_key_id",
    "bad_signature",
    "expired",
    "bad_audience",
    "bad_issuer",
    "missing_claims",
    "invalid",
]
Denial = Literal["forbidden_role", "bank_mismatch"]

AUTH_FAILURES: tuple[AuthFailure, ...] = get_args(AuthFailure)
DENIALS: tuple[Denial, ...] = get_args(Denial)
REQUIRED_REGISTERED_CLAIMS: tuple[str, ...] = ("sub", "iss", "aud", "iat", "exp")
#: What ``accept_missing_required_claim`` stops requiring.
OPTIONAL_UNDER_FAULT: frozenset[str] = frozenset({"iat", "exp"})
#: The HMAC algorithms ``accept_other_algorithm`` verifies with the configured key material as the secret.
HMAC_DIGESTS: dict[str, str] = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}


class AuthError(Exception):
    """The request is not authenticated (401)."""

    def __init__(self, reason: AuthFailure) -> None:
        super().__init__(reason)
        self.reason: AuthFailure = reason


class ForbiddenError(Exception):
    """The request is authenticated but not allowed (403)."""

    def __init__(self, reason: Denial) -> None:
        super().__init__(reason)
        self.reason: Denial = reason


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified token (or the anonymous stand-in of a fault)."""

    sub: str
    bank_id: str
    roles: frozenset[str]


def authenticate(
    authorization: str | None, bank_header: str | None, config: FixtureConfig, faults: FaultSet
) -> Principal:
    """Verify the ``Authorization`` header value and return the caller; raise ``AuthError``."""
    if authorization is None:
        if FaultName.ACCEPT_MISSING_TOKEN in faults:
            return Principal(sub="anonymous", bank_id=bank_header or "", roles=frozenset({contract.ROLE_ANALYST}))
        raise AuthError("missing")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("malformed")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthError("malformed") from None
    alg = header.get("alg")
    unsigned = isinstance(alg, str) and alg.lower() == "none"
    if unsigned and FaultName.ACCEPT_ALG_NONE not in faults:
        raise AuthError("alg_not_allowed")
    foreign = not unsigned and alg != config.algorithm
    if foreign and FaultName.ACCEPT_OTHER_ALGORITHM not in faults:
        raise AuthError("alg_not_allowed")
    kid = header.get("kid")
    checked = FaultName.SKIP_SIGNATURE_CHECK not in faults
    if foreign and checked and not _foreign_signature_holds(token, alg, _candidate_keys(kid, config, faults)):
        raise AuthError("bad_signature")
    claims = _decode(token, kid, verify_signature=not (unsigned or foreign), config=config, faults=faults)
    return _principal(claims, bank_header, faults)


def _foreign_signature_holds(token: str, alg: object, keys: Sequence[str]) -> bool:
    """How a verifier that trusts the token's ``alg`` checks it (the ``accept_other_algorithm`` fault).

    An HMAC algorithm is checked with the configured key material as its secret, whatever that material is:
    under RS256 that is the public key's PEM, so HS256 keyed with the public key verifies (algorithm
    confusion). Any other algorithm finds no key of its kind, and this naive verifier lets it through.
    """
    digest = HMAC_DIGESTS.get(alg) if isinstance(alg, str) else None
    if digest is None:
        return True
    signing_input, _, signature = token.rpartition(".")
    try:
        given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except ValueError:
        return False
    return any(
        hmac.compare_digest(hmac.new(key.encode(), signing_input.encode(), digest).digest(), given) for key in keys
    )


def _candidate_keys(kid: object, config: FixtureConfig, faults: FaultSet) -> Sequence[str]:
    if kid is None or FaultName.IGNORE_KEY_ID in faults:
        return list(config.keys.values())
    if not isinstance(kid, str) or kid not in config.keys:
        raise AuthError("unknown_key_id")
    return [config.keys[kid]]


def _decode(
    token: str, kid: object, *, verify_signature: bool, config: FixtureConfig, faults: FaultSet
) -> dict[str, object]:
    """The verified claims; ``verify_signature`` False when the signature is absent or was checked already."""
    keys = _candidate_keys(kid, config, faults)
    verify_signature = verify_signature and FaultName.SKIP_SIGNATURE_CHECK not in faults
    optional = OPTIONAL_UNDER_FAULT if FaultName.ACCEPT_MISSING_REQUIRED_CLAIM in faults else frozenset()
    options: Options = {
        "verify_signature": verify_signature,
        "verify_exp": FaultName.ACCEPT_EXPIRED_TOKEN not in faults,
        "verify_aud": FaultName.IGNORE_AUDIENCE not in faults,
        "verify_iss": FaultName.IGNORE_ISSUER not in faults,
        "verify_iat": True,
        "verify_nbf": True,
        "require": [claim for claim in REQUIRED_REGISTERED_CLAIMS if claim not in optional],
    }
    for key in keys if verify_signature else keys[:1]:
        try:
            with warnings.catch_warnings():
                # A short HS256 secret is the installation's business; the audit reports it, not the fixture.
                warnings.simplefilter("ignore", InsecureKeyLengthWarning)
                decoded: dict[str, object] = jwt.decode(
                    token,
                    key,
                    algorithms=[config.algorithm],
                    audience=config.audience,
                    issuer=config.issuer,
                    leeway=config.leeway_s,
                    options=options,
                )
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise AuthError("expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("bad_audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("bad_issuer") from None
        except jwt.MissingRequiredClaimError:
            raise AuthError("missing_claims") from None
        except jwt.DecodeError:
            raise AuthError("malformed") from None
        except jwt.InvalidTokenError:
            raise AuthError("invalid") from None
        return decoded
    raise AuthError("bad_signature")


def _principal(claims: dict[str, object], bank_header: str | None, faults: FaultSet) -> Principal:
    sub, bank_id, roles = claims.get("sub"), claims.get("bank_id"), claims.get("roles")
    if "bank_id" not in claims and FaultName.ACCEPT_MISSING_BANK_CLAIM in faults:
        bank_id = bank_header or ""  # the header is taken at its word, as ``authorize_chat`` then sees
        if not bank_id:
            raise AuthError("missing_claims")
    if not isinstance(sub, str) or not sub or not isinstance(bank_id, str) or not bank_id:
        raise AuthError("missing_claims")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise AuthError("missing_claims")
    return Principal(sub=sub, bank_id=bank_id, roles=frozenset(roles))


def authorize_chat(principal: Principal, bank_header: str | None, faults: FaultSet) -> str:
    """Check the chat role and the tenant header; return the bank the request is served for."""
    if not principal.roles & contract.CHAT_ROLES and FaultName.SKIP_CHAT_ROLE_CHECK not in faults:
        raise ForbiddenError("forbidden_role")
    if FaultName.IGNORE_BANK_HEADER in faults:
        return bank_header or principal.bank_id
    if bank_header != principal.bank_id:
        raise ForbiddenError("bank_mismatch")
    return principal.bank_id


def authorize_admin(principal: Principal, faults: FaultSet) -> None:
    """Admin endpoints need the ``admin`` role."""
    if contract.ROLE_ADMIN not in principal.roles and FaultName.ADMIN_OPEN_TO_ALL not in faults:
        raise ForbiddenError("forbidden_role")
