"""Segmentation runs across replicas: one unfinished run per family (409 naming it); a run whose replica died
fails as "interrupted" once its lease lapsed, while a live replica's run is left alone (a restart used to fail
every running run, the other replicas' too)."""

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from shared.db import make_engine
from shared.messaging.inprocess import InProcessTransport
from tests.services.conftest import serving
from tests.support import wait_until

import segmentation.app
from segmentation.runs.service import family_of
from segmentation.settings import SegmentationSettings


async def _other_replicas_run(database_url: str, kind: str, lease_until: datetime) -> uuid.UUID:
    run_id = uuid.uuid4()
    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("""
            INSERT INTO segmentation.segmentation_run (run_id, kind, family, status, params, as_of, claimed_by,
                                                      lease_until, started_at)
            VALUES (:id, :kind, :family, 'running', CAST(:params AS jsonb), now(), 'replica-elsewhere', :lease, now())"""),
            {
                "id": run_id,
                "kind": kind,
                "family": family_of(kind, "default" if kind == "rfm" else None),
                "params": '{"scheme": null, "currency": "EUR"}',
                "lease": lease_until,
            },
        )
    await engine.dispose()
    return run_id


async def _status(database_url: str, run_id: uuid.UUID) -> tuple[str, str | None]:
    engine = make_engine(database_url)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text("SELECT status, error FROM segmentation.segmentation_run WHERE run_id = :id"), {"id": run_id}
            )
        ).one()
    await engine.dispose()
    return row.status, row.error


async def test_a_second_run_of_a_family_is_refused_while_one_is_unfinished(client, database_url):
    running = await _other_replicas_run(database_url, "rfm", datetime.now(UTC) + timedelta(hours=1))
    resp = await client.post("/v1/segmentation/runs", json={"kind": "rfm"})
    assert resp.status_code == 409, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["running_job_id"] == str(running)
    assert str(running) in resp.json()["detail"]
    other = await client.post("/v1/segmentation/runs", json={"kind": "tiers"})  # another family
    assert other.status_code == 202, other.text
    await client.executor.wait_idle()


async def test_a_dead_replicas_run_fails_as_interrupted_and_a_live_ones_is_left_alone(database_url):
    lapsed = await _other_replicas_run(database_url, "rfm", datetime.now(UTC) - timedelta(seconds=5))
    live = await _other_replicas_run(database_url, "tiers", datetime.now(UTC) + timedelta(hours=1))
    settings = SegmentationSettings(database_url=database_url, transport="inprocess", job_lease_s=1.0)
    async with serving(segmentation.app.create_app(settings, InProcessTransport())):

        async def lapsed_failed() -> bool:
            return (await _status(database_url, lapsed))[0] == "failed"

        await wait_until(lapsed_failed, message="the lapsed run to fail")
        assert "interrupted" in (await _status(database_url, lapsed))[1]
        assert (await _status(database_url, live))[0] == "running"
