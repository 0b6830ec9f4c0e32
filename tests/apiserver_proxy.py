"""An HTTPS proxy in front of the test kube-apiserver that can fail a request or freeze the watches.

Tests need the API server to misbehave in ways it will not on request: answer
one status write with a 503, or keep a watch stream open while delivering
nothing (a half-open connection behind a load balancer does exactly that).
This proxy serves TLS with the test control plane's own serving certificate
(its SAN is 127.0.0.1 and the kubeconfigs already trust its CA), forwards
every request to the real kube-apiserver with the caller's own credentials,
and streams the answers back chunk by chunk, so a client pointed at it works
exactly as against the server itself, until the test says otherwise:

- ``fail(method, path_suffix, status)`` answers the next matching request
  itself with that status (a Kubernetes ``Status`` body), without forwarding it;
- ``delay(method, path_suffix, seconds)`` forwards the next matching request
  (so it takes effect on the server) but holds the answer that long: a client
  with a shorter timeout sees a timeout for a write that did happen;
- ``freeze_watches()`` stops relaying every watch stream, open or opened later
  (the API server's events wait in the connection), and ``thaw_watches()``
  lets them flow again;
- ``drop_watches()`` silently loses every watch stream open at that moment: the
  connections stay open and nothing more is ever relayed on them (what a load
  balancer that forgot a connection does), while watches opened later flow.

``requests`` records every request seen (method, path, status answered). The
proxy runs on its own event loop in a thread, so sync tests and a subprocess
operator can use it alike. It changes nothing on the API server by itself.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from tests.testenv import process

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}


@dataclass(frozen=True)
class Seen:
    """One request the proxy handled."""

    method: str
    path: str
    watch: bool
    status: int | None  # None while a stream is still open
    injected: bool


@dataclass
class _Fault:
    method: str
    suffix: str
    status: int | None  # answer this instead of forwarding; None: forward
    delay: float  # seconds to hold the answer
    times: int


class ApiServerProxy:
    """Start with ``with ApiServerProxy() as proxy:``; point a kubeconfig at ``proxy.url``."""

    def __init__(self, upstream: str | None = None, ca_file: Path | None = None) -> None:
        self.upstream = (upstream or os.environ["PAYSCOPE_KUBE_SERVER"]).rstrip("/")
        self.ca_file = ca_file or Path(os.environ["PAYSCOPE_KUBE_CA_FILE"])
        self.port = process.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.requests: list[Seen] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="apiserver-proxy", daemon=True)
        self._flowing: asyncio.Event | None = None
        self._drops = 0  # watch streams opened before the latest drop_watches() relay nothing more
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # Control, from the test's thread.

    def fail(self, method: str, path_suffix: str, status: int, *, times: int = 1) -> None:
        """Answer the next ``times`` requests ``method`` on a path ending with ``path_suffix`` with ``status``."""
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_suffix, status, 0.0, times))

    def delay(self, method: str, path_suffix: str, seconds: float, *, times: int = 1) -> None:
        """Forward the next matching request, then hold its answer ``seconds`` before sending it."""
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_suffix, None, seconds, times))

    def freeze_watches(self) -> None:
        """Stop relaying every watch stream: the client sees an open, silent connection."""
        self._call(lambda flowing: flowing.clear())

    def thaw_watches(self) -> None:
        self._call(lambda flowing: flowing.set())

    def drop_watches(self) -> None:
        """Lose every watch stream open now, silently: the client sees open, silent connections."""
        with self._lock:
            self._drops += 1

    def seen(self, method: str, path_suffix: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    def _call(self, action: Any) -> None:
        assert self._flowing is not None, "the proxy is not running"
        flowing = self._flowing
        self._loop.call_soon_threadsafe(action, flowing)

    # Lifecycle.

    def __enter__(self) -> ApiServerProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._flowing is not None:
            self.thaw_watches()
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        pki = self.ca_file.parent
        serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        serving.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
        upstream = ssl.create_default_context(cafile=str(self.ca_file))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=upstream, limit=0),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=serving).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # Serving.

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and path.endswith(fault.suffix) and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _record(self, seen: Seen) -> int:
        with self._lock:
            self.requests.append(seen)
            return len(self.requests) - 1

    def _settle(self, index: int, status: int) -> None:
        with self._lock:
            old = self.requests[index]
            self.requests[index] = Seen(old.method, old.path, old.watch, status, old.injected)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch", "").lower() in ("true", "1")
        fault = self._take_fault(request.method, request.path)
        if fault is not None and fault.status is not None:
            self._record(Seen(request.method, request.path, watch, fault.status, injected=True))
            refusal = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "injected by the test proxy",
                "reason": "ServiceUnavailable" if fault.status == 503 else "InternalError",
                "code": fault.status,
            }
            return web.json_response(refusal, status=fault.status)
        index = self._record(Seen(request.method, request.path, watch, None, injected=False))
        assert self._session is not None
        assert self._flowing is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        if watch:
            await self._flowing.wait()
        with self._lock:
            epoch = self._drops
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body or None
        ) as upstream:
            if fault is not None:
                await asyncio.sleep(fault.delay)  # the server has acted; the client waits for the answer
            response = web.StreamResponse(status=upstream.status)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    response.headers[key] = value
            self._settle(index, upstream.status)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                if watch:
                    await self._flowing.wait()
                    with self._lock:
                        if epoch != self._drops:
                            continue  # a dropped stream: the events go nowhere, the connection stays open
                await response.write(chunk)
            if watch:
                with self._lock:
                    dropped = epoch != self._drops
                if dropped:  # not even the end of the stream is relayed: the client must time out by itself
                    await asyncio.get_running_loop().create_future()  # cancelled when the client hangs up
            await response.write_eof()
            return response


def kubeconfig_through(proxy: ApiServerProxy, original: Path, target: Path) -> Path:
    """A copy of the kubeconfig ``original`` whose cluster server is the proxy."""
    config = yaml.safe_load(original.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = proxy.url
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    target.chmod(0o600)
    return target
