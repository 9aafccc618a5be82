"""Re-derives customers' stages from their facts and writes what changed: history, stage, `stage.changed`.

The one write path for stages: the event consumer, manual moves, the inactivity sweep and rule-set changes
all add facts (or change the rules) and then call `rederive` for the customers concerned.
"""

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from lifecycle.rules.engine import (
    ACTIVE,
    ALLOWED_MANUAL,
    DerivationState,
    Fact,
    FactKind,
    RuleParameters,
    Transition,
    derive,
)
from lifecycle.stages import repository
from lifecycle.stages.schemas import CustomerLifecycleRead, StageHistoryRead

# Customers re-derived per transaction when a whole population is replayed (rule change, sweep).
CHUNK = 2000
NO_STAGE_REASON = "the customer's facts give no stage any more"


class IllegalMove(DomainError):
    status, slug, title = 422, "illegal-stage-move", "Stage move not allowed"


@dataclass
class Outcome:
    """What a re-derivation did: current-stage moves counted by (from, to), customers evaluated, and of them
    those derived incrementally from their kept state."""

    evaluated: int = 0
    moves: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    incremental: int = 0

    def add(self, other: "Outcome") -> None:
        self.evaluated += other.evaluated
        self.incremental += other.incremental
        self.moves.update(other.moves)


def aggregates(cf: repository.CustomerFacts | None) -> tuple[int, dict[str, Decimal], datetime | None]:
    """Order count, spend per currency and last purchase over the purchases that were not cancelled.

    Spend is net of refunds, as everywhere in the system: per purchase its amount less what was refunded of
    it, never below zero; a cancelled purchase counts nothing. Money of two currencies is never added."""
    if cf is None:
        return 0, {}, None
    cancelled = {f.purchase_id for f in cf.facts if f.kind is FactKind.CANCELLATION}
    purchases = {
        f.purchase_id: f
        for f in cf.facts
        if f.kind is FactKind.PURCHASE and f.purchase_id is not None and f.purchase_id not in cancelled
    }
    spend: dict[str, Decimal] = {}
    for pid in purchases:
        currency = cf.currencies.get(pid, "")
        net = max(cf.amounts.get(pid, Decimal(0)) - cf.refunded.get(pid, Decimal(0)), Decimal(0))
        spend[currency] = spend.get(currency, Decimal(0)) + net
    return len(purchases), spend, max((f.occurred_at for f in purchases.values()), default=None)


