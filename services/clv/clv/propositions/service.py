"""Rules of value propositions: eligibility and next-best choice, deliveries with a holdout group, performance."""

import hashlib
import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import clv as contracts
from shared.contracts.envelope import Envelope
from shared.contracts.topics import CLV_EVENTS
from shared.messaging.outbox import Outbox
from shared.problems import DomainError, NotFound

from clv.propositions import repository
from clv.propositions.schemas import (
    Candidate,
    CorrectionCreate,
    CorrectionRead,
    DeliveryCreate,
    DeliveryRead,
    GapReport,
    GapRow,
    NextBest,
    Performance,
    PropositionCreate,
    PropositionRead,
    PropositionUpdate,
)
from clv.transaction_summary.repository import resolve_customer

CENT = Decimal("0.0001")
REQUIRED_FIELDS = {
    "name",
    "cost",
    "expected_uplift",
    "target_tiers",
    "target_segments",
    "target_stages",
    "contact_window_days",
    "holdout_fraction",
    "outcome_window_days",
    "active",
    "value_basis",
}
# The stored value each basis reads, and how the reasons name it.
BASIS = {
    "clv": ("clv", "CLV"),
    "potential": ("potential_value", "potential value"),
    "retention": ("retention_value", "retention value"),
}


class NotEligible(DomainError):
    status, slug, title = 409, "not-eligible", "The customer is not eligible for this proposition"


class OutcomeConflict(DomainError):
    status, slug, title = 409, "outcome-conflict", "The delivery cannot take this outcome"


def to_read(row: sa.Row) -> PropositionRead:
    return PropositionRead.model_validate(row._mapping)


async def create(session: AsyncSession, body: PropositionCreate) -> PropositionRead:
    values = body.model_dump(mode="json")
    values.update(id=uuid.uuid4(), cost=body.cost, min_clv=body.min_clv, budget=body.budget)
    return to_read(await repository.insert_proposition(session, values))


async def get(session: AsyncSession, proposition_id: uuid.UUID) -> sa.Row:
    row = await repository.get_proposition(session, proposition_id)
    if row is None:
        raise NotFound(f"no proposition {proposition_id}")
    return row


async def update(session: AsyncSession, proposition_id: uuid.UUID, body: PropositionUpdate) -> PropositionRead:
    changes = body.model_dump(mode="json", exclude_unset=True)
    for money in ("cost", "min_clv", "budget"):
        if money in changes:
            changes[money] = getattr(body, money)
    cleared = sorted(k for k in REQUIRED_FIELDS if k in changes and changes[k] is None)
    if cleared:
        raise DomainError(f"{', '.join(cleared)} cannot be cleared (null)")
    row = await repository.update_proposition(session, proposition_id, changes) if changes else await get(session, proposition_id)
    if row is None:
        raise NotFound(f"no proposition {proposition_id}")
    return to_read(row)


