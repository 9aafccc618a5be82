from fastapi import APIRouter, Request, Response

router = APIRouter()

# (method, path template, service): the public routes each service exposes through the gateway.
ROUTES: list[tuple[str, str, str, str]] = [
    ("POST", "/v1/events", "interaction", "Ingest a batch of partner events (CloudEvents 1.0, JSON array)"),
    ("GET", "/v1/customers/{customer_id}/segmentation", "segmentation", "A customer's purchase aggregates"),
    ("GET", "/v1/customers/{customer_id}/value", "clv", "A customer's value"),
    ("GET", "/v1/customers/{customer_id}/lifecycle", "lifecycle", "A customer's lifecycle stage and history"),
]


def _forwarder(service: str):
    async def forward(request: Request) -> Response:
        upstreams = request.app.state.upstreams
        body = await request.body() if request.method not in ("GET", "HEAD") else None
        resp = await upstreams.request(service, request.method, request.url.path, query=request.url.query,
                                       body=body, headers=dict(request.headers))
        return Response(resp.body, status_code=resp.status, headers=resp.headers)

    return forward


for method, path, service, summary in ROUTES:
    router.add_api_route(path, _forwarder(service), methods=[method], summary=summary, tags=[service],
                         name=f"{service}:{method.lower()}:{path}")
