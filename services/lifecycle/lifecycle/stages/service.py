"""Re-derives customers' stages from their facts and writes what changed: history, stage, `stage.changed`.

The one write path for stages: the event consumer, manual moves, the inactivity sweep and rule-set changes
all add facts (or change the rules) and then call `rederive` for the customers concerned.
"""

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import lifecycle as contracts
from shared.contracts.envelope import Envelope
from shared.contracts.lifecycle import Stage
from shared.contracts.topics import LIFECYCLE_EVENTS
from shared.messaging.outbox import Outbox
from shared.problems import DomainError, NotFound

from lifecycle.rules import repository as rules_repo
from lifecycle.rules.engine import ACTIVE, ALLOWED_MANUAL, Fact, FactKind, RuleParameters, Transition, derive_stage
from lifecycle.stages import repository

# Customers re-derived per transaction when a whole population is replayed (rule change, sweep).
CHUNK = 2000


class IllegalMove(DomainError):
    status, slug, title = 422, "illegal-stage-move", "Stage move not allowed"


@dataclass
class Outcome:
    """What a re-derivation did: current-stage moves counted by (from, to), and customers evaluated."""

    evaluated: int = 0
    moves: Counter = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.moves = self.moves if self.moves is not None else Counter()

    def add(self, other: "Outcome") -> None:
        self.evaluated += other.evaluated
        self.moves.update(other.moves)


def aggregates(cf: repository.CustomerFacts | None) -> tuple[int, dict[str, Decimal], datetime | None]:
    """Order count, spend per currency and last purchase over the purchases that were not cancelled.

    Spend is net of refunds, as everywhere in the system: per purchase its amount less what was refunded of
    it, never below zero; a cancelled purchase counts nothing. Money of two currencies is never added."""
    if cf is None:
        return 0, {}, None
    cancelled = {f.purchase_id for f in cf.facts if f.kind is FactKind.CANCELLATION}
    purchases = {f.purchase_id: f for f in cf.facts if f.kind is FactKind.PURCHASE and f.purchase_id not in cancelled}
    spend: dict[str, Decimal] = {}
    for pid in purchases:
        currency = cf.currencies.get(pid, "")
        net = max(cf.amounts.get(pid, Decimal(0)) - cf.refunded.get(pid, Decimal(0)), Decimal(0))
        spend[currency] = spend.get(currency, Decimal(0)) + net
    return len(purchases), spend, max((f.occurred_at for f in purchases.values()), default=None)


async def rederive(session: AsyncSession, outbox: Outbox | None, customer_ids: Sequence[uuid.UUID], *,
                   rules: rules_repo.RuleSetVersion | None = None, as_of: datetime | None = None,
                   correlation_id: str | None = None) -> Outcome:
    """Replays these customers' facts through the rules and writes the result (None outbox: dry run)."""
    ids = sorted(set(customer_ids))
    outcome = Outcome(evaluated=len(ids))
    if not ids:
        return outcome
    if outbox is not None:
        await repository.lock_customers(session, ids)
    rules = rules or await rules_repo.active(session)
    now = as_of or datetime.now(UTC)
    facts = await repository.load_facts(session, ids)
    stored = await repository.load_history_keys(session, ids)
    changed: dict[uuid.UUID, list[Transition]] = {}
    derived: dict[uuid.UUID, list[Transition]] = {}
    published: list[tuple[uuid.UUID, Stage | None, Transition]] = []
    for cid in ids:
        transitions = derive_stage(facts[cid].facts if cid in facts else [], rules.parameters, as_of=now)
        derived[cid] = transitions
        old = stored.get(cid, [])
        new = [repository.history_key(t) for t in transitions]
        if old == new:
            continue
        changed[cid] = transitions
        before = Stage(old[-1][1]) if old else None
        after = transitions[-1].stage if transitions else None
        if before is not after:
            outcome.moves[(before.value if before else None, after.value if after else None)] += 1
        # Events for the transitions past the unchanged prefix of stages (a backdated entry is no change).
        old_stages, new_stages = [k[1] for k in old], [k[1] for k in new]
        common = 0
        while common < min(len(old_stages), len(new_stages)) and old_stages[common] == new_stages[common]:
            common += 1
        changes = [(t.from_stage, t) for t in transitions[common:]]
        if not changes and after is not None and before is not after:
            # The history got shorter (a rule change, a cancellation, an unmerge): still a change of stage.
            changes = [(before, transitions[-1])]
        published.extend((cid, from_stage, t) for from_stage, t in changes)
    if outbox is None:
        return outcome
    # Each event gets the next version of the owner's order; the customer's row keeps its last one, so a copy
    # that applies only greater versions ends on this row's stage whatever order the events reach it in.
    versions = await repository.next_versions(session, len(published))
    stage_versions: dict[uuid.UUID, int] = {}
    envelopes = []
    for (cid, from_stage, t), version in zip(published, versions, strict=True):
        stage_versions[cid] = version
        envelopes.append(Envelope.wrap(
            contracts.StageChanged(customer_id=cid, from_stage=from_stage, to_stage=t.stage, changed_at=t.entered_at,
                                   reason=t.reason, trigger_event_id=t.trigger_event_id, version=version),
            source=contracts.SOURCE, subject=str(cid), correlation_id=correlation_id,
        ))
    await repository.write_history(session, changed, stored, rules.version)
    # The current row is rewritten even when the history stands: a purchase changes the aggregates.
    await repository.write_current(session, derived, {c: aggregates(facts.get(c)) for c in ids}, rules.version,
                                   stage_versions)
    await outbox.add(session, LIFECYCLE_EVENTS, envelopes)
    return outcome


