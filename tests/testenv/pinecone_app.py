"""The Pinecone emulator's aiohttp application: middlewares, test-only routes, route table.

Why this module exists: every API request is counted, authenticated (``Api-Key``),
version-checked (``X-Pinecone-Api-Version``) and possibly answered by an injected fault
before a ``pinecone_api`` handler sees it, and every ``EmulatorError`` becomes the API's
error body. The ``/_emulator`` routes (no API key) let a test inject faults, set
per-namespace vector counts, force an index state and read the request counts.
``build_app`` wires it all together.

What it must not do: start a server or parse a command line (``pinecone_emulator`` does),
or implement the behaviour of an API route.
"""

from __future__ import annotations

import secrets
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.testenv import pinecone_api, pinecone_models, pinecone_store

# ---- middlewares -----------------------------------------------------------------------------


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except pinecone_models.EmulatorError as exc:
        return pinecone_api.json_response(pinecone_models.error_body(exc.status, exc.code, exc.message), exc.status)
    except web.HTTPNotFound:
        return pinecone_api.json_response(
            pinecone_models.error_body(404, "NOT_FOUND", f"No route for {request.method} {request.path}"), 404
        )
    except web.HTTPMethodNotAllowed:
        return pinecone_api.json_response(
            pinecone_models.error_body(405, "UNIMPLEMENTED", f"{request.method} is not allowed on {request.path}"), 405
        )


@web.middleware
async def _gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count, authenticate, check the API version and inject faults for every API request."""
    if request.path.startswith("/_emulator/"):
        return await handler(request)
    store = request.app[pinecone_store.STORE]
    store.requests[f"{request.method} {request.path}"] += 1
    key = request.headers.get("Api-Key")
    if not key or not secrets.compare_digest(key, store.settings.api_key):
        raise pinecone_models.EmulatorError(401, "UNAUTHENTICATED", "Invalid API Key")
    version = request.headers.get("X-Pinecone-Api-Version")
    if version != pinecone_models.API_VERSION:
        raise pinecone_models.invalid(
            f"Unsupported API version {version!r}: this emulator speaks only {pinecone_models.API_VERSION}"
        )
    fault = store.take_fault(request)
    if fault is None:
        return await handler(request)
    message = "Too many requests, retry later" if fault.status == 429 else "Injected fault"
    response = pinecone_api.json_response(pinecone_models.error_body(fault.status, fault.code, message), fault.status)
    if fault.retry_after is not None:
        ra = fault.retry_after
        response.headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
    return response


# ---- test-only administration ----------------------------------------------------------------


async def admin_health(request: web.Request) -> web.Response:
    return pinecone_api.json_response({"ok": True, "api_version": pinecone_models.API_VERSION})


async def admin_set_faults(request: web.Request) -> web.Response:
    """``{"rate_limit_next": N, "retry_after": S}`` and/or ``{"fail_next": N, "status": 503}``,
    optionally narrowed with ``"methods": [...]`` and ``"path_prefix": "/indexes"``."""
    store = request.app[pinecone_store.STORE]
    body = await pinecone_api.read_body(request)
    methods_raw = body.get("methods") or []
    if not isinstance(methods_raw, list) or not all(isinstance(m, str) for m in methods_raw):
        raise pinecone_models.invalid("methods must be a list of strings")
    methods = frozenset(cast(list[str], methods_raw))
    prefix = pinecone_models.read_str(body, "path_prefix") or ""
    retry_after_raw = body.get("retry_after", 1)
    if isinstance(retry_after_raw, bool) or not isinstance(retry_after_raw, int | float) or retry_after_raw < 0:
        raise pinecone_models.invalid("retry_after must be a non-negative number")
    if (n := pinecone_models.read_int(body, "rate_limit_next")) is not None and n > 0:
        store.faults.append(pinecone_store.Fault(n, 429, "RESOURCE_EXHAUSTED", float(retry_after_raw), methods, prefix))
    if (n := pinecone_models.read_int(body, "fail_next")) is not None and n > 0:
        status = pinecone_models.read_int(body, "status") or 503
        if not 400 <= status <= 599:
            raise pinecone_models.invalid("status must be an HTTP error status")
        code = pinecone_models.read_str(body, "code") or {
            500: "INTERNAL",
            503: "UNAVAILABLE",
            504: "DEADLINE_EXCEEDED",
        }.get(status, "UNKNOWN")
        store.faults.append(pinecone_store.Fault(n, status, code, None, methods, prefix))
    return pinecone_api.json_response([f.view() for f in store.faults if f.remaining > 0])


async def admin_get_faults(request: web.Request) -> web.Response:
    return pinecone_api.json_response([f.view() for f in request.app[pinecone_store.STORE].faults if f.remaining > 0])


async def admin_clear_faults(request: web.Request) -> web.Response:
    request.app[pinecone_store.STORE].faults.clear()
    return web.Response(status=204)


async def admin_get_requests(request: web.Request) -> web.Response:
    return pinecone_api.json_response(dict(sorted(request.app[pinecone_store.STORE].requests.items())))


async def admin_reset_requests(request: web.Request) -> web.Response:
    request.app[pinecone_store.STORE].requests.clear()
    return web.Response(status=204)


async def admin_set_namespaces(request: web.Request) -> web.Response:
    """Replace an index's per-namespace vector counts, e.g. ``{"bank-a": 10, "": 3}``."""
    store = request.app[pinecone_store.STORE]
    record = store.get(request.match_info["name"])
    body = await pinecone_api.read_body(request)
    counts: dict[str, int] = {}
    for ns, count in body.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise pinecone_models.invalid(f"vector count of namespace {ns!r} must be a non-negative integer")
        counts[ns] = count
    record.namespaces = counts
    store.save()
    return pinecone_api.json_response(record.stats())


