"""Resolve every Secret the spec references, from the resource's own namespace only.

``api.secret_references`` lists each (field path, Secret, key) the spec names;
``resolve`` reads each Secret once and returns the values wrapped in ``SecretStr``. A
missing Secret or key is ``errors.SecretNotFound`` naming the Secret, the key
and the field, and a Secret the operator may not read is
``errors.SecretUnreadable``; either stalls the resource until someone fixes
it. ``waiting_for`` says which Secrets (and keys) a stalled resource waits
for, and ``available`` re-reads just those, so the scheduler can reconcile
again as soon as they are there. Values never leave this
module unwrapped except through ``Secrets.reveal``, called right where a
client is built; each value is registered with ``logs`` as it is read, so no
log line, whoever writes it, can show it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from payscope_operator import errors, logs
from payscope_operator.api import secret_references, spec

ReadSecret = Callable[[str, str], Awaitable[dict[str, SecretStr] | None]]


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

    reference: secret_references.Reference
    secret_exists: bool


async def resolve(namespace: str, desired: spec.PayScopeSpec, read: ReadSecret) -> tuple[Secrets, tuple[Missing, ...]]:
    """Read each referenced Secret once; return the values and what is missing."""
    refs = secret_references.references(desired)
    cache: dict[str, dict[str, SecretStr] | None] = {}
    values: dict[tuple[str, str], SecretStr] = {}
    missing: list[Missing] = []
    for ref in refs:
        if ref.secret not in cache:
            try:
                cache[ref.secret] = await read(namespace, ref.secret)
            except errors.PermissionDenied as exc:
                raise errors.SecretUnreadable(exc.message, secret=ref.secret) from None
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


def waiting_for(missing: tuple[Missing, ...]) -> dict[str, frozenset[str]]:
    """Secret name -> the keys a pass could not find in it (what a stalled resource waits for)."""
    wanted: dict[str, set[str]] = {}
    for entry in missing:
        wanted.setdefault(entry.reference.secret, set()).add(entry.reference.key)
    return {name: frozenset(keys) for name, keys in wanted.items()}


async def available(namespace: str, wanted: Mapping[str, frozenset[str]], read: ReadSecret) -> bool:
    """Whether every Secret in ``wanted`` now exists with its keys (reads only those, stops at the first gap).

    A Secret the operator still may not read raises ``errors.PermissionDenied``, like ``read``.
    """
    for name, keys in wanted.items():
        data = await read(namespace, name)
        if data is None or not all(key in data for key in keys):
            return False
    return True