async def customer_chunk(session: AsyncSession, after: uuid.UUID, size: int = CHUNK) -> list[uuid.UUID]:
    """The next customers (with facts or a stage) after `after`, in id order: keyset pagination over everyone."""
    return list((await session.execute(sa.text("""
        SELECT customer_id FROM (SELECT customer_id FROM lifecycle.customer_fact
                                 UNION SELECT customer_id FROM lifecycle.customer_stage) c
        WHERE customer_id > :after ORDER BY customer_id LIMIT :n"""), {"after": after, "n": size})).scalars().all())


async def dry_run(session: AsyncSession, parameters: RuleParameters) -> Outcome:
    """How many customers `parameters` would move, from → to: the replay without writing anything."""
    candidate = rules_repo.RuleSetVersion(0, parameters, "dry run", None, datetime.now(UTC), datetime.now(UTC))
    total = Outcome()
    after = uuid.UUID(int=0)
    while chunk := await customer_chunk(session, after):
        total.add(await rederive(session, None, chunk, rules=candidate))
        after = chunk[-1]
    return total


async def sweep(session: AsyncSession, outbox: Outbox, as_of: datetime | None = None) -> Outcome:
    """Applies the clock rules as of now: re-derives the active customers whose inactivity window has run out."""
    rules = await rules_repo.active(session)
    now = as_of or datetime.now(UTC)
    due = (await session.execute(sa.text("""
        SELECT customer_id FROM lifecycle.customer_stage
        WHERE stage = ANY(CAST(:active AS text[])) AND coalesce(last_purchase_at, stage_entered_at) <= :cutoff"""),
        {"active": [s.value for s in ACTIVE], "cutoff": now - timedelta(days=rules.parameters.inactivity_days)})).scalars().all()
    total = Outcome()
    for i in range(0, len(due), CHUNK):
        total.add(await rederive(session, outbox, due[i:i + CHUNK], rules=rules, as_of=now))
    return total


async def manual_move(session: AsyncSession, outbox: Outbox, customer_id: uuid.UUID, to_stage: Stage, reason: str,
                      actor: str | None) -> None:
    """A person moves a customer; only the transitions in ALLOWED_MANUAL, always with a reason."""
    await repository.lock_customers(session, [customer_id])
    current = (await session.execute(sa.text("SELECT stage FROM lifecycle.customer_stage WHERE customer_id = :c"),
                                     {"c": customer_id})).scalar()
    if current is None:
        raise NotFound(f"customer {customer_id} has no lifecycle stage yet")
    current = Stage(current)
    allowed = sorted(ALLOWED_MANUAL[current])
    if to_stage not in ALLOWED_MANUAL[current]:
        why = (f"the customer is already in {current.value}" if to_stage is current
               else f"{current.value} → {to_stage.value} is not an allowed manual move")
        raise IllegalMove(f"{why}; allowed from {current.value}: {', '.join(s.value for s in allowed)}",
                          from_stage=current.value, to_stage=to_stage.value, allowed=[s.value for s in allowed])
    # The move was checked against the stage all facts give, including one timed ahead of now (an order may
    # be up to a day ahead): it takes effect after the latest of them, so the replay sees the stage it was
    # checked against (a fact at the same instant sorts before a manual move).
    latest = await repository.latest_fact_at(session, customer_id)
    at = max(datetime.now(UTC), latest) if latest else datetime.now(UTC)
    fact = Fact(kind=FactKind.MANUAL, occurred_at=at, source="manual", event_id=str(uuid.uuid4()),
                to_stage=to_stage, actor=actor, reason=reason)
    await repository.insert_facts(session, [repository.fact_row(customer_id, fact)])
    await rederive(session, outbox, [customer_id])