def evaluate(p: sa.Row, facts: dict, contacts: int) -> Candidate:
    """Eligibility and expected gain (uplift × the proposition's value basis − cost) of one proposition for one
    customer, with reasons."""
    value = facts["value"]
    reasons: list[str] = []
    blocked = False
    if value is None:
        return Candidate(
            proposition_id=p.id,
            name=p.name,
            eligible=False,
            reasons=[f"the customer has no CLV in {p.currency} yet (not scored)"],
        )
    if p.target_tiers and value.tier not in p.target_tiers:
        blocked = True
        reasons.append(f"tier {value.tier} is not targeted ({', '.join(p.target_tiers)})")
    elif p.target_tiers:
        reasons.append(f"tier {value.tier} is targeted")
    if p.target_segments:
        hit = sorted(facts["segments"] & set(p.target_segments))
        if not hit:
            blocked = True
            reasons.append(f"in none of the targeted segments ({', '.join(p.target_segments)})")
        else:
            reasons.append(f"in targeted segment(s) {', '.join(hit)}")
    if p.target_stages:
        if facts["stage"] not in p.target_stages:
            blocked = True
            reasons.append(f"stage {facts['stage'] or 'unknown'} is not targeted ({', '.join(p.target_stages)})")
        else:
            reasons.append(f"stage {facts['stage']} is targeted")
    if p.min_clv is not None and value.clv < p.min_clv:
        blocked = True
        reasons.append(f"CLV {value.clv:.2f} is below the minimum {p.min_clv:.2f}")
    if p.min_probability_alive is not None and value.probability_alive < p.min_probability_alive:
        blocked = True
        reasons.append(f"P(alive) {value.probability_alive:.2f} is below the minimum {p.min_probability_alive:.2f}")
    if p.budget is not None and p.budget_spent + p.cost > p.budget:
        blocked = True
        reasons.append(f"budget exhausted ({p.budget_spent:.2f} of {p.budget:.2f} spent)")
    if p.max_contacts is not None and contacts >= p.max_contacts:
        blocked = True
        reasons.append(f"contacted {contacts} times in the last {p.contact_window_days} days (limit {p.max_contacts})")
    column, label = BASIS[p.value_basis]
    basis = getattr(value, column)
    gain = (Decimal(str(p.expected_uplift)) * basis - p.cost).quantize(CENT, ROUND_HALF_EVEN)
    reasons.append(f"expected gain {p.expected_uplift:g} × {label} {basis:.2f} − cost {p.cost:.2f} = {gain:.2f}")
    if gain <= 0:
        blocked = True
        reasons.append("no positive expected gain")
    return Candidate(proposition_id=p.id, name=p.name, eligible=not blocked, expected_gain=gain, reasons=reasons)


async def next_best(session: AsyncSession, customer_id: uuid.UUID, currency: str) -> NextBest:
    resolved = await resolve_customer(session, customer_id)
    facts = await repository.customer_facts(session, resolved, currency)
    if facts["value"] is None and not facts["segments"] and facts["stage"] is None:
        raise NotFound(f"nothing known of customer {customer_id} in {currency}")
    contacts = await repository.contact_counts(session, resolved, datetime.now(UTC))
    candidates = [evaluate(p, facts, contacts.get(p.id, 0)) for p in await repository.active_propositions(session, currency)]
    candidates.sort(key=lambda c: (not c.eligible, -(c.expected_gain or Decimal("-Infinity")), c.name))
    best = candidates[0] if candidates and candidates[0].eligible else None
    if best is not None:
        best.reasons.insert(0, "highest expected gain among the eligible propositions")
    return NextBest(customer_id=resolved, currency=currency, best=best, candidates=candidates)


