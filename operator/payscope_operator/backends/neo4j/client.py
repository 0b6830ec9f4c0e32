"""How the operator talks to Neo4j: a driver with short timeouts, and one statement at a time.

Why this module exists: every Neo4j statement the operator sends is an auto-commit query
with a server-side and a client-side timeout and no driver retry (retrying is the
reconcile loop's job). :func:`driver` builds the resource's driver (kept and closed by
the caller); :class:`Client` runs statements on one database and maps failures to the
operator's errors: transport faults and timeouts become ``errors.DependencyUnavailable``,
refused credentials ``errors.PermissionDenied``, a missing database
``errors.SpecUnsatisfiable``.

What it must not do: create or close a driver it was given, decide what to send, or
pass on a server message (server messages quote the offending values, which may be
personal data) or a credential.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import neo4j
import neo4j.exceptions

from payscope_operator import errors
from payscope_operator.api import conditions

CONNECT_TIMEOUT = 5
"""Seconds a connection may take to open."""
DEFAULT_TIMEOUT = 30.0
"""Seconds a statement may run on the server; the client gives up a little later."""

_CLIENT_GRACE = 5.0
_TRANSPORT_ERRORS = (
    neo4j.exceptions.ServiceUnavailable,
    neo4j.exceptions.SessionExpired,
    neo4j.exceptions.TransientError,
    neo4j.exceptions.ConnectionAcquisitionTimeoutError,
    neo4j.exceptions.IncompleteCommit,
    OSError,
)


T = TypeVar("T")
Reader = Callable[[str, Mapping[str, Any] | None], Awaitable[list[neo4j.Record]]]
"""``read(text, parameters)`` inside :meth:`Client.read_together`'s transaction."""
Check = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses`` allowed for it; raises to refuse the connection (the egress policy)."""


def _resolver(uri: str, check: Check) -> Callable[[neo4j.Address], Awaitable[Iterable[neo4j.Address]]]:
    """The driver's custom resolver: every address it connects to, routing table entries too, is checked.

    Plain Bolt connects to the checked addresses; over TLS the name stays (the certificate
    names it) and every address it resolves to has been checked.
    """
    tls = uri.split("://", 1)[0].endswith(("+s", "+ssc"))

    async def resolve(address: neo4j.Address) -> Iterable[neo4j.Address]:
        host, port = str(address[0]), int(address[1])
        allowed = await check(host, port)
        return [address] if tls else [neo4j.Address((found, port)) for found in allowed]

    return resolve


def driver(uri: str, user: str, password: str, *, check: Check) -> neo4j.AsyncDriver:
    """A driver with short connection timeouts and no transparent retries (we retry per pass).

    ``check`` is applied to every address the driver connects to (see :func:`_resolver`).
    """
    return neo4j.AsyncGraphDatabase.driver(
        uri,
        auth=(user, password),
        resolver=_resolver(uri, check),
        connection_timeout=CONNECT_TIMEOUT,
        connection_acquisition_timeout=CONNECT_TIMEOUT * 2,
        max_transaction_retry_time=0,
        max_connection_pool_size=4,
    )


class Client:
    """Statements on one database through a caller-owned driver."""

    def __init__(self, driver: neo4j.AsyncDriver, database: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._driver = driver
        self._database = database
        self._timeout = timeout

    async def run(
        self, text: str, parameters: Mapping[str, Any] | None = None
    ) -> tuple[list[neo4j.Record], neo4j.SummaryCounters]:
        """One auto-commit statement (no driver retry) under both timeouts.

        Transport faults and timeouts become ``errors.DependencyUnavailable``, refused
        credentials ``errors.PermissionDenied``; other server refusals are re-raised
        for the caller to name the object. No server message is ever passed on.
        """
        try:
            async with (
                asyncio.timeout(self._timeout + _CLIENT_GRACE),
                self._driver.session(
                    database=self._database,
                    default_access_mode=neo4j.WRITE_ACCESS,
                    notifications_min_severity=neo4j.NotificationMinimumSeverity.OFF,
                ) as session,
            ):
                result = await session.run(neo4j.Query(text, timeout=self._timeout), dict(parameters or {}))
                records = [record async for record in result]
                return records, (await result.consume()).counters
        except TimeoutError:
            raise self._timed_out() from None
        except _TRANSPORT_ERRORS as exc:
            raise errors.DependencyUnavailable(f"Neo4j is unreachable ({type(exc).__name__})") from None
        except (neo4j.exceptions.AuthError, neo4j.exceptions.Forbidden) as exc:
            raise errors.PermissionDenied(f"Neo4j refused the operator's credentials ({exc.code})") from None
        except neo4j.exceptions.ClientError as exc:
            if exc.code == "Neo.ClientError.Database.DatabaseNotFound":
                raise errors.SpecUnsatisfiable(f"Neo4j database {self._database} does not exist") from None
            if (exc.code or "").startswith("Neo.ClientError.Transaction.TransactionTimedOut"):
                raise self._timed_out() from None
            raise

    async def read_together(self, work: Callable[[Reader], Awaitable[T]]) -> T:
        """Run ``work``'s reads in ONE read transaction (one server transaction, not one per statement).

        ``work`` gets a ``read(text, parameters)`` function and may decide each statement from
        the records of the last. Failures map as in :meth:`run`; a server refusal of a read is a
        dependency fault naming the code only.
        """
        try:
            async with (
                asyncio.timeout(self._timeout + _CLIENT_GRACE),
                self._driver.session(
                    database=self._database,
                    default_access_mode=neo4j.READ_ACCESS,
                    notifications_min_severity=neo4j.NotificationMinimumSeverity.OFF,
                ) as session,
            ):
                tx = await session.begin_transaction(timeout=self._timeout)
                try:

                    async def read(text: str, parameters: Mapping[str, Any] | None = None) -> list[neo4j.Record]:
                        result = await tx.run(text, dict(parameters or {}))
                        return [record async for record in result]

                    value = await work(read)
                    await tx.commit()
                    return value
                finally:
                    if not tx.closed():
                        await tx.close()
        except TimeoutError:
            raise self._timed_out() from None
        except _TRANSPORT_ERRORS as exc:
            raise errors.DependencyUnavailable(f"Neo4j is unreachable ({type(exc).__name__})") from None
        except (neo4j.exceptions.AuthError, neo4j.exceptions.Forbidden) as exc:
            raise errors.PermissionDenied(f"Neo4j refused the operator's credentials ({exc.code})") from None
        except neo4j.exceptions.Neo4jError as exc:
            if exc.code == "Neo.ClientError.Database.DatabaseNotFound":
                raise errors.SpecUnsatisfiable(f"Neo4j database {self._database} does not exist") from None
            if (exc.code or "").startswith("Neo.ClientError.Transaction.TransactionTimedOut"):
                raise self._timed_out() from None
            raise errors.DependencyUnavailable(f"Neo4j failed a schema read ({exc.code})") from None

    async def read(self, text: str, parameters: Mapping[str, Any] | None = None) -> list[neo4j.Record]:
        """A read: any server refusal is a dependency fault (it names the code, never the message)."""
        try:
            records, _ = await self.run(text, parameters)
            return records
        except neo4j.exceptions.Neo4jError as exc:
            raise errors.DependencyUnavailable(f"Neo4j failed a schema read ({exc.code})") from None

    def _timed_out(self) -> errors.DependencyUnavailable:
        message = f"Neo4j did not answer within {self._timeout:g}s"
        return errors.DependencyUnavailable(message, reason=conditions.Reason.DEPENDENCY_TIMEOUT)