async def rederive(
    session: AsyncSession,
    outbox: Outbox | None,
    customer_ids: Sequence[uuid.UUID],
    *,
    rules: rules_repo.RuleSetVersion | None = None,
    as_of: datetime | None = None,
    correlation_id: str | None = None,
    new_facts: dict[uuid.UUID, repository.CustomerFacts] | None = None,
) -> Outcome:
    """Derives these customers' stages and writes the result (None outbox: dry run).

    `new_facts` are the facts just stored for some of them (all of them, per customer). A customer whose new
    facts only extend its history (each sorts after every fact it had, none is a cancellation or a refund,
    and its state was derived under this rule set and not moved by the clock) is derived incrementally from
    the state kept with its stage; every other customer is replayed from all of its facts.
    """
    ids = sorted(set(customer_ids))
    outcome = Outcome(evaluated=len(ids))
    if not ids:
        return outcome
    if outbox is not None:
        await repository.lock_customers(session, ids)
    rules = rules or await rules_repo.active(session)
    now = as_of or datetime.now(UTC)
    derived: dict[uuid.UUID, list[Transition]] = {}  # the transitions, or for an incremental one its current
    changed: dict[uuid.UUID, list[Transition]] = {}  # replayed customers whose history changed
    appended: dict[uuid.UUID, list[Transition]] = {}  # incremental customers' new transitions
    derivations: dict[uuid.UUID, dict] = {}
    totals: dict[uuid.UUID, tuple[int, dict[str, Decimal], datetime | None]] = {}
    published: list[tuple[uuid.UUID, Stage | None, Transition]] = []
    cleared: list[tuple[uuid.UUID, Stage]] = []  # customers left without a stage, and the stage they had

    incremental, first = await _incremental(session, ids, new_facts, rules, outbox is not None)
    outcome.incremental = len(incremental)
    for cid, (row, state, cf) in incremental.items():
        transitions, after, clocked = derive(cf.facts, rules.parameters, as_of=now, state=state)
        derivations[cid] = after.to_json() | {"clocked": clocked}
        totals[cid] = _extend_aggregates(row, after, cf)
        assert row.stage is not None and row.stage_entered_at is not None  # a kept state is kept with a stage
        derived[cid] = transitions[-1:] or [Transition(None, Stage(row.stage), row.stage_entered_at, "", "")]
        if transitions:
            appended[cid] = transitions
            outcome.moves[(row.stage, transitions[-1].stage.value)] += 1
            published.extend((cid, t.from_stage, t) for t in transitions)

    replayed = [cid for cid in ids if cid not in incremental]
    # A customer whose facts are all new has them in hand and no history yet: nothing to read back.
    unread = [cid for cid in replayed if cid not in first]
    facts = await repository.load_facts(session, unread) if unread else {}
    stored = await repository.load_history_keys(session, unread) if unread else {}
    facts.update(first)
    for cid in replayed:
        transitions, after, clocked = derive(facts[cid].facts if cid in facts else [], rules.parameters, as_of=now)
        derived[cid] = transitions
        derivations[cid] = after.to_json() | {"clocked": clocked}
        totals[cid] = aggregates(facts.get(cid))
        old = stored.get(cid, [])
        new = [repository.history_key(t) for t in transitions]
        if old == new:
            continue
        changed[cid] = transitions
        before = Stage(old[-1][1]) if old else None
        after_stage = transitions[-1].stage if transitions else None
        if before is not after_stage:
            outcome.moves[(before.value if before else None, after_stage.value if after_stage else None)] += 1
        # Events for the transitions past the unchanged prefix of stages (a backdated entry is no change).
        old_stages, new_stages = [k[1] for k in old], [k[1] for k in new]
        common = 0
        while common < min(len(old_stages), len(new_stages)) and old_stages[common] == new_stages[common]:
            common += 1
        changes = [(t.from_stage, t) for t in transitions[common:]]
        if not changes and after_stage is not None and before is not after_stage:
            # The history got shorter (a rule change, a cancellation, an unmerge): still a change of stage.
            changes = [(before, transitions[-1])]
        published.extend((cid, from_stage, t) for from_stage, t in changes)
        if before is not None and after_stage is None:
            # No stage left (every purchase cancelled, the facts moved away by an unmerge): the row goes, and the
            # copies hear it, in the same order as the stages (before, they kept the last stage until reconcile).
            cleared.append((cid, before))
    if outbox is None:
        return outcome
    # Each event gets the next version of the owner's order; the customer's row keeps its last one, so a copy
    # that applies only greater versions ends on this row's stage whatever order the events reach it in.
    versions = await repository.next_versions(session, len(published) + len(cleared))
    stage_versions: dict[uuid.UUID, int] = {}
    envelopes = []
    for (cid, from_stage, t), version in zip(published, versions[: len(published)], strict=True):
        stage_versions[cid] = version
        envelopes.append(
            Envelope.wrap(
                contracts.StageChanged(
                    customer_id=cid,
                    from_stage=from_stage,
                    to_stage=t.stage,
                    changed_at=t.entered_at,
                    reason=t.reason,
                    trigger_event_id=t.trigger_event_id,
                    version=version,
                ),
                source=contracts.SOURCE,
                subject=str(cid),
                correlation_id=correlation_id,
            )
        )
    for (cid, before), version in zip(cleared, versions[len(published) :], strict=True):
        envelopes.append(
            Envelope.wrap(
                contracts.StageCleared(
                    customer_id=cid, from_stage=before, changed_at=now, reason=NO_STAGE_REASON, version=version
                ),
                source=contracts.SOURCE,
                subject=str(cid),
                correlation_id=correlation_id,
            )
        )
    await repository.write_history(session, changed, stored, rules.version)
    await repository.append_history(session, appended, rules.version)
    # The current row is rewritten even when the history stands: a purchase changes the aggregates.
    await repository.write_current(
        session, {cid: derived[cid] for cid in ids}, totals, rules.version, stage_versions, derivations
    )
    await outbox.add(session, LIFECYCLE_EVENTS, envelopes)
    return outcome


