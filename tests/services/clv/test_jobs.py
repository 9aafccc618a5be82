"""Fits and scoring runs across replicas: one unfinished per currency (409 naming it), and a job whose replica died
(kill -9: its lease lapses) is resumed by a live replica instead of staying `running` forever."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from shared.db import make_engine
from tests.services.clv.support import clv_service, simulated_purchases
from tests.support import scalar, wait_until

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def engine(database_url):
    e = make_engine(database_url)
    yield e
    await e.dispose()


async def _other_replicas_job(engine, table: str, status: str, lease_until: datetime | None, **values) -> uuid.UUID:
    """A job row as another replica leaves it: claimed by that replica, with its lease."""
    job_id = uuid.uuid4()
    cols = {
        "id": job_id,
        "status": status,
        "currency": "EUR",
        "as_of": AS_OF,
        "claimed_by": "replica-that-died",
        "lease_until": lease_until,
        **values,
    }
    names = ", ".join(cols)
    params = ", ".join(f"CAST(:{k} AS jsonb)" if k == "settings" else f":{k}" for k in cols)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"INSERT INTO clv.{table} ({names}) VALUES ({params})"), cols)
    return job_id


FIT = {"model": "bgnbd", "time_unit_days": 7.0, "holdout_days": 0, "calibration_end": AS_OF}


async def test_a_second_fit_for_a_currency_is_refused_while_one_is_unfinished(database_url, engine):
    async with clv_service(database_url) as svc:
        running = await _other_replicas_job(engine, "model_fit", "running", datetime.now(UTC) + timedelta(hours=1), **FIT)
        resp = await svc.client.post("/v1/value/models/fits", json={"model": "pareto_nbd", "currency": "EUR"})
        assert resp.status_code == 409, resp.text
        assert resp.headers["content-type"] == "application/problem+json"
        problem = resp.json()
        assert problem["running_job_id"] == str(running) and problem["running_job_status"] == "running"
        assert str(running) in problem["detail"]
        # Another currency is another target.
        other = await svc.client.post("/v1/value/models/fits", json={"model": "bgnbd", "currency": "USD"})
        assert other.status_code == 202, other.text
        await svc.poll(f"/v1/value/models/fits/{other.json()['id']}")


async def test_a_fit_left_running_by_a_dead_replica_is_resumed(database_url, engine):
    events = simulated_purchases(400, AS_OF, seed=5)
    async with clv_service(database_url, job_lease_s=1.0) as svc:
        await svc.publish(events)
        await wait_until(lambda: _purchases(engine, len(events)), message="purchases applied")
        orphan = await _other_replicas_job(
            engine,
            "model_fit",
            "running",
            datetime.now(UTC) - timedelta(seconds=5),
            **(FIT | {"calibration_end": AS_OF, "as_of": AS_OF}),
        )
        fit = await svc.poll(f"/v1/value/models/fits/{orphan}", timeout=60)
        assert fit["status"] == "succeeded", fit
        assert (await _row(engine, orphan)).claimed_by != "replica-that-died"

        # Scoring: one unfinished run per currency too, the 409 names it.
        running = await _other_replicas_job(
            engine,
            "scoring_run",
            "running",
            datetime.now(UTC) + timedelta(hours=1),
            fit_id=orphan,
            settings='{"time_unit_days": 7}',
        )
        resp = await svc.client.post("/v1/value/scorings", json={"currency": "EUR", "fit_id": str(orphan)})
        assert resp.status_code == 409, resp.text
        assert resp.json()["running_job_id"] == str(running)
        assert await scalar(engine, "select count(*) from clv.scoring_run") == 1


async def test_a_live_replicas_job_is_not_taken_over(database_url, engine):
    async with clv_service(database_url, job_lease_s=1.0):
        held = await _other_replicas_job(engine, "model_fit", "running", datetime.now(UTC) + timedelta(hours=1), **FIT)
        await asyncio.sleep(3.0)  # nine recovery rounds (every lease/3 s): the job keeps its live replica
        row = await _row(engine, held)
        assert (row.status, row.claimed_by) == ("running", "replica-that-died")


async def _purchases(engine, n: int) -> bool:
    return await scalar(engine, "select count(*) from clv.purchase") == n


async def _row(engine, fit_id):
    async with engine.connect() as conn:
        return (await conn.execute(sa.text("select status, claimed_by from clv.model_fit where id = :id"), {"id": fit_id})).one()
