"""Rules of pipelines and deals: stage moves (API and partner events), lost reasons, `deal.stage_changed`."""

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import lifecycle as contracts
from shared.contracts.envelope import Envelope
from shared.contracts.interaction import DealUpdated
from shared.contracts.topics import LIFECYCLE_EVENTS
from shared.messaging.inbox import ConsumedEvent
from shared.messaging.outbox import Outbox
from shared.problems import DomainError, NotFound

from lifecycle.customers import service as customers
from lifecycle.pipelines import repository
from lifecycle.pipelines.schemas import DealCreate, DealMove, DealUpdate, PipelineCreate
from lifecycle.rules.engine import Fact, FactKind
from lifecycle.stages import repository as stages_repo
from lifecycle.stages import service as stages

log = logging.getLogger(__name__)
DEALS_SOURCE = "/services/lifecycle/deals"


class InvalidDeal(DomainError):
    status, slug, title = 422, "invalid-deal", "Deal not acceptable"


class Conflict(DomainError):
    status, slug, title = 409, "conflict", "Conflict"


def stage_changed(
    deal_id: uuid.UUID,
    customer_id: uuid.UUID,
    pipeline: str,
    before: str | None,
    after: str,
    status: str,
    at: datetime,
    correlation_id: str | None = None,
) -> Envelope:
    return Envelope.wrap(
        contracts.DealStageChanged(
            customer_id=customer_id,
            deal_id=deal_id,
            pipeline=pipeline,
            from_stage=before,
            to_stage=after,
            status=status,
            changed_at=at,
        ),
        source=contracts.SOURCE,
        subject=str(customer_id),
        correlation_id=correlation_id,
    )


async def create_pipeline(session: AsyncSession, body: PipelineCreate) -> repository.PipelineDef:
    stages_rows = [
        {"key": s.key, "name": s.name, "position": i, "win_probability": s.win_probability, "outcome": s.outcome.value}
        for i, s in enumerate(body.stages)
    ]
    if await repository.insert_pipeline(session, body.key, body.name, body.lost_reasons, stages_rows) is None:
        raise Conflict(f"a pipeline with key {body.key!r} exists")
    return (await repository.pipelines(session, body.key))[body.key]


async def pipeline_or_404(session: AsyncSession, key: str) -> repository.PipelineDef:
    found = (await repository.pipelines(session, key)).get(key)
    if found is None:
        raise NotFound(f"no pipeline {key!r}")
    return found


async def delete_pipeline(session: AsyncSession, key: str) -> None:
    """Remove a pipeline; one that deals still use stays (409)."""
    p = await pipeline_or_404(session, key)
    if not await repository.delete_pipeline(session, p.id):
        raise Conflict(f"pipeline {key!r} still has deals")


async def update_deal(session: AsyncSession, deal_id: uuid.UUID, body: DealUpdate) -> None:
    """Change a deal's details (not its stage: that is a move); an amount needs its currency."""
    row = await repository.get_deal(session, deal_id, lock=True)
    if row is None:
        raise NotFound(f"no deal {deal_id}")
    values = body.model_dump(exclude_unset=True)
    amount, currency = values.get("amount", row["amount"]), values.get("currency", row["currency"])
    if (amount is None) != (currency is None):
        raise InvalidDeal("amount and currency go together")
    await repository.update_deal(session, deal_id, values)


def _stage(p: repository.PipelineDef, key: str) -> repository.StageDef:
    stage = p.stages.get(key)
    if stage is None:
        raise InvalidDeal(f"pipeline {p.key!r} has no stage {key!r}; stages: {', '.join(s.key for s in p.ordered)}")
    return stage


async def create_deal(session: AsyncSession, outbox: Outbox, body: DealCreate, actor: str | None = None) -> uuid.UUID:
    p = (await repository.pipelines(session, body.pipeline)).get(body.pipeline)
    if p is None:
        raise InvalidDeal(f"no pipeline {body.pipeline!r}")
    stage = _stage(p, body.stage) if body.stage else p.ordered[0]
    customer_id = await customers.existing(session, body.customer_id)
    now = datetime.now(UTC)
    deal_id = uuid.uuid4()
    await repository.insert_deal(
        session,
        {
            "id": deal_id,
            "customer_id": customer_id,
            "pipeline_id": p.id,
            "stage_key": stage.key,
            "status": stage.outcome,
            "title": body.title,
            "amount": body.amount,
            "currency": body.currency,
            "expected_close": body.expected_close,
            "owner": body.owner,
            "stage_entered_at": now,
        },
        actor,
        None,
    )
    await outbox.add(session, LIFECYCLE_EVENTS, [stage_changed(deal_id, customer_id, p.key, None, stage.key, stage.outcome, now)])
    if stage.outcome == "open":
        # An open deal is a lifecycle fact too: it moves a prospect to Acquisition.
        fact = Fact(FactKind.DEAL_OPEN, now, DEALS_SOURCE, f"{deal_id}:created")
        await stages_repo.insert_facts(session, [stages_repo.fact_row(customer_id, fact)])
        await stages.rederive(session, outbox, [customer_id])
    return deal_id


