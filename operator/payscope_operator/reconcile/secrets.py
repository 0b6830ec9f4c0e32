"""Resolve every Secret the spec references, from the resource's own namespace only.

``references`` lists each (field path, Secret, key) the spec names; ``resolve``
reads each Secret once and returns the values wrapped in ``SecretStr``. A
missing Secret or key is ``errors.SecretNotFound`` naming the Secret, the key
and the field, which stalls the resource until someone creates it; the
resource then recovers on the next pass by itself. Values never leave this
module unwrapped except through ``Secrets.reveal``, called right where a
client is built; each value is registered with ``logs`` as it is read, so no
log line, whoever writes it, can show it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import SecretStr

from payscope_operator import errors, logs
from payscope_operator.api import spec

ReadSecret = Callable[[str, str], Awaitable[dict[str, SecretStr] | None]]


@dataclass(frozen=True)
class Reference:
    """One Secret key the spec points at, and the field that points."""

    field: str
    secret: str
    key: str
    masked: bool = True  # False only for a user name: masking "neo4j" would garble every line naming the system


def references(desired: spec.PayScopeSpec) -> tuple[Reference, ...]:
    """Every Secret key the spec references, in a stable order."""
    refs: list[Reference] = []
    if desired.postgres is not None:
        conn = desired.postgres.connection.secret_ref
        refs.append(Reference("spec.postgres.connection.secretRef", conn.name, conn.key))
        if desired.postgres.app_connection is not None:
            app = desired.postgres.app_connection.secret_ref
            refs.append(Reference("spec.postgres.appConnection.secretRef", app.name, app.key))
    if desired.neo4j is not None:
        creds = desired.neo4j.connection.secret_ref
        refs.append(Reference("spec.neo4j.connection.secretRef", creds.name, creds.username_key, masked=False))
        refs.append(Reference("spec.neo4j.connection.secretRef", creds.name, creds.password_key))
    if desired.pinecone is not None:
        key = desired.pinecone.api_key_secret_ref
        refs.append(Reference("spec.pinecone.apiKeySecretRef", key.name, key.key))
    storage = desired.object_storage
    if storage is not None and storage.credentials_secret_ref is not None:
        s3 = storage.credentials_secret_ref
        refs.append(Reference("spec.objectStorage.credentialsSecretRef", s3.name, s3.access_key_id_key))
        refs.append(Reference("spec.objectStorage.credentialsSecretRef", s3.name, s3.secret_access_key_key))
    if desired.redis is not None:
        url = desired.redis.connection.secret_ref
        refs.append(Reference("spec.redis.connection.secretRef", url.name, url.key))
    if desired.api is not None and desired.api.auth is not None:
        jwt = desired.api.auth.jwt_secret_ref
        refs.append(Reference("spec.api.auth.jwtSecretRef", jwt.name, jwt.key))
    return tuple(refs)


@dataclass(frozen=True)
class Secrets:
    """Resolved Secret values keyed by (Secret name, key)."""

    values: dict[tuple[str, str], SecretStr]

    def reveal(self, secret: str, key: str) -> str:
        """The plain value, for building a client; never log or store it."""
        return self.values[(secret, key)].get_secret_value()

    def fingerprint(self) -> int:
        """Changes when any value changes, without exposing values (to rebuild clients)."""
        return hash(tuple(sorted((k, v.get_secret_value()) for k, v in self.values.items())))


@dataclass(frozen=True)
class Missing:
    """What a Secret-presence check reports: each missing Secret or key."""

    reference: Reference
    secret_exists: bool


async def resolve(namespace: str, desired: spec.PayScopeSpec, read: ReadSecret) -> tuple[Secrets, tuple[Missing, ...]]:
    """Read each referenced Secret once; return the values and what is missing."""
    refs = references(desired)
    cache: dict[str, dict[str, SecretStr] | None] = {}
    values: dict[tuple[str, str], SecretStr] = {}
    missing: list[Missing] = []
    for ref in refs:
        if ref.secret not in cache:
            cache[ref.secret] = await read(namespace, ref.secret)
        data = cache[ref.secret]
        if data is None or ref.key not in data:
            missing.append(Missing(ref, secret_exists=data is not None))
            continue
        values[(ref.secret, ref.key)] = data[ref.key]
        if ref.masked:
            logs.register_secret(data[ref.key].get_secret_value())  # masked in every log line from now on
    return Secrets(values), tuple(missing)


def require(missing: tuple[Missing, ...]) -> None:
    """Raise SecretNotFound for the first missing reference, naming Secret, key and field."""
    if not missing:
        return
    first = missing[0]
    ref = first.reference
    more = f" ({len(missing) - 1} more missing)" if len(missing) > 1 else ""
    if first.secret_exists:
        raise errors.SecretNotFound(f"Secret {ref.secret!r} has no key {ref.key!r} (referenced by {ref.field}){more}")
    raise errors.SecretNotFound(f"Secret {ref.secret!r} not found (key {ref.key!r}, referenced by {ref.field}){more}")
