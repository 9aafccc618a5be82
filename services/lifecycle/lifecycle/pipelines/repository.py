"""Queries of pipelines and deals."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from lifecycle.pipelines.models import deal, deal_stage_history, pipeline, pipeline_stage


@dataclass(frozen=True, slots=True)
class StageDef:
    key: str
    name: str
    position: int
    win_probability: Decimal
    outcome: str


@dataclass(frozen=True, slots=True)
class PipelineDef:
    id: uuid.UUID
    key: str
    name: str
    lost_reasons: list[str]
    stages: dict[str, StageDef]

    @property
    def ordered(self) -> list[StageDef]:
        return sorted(self.stages.values(), key=lambda s: s.position)


async def pipelines(session: AsyncSession, key: str | None = None) -> dict[str, PipelineDef]:
    """Pipelines by key with their stages (a handful of rows: loaded whole)."""
    st = pipeline_stage.c
    q = (
        sa.select(
            pipeline.c.id,
            pipeline.c.key,
            pipeline.c.name,
            pipeline.c.lost_reasons,
            st.key.label("pipeline_stage_key"),
            st.name.label("pipeline_stage_name"),
            st.position,
            st.win_probability,
            st.outcome,
        )
        .join(pipeline_stage, pipeline_stage.c.pipeline_id == pipeline.c.id, isouter=True)
        .order_by(pipeline.c.key)
    )
    if key is not None:
        q = q.where(pipeline.c.key == key)
    out: dict[str, PipelineDef] = {}
    for r in (await session.execute(q)).mappings():
        p = out.setdefault(r["key"], PipelineDef(r["id"], r["key"], r["name"], list(r["lost_reasons"]), {}))
        if r["pipeline_stage_key"] is not None:
            p.stages[r["pipeline_stage_key"]] = StageDef(
                r["pipeline_stage_key"], r["pipeline_stage_name"], r["position"], r["win_probability"], r["outcome"]
            )
    return out


async def insert_pipeline(
    session: AsyncSession, key: str, name: str, lost_reasons: list[str], stages: list[dict]
) -> uuid.UUID | None:
    pid = uuid.uuid4()
    inserted = (
        await session.execute(
            sa.dialects.postgresql.insert(pipeline)
            .values(id=pid, key=key, name=name, lost_reasons=lost_reasons)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(pipeline.c.id)
        )
    ).scalar()
    if inserted is None:
        return None
    await session.execute(sa.insert(pipeline_stage), [{"pipeline_id": pid, **s} for s in stages])
    return pid


async def delete_pipeline(session: AsyncSession, pipeline_id: uuid.UUID) -> bool:
    """False when deals still use it."""
    used = (
        await session.execute(sa.select(sa.func.count()).select_from(deal).where(deal.c.pipeline_id == pipeline_id))
    ).scalar_one()
    if used:
        return False
    await session.execute(sa.delete(pipeline).where(pipeline.c.id == pipeline_id))
    return True


DEAL_COLUMNS = (deal, pipeline.c.key.label("pipeline_key"), pipeline_stage.c.win_probability)


def _deal_query() -> sa.Select:
    return (
        sa.select(*DEAL_COLUMNS)
        .join(pipeline, pipeline.c.id == deal.c.pipeline_id)
        .join(
            pipeline_stage,
            sa.and_(pipeline_stage.c.pipeline_id == deal.c.pipeline_id, pipeline_stage.c.key == deal.c.stage_key),
            isouter=True,
        )
    )


async def get_deal(session: AsyncSession, deal_id: uuid.UUID, lock: bool = False) -> sa.RowMapping | None:
    q = _deal_query().where(deal.c.id == deal_id)
    if lock:
        q = q.with_for_update(of=deal)
    return (await session.execute(q)).mappings().first()


async def page_deals(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID | None,
    pipeline_key: str | None,
    status: str | None,
    owner: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[sa.RowMapping]:
    q = _deal_query().order_by(deal.c.created_at, deal.c.id).limit(limit)
    if customer_id is not None:
        q = q.where(deal.c.customer_id == customer_id)
    if pipeline_key is not None:
        q = q.where(pipeline.c.key == pipeline_key)
    if status is not None:
        q = q.where(deal.c.status == status)
    if owner is not None:
        q = q.where(deal.c.owner == owner)
    if after is not None:
        q = q.where(sa.tuple_(deal.c.created_at, deal.c.id) > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
    return list((await session.execute(q)).mappings())


async def history(session: AsyncSession, deal_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[sa.RowMapping]]:
    h = deal_stage_history
    out: dict[uuid.UUID, list[sa.RowMapping]] = {d: [] for d in deal_ids}
    rows = await session.execute(sa.select(h).where(h.c.deal_id.in_(deal_ids)).order_by(h.c.deal_id, h.c.entered_at, h.c.id))
    for r in rows.mappings():
        out[r["deal_id"]].append(r)
    return out


async def deals_by_external(session: AsyncSession, keys: list[tuple[str, str]]) -> dict[tuple[str, str], sa.RowMapping]:
    if not keys:
        return {}
    rows = await session.execute(
        sa.text("""
        SELECT d.* FROM lifecycle.deal d
        JOIN unnest(CAST(:sources AS text[]), CAST(:ids AS text[])) AS k(source, external_id)
          ON d.source = k.source AND d.external_id = k.external_id
        FOR UPDATE OF d"""),
        {"sources": [k[0] for k in keys], "ids": [k[1] for k in keys]},
    )
    return {(r["source"], r["external_id"]): r for r in rows.mappings()}


async def insert_deal(session: AsyncSession, values: dict, actor: str | None, trigger_event_id: str | None) -> None:
    await session.execute(sa.insert(deal).values(**values))
    await session.execute(
        sa.insert(deal_stage_history).values(
            deal_id=values["id"],
            stage_key=values["stage_key"],
            entered_at=values["stage_entered_at"],
            actor=actor,
            trigger_event_id=trigger_event_id,
        )
    )


async def move_deal(
    session: AsyncSession,
    deal_id: uuid.UUID,
    stage_key: str,
    status: str,
    at: datetime,
    actor: str | None,
    trigger_event_id: str | None,
    extra: dict,
) -> None:
    h = deal_stage_history
    await session.execute(
        sa.update(h).where(h.c.deal_id == deal_id, h.c.left_at.is_(None)).values(left_at=at, updated_at=sa.func.now())
    )
    await session.execute(
        sa.insert(h).values(deal_id=deal_id, stage_key=stage_key, entered_at=at, actor=actor, trigger_event_id=trigger_event_id)
    )
    await session.execute(
        sa.update(deal)
        .where(deal.c.id == deal_id)
        .values(stage_key=stage_key, status=status, stage_entered_at=at, updated_at=sa.func.now(), **extra)
    )


async def update_deal(session: AsyncSession, deal_id: uuid.UUID, values: dict) -> None:
    if values:
        await session.execute(sa.update(deal).where(deal.c.id == deal_id).values(**values, updated_at=sa.func.now()))
