from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from gateway.docs import asyncapi

router = APIRouter(tags=["documentation"])
_ASYNCAPI: bytes | None = None


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> Response:
    return Response(await request.app.state.openapi.document(), media_type="application/json")


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Customer-value CRM API")


@router.get("/asyncapi", summary="The AsyncAPI 3.0 document of every topic and event type (JSON)",
            response_description="AsyncAPI 3.0", responses={200: {"content": {"application/json": {}}}})
async def asyncapi_document() -> Response:
    """Partner and domain events: channels are topics, messages are event types with JSON Schema payloads."""
    global _ASYNCAPI
    if _ASYNCAPI is None:
        import orjson

        _ASYNCAPI = orjson.dumps(asyncapi.build())
    return Response(_ASYNCAPI, media_type="application/json")