async def _incremental(
    session: AsyncSession,
    ids: list[uuid.UUID],
    new_facts: dict[uuid.UUID, repository.CustomerFacts] | None,
    rules: rules_repo.RuleSetVersion,
    writing: bool,
) -> tuple[
    dict[uuid.UUID, tuple[repository.Current, DerivationState, repository.CustomerFacts]],
    dict[uuid.UUID, repository.CustomerFacts],
]:
    """The customers that can be derived from their kept state: (stage row, state, new facts) of each; and
    those whose facts are all new (their first): the new facts of each, their whole history."""
    if not new_facts or not writing:
        return {}, {}
    candidates = [cid for cid in ids if cid in new_facts]
    out: dict[uuid.UUID, tuple[repository.Current, DerivationState, repository.CustomerFacts]] = {}
    first: dict[uuid.UUID, repository.CustomerFacts] = {}
    for cid, row in (await repository.load_current(session, candidates)).items():
        cf = new_facts[cid]
        if row.stage is None:
            # No stage, so no history (a customer's history is what its facts give); read under the
            # customer's lock, so the count includes what a transaction committed before this one.
            if row.facts == len(cf.facts):
                first[cid] = cf
            continue
        if row.derivation is None or row.derivation.get("clocked") or row.rule_set_version != rules.version:
            continue
        state = DerivationState.from_json(row.derivation)
        # A refund changes the net spend of an earlier purchase: the aggregates are recomputed from all facts.
        # A fact that sorts before the state's last one (late, out of order) changes the past: replayed.
        if all(state.extended_by(f) and f.kind is not FactKind.REFUND for f in cf.facts) and all(
            _on_the_cent_grid(a) for a in cf.amounts.values()
        ):
            out[cid] = (row, state, cf)
    return out, first


def _on_the_cent_grid(amount: Decimal) -> bool:
    """Whether adding `amount` to a stored (rounded) spend gives what rounding the whole sum gives."""
    return amount == amount.quantize(repository.CENTS)


def _extend_aggregates(
    row: repository.Current, state: DerivationState, cf: repository.CustomerFacts
) -> tuple[int, dict[str, Decimal], datetime | None]:
    """The stage row's order count, spend per currency and last purchase, plus the new purchases that count
    (`aggregates` on all facts gives the same: refunds and cancellations never take this path)."""
    count, last = row.order_count, row.last_purchase_at
    spend = {currency: Decimal(v) for currency, v in row.spend_by_currency.items()}
    for f in cf.facts:
        if f.kind is FactKind.PURCHASE and f.purchase_id is not None and f.purchase_id not in state.cancelled:
            count += 1
            currency = cf.currencies.get(f.purchase_id, "")
            spend[currency] = spend.get(currency, Decimal(0)) + cf.amounts.get(f.purchase_id, Decimal(0))
            last = max(last, f.occurred_at) if last else f.occurred_at
    return count, spend, last


