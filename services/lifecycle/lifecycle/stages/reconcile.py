"""`python -m lifecycle reconcile [--repair]`: the value facts (clv's tier and probability alive, which the rules
read) against clv's state route (shared/reconcile.py).

The facts are a history, not a single copy: the newest one (by clv's version) must say what clv says now. A
repair adds clv's current value as a fact at its time, then re-derives the customers (their stage may move)."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import clv as clv_contracts
from shared.messaging.outbox import Outbox
from shared.reconcile import CopyCheck, Drift, newest_per_customer, run_checks

from lifecycle.rules.engine import Fact, FactKind
from lifecycle.settings import SCHEMA, LifecycleSettings
from lifecycle.stages import repository, service
from lifecycle.tables import messaging

VALUE_COPY = sa.text("""
SELECT DISTINCT ON (customer_id) customer_id, data->>'tier' AS tier, (data->>'version')::bigint AS version
FROM lifecycle.customer_fact
WHERE kind = 'value' AND (CAST(:ids AS uuid[]) IS NULL OR customer_id = ANY(CAST(:ids AS uuid[])))
  AND (CAST(:after AS uuid) IS NULL OR customer_id > CAST(:after AS uuid))
  AND (CAST(:upto AS uuid) IS NULL OR customer_id <= CAST(:upto AS uuid))
ORDER BY customer_id, (data->>'version')::bigint DESC NULLS LAST, occurred_at DESC
""")


async def value_copy(session: AsyncSession, ids, after, upto) -> dict:
    params = {"ids": list(ids) if ids is not None else None, "after": after, "upto": upto}
    return {r.customer_id: (r.tier, r.version) for r in await session.execute(VALUE_COPY, params)}


def checks(settings: LifecycleSettings) -> list[CopyCheck]:
    outbox = Outbox(messaging, SCHEMA, settings.topic_prefix)

    async def repair_values(session: AsyncSession, drifts: list[Drift]) -> None:
        rows = []
        for d in drifts:
            o = d.owner_state
            if o is None:
                continue  # not a drift here (owner_absent_is_drift=False): clv has nothing to apply
            fact = Fact(
                FactKind.VALUE,
                datetime.fromisoformat(o["as_of"]),
                clv_contracts.SOURCE,
                f"reconcile:{o['currency']}:v{o['version']}",
                tier=o["tier"],
                probability_alive=o["probability_alive"],
            )
            rows.append(repository.fact_row(d.customer_id, fact, version=o["version"]))
        await repository.insert_facts(session, rows)
        await service.rederive(session, outbox, [d.customer_id for d in drifts])

    return [
        CopyCheck(
            fact="value (clv)",
            owner="clv",
            owner_url=settings.clv_url,
            owner_path="/v1/value/state",
            owner_params=(),
            owner_states=newest_per_customer,
            comparable=lambda o: (o["tier"], o["version"]),
            load_copy=value_copy,
            repair=repair_values,
            owner_absent_is_drift=False,
        )
    ]


async def run(settings: LifecycleSettings, repair: bool) -> list[Drift]:
    return await run_checks(settings.database_url, checks(settings), repair)
