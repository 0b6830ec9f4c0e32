"""HTTP under the egress policy: every request checked and pinned, every body read with a cap.

Why this module exists: the operator's HTTP clients (PayScope's API, Pinecone's control
and data planes, the anonymous S3 listing) talk to hosts named by a spec or by a server's
answer (a Pinecone index host). :class:`Transport` sits under each ``httpx.AsyncClient``
that :func:`client` builds and, for every request:

- resolves the host once and has ``policy.check`` judge every address; a denied host
  raises ``errors.EgressDenied`` before any socket is opened;
- connects to the address it checked (the URL's host is replaced by that address, the
  ``Host`` header and TLS server name keep the name), so a second DNS answer cannot
  point the connection somewhere the check never saw;
- asks for ``Accept-Encoding: identity`` and reads the body through a cap
  (``Policy.max_response_bytes``, 1 MiB by default): a larger body, declared or
  streamed, raises ``errors.ResponseTooLarge`` and the connection is dropped. A gzip or
  deflate body sent anyway is decoded here, against the same cap, so a small compressed
  body cannot inflate past it; other encodings are refused.

The clients it builds ignore proxy variables and ``.netrc`` (``trust_env=False``): the
operator's environment must not add routes or credentials a spec did not name.

What it must not do: decide the policy (``policy`` does), retry, follow redirects, or put
a header value into a message.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator, Mapping

import httpx

from payscope_operator import errors
from payscope_operator.egress import policy

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=16)
RESOLUTION_TTL = 5.0
"""Seconds a checked resolution is reused for further requests to the same host and port."""
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _too_large(what: str, limit: int) -> errors.ResponseTooLarge:
    return errors.ResponseTooLarge(
        f"{what}: the response body exceeds the operator's limit of {limit} bytes (--max-response-bytes);"
        " it was not read further"
    )


class _CappedStream(httpx.AsyncByteStream):
    """The inner body, raw bytes and decoded bytes each at most ``limit``; decoding done here."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int, what: str, wbits: int | None) -> None:
        self._inner = inner
        self._limit = limit
        self._what = what
        self._decoder = zlib.decompressobj(wbits) if wbits is not None else None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        raw = decoded = 0
        async for chunk in self._inner:
            raw += len(chunk)
            if raw > self._limit:
                raise _too_large(self._what, self._limit)
            if self._decoder is None:
                yield chunk
                continue
            data = self._inflate(chunk, decoded)
            decoded += len(data)
            if data:
                yield data
        if self._decoder is not None:
            tail = self._decoder.flush(self._limit - decoded + 1)
            if decoded + len(tail) > self._limit:
                raise _too_large(self._what, self._limit)
            if tail:
                yield tail

    def _inflate(self, chunk: bytes, decoded: int) -> bytes:
        assert self._decoder is not None
        try:
            data = self._decoder.decompress(chunk, self._limit - decoded + 1)
        except zlib.error:
            raise errors.DependencyUnavailable(f"{self._what}: the compressed response body is corrupt") from None
        if decoded + len(data) > self._limit:
            raise _too_large(self._what, self._limit)
        return data

    async def aclose(self) -> None:
        await self._inner.aclose()


class Transport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport that applies the egress policy and the response cap to every request.

    ``field`` names the spec field the client's base URL comes from; a request to any
    other host (a Pinecone index host, named by the controller) is reported as such.
    """

    def __init__(
        self,
        egress: policy.Policy,
        field: str,
        *,
        origin: str = "",
        inner: httpx.AsyncBaseTransport | None = None,
        resolver: policy.Resolver = policy.system_resolver,
    ) -> None:
        self._policy = egress
        self._field = field
        self._origin = policy.normal_name(origin)
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport(limits=DEFAULT_LIMITS)
        self._resolver = resolver
        self._resolved: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}

    def _endpoint(self, url: httpx.URL) -> policy.Endpoint:
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        if not self._origin or policy.normal_name(host) == self._origin:
            return policy.Endpoint(self._field, host, port)
        return policy.Endpoint(f"{self._field} (host {host} named by the server)", host, port)

    async def _addresses(self, endpoint: policy.Endpoint) -> tuple[str, ...]:
        key = (policy.normal_name(endpoint.host), endpoint.port)
        kept = self._resolved.get(key)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        addresses = await policy.check(self._policy, endpoint, self._resolver)
        self._resolved[key] = (time.monotonic() + RESOLUTION_TTL, addresses)
        return addresses

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = self._endpoint(request.url)
        addresses = await self._addresses(endpoint)
        request.headers["Accept-Encoding"] = "identity"
        what = f"{endpoint.field}: {request.method} {request.url.path}"
        if policy.normal_name(endpoint.host) in addresses:  # an address literal: nothing to pin
            return await self._capped(await self._inner.handle_async_request(request), what)
        failure: httpx.ConnectError | None = None
        for address in addresses:
            pinned = httpx.Request(
                request.method,
                request.url.copy_with(host=address),
                headers=request.headers,  # keeps Host: the name, not the address
                stream=request.stream,
                extensions={**request.extensions, "sni_hostname": endpoint.host},
            )
            try:
                response = await self._inner.handle_async_request(pinned)
            except httpx.ConnectError as exc:
                failure = exc
                continue
            return await self._capped(response, what)
        assert failure is not None
        raise failure

    async def _capped(self, response: httpx.Response, what: str) -> httpx.Response:
        limit = self._policy.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if declared.isdigit() and int(declared) > limit:
            await response.aclose()
            raise _too_large(what, limit)
        if encoding not in ("", "identity", *_DECODERS):
            await response.aclose()
            raise errors.DependencyUnavailable(f"{what}: answered with content-encoding {encoding[:20]}")
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in (b"content-encoding", b"content-length")]
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=headers,
            stream=_CappedStream(response.stream, limit, what, _DECODERS.get(encoding)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def client(
    egress: policy.Policy,
    field: str,
    *,
    base_url: str = "",
    timeout: httpx.Timeout | float = 10.0,
    headers: Mapping[str, str] | None = None,
    limits: httpx.Limits = DEFAULT_LIMITS,
    resolver: policy.Resolver = policy.system_resolver,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every request passes :class:`Transport`; the caller closes it."""
    origin = httpx.URL(base_url).host if base_url else ""
    transport = Transport(
        egress, field, origin=origin, inner=httpx.AsyncHTTPTransport(limits=limits, trust_env=False), resolver=resolver
    )
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        transport=transport,
    )
