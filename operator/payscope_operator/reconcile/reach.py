"""What a resource's clients may reach: the egress checks and credential rules each passes first.

Why this module exists: a PayScopeDeployment must reach only what its own namespace's
Secrets and spec name, never something through the operator's identity or network
position. ``clients`` builds every store client through the functions here:

- **Egress.** Each endpoint is checked against the operator's ``egress.policy.Policy``
  before the first connection, naming the spec field it comes from. Postgres connects
  to the address that was checked (libpq's ``hostaddr``; ``host`` still names the
  server for TLS), Redis and Neo4j over plain TCP too (the URL's host, or the driver's
  resolver, yields the checked address); over TLS, where the name must stay for
  certificate checks, every address the name resolves to is checked instead. boto3
  cannot be pinned: a ``before-send`` hook checks the host of every S3 request.
- **Credentials.** A section that names no credentials does not borrow the operator's:
  S3 without ``credentialsSecretRef`` is ``CredentialsRequired`` unless the operator runs
  with ``--allow-ambient-credentials``. Postgres and Redis connection strings may not
  make the drivers read the operator's own files, environment or Kerberos tickets
  (passfile, service files, client keys, GSSAPI): those options are refused the same
  way, and libpq is told to use none of them.

What it must not do: build or cache clients (``clients`` does), read Secrets, or put a
password, URL or DSN into a message (only hosts, ports and field names).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from psycopg import conninfo

from payscope_operator import errors
from payscope_operator.api import status, stores_spec
from payscope_operator.egress import policy

AMBIENT_FLAG = "--allow-ambient-credentials"
POSTGRES_AMBIENT_KEYS = frozenset(
    {"passfile", "service", "servicefile", "sslcert", "sslkey", "sslpassword", "krbsrvname", "gsslib", "gssdelegation"}
)
"""libpq options that make the driver use the operator's files, services or Kerberos tickets."""
POSTGRES_NO_AMBIENT = {"passfile": "/proc/self/no-passfile", "sslcertmode": "disable", "gssencmode": "disable"}
"""Set on every Postgres connection unless ambient credentials are allowed (PGPASSWORD, ~/.pgpass,
~/.postgresql/postgresql.crt and a Kerberos cache are then never consulted). The passfile is a path
that cannot exist (nothing can be created under /proc/self), which libpq skips in silence."""
REDIS_QUERY_KEYS = frozenset({"db", "protocol", "client_name", "ssl_cert_reqs", "ssl_check_hostname"})
"""The only query parameters a Redis URL may carry: others could redirect the connection (host,
path, connection_class) or load the operator's files (ssl_keyfile, ssl_certfile, ssl_ca_certs)."""
REDIS_AMBIENT_KEYS = frozenset({"ssl_keyfile", "ssl_certfile", "ssl_password"})
Check = Callable[[str, int], Awaitable[Sequence[str]]]
STALLING = frozenset({status.CheckReason.EGRESS_DENIED.value, status.CheckReason.CREDENTIALS_REQUIRED.value})
"""Check reasons that say the resource itself must change (or the operator's policy): Stalled."""


def _ambient(field: str, what: str) -> errors.CredentialsRequired:
    return errors.CredentialsRequired(
        f"{field}: {what}; the operator does not lend its own identity to a PayScopeDeployment"
        f" unless it runs with {AMBIENT_FLAG}"
    )


# ---- S3 -----------------------------------------------------------------------------------------


def s3_endpoint(section: stores_spec.ObjectStorage) -> policy.Endpoint:
    """The endpoint of ``spec.objectStorage`` (AWS S3's regional endpoint when none is set)."""
    url = section.endpoint or f"https://s3.{section.region}.amazonaws.com"
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return policy.Endpoint("spec.objectStorage.endpoint", parts.hostname or "", port)


def require_s3_credentials(section: stores_spec.ObjectStorage, *, ambient: bool) -> None:
    """Raise CredentialsRequired when the section names no credentials and ambient ones are not allowed."""
    if section.credentials_secret_ref is None and not ambient:
        raise _ambient(
            "spec.objectStorage.credentialsSecretRef",
            "no credentials Secret is named, so S3 would be called with the operator's own cloud identity",
        )


