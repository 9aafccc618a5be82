"""A segment's CSV export as a job (issue 15): created, polled for progress, downloaded with the same content as
the streamed export; one unfinished per segment and kind; run again from the start when its replica died; kept
for the last few per segment and a day; gone when a customer in it is erased."""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from shared.db import make_engine
from shared.messaging.inprocess import InProcessTransport
from tests.services.conftest import serving
from tests.services.segmentation.helpers import erased, purchase, value
from tests.support import wait_until

import segmentation.app
from segmentation.settings import SegmentationSettings


async def _segment(client, feeder, key: str, customers: list[uuid.UUID]) -> str:
    await feeder.apply([purchase(c, "100", 1) for c in customers])
    resp = await client.post(
        "/v1/segments", json={"key": key, "name": key, "rule": {"field": "spend", "op": "gte", "value": 100}}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["segment_id"]


async def _sql(database_url: str, query: str, **params) -> list[sa.Row]:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(sa.text(query), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def _finished(client, sid: str, kind: str) -> dict:
    resp = await client.post(f"/v1/segments/{sid}/exports", json={"kind": kind})
    assert resp.status_code == 202, resp.text
    await client.exports.jobs.wait()
    return (await client.get(f"/v1/segments/{sid}/exports/{resp.json()['export_id']}")).json()


async def test_an_export_job_writes_chunk_by_chunk_and_downloads_as_the_streamed_csv(client, feeder, database_url):
    customers = sorted(uuid.uuid4() for _ in range(5))
    sid = await _segment(client, feeder, "exported-job", customers)
    await feeder.apply(
        [value(customers[0], "10", '=HYPERLINK("http://x")'), purchase(customers[4], "50", 0.5)]
    )  # a second order: it leaves with the edit
    await client.patch(
        f"/v1/segments/{sid}",
        json={
            "name": "edited",
            "rule": {"all": [{"field": "spend", "op": "gte", "value": 100}, {"field": "order_count", "op": "lte", "value": 1}]},
        },
    )
    client.exports.chunk_rows = 2  # 4 members: two chunks of rows after the header

    created = await client.post(f"/v1/segments/{sid}/exports", json={"kind": "members"})
    assert created.status_code == 202, created.text
    export = created.json()
    assert export["status"] == "queued" and export["progress"] == 0 and export["rows_written"] == 0
    assert created.headers["location"] == f"/v1/segments/{sid}/exports/{export['export_id']}"
    assert export["download"] == f"/v1/segments/{sid}/exports/{export['export_id']}/download"
    await client.exports.jobs.wait()

    polled = (await client.get(f"/v1/segments/{sid}/exports/{export['export_id']}")).json()
    streamed = await client.get(f"/v1/segments/{sid}/members/export")
    members = list(csv.DictReader(io.StringIO(streamed.text)))
    assert len(members) == 4
    assert polled["status"] == "succeeded" and polled["progress"] == 1.0 and polled["error"] is None
    assert polled["rows_total"] == polled["rows_written"] == len(members)
    assert polled["finished_at"] is not None and polled["attempts"] == 1
    chunks = await _sql(
        database_url,
        "SELECT chunk_no FROM segmentation.segment_export_chunk WHERE export_id = :id ORDER BY chunk_no",
        id=uuid.UUID(export["export_id"]),
    )
    assert [c.chunk_no for c in chunks] == [0, 1, 2]

    downloaded = await client.get(export["download"])
    assert downloaded.status_code == 200 and downloaded.headers["content-type"].startswith("text/csv")
    assert "attachment" in downloaded.headers["content-disposition"]
    assert downloaded.content == streamed.content
    assert list(csv.DictReader(io.StringIO(downloaded.text)))[0]["tier"] == '\'=HYPERLINK("http://x")'

    history = await _finished(client, sid, "history")
    streamed = await client.get(f"/v1/segments/{sid}/history/export")
    assert history["rows_written"] == history["rows_total"] == 5  # 4 members and the one that left
    assert (await client.get(history["download"])).content == streamed.content


async def test_one_unfinished_export_per_segment_and_kind_and_hostile_requests_are_4xx(client, feeder, database_url):
    sid = await _segment(client, feeder, "busy", [uuid.uuid4()])
    running = uuid.uuid4()
    await _sql(
        database_url,
        """
        INSERT INTO segmentation.segment_export (export_id, segment_id, kind, status, claimed_by, lease_until,
                                                 rows_total, rows_written, attempts, started_at)
        VALUES (:id, :sid, 'members', 'running', 'replica-elsewhere', now() + interval '1 hour', 10, 4, 1, now())""",
        id=running,
        sid=uuid.UUID(sid),
    )
    refused = await client.post(f"/v1/segments/{sid}/exports", json={"kind": "members"})
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["running_job_id"] == str(running)

    polled = (await client.get(f"/v1/segments/{sid}/exports/{running}")).json()
    assert polled["status"] == "running" and polled["progress"] == 0.4
    early = await client.get(f"/v1/segments/{sid}/exports/{running}/download")
    assert early.status_code == 409 and early.headers["content-type"] == "application/problem+json"
    assert early.json()["export_status"] == "running"

    other_kind = await client.post(f"/v1/segments/{sid}/exports", json={"kind": "history"})
    assert other_kind.status_code == 202, other_kind.text
    await client.exports.jobs.wait()

    other_segment = await _segment(client, feeder, "other", [])
    for path in (
        f"/v1/segments/{sid}/exports/{uuid.uuid4()}",
        f"/v1/segments/{other_segment}/exports/{running}",
        f"/v1/segments/{sid}/exports/{uuid.uuid4()}/download",
    ):
        resp = await client.get(path)
        assert resp.status_code == 404 and resp.headers["content-type"] == "application/problem+json", path
    assert (await client.post(f"/v1/segments/{uuid.uuid4()}/exports", json={"kind": "members"})).status_code == 404
    for body in ({"kind": "everything"}, {}, [], {"kind": None}):
        resp = await client.post(f"/v1/segments/{sid}/exports", json=body)
        assert resp.status_code == 422, (body, resp.text)
    assert (await client.get(f"/v1/segments/{sid}/exports/not-a-uuid")).status_code == 422


async def test_erasing_a_customer_deletes_the_exports_of_its_segments(client, feeder):
    erased_one, kept = uuid.uuid4(), uuid.uuid4()
    sid = await _segment(client, feeder, "with-erased", [erased_one, uuid.uuid4()])
    holding = await _finished(client, sid, "members")
    await feeder.apply([purchase(kept, "5", 1)])
    other = (
        await client.post(
            "/v1/segments", json={"key": "small-spenders", "name": "S", "rule": {"field": "spend", "op": "lt", "value": 10}}
        )
    ).json()["segment_id"]
    untouched = await _finished(client, other, "members")
    assert holding["status"] == untouched["status"] == "succeeded"

    await feeder.apply([erased(erased_one)])

    assert (await client.get(f"/v1/segments/{sid}/exports/{holding['export_id']}")).status_code == 404
    assert (await client.get(holding["download"])).status_code == 404
    assert (await client.get(untouched["download"])).status_code == 200


async def test_finished_exports_are_kept_for_the_last_few_and_a_day(client, feeder, database_url):
    sid = await _segment(client, feeder, "kept", [uuid.uuid4()])
    done = [await _finished(client, sid, "members") for _ in range(4)]
    assert [(await client.get(f"/v1/segments/{sid}/exports/{e['export_id']}")).status_code for e in done] == [404, 200, 200, 200]
    await _sql(
        database_url,
        "UPDATE segmentation.segment_export SET finished_at = now() - interval '25 hours' WHERE export_id = :id",
        id=uuid.UUID(done[1]["export_id"]),
    )
    await client.exports.recover_once()
    assert [(await client.get(f"/v1/segments/{sid}/exports/{e['export_id']}")).status_code for e in done[1:]] == [404, 200, 200]


async def _other_replicas_export(database_url: str, sid: str, kind: str, lease_until: datetime, attempts: int) -> uuid.UUID:
    export_id = uuid.uuid4()
    await _sql(
        database_url,
        """
        INSERT INTO segmentation.segment_export (export_id, segment_id, kind, status, claimed_by, lease_until,
                                                 rows_total, rows_written, attempts, started_at)
        VALUES (:id, :sid, :kind, 'running', 'replica-elsewhere', :lease, 3, 1, :attempts, now())""",
        id=export_id,
        sid=uuid.UUID(sid),
        kind=kind,
        lease=lease_until,
        attempts=attempts,
    )
    # What the dead replica had written: a stale header and a chunk of rows the restart must not keep.
    await _sql(
        database_url,
        """
        INSERT INTO segmentation.segment_export_chunk (export_id, chunk_no, data)
        VALUES (:id, 0, 'stale header'::bytea), (:id, 9, 'stale rows'::bytea)""",
        id=export_id,
    )
    return export_id


async def test_a_dead_replicas_export_starts_over_and_a_live_ones_is_left_alone(client, feeder, database_url):
    sid = await _segment(client, feeder, "recovered", [uuid.uuid4() for _ in range(3)])
    history_sid = await _segment(client, feeder, "given-up", [])
    lapsed = await _other_replicas_export(database_url, sid, "members", datetime.now(UTC) - timedelta(seconds=5), 1)
    given_up = await _other_replicas_export(database_url, history_sid, "history", datetime.now(UTC) - timedelta(seconds=5), 3)
    live = await _other_replicas_export(database_url, sid, "history", datetime.now(UTC) + timedelta(hours=1), 1)

    settings = SegmentationSettings(database_url=database_url, transport="inprocess", job_lease_s=1.0)
    async with serving(segmentation.app.create_app(settings, InProcessTransport())) as replica:

        async def status(export_id: uuid.UUID, segment: str = sid) -> str:
            return (await replica.get(f"/v1/segments/{segment}/exports/{export_id}")).json()["status"]

        async def recovered() -> bool:
            return await status(lapsed) == "succeeded" and await status(given_up, history_sid) == "failed"

        await wait_until(recovered, message="the lapsed export to start over and finish")
        export = (await replica.get(f"/v1/segments/{sid}/exports/{lapsed}")).json()
        assert export["attempts"] == 2 and export["rows_written"] == export["rows_total"] == 3
        downloaded = await replica.get(export["download"])
        assert downloaded.content == (await replica.get(f"/v1/segments/{sid}/members/export")).content
        failed = (await replica.get(f"/v1/segments/{history_sid}/exports/{given_up}")).json()
        assert "interrupted" in failed["error"] and "3 attempts" in failed["error"]
        assert await status(live) == "running"
