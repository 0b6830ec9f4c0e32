"""Every Secret key a spec references, with the field that references it.

Why this module exists: two layers need the same list. ``reconcile.secrets``
reads each referenced Secret once per pass, and the audit's ``A.secrets.present``
check says when the spec references none (NotConfigured) and how many it checked.
Both derive it from the spec alone, so it lives with the models.

What it must not do: read a Secret, or hold a value: it names keys only.
"""

from __future__ import annotations

from dataclasses import dataclass

from payscope_operator.api import spec


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