async def admin_set_state(request: web.Request) -> web.Response:
    """Force an index's status, e.g. ``{"state": "InitializationFailed"}``; cancels any transition."""
    store = request.app[pinecone_store.STORE]
    record = store.get(request.match_info["name"])
    body = await pinecone_api.read_body(request)
    state = pinecone_models.read_enum(body, "state", pinecone_models.STATES)
    if state is None:
        raise pinecone_models.invalid("state is required")
    record.state, record.next_state, record.settles_at = state, None, 0.0
    store.save()
    return pinecone_api.json_response(record.model(store.base_url))


async def admin_reset(request: web.Request) -> web.Response:
    """Forget every index, fault and request count (for a shared emulator between tests)."""
    store = request.app[pinecone_store.STORE]
    store.indexes.clear()
    store.faults.clear()
    store.requests.clear()
    store.save()
    return web.Response(status=204)


def build_app(settings: pinecone_store.Settings) -> web.Application:
    app = web.Application(middlewares=[_errors, _gate])
    app[pinecone_store.STORE] = pinecone_store.Store(settings)
    app.router.add_get("/indexes", pinecone_api.list_indexes)
    app.router.add_post("/indexes", pinecone_api.create_index)
    app.router.add_get("/indexes/{name}", pinecone_api.describe_index)
    app.router.add_patch("/indexes/{name}", pinecone_api.configure_index)
    app.router.add_delete("/indexes/{name}", pinecone_api.delete_index)
    app.router.add_post("/_data/{host_id}/describe_index_stats", pinecone_api.describe_index_stats)
    app.router.add_post("/_data/{host_id}/vectors/upsert", pinecone_api.upsert_vectors)
    app.router.add_get("/_emulator/health", admin_health)
    app.router.add_get("/_emulator/faults", admin_get_faults)
    app.router.add_post("/_emulator/faults", admin_set_faults)
    app.router.add_delete("/_emulator/faults", admin_clear_faults)
    app.router.add_get("/_emulator/requests", admin_get_requests)
    app.router.add_delete("/_emulator/requests", admin_reset_requests)
    app.router.add_post("/_emulator/indexes/{name}/namespaces", admin_set_namespaces)
    app.router.add_post("/_emulator/indexes/{name}/state", admin_set_state)
    app.router.add_post("/_emulator/reset", admin_reset)
    return app
