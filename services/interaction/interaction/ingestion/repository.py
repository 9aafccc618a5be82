"""Writes of one ingested batch: fixed-shape `unnest` statements, compiled and prepared once whatever the size."""

import sqlalchemy as sa

INSERT_ACTIVITY = sa.text("""
INSERT INTO interaction.activity (id, customer_id, home_customer_id, source, event_id, type, occurred_at, channel, data)
SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:homes AS uuid[]),
                     CAST(:sources AS text[]), CAST(:event_ids AS text[]), CAST(:types AS text[]),
                     CAST(:occurred AS timestamptz[]), CAST(:channels AS text[]), CAST(CAST(:data AS text[]) AS jsonb[]))
""")
INSERT_PURCHASES = sa.text("""
INSERT INTO interaction.purchase (id, customer_id, home_customer_id, source, order_id, amount, currency, channel,
                                  occurred_at, event_id, line_items, shipping_cost, discount)
SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:homes AS uuid[]),
                     CAST(:sources AS text[]), CAST(:order_ids AS text[]), CAST(:amounts AS numeric[]),
                     CAST(:currencies AS text[]), CAST(:channels AS text[]), CAST(:occurred AS timestamptz[]),
                     CAST(:event_ids AS text[]), CAST(CAST(:line_items AS text[]) AS jsonb[]),
                     CAST(:shipping_costs AS numeric[]), CAST(:discounts AS numeric[]))
ON CONFLICT (source, order_id) DO NOTHING
RETURNING source, order_id
""")
INSERT_ADJUSTMENTS = sa.text("""
INSERT INTO interaction.purchase_adjustment (id, customer_id, home_customer_id, source, order_id, event_id, amount,
                                             currency, cancelled, reason, occurred_at)
SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:homes AS uuid[]),
                     CAST(:sources AS text[]), CAST(:order_ids AS text[]), CAST(:event_ids AS text[]),
                     CAST(:amounts AS numeric[]), CAST(:currencies AS text[]), CAST(:cancelled AS boolean[]),
                     CAST(:reasons AS text[]), CAST(:occurred AS timestamptz[]))
""")
# A refund or cancellation is published once its order is known, whichever of the two arrived first.
PUBLISH_ADJUSTMENTS = sa.text("""
UPDATE interaction.purchase_adjustment a SET published_at = now(), updated_at = now()
FROM interaction.purchase p
WHERE a.published_at IS NULL AND p.source = a.source AND p.order_id = a.order_id
  AND (a.source, a.order_id) IN (SELECT * FROM unnest(CAST(:sources AS text[]), CAST(:order_ids AS text[])))
RETURNING a.id, a.source, a.order_id, a.amount, a.cancelled, a.occurred_at, p.id AS purchase_id, p.customer_id,
          p.home_customer_id, p.currency, p.amount AS purchase_amount
""")
# Newest fact wins (ties: the larger value, so the outcome never depends on arrival order).
UPSERT_PROPERTIES = sa.text("""
INSERT INTO interaction.customer_property AS p (customer_id, kind, key, value, value_type, source, occurred_at)
SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:kinds AS text[]), CAST(:keys AS text[]),
                     CAST(CAST(:values AS text[]) AS jsonb[]), CAST(:types AS text[]), CAST(:sources AS text[]),
                     CAST(:occurred AS timestamptz[]))
ON CONFLICT (customer_id, kind, key) DO UPDATE SET
    value = EXCLUDED.value, value_type = EXCLUDED.value_type, source = EXCLUDED.source,
    occurred_at = EXCLUDED.occurred_at, filled_by_merge_id = NULL, updated_at = now()
WHERE (p.occurred_at, p.value::text) < (EXCLUDED.occurred_at, EXCLUDED.value::text)
RETURNING customer_id, kind, key
""")
UPSERT_DEALS = sa.text("""
INSERT INTO interaction.deal AS d (source, deal_id, customer_id, home_customer_id, pipeline, stage, amount, currency,
                                   expected_close, owner, lost_reason, occurred_at)
SELECT * FROM unnest(CAST(:sources AS text[]), CAST(:deal_ids AS text[]), CAST(:customer_ids AS uuid[]),
                     CAST(:homes AS uuid[]), CAST(:pipelines AS text[]), CAST(:stages AS text[]),
                     CAST(:amounts AS numeric[]), CAST(:currencies AS text[]), CAST(:closes AS timestamptz[]),
                     CAST(:owners AS text[]), CAST(:lost AS text[]), CAST(:occurred AS timestamptz[]))
ON CONFLICT (source, deal_id) DO UPDATE SET
    customer_id = EXCLUDED.customer_id, home_customer_id = EXCLUDED.home_customer_id, pipeline = EXCLUDED.pipeline,
    stage = EXCLUDED.stage, amount = EXCLUDED.amount, currency = EXCLUDED.currency,
    expected_close = EXCLUDED.expected_close, owner = EXCLUDED.owner, lost_reason = EXCLUDED.lost_reason,
    occurred_at = EXCLUDED.occurred_at, updated_at = now()
WHERE (d.occurred_at, d.stage) < (EXCLUDED.occurred_at, EXCLUDED.stage)
RETURNING source, deal_id
""")
ANY_PENDING_ADJUSTMENTS = sa.text("""
SELECT 1 FROM interaction.purchase_adjustment
WHERE published_at IS NULL
  AND (source, order_id) IN (SELECT * FROM unnest(CAST(:sources AS text[]), CAST(:order_ids AS text[])))
LIMIT 1
""")
# The batch's partners registered (an unknown source becomes an unclassified partner) and, of them, those whose
# emails and phones may link customers across partners (off unless an operator turned it on). One statement, one
# round trip of the serial ingest transaction: the SELECT does not see the rows the INSERT adds, and needs not,
# since a partner registered here is never trusted (trust_contact_linking defaults to false).
REGISTER_PARTNERS_AND_FIND_TRUSTED = sa.text("""
WITH registered AS (
    INSERT INTO interaction.partner (id, name, kind, auto_registered)
    SELECT s, s, 'unclassified', true FROM unnest(CAST(:ids AS text[])) AS s
    ON CONFLICT DO NOTHING
)
SELECT id FROM interaction.partner WHERE id = ANY(CAST(:ids AS text[])) AND trust_contact_linking
""")


def columns(rows: list[dict], mapping: dict[str, str]) -> dict[str, list]:
    """Row dicts as the parallel arrays an `unnest` statement takes: {param: [row[column] …]}."""
    return {param: [r[col] for r in rows] for param, col in mapping.items()}