def s3_guard(egress: policy.Policy) -> Callable[..., None]:
    """A botocore ``before-send`` hook: every request's host is checked (in the worker thread) before it is sent."""

    def before_send(request: Any, **_: Any) -> None:
        parts = urllib.parse.urlsplit(request.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        policy.check_now(egress, policy.Endpoint("spec.objectStorage.endpoint", parts.hostname or "", port))

    return before_send


# ---- Postgres -----------------------------------------------------------------------------------


def _split(value: str | None, count: int) -> list[str]:
    parts = (value or "").split(",")
    return parts * count if len(parts) == 1 else parts


def postgres_endpoints(dsn: str, field: str, *, ambient: bool) -> tuple[list[policy.Endpoint], bool]:
    """The endpoints a DSN connects to (its ``hostaddr`` entries if any, else its hosts) and whether
    they came from ``hostaddr``. Raises EgressDenied for sockets, CredentialsRequired for ambient options."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - psycopg raises ProgrammingError; the text would quote the DSN
        raise errors.SpecInvalid(f"{field}: the value is not a libpq connection string or URI") from None
    if not ambient:
        for key in sorted(POSTGRES_AMBIENT_KEYS & set(params)):
            raise _ambient(field, f"the connection string sets {key}, which uses the operator's own files or tickets")
        if params.get("gssencmode", "disable") != "disable":
            raise _ambient(field, "the connection string asks for GSSAPI, which uses the operator's Kerberos tickets")
    given = params.get("hostaddr") or params.get("host")
    if not given:
        raise errors.EgressDenied(f"{field}: the connection string names no host (libpq would use a local socket)")
    hosts = [h.strip() for h in str(given).split(",")]
    ports = _split(str(params.get("port") or ""), len(hosts))
    if len(ports) != len(hosts):
        raise errors.SpecInvalid(f"{field}: the connection string lists {len(hosts)} hosts and {len(ports)} ports")
    endpoints = []
    for host, port in zip(hosts, ports, strict=True):
        if not host or host.startswith(("/", "@")):
            raise errors.EgressDenied(f"{field}: a Unix-domain socket is not a network address the operator may use")
        endpoints.append(policy.Endpoint(field, host, int(port) if port.strip() else 5432))
    return endpoints, "hostaddr" in params


async def postgres_params(
    egress: policy.Policy, dsn: str, field: str, *, ambient: bool, resolver: policy.Resolver = policy.system_resolver
) -> dict[str, str]:
    """Connection parameters to add to ``dsn``: the checked ``hostaddr`` of each host, and no ambient sources."""
    endpoints, pinned = postgres_endpoints(dsn, field, ambient=ambient)
    addresses = [(await policy.check(egress, endpoint, resolver))[0] for endpoint in endpoints]
    extra = {} if pinned else {"hostaddr": ",".join(addresses)}
    if not ambient:
        extra |= POSTGRES_NO_AMBIENT
        if not conninfo.conninfo_to_dict(dsn).get("password"):
            extra["password"] = ""  # never PGPASSWORD from the operator's environment
    return extra


# ---- Redis --------------------------------------------------------------------------------------


async def redis_url(
    egress: policy.Policy, url: str, field: str, *, ambient: bool, resolver: policy.Resolver = policy.system_resolver
) -> str:
    """The URL to connect with: checked, and for redis:// pointing at the checked address."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or 6379
    except ValueError:
        raise errors.SpecInvalid(f"{field}: the value is not a redis:// or rediss:// URL") from None
    if parts.scheme not in ("redis", "rediss"):
        raise errors.EgressDenied(f"{field}: only redis:// and rediss:// URLs are allowed, not a Unix socket")
    for key in sorted(urllib.parse.parse_qs(parts.query)):
        if key in REDIS_AMBIENT_KEYS and not ambient:
            raise _ambient(field, f"the URL sets {key}, which loads a file of the operator's")
        if key not in REDIS_QUERY_KEYS | REDIS_AMBIENT_KEYS:
            raise errors.SpecInvalid(f"{field}: the URL's query parameter {key!r} is not supported")
    host = parts.hostname or "localhost"
    addresses = await policy.check(egress, policy.Endpoint(field, host, port), resolver)
    if parts.scheme == "rediss" or host in addresses:
        return url  # TLS checks the certificate against the name: keep it (every address was checked)
    address = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
    userinfo, _, _ = parts.netloc.rpartition("@")
    netloc = f"{userinfo}@{address}:{port}" if userinfo else f"{address}:{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# ---- Neo4j --------------------------------------------------------------------------------------


def neo4j_endpoint(uri: str) -> tuple[policy.Endpoint, bool]:
    """The endpoint of ``spec.neo4j.connection.uri`` and whether it uses TLS."""
    parts = urllib.parse.urlsplit(uri)
    endpoint = policy.Endpoint("spec.neo4j.connection.uri", parts.hostname or "", parts.port or 7687)
    return endpoint, parts.scheme.endswith(("+s", "+ssc"))


def neo4j_check(egress: policy.Policy, uri: str, resolver: policy.Resolver = policy.system_resolver) -> Check:
    """What the Neo4j driver asks before each connection (``neo4j.client.driver``'s ``check``)."""
    origin, _ = neo4j_endpoint(uri)

    async def check(host: str, port: int) -> Sequence[str]:
        field = origin.field if host == origin.host else f"{origin.field} (routing address {host})"
        return await policy.check(egress, policy.Endpoint(field, host, port), resolver)

    return check


# ---- what the audit's results say about the resource ------------------------------------------


def stalled_by(results: Sequence[status.CheckResult]) -> tuple[str, str] | None:
    """(reason, message) of the first check that could not run because the resource reaches too far."""
    for result in results:
        if result.reason in STALLING:
            return result.reason, result.message
    return None
