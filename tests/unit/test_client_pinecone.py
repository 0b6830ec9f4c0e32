"""The pure helpers of the Pinecone client: addresses, Retry-After, backoff.

No server: the client's requests, retries and redaction run against the emulator in
``tests/integration/test_provision_pinecone.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from payscope_operator import errors
from payscope_operator.backends import pinecone


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("rag-abc.svc.pinecone.io", "https://rag-abc.svc.pinecone.io"),
        ("http://127.0.0.1:5000/_data/rag-1", "http://127.0.0.1:5000/_data/rag-1"),
        ("https://rag-abc.svc.pinecone.io/", "https://rag-abc.svc.pinecone.io"),
    ],
)
def test_index_url_keeps_a_scheme_and_adds_https_to_a_bare_host(host: str, url: str) -> None:
    assert pinecone.client.index_url(host) == url


def test_index_path_rechecks_the_name() -> None:
    assert pinecone.client.index_path("payscope-rag") == "/indexes/payscope-rag"
    with pytest.raises(errors.SpecInvalid):
        pinecone.client.index_path("../admin")


def _answer(retry_after: str | None) -> httpx.Response:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return httpx.Response(429, headers=headers)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert pinecone.client.retry_after(_answer(None)) is None
    assert pinecone.client.retry_after(_answer("2")) == 2.0
    assert pinecone.client.retry_after(_answer("0.25")) == 0.25
    assert pinecone.client.retry_after(_answer("-3")) == 0.0
    assert pinecone.client.retry_after(_answer("soon")) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    waited = pinecone.client.retry_after(_answer(later))
    assert waited is not None
    assert 25 <= waited <= 30


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = pinecone.client.RetryPolicy(base_delay=0.5, max_delay=4.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        waits = {policy.backoff(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(waits) > 1  # jittered
