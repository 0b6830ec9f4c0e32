"""The egress policy (pure, table-tested) and its HTTP transport (against sockets of this test only).

The policy cases start from what the test environment runs with (``127.0.0.1/32``) and
from the production default (no allowlist), and change one thing at a time. The
transport cases use a resolver seam (names of this test resolve to 127.0.0.1) and a
small asyncio server on 127.0.0.1 that records what it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import AsyncIterator, Sequence

import pytest

from payscope_operator import errors
from payscope_operator.egress import policy, transport

TESTENV = policy.Policy.from_settings("127.0.0.1/32")
DEFAULT = policy.Policy.from_settings("")
API_SERVER = policy.Policy.from_settings("127.0.0.1/32", api_server=[("127.0.0.1", 6443)])
LISTED = policy.Policy.from_settings("10.0.0.0/8, db.example.com, *.svc.cluster.local")


def _denial(egress: policy.Policy, host: str, addresses: Sequence[str], port: int = 5432) -> str | None:
    return policy.judge(egress, policy.Endpoint("spec.x", host, port), addresses).denied


@pytest.mark.parametrize(
    ("egress", "host", "addresses", "denied"),
    [
        (TESTENV, "127.0.0.1", ["127.0.0.1"], None),
        (TESTENV, "127.0.0.2", ["127.0.0.2"], "loopback"),  # 127.0.0.1/32 opens exactly that address
        (TESTENV, "localhost", ["127.0.0.1", "::1"], "loopback"),  # every address must pass
        (TESTENV, "10.1.2.3", ["10.1.2.3"], "not in PAYSCOPE_ALLOWED_EGRESS"),
        (DEFAULT, "10.1.2.3", ["10.1.2.3"], None),  # no allowlist: anything but the denied ranges
        (DEFAULT, "db.internal", ["192.168.1.5"], None),
        (DEFAULT, "127.0.0.1", ["127.0.0.1"], "loopback"),
        (DEFAULT, "0.0.0.0", ["0.0.0.0"], "loopback"),  # reaches the operator's own host
        (DEFAULT, "::", ["::"], "loopback"),
        (policy.Policy.from_settings("0.0.0.0/0"), "x", ["127.0.0.1"], "loopback"),  # a broad CIDR opens no loopback
        (policy.Policy.from_settings("127.0.0.0/8"), "x", ["127.9.9.9"], None),
        (policy.Policy.from_settings("::1/128"), "x", ["::1"], None),
        (DEFAULT, "169.254.169.254", ["169.254.169.254"], "link-local or cloud metadata address"),
        (policy.Policy.from_settings("169.254.0.0/16"), "x", ["169.254.169.254"], "link-local"),  # never opened
        (DEFAULT, "x", ["::ffff:169.254.169.254"], "link-local"),  # IPv4-mapped IPv6
        (DEFAULT, "x", ["fe80::1%eth0"], "link-local"),
        (DEFAULT, "x", ["fd00:ec2::254"], "link-local"),
        (DEFAULT, "x", ["100.100.100.200"], "link-local"),
        (DEFAULT, "metadata.google.internal", ["10.0.0.2"], "cloud metadata host name"),
        (DEFAULT, "METADATA.Google.Internal.", ["10.0.0.2"], "cloud metadata host name"),
        (DEFAULT, "rebind.example.com", ["10.0.0.2", "169.254.169.254"], "link-local"),
        (API_SERVER, "127.0.0.1", ["127.0.0.1"], None),  # another port of the API server's address
        (LISTED, "10.9.8.7", ["10.9.8.7"], None),
        (LISTED, "db.example.com", ["172.16.0.9"], None),  # a listed name, checked on what it resolves to
        (LISTED, "db.example.com", ["169.254.169.254"], "link-local"),
        (LISTED, "pg.payscope.svc.cluster.local", ["172.20.0.4"], None),
        (LISTED, "svc.cluster.local", ["172.20.0.4"], "not in PAYSCOPE_ALLOWED_EGRESS"),  # *.domain: subdomains
        (LISTED, "evil-svc.cluster.local.example", ["172.20.0.4"], "not in PAYSCOPE_ALLOWED_EGRESS"),
        (DEFAULT, "nothing", [], "it resolves to no address"),
    ],
)
def test_judge(egress: policy.Policy, host: str, addresses: list[str], denied: str | None) -> None:
    found = _denial(egress, host, addresses)
    if denied is None:
        assert found is None
    else:
        assert found is not None
        assert denied in found


def test_the_api_server_is_denied_on_its_own_port_even_when_loopback_is_opened() -> None:
    assert _denial(API_SERVER, "127.0.0.1", ["127.0.0.1"], port=6443) == "the Kubernetes API server"


def test_a_denial_names_the_field_the_host_and_the_rule() -> None:
    verdict = policy.judge(TESTENV, policy.Endpoint("spec.api.url", "api.bank.test", 8000), ["127.0.0.2"])
    with pytest.raises(errors.EgressDenied) as caught:
        verdict.raise_if_denied()
    assert caught.value.message == (
        "spec.api.url: api.bank.test:8000 resolves to 127.0.0.2, which is denied by the operator's egress policy"
        " (loopback, not opened by PAYSCOPE_ALLOWED_EGRESS); no connection was made"
    )
    assert caught.value.reason == "EgressDenied"


@pytest.mark.parametrize("entry", ["*", "*.", "http://x", "a b", "*.a*.b", "10.0.0.0/33"])
def test_an_unreadable_allowlist_is_refused_at_start(entry: str) -> None:
    with pytest.raises(ValueError, match="PAYSCOPE_ALLOWED_EGRESS"):
        policy.Policy.from_settings(entry)


def test_the_environment_sets_allowlist_and_cap() -> None:
    egress = policy.Policy.from_environment(
        {"PAYSCOPE_ALLOWED_EGRESS": "10.0.0.0/8", "PAYSCOPE_MAX_RESPONSE_BYTES": "99"}
    )
    assert egress.allowlist is not None
    assert egress.allowlist.describe() == "10.0.0.0/8"
    assert egress.max_response_bytes == 99
    assert policy.Policy.from_environment({}).allowlist is None


async def _resolves_to(*addresses: str) -> policy.Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host.endswith(".test"):
            return addresses
        raise OSError("no such host")

    return resolve


async def test_check_resolves_once_and_returns_what_it_checked() -> None:
    asked: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return ["127.0.0.1"]

    assert await policy.check(TESTENV, policy.Endpoint("f", "api.test", 80), resolve) == ("127.0.0.1",)
    assert await policy.check(TESTENV, policy.Endpoint("f", "127.0.0.1", 80), resolve) == ("127.0.0.1",)
    assert asked == ["api.test"]  # a literal needs no resolution
    with pytest.raises(errors.EgressDenied):
        await policy.check(TESTENV, policy.Endpoint("f", "metadata.google.internal", 80), resolve)
    assert asked == ["api.test"]  # a metadata name is not even looked up


async def test_an_unresolvable_host_is_a_dependency_fault_not_a_denial() -> None:
    with pytest.raises(errors.DependencyUnavailable, match="does not resolve"):
        await policy.check(DEFAULT, policy.Endpoint("spec.api.url", "nowhere.invalid", 80), await _resolves_to())


# ---- the transport -------------------------------------------------------------------------------


class Recorder:
    """An HTTP/1.1 server on 127.0.0.1 answering ``answer`` and recording each request's head."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            self.heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(self.answer)
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> Recorder:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def _answer(body: bytes, *headers: str) -> bytes:
    head = "\r\n".join(["HTTP/1.1 200 OK", "Connection: close", *headers]) + "\r\n\r\n"
    return head.encode() + body


