"""The audit probes PayScope's API politely: never more than ``spec.api.maxRequestsInFlight`` requests at once.

Why it exists: a small PayScope API server has a small listen backlog, and one audit
sends a few dozen requests (health, metrics, admin documents, one chat query per
intent, the JWT and isolation probes). The limit is enforced in the operator's API
client; this test observes it where it matters, on the server's side: the reference
PayScope API (a real process on 127.0.0.1) counts the requests it is serving at once
(``GET /_stats``), and every request is slowed down (the ``hang`` fault with a short
hang) so that requests would overlap if the client let them. The peak must equal the
limit: never above it, and reached, which shows the audit had more to send. With a
high limit the same audit has more than the default 8 in flight, so the default is
a real bound, not a figure the audit never reaches.

What it must not do: time anything (a slow machine only makes overlap likelier), or
leave the fixture running.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from payscope_operator.api import spec, status
from payscope_operator.audit import catalog, runner
from payscope_operator.egress import policy
from payscope_operator.reconcile import secrets, session
from tests import empty_cluster
from tests.payscope_api import harness

FIXTURE_TOKEN = "fixture-token-for-politeness"
SECRET = "politeness-test-shared-secret-" + "0123456789abcdef" * 3
TODAY = datetime.date(2026, 11, 28)
SLOW_ANSWER_S = 0.2
LOOPBACK = policy.Policy.from_settings("127.0.0.1/32")
API_CHECKS = frozenset(c.id for c in catalog.CATALOG if c.source.name.startswith("payscope."))


@pytest.fixture
async def slow_api(tmp_path: Path) -> AsyncIterator[str]:
    """The reference API answering every request (but its own ``/_stats``) after SLOW_ANSWER_S."""
    args = ["--fixture-token", FIXTURE_TOKEN, "--hang-seconds", str(SLOW_ANSWER_S), "--fault", "hang:*"]
    async with harness.run_process(args, secret=SECRET, log=tmp_path / "fixture.log") as (_, url):
        yield url


async def _stats(url: str, method: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        response = await client.request(method, "/_stats", headers={"X-Fixture-Token": FIXTURE_TOKEN})
        response.raise_for_status()
        peak: int = response.json()["peakInFlight"]
        return peak


def _spec(url: str, limit: int | None) -> spec.PayScopeSpec:
    api: dict[str, object] = {
        "url": url,
        "auth": {
            "jwtSecretRef": {"name": "jwt", "key": "signingKey"},
            "issuer": "payscope",
            "audience": "payscope-api",
        },
        # Room to queue: with 2 turns the audit's requests take several rounds of SLOW_ANSWER_S.
        "timeouts": {"request": "20s", "query": "20s"},
    }
    if limit is not None:
        api["maxRequestsInFlight"] = limit
    return spec.PayScopeSpec.model_validate(
        {"api": api, "audit": {"probeTenants": ["bank-a", "bank-b"], "probeTimeout": "20s", "interval": "60s"}}
    )


async def _peak_of_one_audit(url: str, limit: int | None) -> tuple[int, dict[str, status.CheckResult]]:
    """The server's peak of requests in flight during one full audit of an installation with this limit."""
    assert await _stats(url, "POST") == 0
    values = secrets.Secrets({("jwt", "signingKey"): SecretStr(SECRET)})
    run = session.PassSession(
        _spec(url, limit), "ns", "psd", values, (), empty_cluster.EmptyCluster(), session.ClientCache(), egress=LOOPBACK
    )
    try:
        report = await runner.run(catalog.CATALOG, run, today=TODAY)
    finally:
        await run.clients.close()
    return await _stats(url, "GET"), {r.id: r for r in report.results if r.id in API_CHECKS}


@pytest.mark.parametrize(("limit", "expected"), [(None, 8), (2, 2), (5, 5)], ids=["default", "2", "5"])
async def test_requests_in_flight_never_exceed_the_limit(slow_api: str, limit: int | None, expected: int) -> None:
    peak, results = await _peak_of_one_audit(slow_api, limit)
    assert peak == expected
    unanswered = {i: r.message for i, r in results.items() if r.status == status.CheckStatus.UNKNOWN}
    assert not any("no answer" in message for message in unanswered.values()), unanswered


async def test_an_audit_has_more_to_send_than_the_default_allows(slow_api: str) -> None:
    peak, _ = await _peak_of_one_audit(slow_api, 64)
    assert peak > 8
