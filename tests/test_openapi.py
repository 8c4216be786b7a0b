"""GET /api/openapi.json lists exactly the JSON routes the app registered (walking
app.router), each described in signaling/openapi.py OPERATIONS, with the msgspec
schemas the handlers read their bodies with."""

from __future__ import annotations

from typing import Any

import msgspec

from signaling import openapi
from signaling.schemas import Payload


def router_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) under /api/ plus the JSON routes outside it, from app.router."""
    found = set()
    for route in app.router.routes():
        if route.resource is None or route.method in ("HEAD", "OPTIONS"):
            continue
        path = route.resource.canonical
        if path.startswith("/api/") or path in openapi.EXTRA_PATHS:
            found.add((route.method, path))
    return found


async def test_the_document_lists_every_route_and_nothing_else(client: Any) -> None:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    listed = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    routes = router_routes(client.app)
    assert listed == routes
    undescribed = sorted((m, p) for p, ops in doc["paths"].items() for m, op in ops.items()
                         if op.get("x-undescribed"))
    assert undescribed == [], "describe these routes in signaling/openapi.py OPERATIONS"
    stale = set(openapi.OPERATIONS) - routes
    assert stale == set(), "OPERATIONS describes routes the app does not have"


async def test_bodies_are_the_schemas_the_handlers_read(client: Any) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for (method, path), op in openapi.OPERATIONS.items():
        body = doc["paths"][path][method.lower()].get("requestBody")
        if op.body is None:
            continue
        assert issubclass(op.body, Payload)
        ref = body["content"]["application/json"]["schema"]["$ref"]
        name = ref.rsplit("/", 1)[1]
        assert name == op.body.__name__
        _, expected = msgspec.json.schema_components([op.body],
                                                     ref_template="#/components/schemas/{name}")
        assert schemas[name] == expected[name]
        # unknown fields are refused, as the schema says
        assert schemas[name]["additionalProperties"] is False


def test_a_route_added_without_a_description_is_marked() -> None:
    from aiohttp import web

    app = web.Application()
    openapi.setup(app)

    async def nothing(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/api/new-thing", nothing)
    app.router.add_get("/page", nothing)
    doc = openapi.document(app)
    assert set(doc["paths"]) == {"/api/openapi.json", "/api/new-thing"}
    assert doc["paths"]["/api/new-thing"]["get"]["x-undescribed"] is True