@contextlib.asynccontextmanager
async def _serving(answer: bytes) -> AsyncIterator[Recorder]:
    async with Recorder(answer) as server:
        yield server


async def test_a_name_is_pinned_to_the_checked_address_and_keeps_its_host_header() -> None:
    body = b'{"ok": true}'
    async with _serving(_answer(body, f"Content-Length: {len(body)}")) as server:
        egress = policy.Policy.from_settings("127.0.0.1/32")
        async with transport.client(egress, "spec.api.url", resolver=await _resolves_to("127.0.0.1")) as http:
            response = await http.get(f"http://payscope-api.test:{server.port}/healthz")
    assert response.json() == {"ok": True}
    (head,) = server.heads
    assert f"host: payscope-api.test:{server.port}".encode() in head.lower()
    assert b"accept-encoding: identity" in head.lower()


async def test_a_denied_name_is_never_connected_to() -> None:
    resolver = await _resolves_to("127.0.0.2")
    async with (
        _serving(_answer(b"{}", "Content-Length: 2")) as server,
        transport.client(TESTENV, "spec.api.url", resolver=resolver) as http,
    ):
        with pytest.raises(errors.EgressDenied, match=r"spec\.api\.url: .*127\.0\.0\.2"):
            await http.get(f"http://payscope-api.test:{server.port}/")
    assert server.heads == []


async def test_a_host_named_by_the_server_is_reported_as_such() -> None:
    async with transport.client(DEFAULT, "spec.pinecone.controllerUrl", base_url="https://api.pinecone.test") as http:
        with pytest.raises(errors.EgressDenied, match=r"controllerUrl \(host 169\.254\.169\.254 named by the server\)"):
            await http.get("http://169.254.169.254/latest/meta-data/")


@pytest.mark.parametrize(
    "answer",
    [
        _answer(b"x" * 2048, "Content-Length: 2048"),  # declared too large: refused before reading
        _answer(b"x" * 2048),  # no length, closes after: read up to the cap
        _answer(gzip.compress(b"x" * 100_000), "Content-Encoding: gzip"),  # small on the wire, large inflated
    ],
    ids=["declared", "streamed", "inflated"],
)
async def test_a_body_larger_than_the_cap_is_response_too_large(answer: bytes) -> None:
    egress = policy.Policy.from_settings("127.0.0.1/32", max_response_bytes=1024)
    async with _serving(answer) as server, transport.client(egress, "spec.api.url") as http:
        with pytest.raises(errors.ResponseTooLarge, match="exceeds the operator's limit of 1024 bytes"):
            await http.get(f"http://127.0.0.1:{server.port}/metrics")


async def test_a_gzip_body_within_the_cap_is_read() -> None:
    egress = policy.Policy.from_settings("127.0.0.1/32", max_response_bytes=1024)
    answer = _answer(gzip.compress(b"y" * 1000), "Content-Encoding: gzip")
    async with _serving(answer) as server, transport.client(egress, "spec.api.url") as http:
        response = await http.get(f"http://127.0.0.1:{server.port}/")
    assert response.content == b"y" * 1000