def in_holdout(proposition_id: uuid.UUID, customer_id: uuid.UUID, fraction: float) -> bool:
    """A stable draw per (proposition, customer): the same customer is always in the same group."""
    digest = hashlib.sha256(f"{proposition_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


async def deliver(session: AsyncSession, outbox: Outbox, customer_id: uuid.UUID, body: DeliveryCreate) -> DeliveryRead:
    p = await repository.get_proposition(session, body.proposition_id, for_update=True)
    if p is None:
        raise NotFound(f"no proposition {body.proposition_id}")
    if not p.active:
        raise NotEligible(f"proposition {p.id} is not active")
    resolved = await resolve_customer(session, customer_id)
    facts = await repository.customer_facts(session, resolved, p.currency)
    contacts = await repository.contact_counts(session, resolved, datetime.now(UTC))
    candidate = evaluate(p, facts, contacts.get(p.id, 0))
    if not candidate.eligible:
        raise NotEligible("; ".join(candidate.reasons), reasons=candidate.reasons)
    holdout = in_holdout(p.id, resolved, p.holdout_fraction)
    if not holdout and not await repository.spend_budget(session, p.id, p.cost):
        raise NotEligible(f"budget exhausted for proposition {p.id}")
    now = datetime.now(UTC)
    row = await repository.insert_delivery(
        session,
        {
            "id": uuid.uuid4(),
            "proposition_id": p.id,
            "customer_id": resolved,
            "group": "holdout" if holdout else "treatment",
            "channel": body.channel,
            "partner": body.partner,
            "cost": Decimal(0) if holdout else p.cost,
            "expected_gain": candidate.expected_gain,
            "delivered_at": now,
        },
    )
    if not holdout:
        await outbox.add(
            session,
            CLV_EVENTS,
            [
                Envelope.wrap(
                    contracts.PropositionDelivered(
                        customer_id=resolved,
                        proposition_id=p.id,
                        delivery_id=row.id,
                        channel=body.channel,
                        partner=body.partner,
                        delivered_at=now,
                    ),
                    source=contracts.SOURCE,
                    subject=str(resolved),
                )
            ],
        )
    return DeliveryRead.model_validate(row._mapping)


async def get_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> sa.Row:
    row = await repository.get_delivery(session, delivery_id)
    if row is None:
        raise NotFound(f"no delivery {delivery_id}")
    return row


async def record_outcome(session: AsyncSession, delivery_id: uuid.UUID, outcome: str) -> DeliveryRead:
    """Write-once: the first answer stands; the same answer again is a no-op; another one is a conflict."""
    row = await get_delivery(session, delivery_id)
    if row.group == "holdout":
        raise OutcomeConflict("a holdout delivery was never sent: it has no outcome")
    if row.outcome is None:
        row = await repository.set_first_outcome(session, delivery_id, outcome) or await get_delivery(session, delivery_id)
    if row.outcome != outcome:
        raise OutcomeConflict(
            f"the outcome is already {row.outcome}; an outcome is recorded once. To change it, "
            f"POST /v1/propositions/deliveries/{delivery_id}/outcome/corrections with a reason"
        )
    return DeliveryRead.model_validate(row._mapping)


async def correct_outcome(
    session: AsyncSession, delivery_id: uuid.UUID, body: CorrectionCreate, corrected_by: str
) -> CorrectionRead:
    row = await get_delivery(session, delivery_id)
    if row.outcome is None:
        raise OutcomeConflict("the delivery has no outcome yet: record it with POST .../outcome")
    if row.outcome == body.outcome:
        raise OutcomeConflict(f"the outcome is already {row.outcome}: nothing to correct")
    audit = await repository.correct_outcome(
        session,
        delivery_id,
        row.outcome,
        {
            "id": uuid.uuid4(),
            "to_outcome": body.outcome.value,
            "reason": body.reason,
            "corrected_by": corrected_by,
            "corrected_at": datetime.now(UTC),
        },
    )
    if audit is None:
        raise OutcomeConflict("the outcome changed meanwhile: read it again and retry")
    return CorrectionRead.model_validate(audit._mapping)


async def performance(session: AsyncSession, proposition_id: uuid.UUID) -> Performance:
    p = await get(session, proposition_id)
    r = await repository.performance(session, p.id, p.currency, p.outcome_window_days)
    answered = r.accepted + r.declined + r.ignored
    treated_rev = Decimal(r.revenue_treated).quantize(CENT) if r.revenue_treated is not None else None
    holdout_rev = Decimal(r.revenue_holdout).quantize(CENT) if r.revenue_holdout is not None else None
    incremental = (
        ((treated_rev - holdout_rev) * r.treated).quantize(CENT) if treated_rev is not None and holdout_rev is not None else None
    )
    return Performance(
        proposition_id=p.id,
        currency=p.currency,
        treated=r.treated,
        holdout=r.holdout,
        accepted=r.accepted,
        declined=r.declined,
        ignored=r.ignored,
        pending=r.pending,
        uptake_rate=r.accepted / answered if answered else None,
        revenue_per_treated=treated_rev,
        revenue_per_holdout=holdout_rev,
        incremental_revenue=incremental,
        cost=Decimal(r.cost).quantize(CENT),
        net_incremental_revenue=(incremental - Decimal(r.cost)).quantize(CENT) if incremental is not None else None,
    )


async def value_gap(session: AsyncSession, group_by: str, cost_per_point: Decimal) -> GapReport:
    rows = await repository.value_gap(session, group_by)
    return GapReport(
        group_by=group_by,
        cost_per_point=cost_per_point,
        rows=[
            GapRow(
                group=r.grp,
                responses=r.responses,
                mean_perceived=r.perceived,
                mean_expected=r.expected,
                mean_gap=r.gap,
                customers_with_gap=r.with_gap,
                gap_points=r.points,
                cost_to_close=(cost_per_point * Decimal(str(r.points))).quantize(CENT),
            )
            for r in rows
        ],
    )