async def customer_chunk(session: AsyncSession, after: uuid.UUID, size: int = CHUNK) -> list[uuid.UUID]:
    """The next customers (with facts or a stage) after `after`, in id order: keyset pagination over everyone."""
    return list(
        (
            await session.execute(
                sa.text("""
        SELECT customer_id FROM (SELECT customer_id FROM lifecycle.customer_fact
                                 UNION SELECT customer_id FROM lifecycle.customer_stage) c
        WHERE customer_id > :after ORDER BY customer_id LIMIT :n"""),
                {"after": after, "n": size},
            )
        )
        .scalars()
        .all()
    )


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
    due = (
        (
            await session.execute(
                sa.text("""
        SELECT customer_id FROM lifecycle.customer_stage
        WHERE stage = ANY(CAST(:active AS text[])) AND coalesce(last_purchase_at, stage_entered_at) <= :cutoff"""),
                {"active": [s.value for s in ACTIVE], "cutoff": now - timedelta(days=rules.parameters.inactivity_days)},
            )
        )
        .scalars()
        .all()
    )
    total = Outcome()
    for i in range(0, len(due), CHUNK):
        total.add(await rederive(session, outbox, due[i : i + CHUNK], rules=rules, as_of=now))
    return total


async def manual_move(
    session: AsyncSession, outbox: Outbox, customer_id: uuid.UUID, to_stage: Stage, reason: str, actor: str | None
) -> None:
    """A person moves a customer; only the transitions in ALLOWED_MANUAL, always with a reason."""
    await repository.lock_customers(session, [customer_id])
    current = (
        await session.execute(sa.text("SELECT stage FROM lifecycle.customer_stage WHERE customer_id = :c"), {"c": customer_id})
    ).scalar()
    if current is None:
        raise NotFound(f"customer {customer_id} has no lifecycle stage yet")
    current = Stage(current)
    allowed = sorted(ALLOWED_MANUAL[current])
    if to_stage not in ALLOWED_MANUAL[current]:
        why = (
            f"the customer is already in {current.value}"
            if to_stage is current
            else f"{current.value} → {to_stage.value} is not an allowed manual move"
        )
        raise IllegalMove(
            f"{why}; allowed from {current.value}: {', '.join(s.value for s in allowed)}",
            from_stage=current.value,
            to_stage=to_stage.value,
            allowed=[s.value for s in allowed],
        )
    # The move was checked against the stage all facts give, including one timed ahead of now (an order may
    # be up to a day ahead): it takes effect after the latest of them, so the replay sees the stage it was
    # checked against (a fact at the same instant sorts before a manual move).
    latest = await repository.latest_fact_at(session, customer_id)
    at = max(datetime.now(UTC), latest) if latest else datetime.now(UTC)
    fact = Fact(
        kind=FactKind.MANUAL,
        occurred_at=at,
        source="manual",
        event_id=str(uuid.uuid4()),
        to_stage=to_stage,
        actor=actor,
        reason=reason,
    )
    stored_with = (await repository.insert_facts(session, [repository.fact_row(customer_id, fact)])).values()
    new = repository.CustomerFacts()
    new.add(fact)
    await rederive(session, outbox, [customer_id, *stored_with], new_facts={c: new for c in stored_with})


async def read_lifecycle(session: AsyncSession, customer_id: uuid.UUID) -> CustomerLifecycleRead:
    """A customer's lifecycle; a merged-away id answers as its survivor (with `resolved_from`), as the profile does."""
    resolved_from = None
    row, survivor = await repository.stage_or_survivor(session, customer_id)
    if row is None and survivor is not None:
        resolved_from, customer_id = customer_id, survivor
        row, _ = await repository.stage_or_survivor(session, customer_id)
    if row is None:
        raise NotFound(f"customer {customer_id} has no lifecycle stage yet")
    history = await repository.stage_history_of(session, customer_id)
    return CustomerLifecycleRead(
        customer_id=customer_id,
        resolved_from=resolved_from,
        stage=row["stage"],
        stage_entered_at=row["stage_entered_at"],
        order_count=row["order_count"],
        total_spend=row["total_spend"],
        spend_by_currency=row["spend_by_currency"],
        last_purchase_at=row["last_purchase_at"],
        rule_set_version=row["rule_set_version"],
        history=[
            StageHistoryRead(
                **{k: r[k] for k in StageHistoryRead.model_fields if k in r.keys()},
                duration_seconds=(r["left_at"] - r["entered_at"]).total_seconds() if r["left_at"] else None,
            )
            for r in history
        ],
    )
