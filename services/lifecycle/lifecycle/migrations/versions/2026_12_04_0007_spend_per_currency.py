"""spend per currency on the customer's lifecycle: money of two currencies is never added

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None
SCHEMA = "lifecycle"


def upgrade() -> None:
    op.add_column("customer_stage", sa.Column("spend_by_currency", JSONB, nullable=False, server_default="{}"), schema=SCHEMA)
    op.alter_column("customer_stage", "total_spend", nullable=True, schema=SCHEMA)
    # From the stored facts, as `stages.service.aggregates` derives it: purchases not cancelled, each net of its
    # refunds and never below zero, per currency; one figure only for one currency.
    op.execute(f"""
        WITH refunded AS (
            SELECT data->>'purchase_id' AS pid, sum(CAST(data->>'amount' AS numeric)) AS amount
            FROM {SCHEMA}.customer_fact WHERE kind = 'refund' GROUP BY 1
        ), cancelled AS (
            SELECT DISTINCT data->>'purchase_id' AS pid FROM {SCHEMA}.customer_fact WHERE kind = 'cancellation'
        ), spend AS (
            SELECT f.customer_id, coalesce(f.data->>'currency', '') AS currency,
                   sum(greatest(CAST(f.data->>'amount' AS numeric) - coalesce(r.amount, 0), 0)) AS total
            FROM {SCHEMA}.customer_fact f LEFT JOIN refunded r ON r.pid = f.data->>'purchase_id'
            WHERE f.kind = 'purchase' AND f.data ? 'amount'
              AND NOT EXISTS (SELECT 1 FROM cancelled c WHERE c.pid = f.data->>'purchase_id')
            GROUP BY 1, 2
        ), per_customer AS (
            SELECT customer_id, jsonb_object_agg(currency, CAST(total AS text)) AS by_currency,
                   CASE WHEN count(*) = 1 THEN max(total) END AS single
            FROM spend GROUP BY customer_id
        )
        UPDATE {SCHEMA}.customer_stage s SET spend_by_currency = p.by_currency, total_spend = p.single
        FROM per_customer p WHERE p.customer_id = s.customer_id""")


def downgrade() -> None:
    op.execute(f"UPDATE {SCHEMA}.customer_stage SET total_spend = 0 WHERE total_spend IS NULL")
    op.alter_column("customer_stage", "total_spend", nullable=False, schema=SCHEMA)
    op.drop_column("customer_stage", "spend_by_currency", schema=SCHEMA)