async def move_deal(session: AsyncSession, outbox: Outbox, deal_id: uuid.UUID, body: DealMove) -> None:
    current = await repository.get_deal(session, deal_id, lock=True)
    if current is None:
        raise NotFound(f"no deal {deal_id}")
    p = await pipeline_or_404(session, current["pipeline_key"])
    stage = _stage(p, body.stage)
    if stage.key == current["stage_key"]:
        raise InvalidDeal(f"the deal is already in {stage.key!r}")
    if current["status"] != "open":
        raise InvalidDeal(f"the deal is {current['status']}: a closed deal does not move")
    extra: dict = {"lost_reason": None}
    if stage.outcome == "lost":
        if not body.lost_reason:
            raise InvalidDeal(f"moving to {stage.key!r} needs a lost_reason; known: {', '.join(p.lost_reasons)}")
        if p.lost_reasons and body.lost_reason not in p.lost_reasons:
            raise InvalidDeal(f"unknown lost_reason {body.lost_reason!r}; known: {', '.join(p.lost_reasons)}")
        extra["lost_reason"] = body.lost_reason
    now = datetime.now(UTC)
    await repository.move_deal(session, deal_id, stage.key, stage.outcome, now, body.actor, None, extra)
    await outbox.add(
        session,
        LIFECYCLE_EVENTS,
        [stage_changed(deal_id, current["customer_id"], p.key, current["stage_key"], stage.key, stage.outcome, now)],
    )


def _outcome_of(p: repository.PipelineDef | None, stage: str, lost_reason: str | None) -> str:
    if p is not None and stage in p.stages:
        return p.stages[stage].outcome
    return stage if stage in ("won", "lost") else "lost" if lost_reason else "open"


async def apply_partner_deals(session: AsyncSession, outbox: Outbox, events: Sequence[ConsumedEvent]) -> dict[str, str]:
    """Upserts partners' deals (the `DealUpdated` events) keyed by (source, deal id); a stale update (older than
    the deal's stage) is ignored.

    Returns each event's outcome (open / won / lost) by event id: whether the deal was open at that moment is
    what the lifecycle rules read.
    """
    defs = await repository.pipelines(session)
    ordered = sorted(((e, e.payload) for e in events if isinstance(e.payload, DealUpdated)), key=lambda ed: ed[1].occurred_at)
    # The deals as stored, then as this batch left them.
    existing: dict[tuple[str, str], sa.RowMapping | dict[str, Any]] = dict(
        await repository.deals_by_external(session, list(dict.fromkeys((d.source, d.deal_id) for _, d in ordered)))
    )
    outcomes: dict[str, str] = {}
    published: list[Envelope] = []
    for e, d in ordered:
        key = (d.source, d.deal_id)
        p = defs.get(d.pipeline)
        outcome = _outcome_of(p, d.stage, d.lost_reason)
        outcomes[e.envelope.id] = outcome
        if p is None or d.stage not in p.stages:
            log.warning(
                "deal %s/%s: unknown pipeline or stage %s/%s; kept as a lifecycle fact only",
                d.source,
                d.deal_id,
                d.pipeline,
                d.stage,
            )
            continue
        money = {
            k: v
            for k, v in {"amount": d.amount, "currency": d.currency, "expected_close": d.expected_close, "owner": d.owner}.items()
            if v is not None
        }
        row = existing.get(key)
        if row is None:
            deal_id = uuid.uuid4()
            await repository.insert_deal(
                session,
                {
                    "id": deal_id,
                    "customer_id": d.customer_id,
                    "pipeline_id": p.id,
                    "stage_key": d.stage,
                    "status": outcome,
                    "source": d.source,
                    "external_id": d.deal_id,
                    "stage_entered_at": d.occurred_at,
                    "lost_reason": d.lost_reason,
                    **money,
                },
                None,
                e.envelope.id,
            )
            existing[key] = {
                "id": deal_id,
                "stage_key": d.stage,
                "stage_entered_at": d.occurred_at,
                "pipeline_id": p.id,
                "customer_id": d.customer_id,
            }
            published.append(
                stage_changed(deal_id, d.customer_id, p.key, None, d.stage, outcome, d.occurred_at, e.envelope.correlationid)
            )
            continue
        if d.occurred_at < row["stage_entered_at"]:
            continue  # stale: the deal has moved since
        if row["stage_key"] != d.stage:
            await repository.move_deal(
                session, row["id"], d.stage, outcome, d.occurred_at, None, e.envelope.id, {"lost_reason": d.lost_reason, **money}
            )
            published.append(
                stage_changed(
                    row["id"],
                    row["customer_id"],
                    p.key,
                    row["stage_key"],
                    d.stage,
                    outcome,
                    d.occurred_at,
                    e.envelope.correlationid,
                )
            )
            existing[key] = {**row, "stage_key": d.stage, "stage_entered_at": d.occurred_at}
        else:
            await repository.update_deal(session, row["id"], money)
    await outbox.add(session, LIFECYCLE_EVENTS, published)
    return outcomes
