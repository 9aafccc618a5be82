import orjson
from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from gateway.docs import asyncapi

router = APIRouter(tags=["documentation"])
_ASYNCAPI: bytes | None = None
_CUSTOM_TYPES_TIMEOUT_S = 2.0
# Its members are AsyncAPI's own (https://www.asyncapi.com/docs/reference/specification/v3.0.0): a client reads it
# with an AsyncAPI parser, so only the version and the title are typed here.
ASYNCAPI_SCHEMA = {
    "type": "object",
    "required": ["asyncapi", "info", "channels", "operations", "components"],
    "additionalProperties": True,
    "properties": {
        "asyncapi": {"type": "string", "const": "3.0.0"},
        "info": {
            "type": "object",
            "required": ["title", "version"],
            "additionalProperties": True,
            "properties": {"title": {"type": "string"}, "version": {"type": "string"}},
        },
    },
}


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> Response:
    return Response(await request.app.state.openapi.document(), media_type="application/json")


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Customer-value CRM API")


@router.get(
    "/asyncapi",
    summary="The AsyncAPI 3.0 document of every topic and event type (JSON)",
    response_description="AsyncAPI 3.0",
    responses={200: {"content": {"application/json": {"schema": ASYNCAPI_SCHEMA}}}},
)
async def asyncapi_document(request: Request) -> Response:
    """Partner and domain events: channels are topics, messages are event types with JSON Schema payloads,
    including the custom event types registered at interaction (read on every request, so a new type or
    version is in the document at once)."""
    global _ASYNCAPI
    if _ASYNCAPI is None:
        _ASYNCAPI = orjson.dumps(asyncapi.build())
    body = await request.app.state.upstreams.get_json_or_none("interaction", "/v1/event-types", _CUSTOM_TYPES_TIMEOUT_S)
    if body is None:
        # Interaction is down: the fixed types, marked as missing the custom ones.
        doc = orjson.loads(_ASYNCAPI)
        doc["info"]["x-missing"] = ["custom event types (the interaction service did not answer)"]
        return Response(orjson.dumps(doc), media_type="application/json")
    types = orjson.loads(body)["items"]
    if not types:
        return Response(_ASYNCAPI, media_type="application/json")
    return Response(orjson.dumps(asyncapi.add_custom_types(orjson.loads(_ASYNCAPI), types)), media_type="application/json")
