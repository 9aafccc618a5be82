"""Clustering runs through the API on a real Postgres: k chosen in 3..8 or fixed by the request, clusters in words."""

import uuid

from tests.services.segmentation.helpers import purchase, touch
from tests.services.segmentation.test_runs_api import run


async def population(feeder, n: int = 60) -> None:
    events = []
    for i in range(n):
        c = uuid.UUID(int=i + 1)
        loyal = i % 3 == 0
        for k in range(8 if loyal else 1 + i % 2):
            events.append(purchase(c, "150.00" if loyal else f"{10 + i % 7}.00", days=(200 if loyal else i) + 10 * k))
        for k in range(i % 4):
            events.append(touch(c, days=k))
    await feeder.apply(events)


async def test_clustering_chooses_k_in_range_or_uses_the_requested_k(client, feeder):
    await population(feeder)
    chosen = await run(client, kind="clustering", as_of="2026-12-31T00:00:00Z")
    assert 3 <= chosen["result"]["k"] <= 8 and not chosen["result"]["k_fixed"]
    described = (await client.get("/v1/segmentation/clusters")).json()
    assert set(described["silhouette_by_k"]) <= {str(k) for k in range(3, 9)}
    assert "silhouette" in described["k_criterion"] and described["smallest_share_by_k"]
    assert sum(c["size"] for c in described["clusters"]) == 60
    assert abs(sum(c["share"] for c in described["clusters"]) - 1) < 1e-3
    for c in described["clusters"]:
        assert c["description"] and c["name"].startswith("Cluster")
        sds = [abs(d["sd_from_mean"]) for d in c["distinguishing"]]
        assert sds == sorted(sds, reverse=True)

    fixed = await run(client, kind="clustering", k=4, as_of="2026-12-31T00:00:00Z")
    assert fixed["result"]["k"] == 4 and fixed["result"]["k_fixed"] and fixed["params"]["k"] == 4
    described = (await client.get("/v1/segmentation/clusters")).json()
    assert described["k"] == 4 and described["k_fixed"] and len(described["clusters"]) == 4


async def test_bad_k_is_a_422_problem(client):
    for body in (
        {"kind": "clustering", "k": 1},
        {"kind": "clustering", "k": 21},
        {"kind": "clustering", "k": "x"},
        {"kind": "rfm", "k": 3},
        {"kind": "tiers", "k": 3},
    ):
        resp = await client.post("/v1/segmentation/runs", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
